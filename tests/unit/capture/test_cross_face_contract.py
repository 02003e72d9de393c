"""Cross-face contract: one escalated step gives the same records on every escalation path.

The same request (messages and an OpenAI tool, no ``tool_choice``: the default every face records
as ``"auto"``), the same SLM attempt (a fake runtime answering with an unknown tool) and the same
LLM answer (a tool call with token counts) go through ``ChatSLMRouter`` + ``SLMCaptureHandler()``,
through ``RouterLLM`` + ``slm_agents_capture()``, and through a LangGraph SLM node followed by
``escalation_node`` with only the run's ``SLMCaptureHandler()`` (the handler logs the SLM call as
an ordinary call, the node gives it the step's verdict). Every stored column must be equal, field
by field, except what is the path's own by nature: ids, timestamps and measured times, the
framework's name and run ids, and framework metadata. The LLM answer is timed on every path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="the contract needs the langchain extra")
pytest.importorskip("llama_index.core", reason="the contract needs the llamaindex extra")

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.graph import END, START, MessagesState, StateGraph  # noqa: E402
from llama_index.core.base.llms.types import (  # noqa: E402
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback  # noqa: E402
from llama_index.core.llms.mock import MockFunctionCallingLLM  # noqa: E402
from sqlite_utils import Database  # noqa: E402

from langchain_slm import ChatSLM, ChatSLMRouter, SLMCaptureHandler, escalation_node  # noqa: E402
from llamaindex_slm import SLM, RouterLLM, slm_agents_capture  # noqa: E402
from slm_agents import FakeRuntime  # noqa: E402
from slm_agents.capture import CaptureStore  # noqa: E402

SYSTEM = "You look orders up."
QUESTION = "Where is order A1?"
TOOL = {"type": "function", "function": {
    "name": "lookup", "description": "Look an order up.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}
SLM_ANSWER = {"tool_calls": [{"id": "slm-1", "name": "cancel_order", "arguments": {"order_id": "A1"}}],
              "usage": (40, 7), "confidence": 0.9}
LLM_CALL = {"id": "llm-1", "name": "lookup", "args": {"order_id": "A1"}}
#: Columns that are each face's own by nature (ids, clocks, the framework and its run ids).
FACE_COLUMNS = {"id", "ts", "latency_ms", "ttft_ms", "framework", "run_id", "parent_run_id", "metadata", "tags"}


class ToolCallingChatModel(FakeMessagesListChatModel):
    """A LangChain chat model that accepts bound tools and answers from its list."""

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)


class ToolCallingLLM(MockFunctionCallingLLM):
    """A LlamaIndex LLM that answers with the LLM_CALL tool call and token counts."""

    @llm_chat_callback()
    def chat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[
            TextBlock(text="Looking it up."),
            ToolCallBlock(tool_call_id=LLM_CALL["id"], tool_name=LLM_CALL["name"], tool_kwargs=LLM_CALL["args"])])
        return ChatResponse(message=message, additional_kwargs={"prompt_tokens": 30, "completion_tokens": 6})


@pytest.fixture
def stores() -> Iterator[tuple[CaptureStore, CaptureStore]]:
    a, b = CaptureStore(Database(memory=True), redactor=None), CaptureStore(Database(memory=True), redactor=None)
    yield a, b
    a.close()
    b.close()


def langchain_llm() -> ToolCallingChatModel:
    return ToolCallingChatModel(responses=[AIMessage(
        "Looking it up.", tool_calls=[LLM_CALL],
        usage_metadata={"input_tokens": 30, "output_tokens": 6, "total_tokens": 36})])


def through_langchain(store: CaptureStore) -> None:
    router = ChatSLMRouter(slm=FakeRuntime([SLM_ANSWER]), llm=langchain_llm(), task="orders")
    answer = router.bind_tools([TOOL]).invoke(
        [SystemMessage(SYSTEM), HumanMessage(QUESTION)], config={"callbacks": [SLMCaptureHandler(store)]})
    assert answer.response_metadata["escalation_reason"] == "unknown_tool"


def through_llamaindex(store: CaptureStore) -> None:
    handler = slm_agents_capture(store=store)
    try:
        router = RouterLLM(slm=SLM(runtime=FakeRuntime([SLM_ANSWER])), llm=ToolCallingLLM(), task="orders")
        answer = router.chat([ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=QUESTION)],
                             tools=[TOOL])
        assert answer.additional_kwargs["escalation_reason"] == "unknown_tool"
        assert handler.flush()
    finally:
        handler.remove()


def through_langgraph_node(store: CaptureStore) -> None:
    slm = ChatSLM(runtime=FakeRuntime([SLM_ANSWER])).bind_tools([TOOL])

    def orders(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        return {"messages": [slm.invoke(state["messages"], config)]}

    graph = StateGraph(MessagesState)
    graph.add_node("orders", orders)
    graph.add_node("escalate", escalation_node(langchain_llm(), tools=[TOOL], task="orders"))
    graph.add_edge(START, "orders")
    graph.add_edge("orders", "escalate")
    graph.add_edge("escalate", END)
    out = graph.compile().invoke({"messages": [SystemMessage(SYSTEM), HumanMessage(QUESTION)]},
                                 {"callbacks": [SLMCaptureHandler(store)]})
    assert out["messages"][-1].response_metadata["escalation_reason"] == "unknown_tool"


def rows(store: CaptureStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    assert store.flush()
    calls = list(store.db.query("select * from calls order by id"))
    links = list(store.db.query("select * from escalations"))
    return calls, links


def invalid_calls(row: dict[str, Any], *, kind: bool) -> list[dict[str, Any]]:
    calls = json.loads(row["metadata"] or "{}").get("invalid_tool_calls") or []
    return [c if kind else {k: v for k, v in c.items() if k != "kind"} for c in calls]


def assert_same_records(a: list[dict[str, Any]], b: list[dict[str, Any]], *, kind: bool = True) -> None:
    """Equal column by column; ``kind=False`` leaves out the invalid calls' ``kind`` (an SLM call that
    went through a LangChain message, which has no field for it)."""
    assert [c["route"] for c in a] == [c["route"] for c in b] == ["slm", "llm"]
    for one, other in zip(a, b, strict=True):
        for column in sorted(set(one) - FACE_COLUMNS):
            assert one[column] == other[column], \
                f"{one['route']} row, column {column}: {one[column]!r} != {other[column]!r}"
        assert invalid_calls(one, kind=kind) == invalid_calls(other, kind=kind)
    assert all(c["latency_ms"] is not None and c["latency_ms"] >= 0 for c in a + b)  # the LLM answer too


def test_an_escalated_step_gives_equal_records_through_both_faces(stores) -> None:
    lc_store, li_store = stores
    through_langchain(lc_store)
    through_llamaindex(li_store)
    lc_calls, lc_links = rows(lc_store)
    li_calls, li_links = rows(li_store)

    assert_same_records(lc_calls, li_calls)
    assert (lc_calls[0]["framework"], li_calls[0]["framework"]) == ("langchain", "llamaindex")

    slm, llm = lc_calls
    assert (slm["escalation_reason"], slm["valid"], slm["confidence"], slm["input_tokens"]) == ("unknown_tool", 0, 0.9, 40)
    assert (llm["escalation_reason"], llm["valid"], llm["input_tokens"], llm["output_tokens"]) == ("unknown_tool", 1, 30, 6)
    assert (llm["content"], llm["finish_reason"], llm["task"]) == ("Looking it up.", "tool_calls", "orders")
    assert json.loads(llm["tool_calls"])[0]["function"] == {"name": "lookup", "arguments": '{"order_id": "A1"}'}
    assert json.loads(slm["tool_choice"]) == "auto" and json.loads(slm["params"] or "null") is None

    for links, calls in ((lc_links, lc_calls), (li_links, li_calls)):
        (link,) = links
        assert (link["slm_call_id"], link["llm_call_id"], link["reason"]) == (calls[0]["id"], calls[1]["id"], "unknown_tool")


def test_the_langgraph_escalation_node_records_the_step_as_the_router_does(stores) -> None:
    router_store, node_store = stores
    through_langchain(router_store)
    through_langgraph_node(node_store)
    router_calls, router_links = rows(router_store)
    node_calls, node_links = rows(node_store)

    # model_requested is what the caller asked for: the graph's SLM node asked ChatSLM for its model,
    # the router's caller asked the router for none
    assert (router_calls[0]["model_requested"], node_calls[0]["model_requested"]) == (None, "fake-slm")
    for row in router_calls + node_calls:
        row.pop("model_requested")
    assert_same_records(router_calls, node_calls, kind=False)
    assert invalid_calls(node_calls[0], kind=False)[0]["name"] == "cancel_order"
    slm, llm = node_calls
    assert (slm["escalation_reason"], slm["valid"], llm["escalation_reason"], llm["valid"]) == (
        "unknown_tool", 0, "unknown_tool", 1)
    (link,) = node_links
    assert (link["slm_call_id"], link["llm_call_id"], link["reason"]) == (slm["id"], llm["id"], "unknown_tool")
