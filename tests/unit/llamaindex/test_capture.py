"""The instrumentation capture handler: what lands in the store, for any LlamaIndex LLM."""

from __future__ import annotations

import time
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ChatResponseGen
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM, MockLLM

from llamaindex_slm import SLM, RouterLLM, slm_agents_capture
from slm_agents import FakeRuntime

ADD_CALL = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "usage": (40, 7), "confidence": 0.8}


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def test_slm_chat_with_tools_is_recorded(captured, store, add_tool) -> None:
    SLM(runtime=FakeRuntime([ADD_CALL])).chat_with_tools([add_tool], user_msg="1+2?")
    [row] = captured()
    assert row["framework"] == "llamaindex" and row["runtime"] == "fake" and row["model"] == "fake-slm"
    assert row["messages"] == [{"role": "user", "content": "1+2?"}]
    assert row["tools"][0]["function"]["name"] == "add" and row["tool_choice"] == "auto"
    assert row["tool_calls"][0]["function"]["name"] == "add"
    assert (row["input_tokens"], row["output_tokens"], row["confidence"], row["valid"]) == (40, 7, 0.8, 1)
    assert row["run_id"].startswith("SLM.chat-") and row["latency_ms"] >= 0
    assert row["params"] == {"parallel_tool_calls": False}


def test_any_llamaindex_llm_is_recorded_and_streams_reassembled(captured, store) -> None:
    MockLLM().complete("echo me")
    chunks = list(MockFunctionCallingLLM().stream_chat([user("stream me")]))
    assert chunks
    complete_row, stream_row = captured()
    assert complete_row["runtime"] == "MockLLM" and complete_row["content"] == "echo me"
    assert complete_row["messages"] == [{"role": "user", "content": "echo me"}]
    assert stream_row["content"] == "stream me" and stream_row["ttft_ms"] is not None
    assert stream_row["metadata"]["streamed"] is True


def test_unrouted_calls_get_a_route_as_in_langchain(captured, store, tmp_path) -> None:
    """An ordinary call is on route "slm" when an slm-agents model answered, else "llm" (the
    teacher): export, eval and finetune read route "llm" by default, so a frontier LLM's calls
    captured here must not be left without one (they were: NULL, and no export found them)."""
    from slm_agents.dataset import export_dataset

    SLM(runtime=FakeRuntime(["fine"])).complete("how are you")
    MockLLM().complete("what is the capital of France")
    slm_row, llm_row = captured()
    assert (slm_row["route"], llm_row["route"]) == ("slm", "llm")
    result = export_dataset(store.db, tmp_path / "out", format="openai")
    assert result.train + result.validation == 1  # the MockLLM (teacher) call


def test_complete_delegating_to_chat_is_one_row(captured, store) -> None:
    SLM(runtime=FakeRuntime(["fine"])).complete("how are you")
    [row] = captured()
    assert row["run_id"].startswith("SLM.chat-") and row["content"] == "fine"


async def test_errors_are_recorded_not_hidden(captured, store) -> None:
    llm = SLM(runtime=FakeRuntime([RuntimeError("boom"), RuntimeError("boom again")]))
    with pytest.raises(RuntimeError, match="boom"):
        llm.chat([user("hi")])
    with pytest.raises(RuntimeError, match="boom again"):
        [c async for c in await llm.astream_chat([user("hi")])]
    errors = captured()
    assert [(r["error_type"], r["error_message"]) for r in errors] == [
        ("RuntimeError", "boom"), ("RuntimeError", "boom again")]


async def test_agent_run_rows_carry_step_agent_and_span_links(captured, store, add_tool) -> None:
    rt = FakeRuntime([ADD_CALL, "It is 3."])
    await FunctionAgent(name="calc", tools=[add_tool], llm=SLM(runtime=rt)).run("1+2?")
    first, second = captured()
    for row in (first, second):
        assert row["task"] == "run_agent_step"
        assert row["parent_run_id"].startswith("BaseWorkflowAgent.run_agent_step-")
        assert row["metadata"]["agent"] == "calc" and row["metadata"]["workflow"] == "FunctionAgent"
    assert first["metadata"]["workflow_run_id"] == second["metadata"]["workflow_run_id"]
    assert second["messages"][-1]["role"] == "tool" and second["content"] == "It is 3."


async def test_router_rows_have_route_reason_and_linked_escalation(captured, store, add_tool) -> None:
    rt = FakeRuntime([{"tool_calls": [{"name": "subtract", "arguments": {}}]}])
    router = RouterLLM(slm=SLM(runtime=rt), llm=MockFunctionCallingLLM(), task="math")
    await router.achat_with_tools([add_tool], user_msg="1+2?")
    slm_row, llm_row = captured()
    assert (slm_row["route"], slm_row["escalation_reason"], slm_row["runtime"]) == ("slm", "unknown_tool", "fake")
    assert slm_row["valid"] == 0 and slm_row["metadata"]["invalid_tool_calls"][0]["name"] == "subtract"
    assert (llm_row["route"], llm_row["escalation_reason"]) == ("llm", "unknown_tool")
    assert slm_row["task"] == llm_row["task"] == "math"
    [link] = list(store.db["escalations"].rows)
    assert (link["slm_call_id"], link["llm_call_id"], link["reason"]) == (slm_row["id"], llm_row["id"], "unknown_tool")


