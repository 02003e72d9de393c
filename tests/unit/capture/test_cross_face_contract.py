"""Cross-face contract: one escalated step gives the same records through LangChain and LlamaIndex.

The same request (messages, an OpenAI tool, ``tool_choice``), the same SLM attempt (a fake runtime
answering with an unknown tool) and the same LLM answer (a tool call with token counts) go through
``ChatSLMRouter`` + ``SLMCaptureHandler()`` and through ``RouterLLM`` + ``slm_agents_capture()``.
Every stored column must be equal, field by field, except what is the face's own by nature:
ids, timestamps and measured times, the framework's name and run ids, and framework metadata.
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

from langchain_slm import ChatSLMRouter, SLMCaptureHandler  # noqa: E402
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


def through_langchain(store: CaptureStore) -> None:
    llm = ToolCallingChatModel(responses=[AIMessage(
        "Looking it up.", tool_calls=[LLM_CALL],
        usage_metadata={"input_tokens": 30, "output_tokens": 6, "total_tokens": 36})])
    router = ChatSLMRouter(slm=FakeRuntime([SLM_ANSWER]), llm=llm, task="orders")
    answer = router.bind_tools([TOOL], tool_choice="auto").invoke(
        [SystemMessage(SYSTEM), HumanMessage(QUESTION)], config={"callbacks": [SLMCaptureHandler(store)]})
    assert answer.response_metadata["escalation_reason"] == "unknown_tool"


def through_llamaindex(store: CaptureStore) -> None:
    handler = slm_agents_capture(store=store)
    try:
        router = RouterLLM(slm=SLM(runtime=FakeRuntime([SLM_ANSWER])), llm=ToolCallingLLM(), task="orders")
        answer = router.chat([ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=QUESTION)],
                             tools=[TOOL], tool_choice="auto")
        assert answer.additional_kwargs["escalation_reason"] == "unknown_tool"
        assert handler.flush()
    finally:
        handler.remove()


def rows(store: CaptureStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    assert store.flush()
    calls = list(store.db.query("select * from calls order by id"))
    links = list(store.db.query("select * from escalations"))
    return calls, links


def test_an_escalated_step_gives_equal_records_through_both_faces(stores) -> None:
    lc_store, li_store = stores
    through_langchain(lc_store)
    through_llamaindex(li_store)
    lc_calls, lc_links = rows(lc_store)
    li_calls, li_links = rows(li_store)

    assert [c["route"] for c in lc_calls] == [c["route"] for c in li_calls] == ["slm", "llm"]
    for lc, li in zip(lc_calls, li_calls, strict=True):
        for column in sorted(set(lc) - FACE_COLUMNS):
            assert lc[column] == li[column], f"{lc['route']} row, column {column}: {lc[column]!r} != {li[column]!r}"
        lc_meta, li_meta = json.loads(lc["metadata"] or "{}"), json.loads(li["metadata"] or "{}")
        assert lc_meta.get("invalid_tool_calls") == li_meta.get("invalid_tool_calls")
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
