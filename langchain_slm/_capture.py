"""Record building shared by the callback handler, the middleware and the graph nodes.

Every place in the LangChain face that writes to the capture store builds its records here, so a
call looks the same whether :class:`~langchain_slm.SLMCaptureHandler`,
:class:`~langchain_slm.middleware.CaptureMiddleware`,
:class:`~langchain_slm.middleware.SLMRoutingMiddleware` or
:func:`~langchain_slm.graph.escalation_node` saw it.

It also holds the small amount of shared state that keeps those pieces from logging one call
twice:

* :func:`captured_here` marks model and tool calls made inside a piece that logs them itself (the
  middleware, the escalation node); the handler skips calls made under the mark.
* :data:`CALL_IDS` maps a chat-model run id to the capture id the handler gave it, so an
  escalation node can link the SLM attempt the handler logged to the LLM answer it logs.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> rec = {**request_fields([HumanMessage("2+2?")]), **answer_fields(AIMessage("4"))}
    >>> rec["messages"], rec["content"], rec["finish_reason"], rec["route"]
    ([{'role': 'user', 'content': '2+2?'}], '4', 'stop', None)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from slm_agents.capture import CaptureStore, get_default_store, record_from_completion
from slm_agents.runtimes.base import SAMPLING_KEYS
from slm_agents.types import Completion

from . import _convert

__all__ = [
    "resolve_store",
    "request_fields",
    "answer_fields",
    "context_fields",
    "graph_context",
    "error_fields",
    "slm_attempt_fields",
    "tool_fields",
    "openai_tools",
    "captured_here",
    "is_captured_elsewhere",
    "call_id_for_message",
    "log_step",
    "merge",
    "BoundedMap",
    "CALL_IDS",
    "TOOL_OWNERS",
    "remember_tool_calls",
]

logger = logging.getLogger("langchain_slm.capture")

#: Call options recorded in ``params`` (the rest of ``invocation_params`` is model identity).
PARAM_KEYS = SAMPLING_KEYS | {"max_completion_tokens", "n", "reasoning_effort"}
#: LangChain's prefix for a chat model's answer id: ``lc_run--<run uuid>``.
_RUN_ID_PREFIX = "lc_run--"
_NOISY_TAG_PREFIXES = ("seq:", "graph:", "langsmith:", "nostream")


def resolve_store(store: Any) -> CaptureStore:
    """A store from what a user passed: a store, a path, ``True`` or None (the default store)."""
    if store is None or store is True:
        return get_default_store()
    if isinstance(store, (str, os.PathLike)):
        return get_default_store(store)
    if not (hasattr(store, "log") and hasattr(store, "log_tool")):
        raise TypeError(f"store must be a CaptureStore or a file path, got {type(store).__name__}")
    return store


# -- the request ---------------------------------------------------------------------------------
def openai_tools(tools: Sequence[Any] | None) -> list[dict[str, Any]] | None:
    """Tools in OpenAI format; a tool that does not convert is kept as given (never raises)."""
    if not tools:
        return None
    out = []
    for t in tools:
        if isinstance(t, Mapping) and t.get("type") == "function" and "function" in t:
            out.append(t)  # already OpenAI (ChatSLM, ChatOpenAI bind this shape)
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
    """``messages`` (OpenAI format), ``tools``, ``tool_choice`` and sampling ``params``."""
    sampling = {k: v for k, v in (params or {}).items() if k in PARAM_KEYS and v is not None}
    return {
        "messages": _convert.messages_to_openai(messages),
        "tools": openai_tools(tools),
        "tool_choice": tool_choice,
        "params": sampling or None,
    }


# -- the answer ----------------------------------------------------------------------------------
def answer_fields(message: BaseMessage, *, llm_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a chat model answered: text, tool calls (OpenAI format), finish reason, usage, route.

    ``route``, ``escalation_reason``, ``confidence`` and ``runtime`` come from
    ``response_metadata`` when the model put them there (slm-agents models do).
    """
    meta = message.response_metadata or {}
    tool_calls = [
        {"id": tc.get("id"), "type": "function",
         "function": {"name": tc["name"], "arguments": json.dumps(tc["args"], ensure_ascii=False)}}
        for tc in getattr(message, "tool_calls", None) or ()
    ] or None
    invalid = _convert.invalid_calls_of(message) if isinstance(message, AIMessage) else []
    usage = getattr(message, "usage_metadata", None) or {}
    legacy = (llm_output or {}).get("token_usage") or {}
    finish = meta.get("finish_reason") or meta.get("stop_reason") or meta.get("done_reason")
    fields: dict[str, Any] = {
        "content": message.text or None,
        "tool_calls": tool_calls,
        "finish_reason": finish or ("tool_calls" if tool_calls else "stop"),
        "valid": False if invalid else (True if tool_calls else None),
        "confidence": meta.get("confidence"),
        "model": meta.get("model_name") or meta.get("model") or (llm_output or {}).get("model_name"),
        "runtime": meta.get("runtime"),
        "route": meta.get("route"),
        "escalation_reason": meta.get("escalation_reason"),
        "ttft_ms": meta.get("ttft_ms"),
        "input_tokens": usage.get("input_tokens", legacy.get("prompt_tokens")),
        "output_tokens": usage.get("output_tokens", legacy.get("completion_tokens")),
    }
    if invalid:
        fields["metadata"] = {"invalid_tool_calls": invalid}
    return fields


