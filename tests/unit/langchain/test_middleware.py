"""SLMRoutingMiddleware and CaptureMiddleware in create_agent agents (fake SLM, fake LLM)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware.types import ModelRequest, ModelResponse
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphInterrupt
from pydantic import BaseModel
from sqlite_utils import Database

from langchain_slm import ChatSLM
from langchain_slm.callbacks import SLMCaptureHandler
from langchain_slm.middleware import CaptureMiddleware, SLMRoutingMiddleware
from slm_agents.capture import CaptureStore
from slm_agents.errors import GenerationError, InvalidRequest
from slm_agents.policy import EscalationPolicy
from slm_agents.runtimes.fake import FakeRuntime


@tool
def lookup(order_id: str) -> str:
    """Look up an order's status."""
    return f"order {order_id}: shipped"


class FakeLLM(FakeMessagesListChatModel):
    """Stands in for the agent's frontier model; counts its calls and accepts bound tools."""

    calls: int = 0

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super()._generate(*args, **kwargs)


GOOD = {"tool_calls": [{"name": "lookup", "arguments": {"order_id": "A1"}}], "confidence": 0.95}
LLM_CALL = AIMessage("", tool_calls=[{"name": "lookup", "args": {"order_id": "A1"}, "id": "llm_call_1"}])
FINAL = "Order A1 has shipped."

# each case: the SLM's first answer, middleware options, expected route and reason
CASES = {
    "accept": (GOOD, {}, "slm", None),
    "unknown_tool": ({"tool_calls": [{"name": "refund", "arguments": {}}]}, {}, "llm", "unknown_tool"),
    "invalid_arguments": ({"tool_calls": [{"name": "lookup", "arguments": {"order_id": 7}}]}, {}, "llm",
                          "invalid_arguments"),
    "low_confidence": ({**GOOD, "confidence": 0.3}, {"confidence_threshold": 0.9}, "llm", "low_confidence"),
    "error": (GenerationError("model crashed"), {}, "llm", "error"),
}


@pytest.fixture
def store() -> Iterator[CaptureStore]:
    s = CaptureStore(Database(memory=True), redactor=None)
    yield s
    s.close()


def build(first: Any, *, llm_first: AIMessage = LLM_CALL, **options: Any) -> tuple[Any, FakeLLM, FakeRuntime]:
    slm = FakeRuntime([first, FINAL])  # the second step (after the tool) is a text answer
    llm = FakeLLM(responses=[llm_first, AIMessage(FINAL)])
    agent = create_agent(llm, [lookup], middleware=[SLMRoutingMiddleware(slm, **options)], checkpointer=InMemorySaver())
    return agent, llm, slm


CFG = {"configurable": {"thread_id": "t1"}}


def check(out: dict[str, Any], llm: FakeLLM, route: str, reason: str | None) -> None:
    ai = [m for m in out["messages"] if isinstance(m, AIMessage)]
    first = ai[0]
    assert first.response_metadata["route"] == route
    assert first.response_metadata["escalation_reason"] == reason
    assert first.response_metadata["task"] == "model"
    assert first.tool_calls and first.tool_calls[0]["args"] == {"order_id": "A1"}
    assert out["messages"][2].content == "order A1: shipped"  # the tool ran on whichever answer won
    assert ai[-1].content == FINAL and ai[-1].response_metadata["route"] == "slm"
    assert llm.calls == (0 if route == "slm" else 1)
    if reason not in (None,):
        assert first.response_metadata["escalation_detail"]


@pytest.mark.parametrize("case", CASES)
def test_routes_each_reason_sync(case: str) -> None:
    first, options, route, reason = CASES[case]
    agent, llm, _ = build(first, **options)
    check(agent.invoke({"messages": [("user", "where is A1?")]}, CFG), llm, route, reason)


@pytest.mark.parametrize("case", CASES)
async def test_routes_each_reason_async(case: str) -> None:
    first, options, route, reason = CASES[case]
    agent, llm, _ = build(first, **options)
    check(await agent.ainvoke({"messages": [("user", "where is A1?")]}, CFG), llm, route, reason)


def test_slm_gets_the_whole_request() -> None:
    slm = FakeRuntime([GOOD, FINAL])
    agent = create_agent(FakeLLM(responses=[AIMessage("unused")]), [lookup], system_prompt="You track orders.",
                         middleware=[SLMRoutingMiddleware(slm, task="orders")])  # fmt: skip
    out = agent.invoke({"messages": [("user", "where is A1?")]})
    first = slm.requests[0]
    assert first["messages"][0] == {"role": "system", "content": "You track orders."}
    assert first["messages"][1] == {"role": "user", "content": "where is A1?"}
    assert [t["function"]["name"] for t in first["tools"]] == ["lookup"]
    assert out["messages"][1].response_metadata["task"] == "orders"


