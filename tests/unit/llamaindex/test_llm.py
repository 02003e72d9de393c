"""SLM: message/tool translation, tool calls with ids, tool_choice, streaming, async parity."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from llamaindex_slm import SLM
from llamaindex_slm._utils import to_openai_messages
from slm_agents import FakeRuntime
from slm_agents.errors import InvalidRequest

ADD_CALL = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "usage": (40, 7)}


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def test_import_does_not_load_llama_cpp() -> None:
    code = "import sys, llamaindex_slm; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_messages_translate_to_openai_format() -> None:
    history = [
        ChatMessage(role="system", content="be brief"),
        user("1+2?"),
        ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_call_id="c1", tool_name="add", tool_kwargs={"a": 1})]),
        ChatMessage(role="tool", content="3", additional_kwargs={"tool_call_id": "c1", "name": "add"}),
        # an older integration's assistant message: calls in additional_kwargs, arguments as a dict
        ChatMessage(role="assistant", content="", additional_kwargs={
            "tool_calls": [{"id": "c2", "function": {"name": "add", "arguments": {"a": 2}}}]}),
        ChatMessage(role=MessageRole.CHATBOT, content="done"),
    ]
    out = to_openai_messages(history)
    assert out[0] == {"role": "system", "content": "be brief"}
    assert out[2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]}
    assert out[3] == {"role": "tool", "content": "3", "tool_call_id": "c1", "name": "add"}
    assert json.loads(out[4]["tool_calls"][0]["function"]["arguments"]) == {"a": 2}
    assert out[5] == {"role": "assistant", "content": "done"}


def test_chat_returns_text_usage_and_raw() -> None:
    rt = FakeRuntime([{"content": "Paris.", "usage": (12, 3)}])
    r = SLM(runtime=rt).chat([user("Capital of France?")])
    assert r.message.content == "Paris."
    assert r.additional_kwargs["prompt_tokens"] == 12 and r.additional_kwargs["completion_tokens"] == 3
    assert r.raw["usage"] == {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    assert rt.requests[0]["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert rt.requests[0]["tools"] == []


def test_tool_calls_are_blocks_and_additional_kwargs_with_ids(add_tool) -> None:
    llm = SLM(runtime=FakeRuntime([ADD_CALL]))
    r = llm.chat_with_tools([add_tool], user_msg="1+2?")
    blocks = [b for b in r.message.blocks if isinstance(b, ToolCallBlock)]
    assert len(blocks) == 1 and blocks[0].tool_kwargs == {"a": 1, "b": 2}
    openai_calls = r.message.additional_kwargs["tool_calls"]
    assert openai_calls[0]["id"] == blocks[0].tool_call_id
    selections = llm.get_tool_calls_from_response(r)
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in selections] == [(blocks[0].tool_call_id, "add", {"a": 1, "b": 2})]


def test_no_tool_call_raises_only_when_asked() -> None:
    llm = SLM(runtime=FakeRuntime(["no call"]))
    r = llm.chat([user("hi")])
    assert llm.get_tool_calls_from_response(r, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="at least one tool call"):
        llm.get_tool_calls_from_response(r)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({}, "auto"), ({"tool_required": True}, "required"), ({"tool_choice": "add"}, "add"),
     ({"tool_choice": "none", "tool_required": True}, "none")],
)
def test_tool_choice_and_tool_required(add_tool, kwargs, expected) -> None:
    rt = FakeRuntime([ADD_CALL])
    SLM(runtime=rt).chat_with_tools([add_tool], user_msg="1+2?", **kwargs)
    request = rt.requests[0]
    assert request["tool_choice"] == expected
    assert request["tools"][0]["function"]["name"] == "add"
    assert request["sampling"]["parallel_tool_calls"] is False


def test_parallel_calls_trimmed_unless_allowed(add_tool) -> None:
    two = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "add", "arguments": {"a": 3, "b": 4}}]}
    llm = SLM(runtime=FakeRuntime([two, two]), parallel_tool_calls=True)
    assert len(llm.get_tool_calls_from_response(llm.chat_with_tools([add_tool], user_msg="x"))) == 1
    r = llm.chat_with_tools([add_tool], user_msg="x", allow_parallel_tool_calls=True)
    assert len(llm.get_tool_calls_from_response(r)) == 2


def test_stream_chat_is_cumulative_and_ends_with_the_whole_answer(add_tool) -> None:
    llm = SLM(runtime=FakeRuntime(["one two three", ADD_CALL]))
    chunks = list(llm.stream_chat([user("count")]))
    assert [c.delta for c in chunks[:-1]] == ["one", " two", " three"]
    assert chunks[-2].message.content == "one two three"
    assert chunks[-1].message.content == "one two three" and chunks[-1].raw["finish_reason"] == "stop"
    calls = list(llm.stream_chat_with_tools([add_tool], user_msg="1+2"))
    assert llm.get_tool_calls_from_response(calls[-1])[0].tool_kwargs == {"a": 1, "b": 2}


async def test_async_twins_match_sync(add_tool) -> None:
    responses = ["hello there", ADD_CALL, "hello there", "hello there", "hello there"]
    sync_llm, async_llm = SLM(runtime=FakeRuntime(responses)), SLM(runtime=FakeRuntime(responses))
    assert (await async_llm.achat([user("hi")])).message.content == sync_llm.chat([user("hi")]).message.content
    a = await async_llm.achat_with_tools([add_tool], user_msg="1+2")
    s = sync_llm.chat_with_tools([add_tool], user_msg="1+2")
    assert [t.tool_kwargs for t in async_llm.get_tool_calls_from_response(a)] == [
        t.tool_kwargs for t in sync_llm.get_tool_calls_from_response(s)]
    streamed = [c async for c in await async_llm.astream_chat([user("hi")])]
    assert streamed[-1].message.content == list(sync_llm.stream_chat([user("hi")]))[-1].message.content
    assert (await async_llm.acomplete("hi")).text == "hello there"
    assert [c.delta async for c in await async_llm.astream_complete("x")][:2] == ["hello", " there"]


def test_complete_wraps_chat() -> None:
    rt = FakeRuntime(["fine"])
    assert SLM(runtime=rt).complete("how are you").text == "fine"
    assert rt.requests[0]["messages"] == [{"role": "user", "content": "how are you"}]


def test_predict_and_call_and_structured_predict(add_tool) -> None:
    llm = SLM(runtime=FakeRuntime([ADD_CALL]))
    assert llm.predict_and_call([add_tool], user_msg="1+2?").response == "3"

    class City(BaseModel):
        name: str
        country: str

    rt = FakeRuntime([{"tool_calls": [{"name": "City", "arguments": {"name": "Paris", "country": "France"}}]}])
    out = SLM(runtime=rt).structured_predict(City, PromptTemplate("Extract: {text}"), text="Paris, France")
    assert out == City(name="Paris", country="France")
    assert rt.requests[0]["tool_choice"] == "required"


def test_metadata_and_validation() -> None:
    meta = SLM(runtime=FakeRuntime([]), max_tokens=77).metadata
    assert (meta.is_chat_model, meta.is_function_calling_model, meta.num_output, meta.model_name) == (True, True, 77, "fake-slm")
    assert SLM(runtime=FakeRuntime([]), context_window=1234).metadata.context_window == 1234
    with pytest.raises(InvalidRequest, match="model="):
        SLM(base_url="http://127.0.0.1:1/v1")
    with pytest.raises(InvalidRequest, match="sampling option"):
        SLM(additional_kwargs={"tempreature": 1})
    assert SLM.class_name() == "SLM"
    assert "api_key" not in SLM(base_url="http://127.0.0.1:1/v1", model="m", api_key="sk-secret").to_payload()


def test_openai_compat_runtime_is_built_lazily() -> None:
    llm = SLM(base_url="http://127.0.0.1:9/v1", model="served", api_key="k")
    assert llm._runtime is None
    assert llm.runtime.name == "openai" and llm.runtime.model_name == "served"


async def test_function_agent_runs_on_the_slm(add_tool) -> None:
    rt = FakeRuntime([ADD_CALL, "The answer is 3."])
    agent = FunctionAgent(tools=[add_tool], llm=SLM(runtime=rt))
    result = await agent.run("What is 1+2?")
    assert str(result) == "The answer is 3."
    assert [t.tool_output.content for t in result.tool_calls] == ["3"]
    second = rt.requests[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "add"
    assert second[-1]["role"] == "tool" and second[-1]["content"] == "3"
    assert second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]


def test_public_api_is_pinned() -> None:
    import llamaindex_slm

    assert sorted(llamaindex_slm.__all__) == sorted(
        ["SLM", "RouterLLM", "slm_agents_capture", "SLMAgentsCaptureHandler", "current_task"])


def test_keeping_one_call_leaves_the_instrumented_response_alone() -> None:
    from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ToolCallBlock

    from llamaindex_slm._utils import keep_first_tool_call

    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in range(2)]
    message = ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_call_id=f"c{i}", tool_name="f", tool_kwargs={})
                                                    for i in range(2)], additional_kwargs={"tool_calls": calls})
    original = ChatResponse(message=message)
    kept = keep_first_tool_call(original)
    assert len(original.message.blocks) == 2 and len(original.message.additional_kwargs["tool_calls"]) == 2
    assert [b.tool_call_id for b in kept.message.blocks] == ["c0"]
    assert [c["id"] for c in kept.message.additional_kwargs["tool_calls"]] == ["c0"]