def test_router_shadow_rows(captured, store, add_tool) -> None:
    router = RouterLLM(slm=SLM(runtime=FakeRuntime([ADD_CALL])), llm=MockFunctionCallingLLM(), shadow=True)
    list(router.stream_chat_with_tools([add_tool], user_msg="1+2?"))
    slm_row, llm_row = captured()
    assert (slm_row["route"], llm_row["route"], llm_row["escalation_reason"]) == ("shadow", "llm", "shadow")
    assert store.db["escalations"].count == 1


def test_idempotent_switch_and_stop(store) -> None:
    from sqlite_utils import Database

    from slm_agents.capture import CaptureStore

    handler = slm_agents_capture(store=store)
    try:
        assert slm_agents_capture() is handler
        other = CaptureStore(Database(memory=True), redactor=None)
        assert slm_agents_capture(store=other) is handler and handler.store is other
        assert slm_agents_capture(enabled=False) is None and not handler.active
        SLM(runtime=FakeRuntime(["unseen"])).chat([user("hi")])
        assert handler.flush() and other.db["calls"].count == 0
        other.close()
    finally:
        handler.remove()


def test_capture_never_raises_into_the_agent(store) -> None:
    class BrokenStore:
        def log(self, record):
            raise OSError("disk full")

        def flush(self, timeout=None):
            return True

    handler = slm_agents_capture(store=BrokenStore())
    try:
        assert SLM(runtime=FakeRuntime(["still fine"])).chat([user("hi")]).message.content == "still fine"
        assert handler.flush()
    finally:
        handler.remove()


async def test_agent_tool_executions_are_recorded_and_linked(captured, store, add_tool) -> None:
    rt = FakeRuntime([ADD_CALL, "It is 3."])
    await FunctionAgent(name="calc", tools=[add_tool], llm=SLM(runtime=rt)).run("1+2?")
    first, _ = captured()
    (tool,) = store.db["tool_executions"].rows
    call_id = first["tool_calls"][0]["id"]
    assert (tool["name"], tool["call_id"], tool["model_call_id"]) == ("add", call_id, first["id"])
    assert (tool["arguments"], tool["result"], tool["framework"]) == ('{"a":1,"b":2}', "3", "llamaindex")
    assert tool["latency_ms"] >= 0 and tool["error_type"] is None


async def test_a_failing_tool_is_recorded_with_its_error(captured, store) -> None:
    from llama_index.core.tools import FunctionTool

    def explode(reason: str) -> str:
        """Always fails."""
        raise ValueError(f"tool failed: {reason}")

    rt = FakeRuntime([{"tool_calls": [{"name": "explode", "arguments": {"reason": "nope"}}]}, "sorry"])
    await FunctionAgent(tools=[FunctionTool.from_defaults(explode)], llm=SLM(runtime=rt)).run("go")
    captured()
    (tool,) = store.db["tool_executions"].rows
    assert (tool["name"], tool["error_type"], tool["error_message"]) == ("explode", "ValueError", "tool failed: nope")


def test_router_capture_takes_a_path_without_a_handler(tmp_path, add_tool) -> None:
    """capture= on RouterLLM logs the whole step, with no capture handler installed."""
    path = tmp_path / "router.db"
    rt = FakeRuntime([{"tool_calls": [{"name": "subtract", "arguments": {}}]}])
    router = RouterLLM(slm=SLM(runtime=rt), llm=MockFunctionCallingLLM(), capture=str(path))
    router.chat_with_tools([add_tool], user_msg="1+2?")
    assert router.capture.flush()
    rows = list(router.capture.db.query("select route, escalation_reason from calls order by id"))
    assert [(r["route"], r["escalation_reason"]) for r in rows] == [("slm", "unknown_tool"), ("llm", "unknown_tool")]
    assert router.capture.db["escalations"].count == 1


def test_router_own_capture_and_handler_on_one_store_log_once(captured, store, add_tool) -> None:
    rt = FakeRuntime([{"tool_calls": [{"name": "subtract", "arguments": {}}]}])
    router = RouterLLM(slm=SLM(runtime=rt), llm=MockFunctionCallingLLM(), capture=store)
    router.chat_with_tools([add_tool], user_msg="1+2?")
    assert [r["route"] for r in captured()] == ["slm", "llm"]
    assert store.db["escalations"].count == 1


class SlowStreamLLM(MockFunctionCallingLLM):
    """Streams its answer in two chunks, 20 ms apart."""

    @llm_chat_callback()
    def stream_chat(self, messages: Any, **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            text = ""
            for delta in ("It is ", "3."):
                time.sleep(0.02)
                text += delta
                yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=delta)

        return gen()


def test_router_times_a_streamed_llm_answer_to_its_end(captured, store, add_tool) -> None:
    """The LLM answer's latency covers the whole stream, not only its opening."""
    rt = FakeRuntime([{"tool_calls": [{"name": "subtract", "arguments": {}}]}])
    router = RouterLLM(slm=SLM(runtime=rt), llm=SlowStreamLLM(), task="math")
    chunks = list(router.stream_chat_with_tools([add_tool], user_msg="1+2?"))
    assert chunks[-1].message.content == "It is 3."
    slm_row, llm_row = captured()
    assert (slm_row["valid"], llm_row["route"], llm_row["escalation_reason"]) == (0, "llm", "unknown_tool")
    assert llm_row["latency_ms"] >= 40