def test_shadow_runs_both_and_answers_with_the_llm(store: CaptureStore) -> None:
    agent, llm, slm = build(GOOD, shadow=True, capture=store)
    out = agent.invoke({"messages": [("user", "where is A1?")]}, CFG)
    assert out["messages"][1].response_metadata["route"] == "shadow"
    assert out["messages"][1].tool_calls[0]["id"] == "llm_call_1"
    assert llm.calls == 2 and len(slm.requests) == 2
    store.flush()
    assert [r["route"] for r in store.db.query("select route from calls order by id")] == ["shadow", "llm"] * 2


def test_policy_routes_some_steps_straight_to_the_llm() -> None:
    agent, llm, slm = build(GOOD, policy=EscalationPolicy(llm_tasks={"model"}))
    out = agent.invoke({"messages": [("user", "where is A1?")]}, CFG)
    assert out["messages"][1].response_metadata["escalation_reason"] == "route:llm_tasks"
    assert slm.requests == [] and llm.calls == 2


def test_capture_logs_the_pair_once_even_with_the_handler(store: CaptureStore) -> None:
    agent, _, _ = build({"tool_calls": [{"name": "refund", "arguments": {}}]}, capture=store)
    out = agent.invoke({"messages": [("user", "where is A1?")]}, {**CFG, "callbacks": [SLMCaptureHandler(store)]})
    store.flush()
    rows = list(store.db.query("select * from calls order by id"))
    # step 1: SLM attempt + LLM answer (escalated); step 2: the SLM's final answer. Nothing twice.
    assert [(r["route"], r["escalation_reason"]) for r in rows] == [
        ("slm", "unknown_tool"), ("llm", "unknown_tool"), ("slm", None)]
    assert rows[0]["valid"] == 0 and rows[0]["task"] == "model" and rows[0]["thread_id"] == "t1"
    assert json.loads(rows[0]["messages"])[0]["content"] == "where is A1?"
    (esc,) = store.db.query("select * from escalations")
    assert (esc["slm_call_id"], esc["llm_call_id"], esc["reason"]) == (rows[0]["id"], rows[1]["id"], "unknown_tool")
    assert out["messages"][1].response_metadata["capture_id"] == rows[1]["id"]
    (exe,) = store.db.query("select * from tool_executions")  # the handler still records tools
    assert exe["name"] == "lookup" and exe["model_call_id"] == rows[1]["id"]


def test_the_default_handler_alone_captures_a_routed_step_whole(store: CaptureStore) -> None:
    """No capture= on the middleware: the run's SLMCaptureHandler gets the SLM attempt, the LLM answer and the link."""
    agent, _, _ = build({"tool_calls": [{"name": "refund", "arguments": {}}]})
    agent.invoke({"messages": [("user", "where is A1?")]}, {**CFG, "callbacks": [SLMCaptureHandler(store)]})
    store.flush()
    rows = list(store.db.query("select * from calls order by id"))
    assert [(r["route"], r["escalation_reason"], r["valid"]) for r in rows] == [
        ("slm", "unknown_tool", 0), ("llm", "unknown_tool", 1), ("slm", None, 1)]
    assert rows[1]["latency_ms"] is not None and rows[1]["latency_ms"] >= 0  # the middleware timed the LLM
    (esc,) = store.db.query("select * from escalations")
    assert (esc["slm_call_id"], esc["llm_call_id"], esc["reason"]) == (rows[0]["id"], rows[1]["id"], "unknown_tool")


def test_capture_middleware_records_model_and_tool_calls(store: CaptureStore) -> None:
    llm = FakeLLM(responses=[LLM_CALL, AIMessage(FINAL)])
    agent = create_agent(llm, [lookup], middleware=[CaptureMiddleware(store)], checkpointer=InMemorySaver())
    agent.invoke({"messages": [("user", "where is A1?")]}, CFG)  # the middleware alone: no callback handler
    store.flush()
    rows = list(store.db.query("select * from calls order by id"))
    assert len(rows) == 2
    assert [r["route"] for r in rows] == ["llm", "llm"]
    assert [r["task"] for r in rows] == ["model", "model"] and rows[0]["model_requested"] == "FakeLLM"
    assert json.loads(rows[0]["tool_calls"])[0]["id"] == "llm_call_1"
    (exe,) = store.db.query("select * from tool_executions")
    assert (exe["call_id"], exe["model_call_id"], exe["result"]) == ("llm_call_1", rows[0]["id"], "order A1: shipped")
    assert exe["task"] == "tools" and exe["thread_id"] == "t1"


