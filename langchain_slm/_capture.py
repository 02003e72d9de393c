"""LangChain objects -> the inputs of the core's record builder (:mod:`slm_agents.capture.records`).

The callback handler, the middleware, the router and the graph nodes translate here and build
every record with the core, so a call looks the same whichever of them saw it, and the same as
a LlamaIndex or gateway call. What stays here is only LangChain's spelling: its messages, tools,
``response_metadata``, run metadata (the LangGraph node, the thread) and tool outputs, plus
:data:`CALL_IDS`, which maps a chat-model run to the capture id the handler gave it, so an
escalation node can link the SLM attempt the handler logged to the LLM answer it logs.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> rec = {**request_fields([HumanMessage("2+2?")]), **answer_fields(AIMessage("4"))}
    >>> rec["messages"], rec["content"], rec["finish_reason"], rec.get("route")
    ([{'role': 'user', 'content': '2+2?'}], '4', 'stop', None)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from slm_agents.capture import records

from . import _convert

__all__ = [
    "openai_tools",
    "request_fields",
    "answer_fields",
    "context_fields",
    "graph_context",
    "tool_fields",
    "call_id_for_message",
    "run_stores",
    "CALL_IDS",
]

logger = logging.getLogger("langchain_slm.capture")

#: LangChain's prefix for a chat model's answer id: ``lc_run--<run uuid>``.
_RUN_ID_PREFIX = "lc_run--"
#: Run metadata kept in a record's ``metadata``.
_KEPT_METADATA = ("lc_agent_name", "langgraph_step", "ls_provider")
#: chat-model run id (str) -> the capture id the handler gave that call.
CALL_IDS = records.BoundedMap()


# -- the request ---------------------------------------------------------------------------------
def openai_tools(tools: Sequence[Any] | None) -> list[dict[str, Any]] | None:
    """Tools in OpenAI format; a tool that does not convert is kept as given (never raises)."""
    if not tools:
        return None
    out = []
    for t in tools:
        if isinstance(t, Mapping) and t.get("type") == "function" and "function" in t:
            out.append(dict(t))  # already OpenAI (ChatSLM, ChatOpenAI bind this shape)
            continue
        try:
            out.append(convert_to_openai_tool(t))
        except Exception:  # provider built-in tools ({"type": "web_search"}) and the like
            out.append(dict(t) if isinstance(t, Mapping) else {"name": getattr(t, "name", repr(t))})
    return out


def request_fields(
    messages: Sequence[BaseMessage],
    *,
    tools: Sequence[Any] | None = None,
    tool_choice: Any = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`records.request_fields` of LangChain messages and tools."""
    return records.request_fields(_convert.messages_to_openai(messages), tools=openai_tools(tools),
                                  tool_choice=tool_choice, params=params)  # fmt: skip


# -- the answer ----------------------------------------------------------------------------------
def answer_fields(message: BaseMessage, *, llm_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`records.answer_fields` of a chat model's answer.

    ``route`` and ``escalation_reason`` are added when the model put them in
    ``response_metadata`` (slm-agents models do).
    """
    meta = message.response_metadata or {}
    usage = getattr(message, "usage_metadata", None) or {}
    legacy = (llm_output or {}).get("token_usage") or {}
    calls = [records.tool_call(tc.get("id"), tc["name"], tc["args"]) for tc in getattr(message, "tool_calls", None) or ()]
    fields = records.answer_fields(
        content=message.content,
        tool_calls=calls,
        invalid_tool_calls=_convert.invalid_calls_of(message) if isinstance(message, AIMessage) else None,
        finish_reason=meta.get("finish_reason") or meta.get("stop_reason") or meta.get("done_reason"),
        input_tokens=usage.get("input_tokens", legacy.get("prompt_tokens")),
        output_tokens=usage.get("output_tokens", legacy.get("completion_tokens")),
        confidence=meta.get("confidence"),
        model=meta.get("model_name") or meta.get("model") or (llm_output or {}).get("model_name"),
        runtime=meta.get("runtime"),
        ttft_ms=meta.get("ttft_ms"),
    )
    for key in ("route", "escalation_reason"):
        if meta.get(key) is not None:
            fields[key] = meta[key]
    return fields


# -- where the call ran --------------------------------------------------------------------------
def context_fields(
    metadata: Mapping[str, Any] | None,
    *,
    tags: Sequence[str] | None = None,
    configurable: Mapping[str, Any] | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """:func:`records.context_fields` of LangChain run metadata: ``task`` is the LangGraph node
    unless given, ``framework`` is ``"langgraph"`` inside a graph."""
    metadata = metadata or {}
    node = metadata.get("langgraph_node")
    return records.context_fields(
        framework="langgraph" if node is not None else "langchain",
        task=task or node,
        thread_id=metadata.get("thread_id") or (configurable or {}).get("thread_id"),
        tags=tags,
        metadata={k: metadata[k] for k in _KEPT_METADATA if k in metadata},
    )


def graph_context(*, task: str | None = None) -> dict[str, Any]:
    """:func:`context_fields` of the LangGraph node running now, plus its ``parent_run_id``.

    For code that runs inside a node but is not itself a LangChain run (middleware, graph nodes).
    Outside a graph: ``framework="langchain"`` and nothing else.
    """
    try:
        from langgraph.config import get_config

        config = get_config()
    except Exception:  # not inside a runnable (or langgraph missing)
        return context_fields(None, task=task)
    fields = context_fields(config.get("metadata"), configurable=config.get("configurable"), task=task)
    parent = getattr(config.get("callbacks"), "parent_run_id", None)
    if parent is not None:
        fields["parent_run_id"] = str(parent)
    return fields


# -- tools ---------------------------------------------------------------------------------------
def tool_fields(output: Any) -> dict[str, Any]:
    """A tool's output as ``result=`` or ``error=`` of :func:`records.tool_record`."""
    if isinstance(output, ToolMessage):
        if output.status == "error":
            return {"error": str(output.content)}
        return {"result": output.content}
    if hasattr(output, "update") and hasattr(output, "goto"):  # a langgraph Command
        return {"result": repr(output)}
    return {"result": output}


def run_stores(explicit: Any = None) -> list[Any]:
    """Where a step run inside a LangGraph node (middleware, graph node) is captured.

    ``explicit`` (a ``capture=`` store) when given, else the stores of the run's
    :class:`~langchain_slm.SLMCaptureHandler` callbacks, so the default handler captures the step
    whole (SLM attempt, LLM answer, link) with no ``capture=`` at all.
    """
    if explicit is not None:
        return [explicit]
    try:
        from langgraph.config import get_config

        callbacks = get_config().get("callbacks")
    except Exception:  # not inside a runnable (or langgraph missing)
        return []
    stores: list[Any] = []
    handlers: Any = getattr(callbacks, "handlers", callbacks) or ()  # a callback manager or a list
    for handler in handlers:
        store = getattr(handler, "store", None) if hasattr(handler, "capture_routed_step") else None
        if store is not None and all(store is not s for s in stores):
            stores.append(store)
    return stores


def call_id_for_message(message: BaseMessage) -> str | None:
    """The capture id the handler gave the call that produced ``message``, if it logged it."""
    mid = message.id or ""
    if not mid.startswith(_RUN_ID_PREFIX):
        return None
    return CALL_IDS.get(mid[len(_RUN_ID_PREFIX):len(_RUN_ID_PREFIX) + 36])  # type: ignore[no-any-return]
