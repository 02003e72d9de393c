"""route_after_slm, escalation_node and create_slm_agent (fake SLM, fake LLM)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END
from sqlite_utils import Database

from langchain_slm import ChatSLM
from langchain_slm.callbacks import SLMCaptureHandler
from langchain_slm.graph import create_slm_agent, escalation_node, judge_message, route_after_slm
from slm_agents.capture import CaptureStore
from slm_agents.policy import EscalationPolicy
from slm_agents.runtimes.fake import FakeRuntime


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class FakeLLM(FakeMessagesListChatModel):
    bound: Any = None

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        self.bound = {"tools": [convert_to_openai_tool(t)["function"]["name"] for t in tools], "tool_choice": tool_choice}
        return self.bind(**kwargs) if kwargs else self


def call(name: str = "add", args: dict[str, Any] | None = None, *, confidence: float | None = None,
         id: str = "m1", **meta: Any) -> AIMessage:  # fmt: skip
    return AIMessage("", id=id, tool_calls=[{"name": name, "args": args if args is not None else {"a": 1, "b": 2},
                                             "id": "c1"}],
                     response_metadata={"confidence": confidence, "route": "slm", **meta})  # fmt: skip


BROKEN = AIMessage("", id="m1", invalid_tool_calls=[{"name": "add", "args": '{"a": 1', "id": "c1",
                                                      "error": "arguments are not valid JSON"}])  # fmt: skip


# -- route_after_slm -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "kwargs", "expected"),
    [
        (call(), {}, "tools"),
        (AIMessage("the answer is 3"), {}, END),
        (BROKEN, {}, "escalate"),
        (AIMessage(""), {}, "escalate"),  # empty
        (AIMessage("cut", response_metadata={"finish_reason": "length"}), {}, "escalate"),
        (call(confidence=0.2), {"policy": EscalationPolicy(confidence_threshold=0.5)}, "escalate"),
        (call(confidence=0.9), {"policy": EscalationPolicy(confidence_threshold=0.5)}, "tools"),
        (call("mul"), {"tools": [add]}, "escalate"),  # unknown tool
        (call(args={"a": "one"}), {"tools": [add]}, "escalate"),  # invalid arguments
        (call("mul"), {}, "tools"),  # no schemas given: names are not checked
        (AIMessage("text"), {"tools": [add], "tool_choice": "any"}, "escalate"),  # no_tool_call
        (call("mul", route="llm"), {"tools": [add]}, "tools"),  # already the LLM's answer
        (AIMessage("", response_metadata={"route": "slm", "escalation_reason": "empty"}), {}, END),  # decided
    ],
)
def test_route_after_slm(message: AIMessage, kwargs: dict[str, Any], expected: str) -> None:
    assert route_after_slm({"messages": [HumanMessage("q"), message]}, **kwargs) == expected


def test_route_after_slm_non_ai_and_empty_state() -> None:
    assert route_after_slm({"messages": [HumanMessage("q")]}) == END
    assert route_after_slm({"messages": []}) == END
    assert route_after_slm([HumanMessage("q"), call()]) == "tools"  # a bare message list works too


def test_judge_message_reasons() -> None:
    assert judge_message(BROKEN).reason == "malformed"
    assert judge_message(call("mul"), tools=[add]).reason == "unknown_tool"
    assert judge_message(call(confidence=0.1), policy=EscalationPolicy(task_thresholds={"agent": 0.5}),
                         task="agent").reason == "low_confidence"  # fmt: skip
    assert judge_message(call()).ok


# -- escalation_node --------------------------------------------------------------------------------
def test_escalation_node_replaces_the_slm_message_in_place() -> None:
    llm = FakeLLM(responses=[AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "L1"}])])
    node = escalation_node(llm, tools=[add], tool_choice="any", system_prompt="be exact")
    out = node.invoke({"messages": [HumanMessage("1+2"), call("mul")]})
    (new,) = out["messages"]
    assert new.id == "m1" and new.tool_calls[0]["id"] == "L1"
    meta = new.response_metadata
    assert (meta["route"], meta["escalation_reason"]) == ("llm", "unknown_tool")
    assert "mul" in meta["escalation_detail"]
    assert llm.bound == {"tools": ["add"], "tool_choice": "any"}


async def test_escalation_node_async_and_noop() -> None:
    node = escalation_node(FakeLLM(responses=[AIMessage("from the LLM")]))
    assert await node.ainvoke({"messages": [HumanMessage("q"), call()]}) == {}  # a good answer: nothing to do
    assert node.invoke({"messages": [HumanMessage("q")]}) == {}
    out = await node.ainvoke({"messages": [HumanMessage("q"), BROKEN]})
    assert out["messages"][0].content == "from the LLM" and out["messages"][0].id == "m1"


def test_escalation_node_without_llm_keeps_the_slm_answer() -> None:
    out = escalation_node(None).invoke({"messages": [HumanMessage("q"), BROKEN]})
    (kept,) = out["messages"]
    assert kept.invalid_tool_calls == BROKEN.invalid_tool_calls
    assert (kept.response_metadata["route"], kept.response_metadata["escalation_reason"]) == ("slm", "malformed")
    assert route_after_slm({"messages": [kept]}) == END  # decided: never sent back


def test_escalation_node_custom_messages_key() -> None:
    node = escalation_node(FakeLLM(responses=[AIMessage("ok")]), messages_key="history")
    assert node.invoke({"history": [HumanMessage("q"), BROKEN]})["history"][0].content == "ok"


# -- create_slm_agent -------------------------------------------------------------------------------
@pytest.fixture
def store() -> Iterator[CaptureStore]:
    s = CaptureStore(Database(memory=True), redactor=None)
    yield s
    s.close()


GOOD = {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}
CFG = {"configurable": {"thread_id": "t"}}


def test_agent_happy_path_and_thread_memory() -> None:
    slm = FakeRuntime([GOOD, "5", "You asked 2+3."])
    agent = create_slm_agent(ChatSLM(runtime=slm), None, [add], checkpointer=InMemorySaver(),
                             system_prompt="Use tools.")  # fmt: skip
    out = agent.invoke({"messages": [("user", "2+3?")]}, CFG)
    assert [m.type for m in out["messages"]] == ["human", "ai", "tool", "ai"]
    assert out["messages"][2].content == "5"
    assert slm.requests[0]["messages"][0] == {"role": "system", "content": "Use tools."}
    again = agent.invoke({"messages": [("user", "what did I ask?")]}, CFG)
    assert len(again["messages"]) == 6 and again["messages"][-1].content == "You asked 2+3."
    assert len(slm.requests[2]["messages"]) == 6  # system + the whole thread


def test_agent_escalates_and_replaces(store: CaptureStore) -> None:
    slm = FakeRuntime([{"tool_calls": [{"name": "mul", "arguments": {}}]}, "5"])
    llm = FakeLLM(responses=[AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "L1"}])])
    agent = create_slm_agent(slm, llm, [add], checkpointer=InMemorySaver(), capture=store)
    out = agent.invoke({"messages": [("user", "2+3?")]}, CFG)
    types = [m.type for m in out["messages"]]
    assert types == ["human", "ai", "tool", "ai"]  # the SLM's bad answer was replaced, not appended
    step = out["messages"][1]
    assert step.tool_calls[0]["id"] == "L1"
    assert (step.response_metadata["route"], step.response_metadata["escalation_reason"]) == ("llm", "unknown_tool")
    assert out["messages"][-1].content == "5"
    store.flush()
    rows = list(store.db.query("select * from calls order by id"))
    assert [(r["route"], r["task"]) for r in rows] == [("slm", "agent"), ("llm", "agent"), ("slm", "agent")]
    (esc,) = store.db.query("select * from escalations")
    assert (esc["slm_call_id"], esc["llm_call_id"]) == (rows[0]["id"], rows[1]["id"])
    (exe,) = store.db.query("select * from tool_executions")
    assert exe["call_id"] == "L1" and exe["model_call_id"] == rows[1]["id"]


def test_escalation_node_links_the_pair_for_the_default_handler(store: CaptureStore) -> None:
    """No capture= on the agent: the handler on the run logs the SLM call; the node gives it the verdict and
    reason and adds the LLM answer (timed) and the link."""
    slm = FakeRuntime([{"tool_calls": [{"name": "mul", "arguments": {}}]}, "5"])
    llm = FakeLLM(responses=[AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "L1"}])])
    agent = create_slm_agent(slm, llm, [add], checkpointer=InMemorySaver())
    agent.invoke({"messages": [("user", "2+3?")]}, {**CFG, "callbacks": [SLMCaptureHandler(store)]})
    store.flush()
    rows = list(store.db.query("select * from calls order by id"))
    assert [(r["route"], r["escalation_reason"], r["valid"]) for r in rows] == [
        ("slm", "unknown_tool", 0), ("llm", "unknown_tool", 1), ("slm", None, None)]
    assert rows[1]["latency_ms"] is not None and rows[1]["latency_ms"] >= 0
    (esc,) = store.db.query("select * from escalations")
    assert (esc["slm_call_id"], esc["llm_call_id"], esc["reason"]) == (rows[0]["id"], rows[1]["id"], "unknown_tool")


def test_escalation_node_capture_on_another_store_gets_the_whole_step(store: CaptureStore) -> None:
    """capture= names a store the run's handler does not write to: the node logs the SLM attempt there
    itself (the handler's id is in the handler's store only); the handler's store keeps its own row."""
    from langgraph.graph import START, MessagesState, StateGraph

    other = CaptureStore(Database(memory=True), redactor=None)
    slm = ChatSLM(runtime=FakeRuntime([{"tool_calls": [{"name": "mul", "arguments": {}}]}])).bind_tools([add])
    llm = FakeLLM(responses=[AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "L1"}])])
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state, config: {"messages": [slm.invoke(state["messages"], config)]})
    graph.add_node("escalate", escalation_node(llm, tools=[add], capture=other, task="agent"))
    graph.add_edge(START, "agent")
    graph.add_edge("agent", "escalate")
    graph.add_edge("escalate", END)
    graph.compile().invoke({"messages": [HumanMessage("2+3?")]}, {"callbacks": [SLMCaptureHandler(store)]})
    assert store.flush() and other.flush()
    mine = list(other.db.query("select * from calls order by id"))
    assert [(r["route"], r["escalation_reason"], r["valid"]) for r in mine] == [
        ("slm", "unknown_tool", 0), ("llm", "unknown_tool", 1)]
    (esc,) = other.db.query("select * from escalations")
    assert (esc["slm_call_id"], esc["llm_call_id"]) == (mine[0]["id"], mine[1]["id"])
    assert [r["route"] for r in store.db.query("select route from calls")] == ["slm"]
    other.close()