def slm_attempt_fields(
    completion: Completion | None,
    error: BaseException | None = None,
    *,
    latency_ms: float | None = None,
    valid: bool | None = None,
    model: str | None = None,
) -> dict[str, Any] | None:
    """An SLM attempt (its Completion, or the exception it raised) as record fields."""
    if completion is not None:
        fields = record_from_completion(completion, messages=[])
        for key in ("messages", "tools", "tool_choice", "params"):
            fields.pop(key, None)
        if valid is not None:
            fields["valid"] = valid
        return fields
    if error is not None:
        return {**error_fields(error), "valid": False, "latency_ms": latency_ms, "model": model}
    return None


def error_fields(error: BaseException) -> dict[str, Any]:
    """``error_type`` and ``error_message`` of a failed call."""
    return {"error_type": type(error).__name__, "error_message": str(error)}


# -- where the call ran --------------------------------------------------------------------------
def context_fields(
    metadata: Mapping[str, Any] | None,
    *,
    tags: Sequence[str] | None = None,
    configurable: Mapping[str, Any] | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """``task`` (the LangGraph node unless given), ``thread_id``, ``framework``, ``tags``, ``metadata``."""
    metadata = metadata or {}
    node = metadata.get("langgraph_node")
    thread = metadata.get("thread_id") or (configurable or {}).get("thread_id")
    fields: dict[str, Any] = {
        "framework": "langgraph" if node is not None else "langchain",
        "task": task or (str(node) if node is not None else None),
        "thread_id": str(thread) if thread is not None else None,
    }
    kept = [t for t in tags or () if not t.startswith(_NOISY_TAG_PREFIXES)]
    if kept:
        fields["tags"] = kept
    extra = {k: metadata[k] for k in ("lc_agent_name", "langgraph_step", "ls_provider") if k in metadata}
    if extra:
        fields["metadata"] = extra
    return fields


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
    """A tool's result as stored: a ``ToolMessage``'s content (an error message as ``error``)."""
    if isinstance(output, ToolMessage):
        if output.status == "error":
            return {"error": str(output.content)}
        return {"result": output.content}
    if hasattr(output, "update") and hasattr(output, "goto"):  # a langgraph Command
        return {"result": repr(output)}
    return {"result": output}


# -- shared state --------------------------------------------------------------------------------
class BoundedMap:
    """A thread-safe dict that forgets its oldest keys past ``limit`` (ids of calls in flight)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._data: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self.limit = limit

    def set(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.limit:
                del self._data[next(iter(self._data))]

    def get(self, key: Any, default: Any = None) -> Any:
        return self._data.get(key, default)

    def pop(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            return self._data.pop(key, default)

    def claim(self, key: Any, owner: Any) -> bool:
        """Set ``key`` to ``owner`` unless another owner holds it; True when ``owner`` holds it."""
        with self._lock:
            held = self._data.setdefault(key, owner)
            while len(self._data) > self.limit:
                del self._data[next(iter(self._data))]
        return held is owner

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Any) -> bool:
        return key in self._data


#: chat-model run id (str) -> the capture id the handler gave that call.
CALL_IDS = BoundedMap()
#: tool call id -> the capture id of the model call whose answer asked for it.
TOOL_OWNERS = BoundedMap()


def remember_tool_calls(call_id: str, tool_calls: Sequence[Mapping[str, Any]] | None) -> None:
    """Note that the logged call ``call_id`` asked for ``tool_calls`` (OpenAI format)."""
    for tc in tool_calls or ():
        if tc.get("id"):
            TOOL_OWNERS.set(tc["id"], call_id)

_CAPTURED_HERE: ContextVar[bool] = ContextVar("langchain_slm_captured_here", default=False)


@contextlib.contextmanager
def captured_here() -> Iterator[None]:
    """Model and tool calls made inside are logged by the caller; the handler skips them."""
    token = _CAPTURED_HERE.set(True)
    try:
        yield
    finally:
        _CAPTURED_HERE.reset(token)


def is_captured_elsewhere() -> bool:
    """True inside :func:`captured_here`."""
    return _CAPTURED_HERE.get()


def call_id_for_message(message: BaseMessage) -> str | None:
    """The capture id the handler gave the call that produced ``message``, if it logged it."""
    mid = message.id or ""
    if not mid.startswith(_RUN_ID_PREFIX):
        return None
    return CALL_IDS.get(mid[len(_RUN_ID_PREFIX):len(_RUN_ID_PREFIX) + 36])


def merge(*parts: Mapping[str, Any] | None) -> dict[str, Any]:
    """Record parts merged left to right; their ``metadata`` dicts are merged, not replaced."""
    out: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for part in parts:
        if not part:
            continue
        out.update(part)
        if part.get("metadata"):
            meta.update(part["metadata"])
    if meta:
        out["metadata"] = meta
    return out


# -- a routed step -------------------------------------------------------------------------------
def log_step(
    store: Any,
    base: Mapping[str, Any],
    *,
    route: str,
    reason: str | None,
    slm: Mapping[str, Any] | None = None,
    slm_id: str | None = None,
    answer: BaseMessage | None = None,
) -> tuple[str | None, str | None]:
    """Log one routed step: the SLM attempt, the LLM answer, and the escalation linking them.

    Args:
        store: The capture store.
        base: Request and context fields shared by both records (``request_fields`` +
            ``context_fields``).
        route: ``"slm"``, ``"llm"`` or ``"shadow"`` (the outcome of the step).
        reason: Why the step left the SLM (None when the SLM's answer was used).
        slm: The SLM attempt's answer fields (from a Completion or a message); None when the
            SLM did not run or ``slm_id`` says where it was already logged.
        slm_id: The SLM attempt's id when it is already in the store.
        answer: The LLM's answer when the LLM ran.

    Returns:
        ``(slm_id, llm_id)``; a part that was not logged is None. Never raises.
    """
    llm_id = None
    try:
        if slm_id is None and slm is not None:
            slm_route = "shadow" if route == "shadow" else "slm"
            slm_id = store.log(merge(base, slm, {"route": slm_route, "escalation_reason": reason}))
            if route == "slm":
                remember_tool_calls(slm_id, slm.get("tool_calls"))
        if answer is not None and route in ("llm", "shadow"):
            fields = answer_fields(answer)
            llm_id = store.log(merge(base, fields, {"route": "llm", "escalation_reason": reason}))
            remember_tool_calls(llm_id, fields.get("tool_calls"))
        if slm_id is not None and llm_id is not None:
            store.link_escalation(slm_id, llm_id, reason or route)
    except Exception as e:  # the capture path never breaks the agent
        logger.warning("slm-agents capture failed (%s); the answer is unaffected", type(e).__name__)
    return slm_id, llm_id