def test_capture_middleware_and_handler_record_a_call_once(store: CaptureStore) -> None:
    llm = FakeLLM(responses=[LLM_CALL, AIMessage(FINAL)])
    agent = create_agent(llm, [lookup], middleware=[CaptureMiddleware(store)], checkpointer=InMemorySaver())
    agent.invoke({"messages": [("user", "where is A1?")]}, {**CFG, "callbacks": [SLMCaptureHandler(store)]})
    store.flush()
    assert store.db["calls"].count == 2 and store.db["tool_executions"].count == 1


async def test_capture_middleware_async_and_errors(store: CaptureStore) -> None:
    model = ChatSLM(runtime=FakeRuntime([GOOD, GenerationError("boom")]))
    agent = create_agent(model, [lookup], middleware=[CaptureMiddleware(store)])
    with pytest.raises(GenerationError):
        await agent.ainvoke({"messages": [("user", "where is A1?")]})
    store.flush()
    rows = list(store.db.query("select * from calls order by id"))
    assert [(r["route"], r["error_type"]) for r in rows] == [("slm", None), ("slm", "GenerationError")]
    assert store.db["tool_executions"].count == 1


def test_capture_middleware_outside_routing_logs_nothing_more(store: CaptureStore) -> None:
    slm = FakeRuntime([{"tool_calls": [{"name": "refund", "arguments": {}}]}, FINAL])
    llm = FakeLLM(responses=[LLM_CALL])
    agent = create_agent(llm, [lookup], middleware=[CaptureMiddleware(store), SLMRoutingMiddleware(slm, capture=store)])
    agent.invoke({"messages": [("user", "where is A1?")]})
    store.flush()
    assert [r["route"] for r in store.db.query("select route from calls order by id")] == ["slm", "llm", "slm"]


# -- edges -------------------------------------------------------------------------------------------
class Answer(BaseModel):
    status: str


def test_structured_output_steps_go_to_the_agents_model() -> None:
    slm = FakeRuntime([GOOD])
    llm = FakeLLM(responses=[AIMessage("", tool_calls=[{"name": "Answer", "args": {"status": "ok"}, "id": "s1"}])])
    agent = create_agent(llm, [lookup], response_format=Answer, middleware=[SLMRoutingMiddleware(slm)])
    out = agent.invoke({"messages": [("user", "status?")]})
    assert out["structured_response"] == Answer(status="ok") and slm.requests == []


def request(llm: Any) -> ModelRequest:
    return ModelRequest(model=llm, messages=[HumanMessage("go")], tools=[lookup])


def test_graph_bubble_up_propagates() -> None:
    mw = SLMRoutingMiddleware(FakeRuntime([GenerationError("x")]))

    def handler(_: Any) -> ModelResponse:
        raise GraphInterrupt(())

    with pytest.raises(GraphInterrupt):
        mw.wrap_model_call(request(FakeLLM(responses=[])), handler)


async def test_direct_hooks_sync_and_async_agree() -> None:
    mw = SLMRoutingMiddleware(FakeRuntime([GOOD, GOOD]))
    never = lambda _: pytest.fail("the LLM must not run")  # noqa: E731
    sync = mw.wrap_model_call(request(None), never)

    async def anever(_: Any) -> ModelResponse:
        raise AssertionError("the LLM must not run")

    asyn = await mw.awrap_model_call(request(None), anever)
    for resp in (sync, asyn):
        assert isinstance(resp, ModelResponse)
        assert resp.result[0].response_metadata["route"] == "slm"
        assert resp.result[0].tool_calls[0]["name"] == "lookup"


def test_config_is_validated(tmp_path: Any) -> None:
    assert SLMRoutingMiddleware("some/model.gguf").slm.model_path == "some/model.gguf"
    assert isinstance(SLMRoutingMiddleware().slm, ChatSLM)
    assert SLMRoutingMiddleware(confidence_threshold=0.4).policy.confidence_threshold == 0.4
    with pytest.raises(InvalidRequest, match="slm= takes"):
        SLMRoutingMiddleware(42)
    with pytest.raises(InvalidRequest, match="EscalationPolicy"):
        SLMRoutingMiddleware(policy={"confidence_threshold": 0.5})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        SLMRoutingMiddleware(confidence_threshold=2.0)
    with pytest.raises(InvalidRequest, match="capture= takes a CaptureStore, a file path"):
        CaptureMiddleware(store=3.5)  # type: ignore[arg-type]
