"""Which workflow step (and agent) a LlamaIndex call runs in, from the instrumentation spans.

LlamaIndex opens a span for every workflow run (id ``<Workflow class>.run-<uuid>``, the workflow
as its instance), for every step of that run (a child of the run span, id
``<class that defines the step>.<step name>-<uuid>``) and for every LLM method
(``<LLM class>.<method>-<uuid>``). :class:`StepTracker`, a span handler on the root
dispatcher, remembers for each open span the step it runs in, so the capture handler and
:class:`~llamaindex_slm.RouterLLM` can label a call with its task without walking the stack.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span import BaseSpan, active_span_id
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

__all__ = ["TrackedSpan", "StepTracker", "get_tracker", "current_task", "current_span"]

_UUID_SUFFIX = re.compile(r"-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_RUN_ID_TAG = "llamaindex.run_id"


def span_name(span_id: str) -> str:
    """``"FunctionAgent.run-<uuid>"`` -> ``"FunctionAgent.run"``."""
    return _UUID_SUFFIX.sub("", span_id)


class TrackedSpan(BaseSpan):
    """A span with the step, agent and workflow it runs in.

    Attributes:
        name: The span id without its uuid (``BaseWorkflowAgent.run_agent_step``).
        step: The workflow step in effect (``run_agent_step``), None outside workflows.
        agent: The agent in effect (``current_agent_name`` of the step's input event), if any.
        workflow: The workflow class in effect (``FunctionAgent``, ``AgentWorkflow``...).
        workflow_run_id: LlamaIndex's run id (the ``llamaindex.run_id`` instrument tag).
        instance_id: ``id()`` of the object whose method opened the span.
        router_ids: For a :class:`~llamaindex_slm.RouterLLM` call, ``(id(slm), id(llm))``.
        tool_call: For an agent's ``call_tool`` step, ``(tool name, arguments, tool call id)``.
        started: ``time.perf_counter()`` when the span opened.
        parent: The parent span, while it is tracked.
    """

    name: str = ""
    step: str | None = None
    agent: str | None = None
    workflow: str | None = None
    workflow_run_id: str | None = None
    is_workflow: bool = False
    instance_id: int | None = None
    router_ids: tuple[int | None, int | None] | None = None
    tool_call: tuple[str, Any, str | None] | None = None
    started: float = 0.0
    parent: Any = None


_workflow_cls: Any = None


def _is_workflow(instance: Any) -> bool:
    global _workflow_cls
    if instance is None:
        return False
    if _workflow_cls is None:
        try:
            from workflows import Workflow
        except ImportError:  # pragma: no cover - llama-index-core 0.14 always ships it
            from llama_index.core.workflow import Workflow
        _workflow_cls = Workflow
    return isinstance(instance, _workflow_cls)


def _tool_call_of(name: str, bound_args: inspect.BoundArguments) -> tuple[str, Any, str | None] | None:
    """``(tool name, arguments, call id)`` of an agent workflow's ``call_tool`` step (its ``ToolCall`` event)."""
    if not name.endswith(".call_tool"):
        return None
    for value in bound_args.arguments.values():
        tool_name = getattr(value, "tool_name", None)
        if isinstance(tool_name, str) and hasattr(value, "tool_kwargs"):
            call_id = getattr(value, "tool_id", None)
            return tool_name, value.tool_kwargs, call_id if isinstance(call_id, str) else None
    return None


def _tool_outcome(result: Any) -> dict[str, Any]:
    """``result=`` or ``error=`` of a ``ToolCallResult`` (its ``ToolOutput``)."""
    output = getattr(result, "tool_output", None)
    if output is None:
        return {"result": result}
    if getattr(output, "is_error", False):
        exception = getattr(output, "exception", None)
        return {"error": exception if isinstance(exception, BaseException) else str(output.content)}
    raw = getattr(output, "raw_output", None)
    return {"result": raw if raw is not None else output.content}


def _agent_of(bound_args: inspect.BoundArguments) -> str | None:
    for value in bound_args.arguments.values():
        name = getattr(value, "current_agent_name", None)
        if isinstance(name, str) and name:
            return name
    return None


class StepTracker(BaseSpanHandler[TrackedSpan]):
    """Span handler that labels each open span with its workflow step, agent and run.

    Install it with :func:`get_tracker` (idempotent). Only open spans are kept; a span that
    finished is forgotten (a child keeps a reference to what it inherited).
    """

    _drop_listeners: list[Callable[[str, BaseException | None], None]]
    _tool_listeners: list[Callable[[TrackedSpan, dict[str, Any], float], None]]

    def __init__(self) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self._drop_listeners = []
        self._tool_listeners = []

    def add_tool_listener(self, listener: Callable[[TrackedSpan, dict[str, Any], float], None]) -> None:
        """Call ``listener(span, outcome, latency_ms)`` when an agent's ``call_tool`` step ends;
        ``outcome`` is ``{"result": ...}`` or ``{"error": ...}``."""
        if listener not in self._tool_listeners:
            self._tool_listeners.append(listener)

    def remove_tool_listener(self, listener: Callable[[TrackedSpan, dict[str, Any], float], None]) -> None:
        if listener in self._tool_listeners:
            self._tool_listeners.remove(listener)

    def _tool_done(self, span: TrackedSpan, outcome: dict[str, Any]) -> None:
        latency = (time.perf_counter() - span.started) * 1000
        for listener in list(self._tool_listeners):
            with contextlib.suppress(Exception):  # a listener must never break the traced code
                listener(span, outcome, latency)

    @classmethod
    def class_name(cls) -> str:
        return "SLMAgentsStepTracker"

    def add_drop_listener(self, listener: Callable[[str, BaseException | None], None]) -> None:
        """Call ``listener(span_id, error)`` when a span ends with an exception."""
        if listener not in self._drop_listeners:
            self._drop_listeners.append(listener)

    def remove_drop_listener(self, listener: Callable[[str, BaseException | None], None]) -> None:
        if listener in self._drop_listeners:
            self._drop_listeners.remove(listener)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TrackedSpan | None:
        tags = tags or {}
        name = span_name(id_)
        parent = self.open_spans.get(parent_span_id) if parent_span_id else None
        span = TrackedSpan(id_=id_, parent_id=parent_span_id, name=name, parent=parent, started=time.perf_counter())
        span.instance_id = id(instance) if instance is not None else None
        if parent is not None:
            span.step, span.agent = parent.step, parent.agent
            span.workflow, span.workflow_run_id = parent.workflow, parent.workflow_run_id
        run_id = tags.get(_RUN_ID_TAG)
        if isinstance(run_id, str):
            span.workflow_run_id = run_id
        if _is_workflow(instance):
            span.is_workflow = True
            span.workflow = type(instance).__name__
        else:
            parent_is_run = parent.is_workflow if parent is not None else (
                parent_span_id is not None and span_name(parent_span_id).endswith(".run") and _RUN_ID_TAG in tags
            )
            if parent_is_run and instance is None:  # a step of that workflow run
                span.step = name.rsplit(".", 1)[-1]
                span.agent = _agent_of(bound_args) or span.agent
                if parent is None and parent_span_id is not None:
                    span.workflow = span_name(parent_span_id).rsplit(".", 1)[0]
        ids = getattr(instance, "_slm_agents_router_ids", None)
        if callable(ids):
            span.router_ids = ids()
        span.tool_call = _tool_call_of(name, bound_args)
        return span

    def prepare_to_exit_span(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None, result: Any | None = None,
        **kwargs: Any,
    ) -> TrackedSpan | None:
        span = self.open_spans.get(id_)
        if span is not None and span.tool_call is not None:
            self._tool_done(span, _tool_outcome(result))
        return span

    def prepare_to_drop_span(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
        err: BaseException | None = None, **kwargs: Any,
    ) -> TrackedSpan | None:
        for listener in list(self._drop_listeners):
            with contextlib.suppress(Exception):  # a listener must never break the traced code
                listener(id_, err)
        span = self.open_spans.get(id_)
        if span is not None and span.tool_call is not None:
            self._tool_done(span, {"error": err if err is not None else "the tool call failed"})
        return span


_tracker: StepTracker | None = None
_tracker_lock = threading.Lock()


def get_tracker() -> StepTracker:
    """The process-wide :class:`StepTracker`, added to the root dispatcher on first use."""
    global _tracker
    with _tracker_lock:
        if _tracker is None:
            _tracker = StepTracker()
            get_dispatcher().add_span_handler(_tracker)
        return _tracker


def current_span() -> TrackedSpan | None:
    """The tracked span the caller runs in (None when not in a span or not tracked)."""
    span_id = active_span_id.get()
    if span_id is None:
        return None
    return get_tracker().open_spans.get(span_id)


def current_task() -> str | None:
    """The workflow step the caller runs in (``"run_agent_step"``), or None outside a workflow.

    Example:
        >>> current_task() is None  # not inside a workflow step
        True
    """
    span = current_span()
    return span.step if span is not None else None