def test_agent_capture_and_user_handler_do_not_double_log(store: CaptureStore) -> None:
    agent = create_slm_agent(FakeRuntime([GOOD, "5"]), None, [add], capture=store)
    agent.invoke({"messages": [("user", "2+3?")]}, {"callbacks": [SLMCaptureHandler(store)]})
    store.flush()
    assert store.db["calls"].count == 2 and store.db["tool_executions"].count == 1


def test_agent_without_llm_records_the_reason() -> None:
    agent = create_slm_agent(FakeRuntime([{"content": ""}]), None, [add])
    out = agent.invoke({"messages": [("user", "2+3?")]})
    last = out["messages"][-1]
    assert (last.response_metadata["route"], last.response_metadata["escalation_reason"]) == ("slm", "empty")


def test_agent_stream_with_checkpointer() -> None:
    agent = create_slm_agent(FakeRuntime([GOOD, "5"]), None, [add], checkpointer=InMemorySaver())
    nodes = [next(iter(update)) for update in agent.stream({"messages": [("user", "2+3?")]}, CFG, stream_mode="updates")]
    assert nodes == ["agent", "tools", "agent"]
    assert agent.get_state(CFG).values["messages"][-1].content == "5"


async def test_agent_astream_escalation() -> None:
    slm = FakeRuntime([{"tool_calls": [{"name": "add", "arguments": {"a": "x"}}]}, "5"])
    llm = FakeLLM(responses=[AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "L1"}])])
    agent = create_slm_agent(slm, llm, [add], checkpointer=InMemorySaver())
    nodes = []
    async for update in agent.astream({"messages": [("user", "2+3?")]}, CFG, stream_mode="updates"):
        nodes.append(next(iter(update)))
    assert nodes == ["agent", "escalate", "tools", "agent"]
    state = await agent.aget_state(CFG)
    assert isinstance(state.values["messages"][2], ToolMessage) and state.values["messages"][2].content == "5"
    assert state.values["messages"][1].response_metadata["escalation_reason"] == "invalid_arguments"


def test_create_slm_agent_follows_the_policys_routing_rules() -> None:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage as _AI

    from langchain_slm import create_slm_agent
    from slm_agents import FakeRuntime
    from slm_agents.policy import EscalationPolicy

    class _LLM(FakeMessagesListChatModel):
        def bind_tools(self, tools, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return self

    slm = FakeRuntime(["never asked"])
    llm = _LLM(responses=[_AI("the LLM answers")])
    agent = create_slm_agent(slm, llm, [], policy=EscalationPolicy(llm_tasks={"agent"}))
    out = agent.invoke({"messages": [("user", "hi")]})
    last = out["messages"][-1]
    assert last.content == "the LLM answers" and slm.requests == []
    assert (last.response_metadata["route"], last.response_metadata["escalation_reason"]) == ("llm", "route:llm_tasks")
