"""Record every LlamaIndex LLM call into the slm-agents capture store, through instrumentation.

``slm_agents_capture()`` adds one event handler to LlamaIndex's root dispatcher (plus the span
tracker that knows each call's workflow step). It sees the start, stream and end events that
every LlamaIndex LLM emits (``@llm_chat_callback``/``@llm_completion_callback``), so it records
the calls of *any* LLM (OpenAI, Anthropic, Ollama, :class:`~llamaindex_slm.SLM`...) without
monkeypatching. On the agent's thread it only notes references and puts them on a queue; a
daemon thread turns them into OpenAI-format records and hands them to
:meth:`slm_agents.capture.CaptureStore.log`, which redacts and writes in its own thread.

Calls made inside a :class:`~llamaindex_slm.RouterLLM` are held until the router answers, then
written with the route (``slm``/``llm``/``shadow``) and escalation reason, and an escalated
SLM attempt is linked to the LLM answer that replaced it (``store.link_escalation``).

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> handler = slm_agents_capture(store=CaptureStore(Database(memory=True)))
    >>> slm_agents_capture() is handler  # idempotent
    True
    >>> handler.remove()
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler

from slm_agents.capture import CaptureStore, get_default_store

from ._spans import StepTracker, TrackedSpan, get_tracker
from ._utils import jsonable, message_tool_calls, to_openai_messages, tools_to_openai, usage_from_response

__all__ = ["SLMAgentsCaptureHandler", "slm_agents_capture"]

logger = logging.getLogger("llamaindex_slm.capture")

_MAX_PENDING = 10_000  # calls whose end never came (abandoned streams) are forgotten past this
_OWN_KWARGS = ("tools", "tool_choice", "messages", "task")


@dataclass(eq=False)
class _Call:
    """One LLM call in flight: references only; converted off the hot path."""

    span_id: str | None
    kind: str  # "chat" | "completion"
    start: float
    ts: float
    model_dict: dict[str, Any]
    kwargs: dict[str, Any]
    inputs: Any  # the messages (chat) or the prompt (completion)
    span: TrackedSpan | None
    instance_id: int | None
    router_ids: tuple[int | None, int | None] | None
    parent_router: _Call | None = None
    skip: bool = False
    first: float | None = None
    deltas: list[str] = field(default_factory=list)
    end: float | None = None
    response: Any = None
    error: BaseException | None = None
    finished: bool = False
    children: list[_Call] = field(default_factory=list)


def _text(message: Any) -> str:
    from llama_index.core.base.llms.types import TextBlock

    return "".join(b.text for b in getattr(message, "blocks", []) if isinstance(b, TextBlock))


def _finish_reason(raw: Any) -> str | None:
    if isinstance(raw, Mapping):
        if isinstance(raw.get("finish_reason"), str):
            return raw["finish_reason"]
        choices = raw.get("choices")
    else:
        choices = getattr(raw, "choices", None)
    if isinstance(choices, Sequence) and choices:
        first = choices[0]
        value = first.get("finish_reason") if isinstance(first, Mapping) else getattr(first, "finish_reason", None)
        return value if isinstance(value, str) else None
    return None


def _is_core_raw(raw: Any) -> bool:
    """A ``Completion.to_dict()``: what :class:`~llamaindex_slm.SLM` puts in ``raw``."""
    return isinstance(raw, Mapping) and isinstance(raw.get("message"), Mapping) and "invalid_tool_calls" in raw


def build_record(call: _Call) -> dict[str, Any]:
    """The capture record (see docs/capture.md) of one finished call."""
    span = call.span
    model_name = call.model_dict.get("model_name")
    if call.kind == "chat":
        messages = to_openai_messages(call.inputs or [])
    else:
        messages = [{"role": "user", "content": str(call.inputs or "")}]
    params = {k: jsonable(v) for k, v in call.kwargs.items() if k not in _OWN_KWARGS} or None
    record: dict[str, Any] = {
        "ts": call.ts,
        "run_id": call.span_id,
        "parent_run_id": span.parent_id if span else None,
        "framework": "llamaindex",
        "task": span.step if span else None,
        "runtime": call.model_dict.get("class_name"),
        "model_requested": model_name if model_name and model_name != "unknown" else None,
        "messages": messages,
        "tools": tools_to_openai(call.kwargs.get("tools")) or None,
        "tool_choice": jsonable(call.kwargs.get("tool_choice")),
        "params": params,
        "latency_ms": ((call.end or time.perf_counter()) - call.start) * 1000,
        "ttft_ms": (call.first - call.start) * 1000 if call.first is not None else None,
    }
    response = call.response
    if response is not None:
        if call.kind == "chat":
            message = response.message
            content = _text(message)
            tool_calls = message_tool_calls(message)
        else:
            content, tool_calls = str(getattr(response, "text", "") or ""), []
        if not content and call.deltas:
            content = "".join(call.deltas)
        raw = response.raw
        inp, out = usage_from_response(response)
        record.update(
            content=content or None,
            tool_calls=tool_calls or None,
            finish_reason=_finish_reason(raw) or ("tool_calls" if tool_calls else "stop"),
            input_tokens=inp,
            output_tokens=out,
            model=record["model_requested"],
        )
        if _is_core_raw(raw):
            invalid = raw.get("invalid_tool_calls") or []
            record.update(
                runtime=raw.get("runtime") or record["runtime"],
                model=raw.get("model") or record["model"],
                confidence=raw.get("confidence"),
                valid=False if invalid else (True if tool_calls else None),
            )
            if record["ttft_ms"] is None:
                record["ttft_ms"] = raw.get("ttft_ms")
            if invalid:
                record["metadata"] = {"invalid_tool_calls": invalid}
    if call.error is not None:
        record["error_type"] = type(call.error).__name__
        record["error_message"] = str(call.error)
        record["finish_reason"] = "error"
    meta = {
        "llm_class": call.model_dict.get("class_name"),
        "agent": span.agent if span else None,
        "workflow": span.workflow if span else None,
        "workflow_run_id": span.workflow_run_id if span else None,
        "streamed": True if call.first is not None else None,
    }
    record["metadata"] = {**{k: v for k, v in meta.items() if v is not None}, **(record.get("metadata") or {})}
    return {k: v for k, v in record.items() if v is not None}


class SLMAgentsCaptureHandler(BaseEventHandler):
    """A LlamaIndex event handler that records every LLM call into a capture store.

    Create and install it with :func:`slm_agents_capture`. Each record has the messages, tools
    and tool calls (OpenAI format), latency (and time to first token when streamed), token
    counts when the LLM reported them, any error, ``run_id``/``parent_run_id`` (the LLM call's
    span id and its parent's), ``task`` (the workflow step, e.g. ``run_agent_step``) and, in
    ``metadata``, the agent, the workflow and LlamaIndex's workflow run id.

    Args:
        store: A :class:`~slm_agents.capture.CaptureStore`.

    Example:
        >>> from sqlite_utils import Database
        >>> from llama_index.core.llms import ChatMessage
        >>> from slm_agents import FakeRuntime
        >>> from llamaindex_slm import SLM
        >>> store = CaptureStore(Database(memory=True))
        >>> handler = slm_agents_capture(store=store)
        >>> _ = SLM(runtime=FakeRuntime(["hi"])).chat([ChatMessage(role="user", content="hello")])
        >>> handler.flush()
        True
        >>> [(r["framework"], r["content"]) for r in store.db.query("select framework, content from calls")]
        [('llamaindex', 'hi')]
        >>> handler.remove()
    """

    store: Any = None

    def __init__(self, store: CaptureStore, **kwargs: Any) -> None:
        super().__init__(store=store, **kwargs)
        self._pending: dict[str | None, _Call] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, _Call]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._tracker: StepTracker = get_tracker()
        self._active = False
        self._handlers = {
            "LLMChatStartEvent": self._on_start,
            "LLMCompletionStartEvent": self._on_start,
            "LLMChatInProgressEvent": self._on_progress,
            "LLMCompletionInProgressEvent": self._on_progress,
            "LLMChatEndEvent": self._on_end,
            "LLMCompletionEndEvent": self._on_end,
            "ExceptionEvent": self._on_exception,
        }

    @classmethod
    def class_name(cls) -> str:
        return "SLMAgentsCaptureHandler"

    # -- install ------------------------------------------------------------------------------
    def _install(self) -> None:
        dispatcher = get_dispatcher()
        if not any(h is self for h in dispatcher.event_handlers):
            dispatcher.add_event_handler(self)
        self._tracker.add_drop_listener(self._on_drop)
        self._active = True
        atexit.register(self._atexit)

    def remove(self) -> None:
        """Stop capturing: detach from the dispatcher and write what is still queued."""
        global _handler
        self._active = False
        dispatcher = get_dispatcher()
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not self]
        self._tracker.remove_drop_listener(self._on_drop)
        atexit.unregister(self._atexit)
        self.flush()
        with _handler_lock:
            if _handler is self:
                _handler = None

    @property
    def active(self) -> bool:
        """Whether the handler is attached and recording."""
        return self._active

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every finished call reached the store and the store wrote it; True if so."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return bool(self.store.flush(remaining))

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):  # never raise at interpreter exit
            self.flush(5.0)

    # -- the hot path: note references, enqueue -----------------------------------------------
    def handle(self, event: Any, **kwargs: Any) -> None:
        if not self._active:
            return
        handler = self._handlers.get(type(event).__name__)
        if handler is None:
            return
        try:
            handler(event)
        except Exception as e:  # capture never raises into the agent
            logger.debug("capture skipped a %s: %s", type(event).__name__, type(e).__name__)

    def _on_start(self, event: Any) -> None:
        span = self._tracker.open_spans.get(event.span_id) if event.span_id else None
        chat = hasattr(event, "messages")
        call = _Call(
            span_id=event.span_id,
            kind="chat" if chat else "completion",
            start=time.perf_counter(),
            ts=time.time(),
            model_dict=dict(event.model_dict or {}),
            kwargs=dict(event.additional_kwargs or {}),
            inputs=list(event.messages) if chat else event.prompt,
            span=span,
            instance_id=span.instance_id if span else None,
            router_ids=span.router_ids if span else None,
        )
        with self._lock:
            ancestor = span.parent if span else None
            while ancestor is not None:
                outer = self._pending.get(ancestor.id_)
                if outer is not None:
                    if outer.router_ids is not None and outer is not call:
                        call.parent_router = outer
                        break
                    if outer.instance_id is not None and outer.instance_id == call.instance_id:
                        outer.skip = True  # e.g. complete() -> chat() of one LLM: keep the inner call
                ancestor = ancestor.parent
            if len(self._pending) >= _MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
            self._pending[event.span_id] = call

    def _on_progress(self, event: Any) -> None:
        call = self._pending.get(event.span_id)
        if call is not None:
            if call.first is None:
                call.first = time.perf_counter()
            call.deltas.append(getattr(event.response, "delta", None) or "")

    def _on_end(self, event: Any) -> None:
        with self._lock:
            call = self._pending.pop(event.span_id, None)
        if call is not None:
            call.end = time.perf_counter()
            call.response = event.response
            self._finish(call)

    def _on_exception(self, event: Any) -> None:
        self._on_drop(event.span_id, getattr(event, "exception", None))

    def _on_drop(self, span_id: str | None, error: BaseException | None) -> None:
        if not self._active:
            return
        with self._lock:
            call = self._pending.pop(span_id, None)
        if call is not None:
            call.end = time.perf_counter()
            call.error = error or RuntimeError("the call failed")
            self._finish(call)

    def _finish(self, call: _Call) -> None:
        with self._lock:
            call.finished = True
            if call.skip:
                return
            router = call.parent_router
            if call.router_ids is None and router is not None and not router.finished:
                router.children.append(call)
                return
        self._submit("router" if call.router_ids is not None else "call", call)

    def _submit(self, kind: str, call: _Call) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="slm-agents-llamaindex-capture", daemon=True)
            self._worker.start()
        self._queue.put((kind, call))

    # -- off the hot path ---------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            kind, call = self._queue.get()
            try:
                if kind == "router":
                    self._write_router(call)
                else:
                    self.store.log(build_record(call))
            except Exception as e:  # a bad record is dropped, never raised
                logger.warning("capture could not record a LlamaIndex call (%s)", type(e).__name__)
            finally:
                self._queue.task_done()

    def _write_router(self, router: _Call) -> None:
        """Write the calls a RouterLLM made, with its route and reason; link an escalation."""
        info = dict(getattr(router.response, "additional_kwargs", None) or {})
        route, reason = info.get("route"), info.get("escalation_reason")
        slm_key, llm_key = router.router_ids or (None, None)
        ids: dict[str, str] = {}
        for child in router.children:
            record = build_record(child)
            role = "slm" if child.instance_id == slm_key else "llm" if child.instance_id == llm_key else None
            if role == "slm":
                record["route"] = "shadow" if route == "shadow" else "slm"
                if reason is not None and route != "shadow":
                    record["escalation_reason"] = reason
            elif role == "llm":
                record["route"] = "llm"
                if reason is not None:
                    record["escalation_reason"] = reason
            if info.get("task"):
                record["task"] = info["task"]
            if router.error is not None:
                record.setdefault("metadata", {})["router_error"] = type(router.error).__name__
            record_id = self.store.log(record)
            if role is not None:
                ids[role] = record_id
        if "slm" in ids and "llm" in ids and reason and not str(reason).startswith("route:"):
            self.store.link_escalation(ids["slm"], ids["llm"], reason)


_handler: SLMAgentsCaptureHandler | None = None
_handler_lock = threading.Lock()


def _resolve_store(store: Any) -> CaptureStore:
    if store is None:
        return get_default_store()
    if isinstance(store, (str, os.PathLike)):
        return get_default_store(store)
    if hasattr(store, "log") and hasattr(store, "flush"):
        return store
    return CaptureStore(store)  # e.g. a sqlite_utils.Database


def slm_agents_capture(
    store: CaptureStore | str | os.PathLike[str] | Any | None = None, *, enabled: bool = True
) -> SLMAgentsCaptureHandler | None:
    """Record every LlamaIndex LLM call into the capture store (one line, idempotent).

    Args:
        store: A :class:`~slm_agents.capture.CaptureStore`, a file path, or a
            ``sqlite_utils.Database`` (default: the process's default store,
            ``$SLM_AGENTS_DB`` or ``./slm_agents.db``). Passing a store to an installed handler
            switches it to that store.
        enabled: False removes the installed handler (after writing what is queued).

    Returns:
        The installed handler (``.remove()`` stops capturing, ``.flush()`` waits for the
        writes), or None when ``enabled=False``.

    Example:
        >>> from sqlite_utils import Database
        >>> handler = slm_agents_capture(store=Database(memory=True))
        >>> handler.active, slm_agents_capture(enabled=False), handler.active
        (True, None, False)
    """
    global _handler
    if not enabled:
        with _handler_lock:
            current = _handler
        if current is not None:
            current.remove()
        return None
    with _handler_lock:
        current = _handler
        if current is not None and current.active:
            if store is not None:
                resolved = _resolve_store(store)
                if resolved is not current.store:
                    current.flush()
                    current.store = resolved
            return current
        handler = SLMAgentsCaptureHandler(_resolve_store(store))
        handler._install()
        _handler = handler
        return handler
