"""SLMCaptureHandler: what a LangChain/LangGraph run leaves in the capture store (fake models)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from sqlite_utils import Database

from langchain_slm import ChatSLM, ChatSLMRouter
from langchain_slm.callbacks import SLMCaptureHandler
from slm_agents.capture import CaptureStore, get_default_store, set_default_store
from slm_agents.errors import GenerationError, InvalidRequest
from slm_agents.runtimes.fake import FakeRuntime


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"tool failed: {reason}")


class FakeLLM(FakeMessagesListChatModel):
    """A stand-in for a frontier chat model that accepts bound tools."""

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)


class BrokenStream(BaseChatModel):
    """Streams two chunks, then fails."""

    @property
    def _llm_type(self) -> str:
        return "broken-stream"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        raise NotImplementedError

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kw: Any) -> Iterator[ChatGenerationChunk]:  # fmt: skip
        for piece in ("par", "tial"):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        raise ConnectionError("stream dropped")


ADD_CALL = {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}], "confidence": 0.8, "usage": (30, 7)}


@pytest.fixture
def store() -> Iterator[CaptureStore]:
    s = CaptureStore(Database(memory=True), redactor=None)
    yield s
    s.close()


def calls(store: CaptureStore) -> list[dict[str, Any]]:
    store.flush()
    return list(store.db.query("select * from calls order by id"))


def tool_rows(store: CaptureStore) -> list[dict[str, Any]]:
    store.flush()
    return list(store.db.query("select * from tool_executions order by id"))


def react_agent(*responses: Any, tools: list[Any] | None = None) -> Any:
    model = ChatSLM(runtime=FakeRuntime(list(responses)))
    return create_agent(model, tools or [add], checkpointer=InMemorySaver())


CONFIG = {"configurable": {"thread_id": "thread-7"}}


# -- a LangGraph run --------------------------------------------------------------------------------
def check_agent_run(store: CaptureStore) -> None:
    rows = calls(store)
    assert len(rows) == 2
    first, second = rows
    for row in rows:
        assert row["framework"] == "langgraph"
        assert row["task"] == "model"  # create_agent's model node
        assert row["thread_id"] == "thread-7"
        assert row["route"] == "slm"
        assert row["model"] == "fake-slm"
        assert row["run_id"] and row["parent_run_id"] and row["run_id"] != row["parent_run_id"]
        assert json.loads(row["tool_names"]) == ["add"]
        assert row["latency_ms"] >= row["ttft_ms"] >= 0
    assert json.loads(first["messages"]) == [{"role": "user", "content": "what is 2+3?"}]
    (tc,) = json.loads(first["tool_calls"])
    assert tc["function"]["name"] == "add" and json.loads(tc["function"]["arguments"]) == {"a": 2, "b": 3}
    assert (first["finish_reason"], first["valid"], first["confidence"]) == ("tool_calls", 1, 0.8)
    assert (first["input_tokens"], first["output_tokens"]) == (30, 7)
    roles = [m["role"] for m in json.loads(second["messages"])]
    assert roles == ["user", "assistant", "tool"]
    assert second["content"] == "5" and second["finish_reason"] == "stop"
    (exe,) = tool_rows(store)
    assert exe["name"] == "add" and exe["task"] == "tools" and exe["framework"] == "langgraph"
    assert exe["call_id"] == tc["id"]
    assert exe["model_call_id"] == first["id"]
    assert json.loads(exe["arguments"]) == {"a": 2, "b": 3}
    assert exe["result"] == "5" and exe["error_type"] is None
    assert exe["thread_id"] == "thread-7" and exe["latency_ms"] >= 0


def test_records_a_langgraph_run(store: CaptureStore) -> None:
    handler = SLMCaptureHandler(store)
    out = react_agent(ADD_CALL, "5").invoke({"messages": [("user", "what is 2+3?")]},
                                            {**CONFIG, "callbacks": [handler]})  # fmt: skip
    assert out["messages"][-1].content == "5"
    check_agent_run(store)
    assert handler.failures == 0


async def test_records_a_langgraph_run_async(store: CaptureStore) -> None:
    handler = SLMCaptureHandler(store)
    out = await react_agent(ADD_CALL, "5").ainvoke({"messages": [("user", "what is 2+3?")]},
                                                   {**CONFIG, "callbacks": [handler]})  # fmt: skip
    assert out["messages"][-1].content == "5"
    check_agent_run(store)


async def test_records_an_astream_run(store: CaptureStore) -> None:
    handler = SLMCaptureHandler(store)
    seen = []
    async for chunk, _meta in react_agent(ADD_CALL, "5").astream(
        {"messages": [("user", "what is 2+3?")]}, {**CONFIG, "callbacks": [handler]}, stream_mode="messages"
    ):
        seen.append(chunk)
    assert seen
    check_agent_run(store)


def test_records_a_stream_run(store: CaptureStore) -> None:
    handler = SLMCaptureHandler(store)
    list(react_agent(ADD_CALL, "5").stream({"messages": [("user", "what is 2+3?")]},
                                           {**CONFIG, "callbacks": [handler]}, stream_mode="updates"))  # fmt: skip
    check_agent_run(store)


# -- plain LangChain calls ------------------------------------------------------------------------------
def test_any_chat_model_outside_a_graph(store: CaptureStore) -> None:
    llm = FakeLLM(responses=[AIMessage("hi there", usage_metadata={"input_tokens": 3, "output_tokens": 2,
                                                                    "total_tokens": 5})])  # fmt: skip
    llm.bind_tools([add], tool_choice="auto").invoke([HumanMessage("hello")], config={"callbacks": [SLMCaptureHandler(store)]})
    (row,) = calls(store)
    assert (row["framework"], row["task"], row["thread_id"], row["parent_run_id"]) == ("langchain", None, None, None)
    assert (row["route"], row["content"], row["input_tokens"], row["output_tokens"]) == ("llm", "hi there", 3, 2)
    assert json.loads(row["tool_names"]) == ["add"] and json.loads(row["tool_choice"]) == "auto"
    assert row["model_requested"] == "FakeLLM"


def test_task_option_and_sampling_params(store: CaptureStore) -> None:
    model = ChatSLM(runtime=FakeRuntime(["ok"]), temperature=0.0, max_tokens=16)
    model.invoke("hi", config={"callbacks": [SLMCaptureHandler(store, task="greet")]})
    (row,) = calls(store)
    assert row["task"] == "greet"
    assert json.loads(row["params"]) == {"temperature": 0.0, "max_tokens": 16}


def test_stream_is_reassembled_with_ttft(store: CaptureStore) -> None:
    model = ChatSLM(runtime=FakeRuntime([ADD_CALL]))
    chunks = list(model.bind_tools([add]).stream("2+3", config={"callbacks": [SLMCaptureHandler(store)]}))
    assert len(chunks) > 1
    (row,) = calls(store)
    assert json.loads(json.loads(row["tool_calls"])[0]["function"]["arguments"]) == {"a": 2, "b": 3}
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["latency_ms"]


def test_model_error_is_recorded_and_reraised(store: CaptureStore) -> None:
    model = ChatSLM(runtime=FakeRuntime([GenerationError("the model fell over")]))
    handler = SLMCaptureHandler(store)
    with pytest.raises(GenerationError):
        model.invoke("hi", config={"callbacks": [handler]})
    (row,) = calls(store)
    assert (row["error_type"], row["error_message"]) == ("GenerationError", "the model fell over")
    assert row["content"] is None and handler.failures == 0


async def test_stream_error_keeps_partial_text(store: CaptureStore) -> None:
    with pytest.raises(ConnectionError):
        async for _ in BrokenStream().astream("hi", config={"callbacks": [SLMCaptureHandler(store)]}):
            pass
    (row,) = calls(store)
    assert (row["content"], row["error_type"], row["error_message"]) == ("partial", "ConnectionError", "stream dropped")
    assert row["ttft_ms"] is not None


def test_tool_error_is_recorded(store: CaptureStore) -> None:
    call = {"tool_calls": [{"name": "explode", "arguments": {"reason": "nope"}}]}
    agent = react_agent(call, "sorry", tools=[explode])
    with pytest.raises(ValueError, match="tool failed"):  # create_agent re-raises tool errors by default
        agent.invoke({"messages": [("user", "go")]}, {**CONFIG, "callbacks": [SLMCaptureHandler(store)]})
    (exe,) = tool_rows(store)
    assert (exe["name"], exe["error_type"], exe["error_message"]) == ("explode", "ValueError", "tool failed: nope")
    assert exe["result"] is None and exe["model_call_id"] == calls(store)[0]["id"]


# -- never twice, never raising ------------------------------------------------------------------------------
def test_router_logs_its_own_steps_once(store: CaptureStore) -> None:
    router = ChatSLMRouter(slm=FakeRuntime([{"tool_calls": [{"name": "nope", "arguments": {}}]}]),
                           llm=FakeLLM(responses=[AIMessage("from the LLM")]), capture=store)  # fmt: skip
    msg = router.bind_tools([add]).invoke("2+3", config={"callbacks": [SLMCaptureHandler(store)]})
    assert msg.response_metadata["route"] == "llm"
    rows = calls(store)
    assert [r["route"] for r in rows] == ["slm", "llm"]  # the router's two rows; nothing from the handler
    assert store.db["escalations"].count == 1


def test_default_handler_captures_a_router_step_whole(store: CaptureStore) -> None:
    """No capture= on the router: the run's handler records the SLM attempt, the LLM answer and the link."""
    router = ChatSLMRouter(slm=FakeRuntime([{"tool_calls": [{"name": "nope", "arguments": {}}]}]),
                           llm=FakeLLM(responses=[AIMessage("from the LLM")]))  # fmt: skip
    handler = SLMCaptureHandler(store)
    msg = router.bind_tools([add]).invoke("2+3", config={"callbacks": [handler], "tags": ["demo"]})
    slm, llm = calls(store)
    assert (slm["route"], slm["escalation_reason"], slm["valid"]) == ("slm", "unknown_tool", 0)
    assert json.loads(slm["metadata"])["invalid_tool_calls"][0]["name"] == "nope"
    assert (llm["route"], llm["escalation_reason"], llm["content"]) == ("llm", "unknown_tool", "from the LLM")
    assert slm["run_id"] == llm["run_id"] and json.loads(llm["tags"]) == ["demo"]
    (esc,) = store.db["escalations"].rows
    assert (esc["slm_call_id"], esc["llm_call_id"], esc["reason"]) == (slm["id"], llm["id"], "unknown_tool")
    assert msg.response_metadata["slm_confidence"] == slm["confidence"] == 1.0 and handler.failures == 0


