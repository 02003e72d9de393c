"""Record every LlamaIndex LLM call and tool execution into the slm-agents capture store.

``slm_agents_capture()`` adds one event handler to LlamaIndex's root dispatcher (plus the span
tracker that knows each call's workflow step). It sees the start, stream and end events that
every LlamaIndex LLM emits (``@llm_chat_callback``/``@llm_completion_callback``), so it records
the calls of *any* LLM (OpenAI, Anthropic, Ollama, :class:`~llamaindex_slm.SLM`...) without
monkeypatching, and the tool executions of agent workflows (``call_tool`` steps). When a call
ends it translates the LlamaIndex objects and builds the record with the core
(:mod:`slm_agents.capture.records`), then :meth:`slm_agents.capture.CaptureStore.log` queues
it; the store redacts and writes in its own thread.

A :class:`~llamaindex_slm.RouterLLM` call is recorded as its routed step: the SLM attempt, the
LLM answer when the LLM answered (route ``slm``/``llm``/``shadow`` and the escalation reason)
and the escalation linking them (``store.link_escalation``), the same records the LangChain
face writes.

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
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler

from slm_agents.capture import CaptureStore, records

from ._spans import StepTracker, TrackedSpan, get_tracker
from ._utils import request_fields, response_fields, span_context

__all__ = ["SLMAgentsCaptureHandler", "slm_agents_capture", "current_handler"]

logger = logging.getLogger("llamaindex_slm.capture")

_SLM_AGENTS_CLASSES = frozenset({"SLM", "RouterLLM"})  # class_name() of this face's LLMs
_MAX_PENDING = 10_000  # calls whose end never came (abandoned streams) are forgotten past this


@dataclass(eq=False)
class _Call:
    """One LLM call in flight: references only; converted when it ends."""

    span_id: str | None
    kind: str  # "chat" | "completion"
    start: float
    ts: float
    model_dict: dict[str, Any]
    kwargs: dict[str, Any]
    inputs: Any  # the messages (chat) or the prompt (completion)
    span: TrackedSpan | None
    instance_id: int | None
    router: bool
    skip: bool = False
    first: float | None = None
    deltas: list[str] = field(default_factory=list)
    step: records.Step | None = None


class SLMAgentsCaptureHandler(BaseEventHandler):
    """A LlamaIndex event handler that records every LLM call into a capture store.

    Create and install it with :func:`slm_agents_capture`. Each record has the messages, tools
    and tool calls (OpenAI format), latency (and time to first token when streamed), token
    counts when the LLM reported them, any error, ``run_id``/``parent_run_id`` (the LLM call's
    span id and its parent's), ``task`` (the workflow step, e.g. ``run_agent_step``) and, in
    ``metadata``, the agent, the workflow and LlamaIndex's workflow run id. Tool executions
    (an agent's ``call_tool`` steps) are recorded with their arguments, result or error and
    latency, linked to the model call that asked for them.

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
        super().__init__(**kwargs)
        self.store = store
        self._pending: dict[str | None, _Call] = {}
        self._lock = threading.Lock()
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
        self._tracker.add_tool_listener(self._on_tool)
        self._active = True
        atexit.register(self._atexit)

    def remove(self) -> None:
        """Stop capturing: detach from the dispatcher and wait for what was recorded to be written."""
        global _handler
        self._active = False
        dispatcher = get_dispatcher()
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not self]
        self._tracker.remove_drop_listener(self._on_drop)
        self._tracker.remove_tool_listener(self._on_tool)
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
        """Wait until every finished call is written (the store's writer); True if so."""
        return bool(self.store.flush(timeout))

    def feedback(self, target: str, *, good: bool | None = None, score: float | None = None,
                 note: str | None = None) -> str:
        """Thumbs up/down (``good=``) or a 0..1 ``score`` on a captured call or a run; see
        :meth:`slm_agents.capture.CaptureStore.feedback`.

        ``target`` is a call id or a run/thread id (then the run's final call). Negative
        feedback counts against the task's outcome readiness.
        """
        return str(self.store.feedback(str(target), good=good, score=score, note=note))

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):  # never raise at interpreter exit
            self.flush(5.0)

    # -- events ---------------------------------------------------------------------------------
    def handle(self, event: Any, **kwargs: Any) -> None:
        if not self._active:
            return
        handler = self._handlers.get(type(event).__name__)
        if handler is None:
            return
        try:
            handler(event)
        except Exception as e:  # capture never raises into the agent
            logger.warning("slm-agents capture skipped a %s (%s)", type(event).__name__, type(e).__name__)

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
            router=bool(span is not None and span.router_ids is not None),
        )
        with self._lock:
            ancestor = span.parent if span else None
            while ancestor is not None:
                outer = self._pending.get(ancestor.id_)
                if outer is not None:
                    if outer.router:
                        call.skip = True  # a RouterLLM's SLM or LLM call: part of the router's step
                        break
                    if outer.instance_id is not None and outer.instance_id == call.instance_id:
                        outer.skip = True  # e.g. complete() -> chat() of one LLM: keep the inner call
                ancestor = ancestor.parent
            if not call.skip and not records.claim(self.store, event.span_id, self):
                call.skip = True  # another capturer (a RouterLLM's own capture=) writes it here
            if len(self._pending) >= _MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
            self._pending[event.span_id] = call

    def _on_progress(self, event: Any) -> None:
        call = self._pending.get(event.span_id)
        if call is not None:
            if call.first is None:
                call.first = time.perf_counter()
            call.deltas.append(getattr(event.response, "delta", None) or "")

    def take_routed_step(self, span_id: str | None, step: records.Step) -> None:
        """Take the step a :class:`~llamaindex_slm.RouterLLM` call routed (the router calls this);
        it is logged, with the call's context, when the call ends."""
        call = self._pending.get(span_id)
        if call is not None:
            call.step = step

    def _on_end(self, event: Any) -> None:
        with self._lock:
            call = self._pending.pop(event.span_id, None)
        if call is not None and not call.skip:
            self._write(call, response=event.response)

    def _on_exception(self, event: Any) -> None:
        self._on_drop(event.span_id, getattr(event, "exception", None))

    def _on_drop(self, span_id: str | None, error: BaseException | None) -> None:
        if not self._active:
            return
        with self._lock:
            call = self._pending.pop(span_id, None)
        if call is not None and not call.skip:
            self._write(call, error=error or RuntimeError("the call failed"))

    def _write(self, call: _Call, *, response: Any = None, error: BaseException | None = None) -> None:
        end = time.perf_counter()
        try:
            context = span_context(call.span, run_id=call.span_id, llm_class=call.model_dict.get("class_name"),
                                   streamed=True if call.first is not None else None)  # fmt: skip
            if call.step is not None and error is None:
                context.pop("task", None)  # the router's own task label stays
                answer = response_fields(response, deltas=call.deltas) if call.step.llm_answered else None
                records.log_step(self.store, call.step, answer=answer, context=context)
                return
            model_name = call.model_dict.get("model_name")
            requested = model_name if model_name and model_name != "unknown" else None
            outcome = (response_fields(response, deltas=call.deltas) if response is not None
                       else records.error_fields(error) if error is not None else {})  # fmt: skip
            record = records.merge(
                request_fields(call.kind, call.inputs, call.kwargs), context,
                {"ts": call.ts, "model_requested": requested, "model": requested,
                 "runtime": call.model_dict.get("class_name"), "latency_ms": (end - call.start) * 1000,
                 "ttft_ms": (call.first - call.start) * 1000 if call.first is not None else None},
                {k: v for k, v in outcome.items() if v is not None},
            )  # fmt: skip
            if error is not None:
                record["finish_reason"] = "error"
            if not record.get("route"):
                record["route"] = records.unrouted_route(call.model_dict.get("class_name") in _SLM_AGENTS_CLASSES)
            call_id = self.store.log({k: v for k, v in record.items() if v is not None})
            records.remember_tool_calls(call_id, record.get("tool_calls"))
        except Exception as e:  # noqa: BLE001 - a bad record is dropped, never raised
            logger.warning("slm-agents capture could not record a LlamaIndex call (%s)", type(e).__name__)
        finally:
            records.release(self.store, call.span_id)

    # -- tool executions (agent workflows' call_tool steps) ---------------------------------------
    def _on_tool(self, span: TrackedSpan, outcome: dict[str, Any], latency_ms: float) -> None:
        if not self._active or span.tool_call is None:
            return
        try:
            name, arguments, call_id = span.tool_call
            context = span_context(span, run_id=span.id_)
            self.store.log_tool(records.tool_record(name=name, arguments=arguments, call_id=call_id,
                                                    latency_ms=latency_ms, context=context, **outcome))  # fmt: skip
        except Exception as e:  # noqa: BLE001
            logger.warning("slm-agents capture could not record a LlamaIndex tool call (%s)", type(e).__name__)


_handler: SLMAgentsCaptureHandler | None = None
_handler_lock = threading.Lock()


def _resolve_store(store: Any) -> CaptureStore:
    return records.resolve_store(True if store is None else store)  # type: ignore[return-value]


def current_handler() -> SLMAgentsCaptureHandler | None:
    """The installed, active handler (None when LlamaIndex calls are not being captured)."""
    handler = _handler
    return handler if handler is not None and handler.active else None


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