def test_router_capture_takes_a_path(tmp_path: Any) -> None:
    path = tmp_path / "router.db"
    router = ChatSLMRouter(slm=FakeRuntime([{"tool_calls": [{"name": "nope", "arguments": {}}]}]),
                           llm=FakeLLM(responses=[AIMessage("from the LLM")]), capture=str(path))  # fmt: skip
    router.bind_tools([add]).invoke("2+3")
    assert router.capture.flush()
    assert [r["route"] for r in router.capture.db.query("select route from calls order by id")] == ["slm", "llm"]
    with pytest.raises(InvalidRequest, match="capture= takes"):
        ChatSLMRouter(slm=FakeRuntime(["x"]), capture=42)


def test_two_handlers_on_one_store_log_once(store: CaptureStore) -> None:
    model = ChatSLM(runtime=FakeRuntime(["ok"]))
    model.invoke("hi", config={"callbacks": [SLMCaptureHandler(store), SLMCaptureHandler(store)]})
    assert len(calls(store)) == 1


class ExplodingStore:
    def log(self, record: Any) -> str:
        raise RuntimeError("disk on fire")

    def log_tool(self, record: Any) -> str:
        raise RuntimeError("disk on fire")


def test_a_failing_store_never_breaks_the_agent() -> None:
    handler = SLMCaptureHandler(ExplodingStore())
    out = react_agent(ADD_CALL, "5").invoke({"messages": [("user", "2+3")]}, {**CONFIG, "callbacks": [handler]})
    assert out["messages"][-1].content == "5"
    assert handler.failures == 3  # two model calls, one tool execution


def test_store_path_and_default(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cap.db"
    handler = SLMCaptureHandler(str(path))
    try:
        assert handler.store is get_default_store(path)
        monkeypatch.setenv("SLM_AGENTS_DB", str(path))
        assert SLMCaptureHandler().store is handler.store
        ChatSLM(runtime=FakeRuntime(["ok"])).invoke("hi", config={"callbacks": [handler]})
        assert handler.flush()
        assert handler.store.db["calls"].count == 1
    finally:
        handler.store.close()
        set_default_store(None, path)


def test_bad_store_type() -> None:
    with pytest.raises(InvalidRequest, match="capture= takes a CaptureStore, a file path"):
        SLMCaptureHandler(store=42)
