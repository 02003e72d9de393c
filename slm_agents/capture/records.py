"""The one builder of capture records: every face, router, middleware and plugin calls it.

A face (LangChain, LangGraph, LlamaIndex, the gateway) only translates its framework's objects
into the plain inputs below; the rules that make a record live here, once:

* text: content parts are joined the way the runtimes render them (:func:`text_of`), tool-call
  arguments are JSON text (:func:`tool_call`);
* the request: OpenAI messages, tools, ``tool_choice`` (``"auto"`` when tools are bound and
  no choice was made, OpenAI's own default) and the sampling ``params`` kept
  (:data:`PARAM_KEYS`) (:func:`request_fields`);
* the answer: ``valid`` is False when a call is invalid, True when every call is valid, None
  when there are no calls; ``finish_reason`` defaults to ``"tool_calls"``/``"stop"``
  (:func:`answer_fields`, :func:`completion_fields`, :func:`error_fields`);
* where the call ran: framework, task, thread, run ids, tags and metadata
  (:func:`context_fields`);
* a routed step (:class:`Step`): the SLM attempt (route ``"slm"``, or ``"shadow"`` in shadow
  mode) with the policy's verdict as ``valid``, the LLM answer (route ``"llm"``, timed by the
  router when its answer carries no latency), both with the step's ``escalation_reason``, and
  the escalation linking them (:func:`log_step`); an SLM call already logged as an ordinary
  call gets the step's verdict and reason (:meth:`~slm_agents.capture.CaptureStore.record_verdict`);
  the routing facts every face reports come from :meth:`slm_agents.routing.Routed.report`;
* tool executions (:func:`tool_record`), linked to the model call that asked for them;
* capturing once: :func:`claim` is the one place that stops a call or step from being written
  twice to a store, and :func:`captured_here` marks calls a caller logs itself.

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> from slm_agents.types import Completion
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> bad = Completion(message={"role": "assistant", "content": ""}, finish_reason="length")
    >>> step = Step(request=request_fields([{"role": "user", "content": "hi"}]),
    ...             context=context_fields(framework="langchain", task="greet"),
    ...             route="llm", reason="truncated", slm=completion_fields(bad, valid=False))
    >>> slm_id, llm_id = log_step(store, step, answer=answer_fields(content="hello"))
    >>> store.flush()
    True
    >>> [(r["route"], r["escalation_reason"], r["valid"]) for r in store.db.query(
    ...     "select route, escalation_reason, valid from calls order by id")]
    [('slm', 'truncated', 0), ('llm', 'truncated', None)]
    >>> next(store.db.query("select reason from escalations"))["reason"]
    'truncated'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest
from ..runtimes._prompt import text_of
from ..runtimes.base import SAMPLING_KEYS
from ._utils import jsonable

if TYPE_CHECKING:
    from ..routing import Routed
    from ..types import Completion
    from .store import CaptureStore

__all__ = [
    "PARAM_KEYS",
    "NOISY_TAG_PREFIXES",
    "resolve_store",
    "merge",
    "text_of",
    "tool_call",
    "request_fields",
    "answer_fields",
    "completion_fields",
    "error_fields",
    "attempt_fields",
    "context_fields",
    "tool_record",
    "Step",
    "step_from_routed",
    "log_step",
    "BoundedMap",
    "TOOL_OWNERS",
    "remember_tool_calls",
    "claim",
    "release",
    "captured_here",
    "is_captured_elsewhere",
]

logger = logging.getLogger("slm_agents.capture")

#: Call options recorded in ``params``: the sampling options (the rest of a call's options is
#: model identity or the face's own keywords).
PARAM_KEYS = SAMPLING_KEYS | {"max_completion_tokens", "n", "reasoning_effort"}
#: Framework tags that say nothing about the call (LangChain's sequence and graph bookkeeping).
NOISY_TAG_PREFIXES = ("seq:", "graph:", "langsmith:", "nostream")
_MISSING: Any = object()


# -- where records go -----------------------------------------------------------------------------
def resolve_store(capture: Any) -> CaptureStore | None:
    """The store ``capture=`` names, the same on every face.

    Args:
        capture: A :class:`~slm_agents.capture.CaptureStore` (or anything with its ``log``),
            a ``sqlite_utils.Database``, a file path,
            ``True`` (the default store: ``$SLM_AGENTS_DB`` or ``./slm_agents.db``), or
            None/False (no store).

    Raises:
        InvalidRequest: ``capture`` is none of those (never ignored silently).

    Example:
        >>> resolve_store(None) is None, resolve_store(False) is None
        (True, True)
        >>> resolve_store(42)
        Traceback (most recent call last):
        ...
        slm_agents.errors.InvalidRequest: capture= takes a CaptureStore, a file path, True (the default store) or None (no capture), got int
    """
    if capture is None or capture is False:
        return None
    from sqlite_utils import Database

    from .store import CaptureStore, get_default_store

    if capture is True:
        return get_default_store()
    if isinstance(capture, (str, os.PathLike)):
        return get_default_store(capture)
    if isinstance(capture, Database):
        return CaptureStore(capture)
    if callable(getattr(capture, "log", None)):
        return capture  # type: ignore[no-any-return]
    raise InvalidRequest(
        "capture= takes a CaptureStore, a file path, True (the default store) or None (no capture), "
        f"got {type(capture).__name__}"
    )


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


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# -- text and tool calls ----------------------------------------------------------------------------
def tool_call(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    """One tool call in OpenAI format; ``arguments`` (a dict, JSON text or None) as JSON text.

    Example:
        >>> tool_call("c1", "add", {"a": 1})
        {'id': 'c1', 'type': 'function', 'function': {'name': 'add', 'arguments': '{"a": 1}'}}
    """
    if arguments is None:
        text = "{}"
    elif isinstance(arguments, str):
        text = arguments or "{}"
    else:
        text = json.dumps(jsonable(arguments), ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


# -- the request ------------------------------------------------------------------------------------
def request_fields(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``messages`` and ``tools`` (OpenAI format), ``tool_choice`` and the sampling ``params``.

    With tools and no ``tool_choice``, the choice recorded is ``"auto"`` (what OpenAI does by
    default), so every face records the same request whether or not it spells the default out.

    Example:
        >>> tool = {"type": "function", "function": {"name": "add", "parameters": {}}}
        >>> msgs = [{"role": "user", "content": "2+2"}]
        >>> request_fields(msgs, tools=[tool])["tool_choice"], request_fields(msgs)["tool_choice"]
        ('auto', None)
    """
    if tools and tool_choice is None:
        tool_choice = "auto"
    sampling = {k: jsonable(v) for k, v in (params or {}).items() if k in PARAM_KEYS and v is not None}
    return {
        "messages": [dict(m) for m in messages],
        "tools": [dict(t) for t in tools] if tools else None,
        "tool_choice": jsonable(tool_choice),
        "params": sampling or None,
    }


# -- the answer -------------------------------------------------------------------------------------
def answer_fields(
    *,
    content: Any = None,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    invalid_tool_calls: Sequence[Mapping[str, Any]] | None = None,
    finish_reason: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    confidence: float | None = None,
    model: str | None = None,
    runtime: str | None = None,
    latency_ms: float | None = None,
    ttft_ms: float | None = None,
) -> dict[str, Any]:
    """What a model answered, as record fields (None values left out).

    ``content`` is a string or OpenAI content parts (their text is kept). ``valid`` is False
    when the answer has an invalid call, True when it has calls and all are valid, else None;
    ``finish_reason`` defaults to ``"tool_calls"`` when there are calls, else ``"stop"``.

    Example:
        >>> answer_fields(content=[{"type": "text", "text": "4"}])
        {'content': '4', 'finish_reason': 'stop'}
        >>> answer_fields(tool_calls=[tool_call("c1", "add", {})])["valid"]
        True
    """
    calls = [dict(c) for c in tool_calls or ()] or None
    invalid = [_invalid_call(c) for c in invalid_tool_calls or ()]
    fields = _present({
        "content": text_of(content) or None,
        "tool_calls": calls,
        "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
        "valid": False if invalid else (True if calls else None),
        "confidence": confidence,
        "model": model or None,
        "runtime": runtime or None,
        "latency_ms": latency_ms,
        "ttft_ms": ttft_ms,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    })  # fmt: skip
    if invalid:
        fields["metadata"] = {"invalid_tool_calls": invalid}
    return fields


def _invalid_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """A rejected call in the core's shape (``id``, ``name``, ``arguments``, ``error`` and the
    ``kind`` when known), whatever the framework called its arguments (LangChain: ``args``)."""
    arguments = call["arguments"] if "arguments" in call else call.get("args")
    out = {"id": call.get("id"), "name": call.get("name"), "arguments": arguments, "error": call.get("error") or ""}
    if call.get("kind"):
        out["kind"] = call["kind"]
    return out


def completion_fields(completion: Completion, *, valid: bool | None = None) -> dict[str, Any]:
    """A core :class:`~slm_agents.types.Completion` as answer fields; ``valid`` (the policy's
    verdict) overrides the rule of :func:`answer_fields` when given."""
    message = completion.message or {}
    fields = answer_fields(
        content=message.get("content"),
        tool_calls=message.get("tool_calls"),
        invalid_tool_calls=completion.invalid_tool_calls,
        finish_reason=completion.finish_reason,
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        confidence=completion.confidence,
        model=completion.model,
        runtime=completion.runtime,
        latency_ms=completion.latency_ms,
        ttft_ms=completion.ttft_ms,
    )
    if valid is not None:
        fields["valid"] = valid
    return fields


def error_fields(
    error: BaseException, *, latency_ms: float | None = None, model: str | None = None, runtime: str | None = None
) -> dict[str, Any]:
    """A call that raised: ``error_type``, ``error_message`` and what is known of where it ran."""
    return _present({
        "error_type": type(error).__name__, "error_message": str(error),
        "latency_ms": latency_ms, "model": model or None, "runtime": runtime or None,
    })  # fmt: skip


def attempt_fields(
    completion: Completion | None,
    error: BaseException | None = None,
    *,
    valid: bool | None = None,
    latency_ms: float | None = None,
    model: str | None = None,
    runtime: str | None = None,
) -> dict[str, Any] | None:
    """An SLM attempt: its Completion (judged ``valid``) or the exception it raised; None if neither."""
    if completion is not None:
        fields = completion_fields(completion, valid=valid)
        for key, value in (("model", model), ("runtime", runtime)):
            if value and not fields.get(key):
                fields[key] = value
        return fields
    if error is not None:
        return {**error_fields(error, latency_ms=latency_ms, model=model, runtime=runtime), "valid": False}
    return None


# -- where the call ran -----------------------------------------------------------------------------
def context_fields(
    *,
    framework: str,
    task: str | None = None,
    thread_id: Any = None,
    run_id: Any = None,
    parent_run_id: Any = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``framework``, ``task``, ``thread_id``, run ids, ``tags`` (bookkeeping tags dropped) and
    ``metadata`` (None values dropped); absent fields are left out.

    Example:
        >>> context_fields(framework="langgraph", task="agent", thread_id=7, tags=["seq:step:1", "prod"])
        {'framework': 'langgraph', 'task': 'agent', 'thread_id': '7', 'tags': ['prod']}
    """
    kept = [t for t in tags or () if not str(t).startswith(NOISY_TAG_PREFIXES)]
    meta = _present(metadata or {})
    return _present({
        "framework": framework,
        "task": str(task) if task is not None else None,
        "thread_id": str(thread_id) if thread_id is not None else None,
        "run_id": str(run_id) if run_id is not None else None,
        "parent_run_id": str(parent_run_id) if parent_run_id is not None else None,
        "tags": kept or None,
        "metadata": meta or None,
    })  # fmt: skip


def unrouted_route(by_slm_agents: bool) -> str:
    """The ``route`` of an ordinary call, one no router judged: ``"slm"`` when an slm-agents model
    answered, else ``"llm"`` (the frontier model whose answers ``export``, ``eval`` and
    ``finetune`` learn from). Every face fills it the same way, so no captured call is routeless.

    Example:
        >>> unrouted_route(True), unrouted_route(False)
        ('slm', 'llm')
    """
    return "slm" if by_slm_agents else "llm"

# -- tool executions ----------------------------------------------------------------------------------
def tool_record(
    *,
    name: str | None,
    arguments: Any,
    call_id: str | None = None,
    model_call_id: str | None = None,
    result: Any = _MISSING,
    error: BaseException | str | None = None,
    latency_ms: float | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One tool execution as :meth:`~slm_agents.capture.CaptureStore.log_tool` takes it.

    ``model_call_id`` defaults to the logged model call whose answer asked for ``call_id``
    (see :func:`remember_tool_calls`). ``context`` is :func:`context_fields`; its
    ``parent_run_id`` goes into ``metadata`` (tool rows have no such column), tags are dropped.

    Example:
        >>> remember_tool_calls("call-1", [tool_call("t1", "add", {"a": 1})])
        >>> rec = tool_record(name="add", arguments={"a": 1}, call_id="t1", result=2,
        ...                   context=context_fields(framework="llamaindex", parent_run_id="s1"))
        >>> rec["model_call_id"], rec["result"], rec["metadata"]
        ('call-1', 2, {'parent_run_id': 's1'})
    """
    context = dict(context or {})
    context.pop("tags", None)
    meta = {**(context.pop("metadata", None) or {})}
    if context.get("parent_run_id") is not None:
        meta["parent_run_id"] = context.pop("parent_run_id")
    context.pop("parent_run_id", None)
    owner = model_call_id or (TOOL_OWNERS.get(call_id) if call_id else None)
    record: dict[str, Any] = {
        "call_id": call_id, "model_call_id": owner, "name": name, "arguments": arguments,
        "latency_ms": latency_ms, **context,
    }  # fmt: skip
    if error is not None:
        record["error"] = error
    elif result is not _MISSING:
        record["result"] = result
    if meta:
        record["metadata"] = meta
    return record


# -- a routed step ------------------------------------------------------------------------------------
@dataclass
class Step:
    """One routed step, ready to log: what every router hands to :func:`log_step`.

    Attributes:
        request: :func:`request_fields` of the step.
        context: :func:`context_fields` of the step (shared by both records).
        route: The step's outcome: ``"slm"``, ``"llm"`` or ``"shadow"``.
        reason: Why the LLM answered (None when the SLM's answer was used).
        slm: The SLM attempt's fields (:func:`attempt_fields`), ``valid`` being the policy's
            verdict; None when the SLM did not run.
        llm_ms: How long the LLM took, as the router measured it (None when it did not run):
            the LLM answer's ``latency_ms`` when the answer does not say.
    """

    request: dict[str, Any]
    context: dict[str, Any]
    route: str
    reason: str | None
    slm: dict[str, Any] | None = None
    llm_ms: float | None = None

    @property
    def llm_answered(self) -> bool:
        """True when the answer the agent got is the LLM's."""
        return self.route in ("llm", "shadow")


def step_from_routed(
    routed: Routed[Any],
    request: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    slm_model: str | None = None,
    slm_runtime: str | None = None,
) -> Step:
    """The :class:`Step` of a :class:`~slm_agents.routing.Routed` outcome.

    ``slm_model``/``slm_runtime`` name the SLM when its attempt raised (a Completion names itself).
    """
    valid = routed.verdict.ok if routed.verdict is not None else None
    slm = attempt_fields(routed.slm, routed.slm_error, valid=valid, latency_ms=routed.slm_ms,
                         model=slm_model, runtime=slm_runtime)  # fmt: skip
    return Step(request=dict(request), context=dict(context), route=routed.route, reason=routed.reason, slm=slm,
                llm_ms=routed.llm_ms)


def log_step(
    store: Any,
    step: Step,
    *,
    answer: Mapping[str, Any] | None = None,
    slm_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> tuple[str | None, str | None]:
    """Log a routed step: the SLM attempt, the LLM answer, and the escalation linking them.

    Args:
        store: The capture store (None: nothing is logged).
        step: The step.
        answer: The LLM answer's fields (:func:`answer_fields` or :func:`error_fields`) when
            the LLM answered.
        slm_id: The SLM attempt's id when it is already in the store as an ordinary call (a
            LangGraph node's handler logged it): it is not logged again, it gets the step's
            verdict (``step.slm["valid"]``) and ``escalation_reason`` instead.
        context: More context fields for both records (the face's run ids, tags), over
            ``step.context``.

    Returns:
        ``(slm_id, llm_id)``; a part not logged is None. Never raises: capture never breaks
        the agent (a failure is logged by its type only).
    """
    if store is None:
        return None, None
    llm_id = None
    base = merge(step.request, step.context, context)
    try:
        if slm_id is None and step.slm is not None:
            slm_route = "shadow" if step.route == "shadow" else "slm"
            slm_id = store.log(merge(base, step.slm, {"route": slm_route, "escalation_reason": step.reason}))
            if step.route == "slm":
                remember_tool_calls(slm_id, step.slm.get("tool_calls"))
        elif slm_id is not None and step.slm is not None and hasattr(store, "record_verdict"):
            store.record_verdict(slm_id, valid=step.slm.get("valid"), escalation_reason=step.reason)
        if answer is not None and step.llm_answered:
            timed = {"latency_ms": step.llm_ms} if answer.get("latency_ms") is None and step.llm_ms is not None else None
            llm_id = store.log(merge(base, answer, timed, {"route": "llm", "escalation_reason": step.reason}))
            remember_tool_calls(llm_id, answer.get("tool_calls"))
        if slm_id is not None and llm_id is not None and (answer or {}).get("error_type") is None:
            store.link_escalation(slm_id, llm_id, step.reason or step.route)
    except Exception as e:  # noqa: BLE001 - the capture path never breaks the agent
        logger.warning("slm-agents capture failed (%s); the answer is unaffected", type(e).__name__)
    return slm_id, llm_id


# -- capturing once -----------------------------------------------------------------------------------
class BoundedMap:
    """A thread-safe dict that forgets its oldest keys past ``limit`` (ids of calls in flight)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._data: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self.limit = limit

    def _trim(self) -> None:
        while len(self._data) > self.limit:
            del self._data[next(iter(self._data))]

    def set(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._trim()

    def get(self, key: Any, default: Any = None) -> Any:
        return self._data.get(key, default)

    def pop(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            return self._data.pop(key, default)

    def claim(self, key: Any, owner: Any) -> bool:
        """Set ``key`` to ``owner`` unless another owner holds it; True when ``owner`` holds it."""
        with self._lock:
            held = self._data.setdefault(key, owner)
            self._trim()
        return held is owner

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Any) -> bool:
        return key in self._data


#: tool call id -> the capture id of the model call whose answer asked for it.
TOOL_OWNERS = BoundedMap()
#: (id of a store, key of a call or step) -> who logs it there.
_CLAIMS = BoundedMap()
_CAPTURED_HERE: ContextVar[bool] = ContextVar("slm_agents_captured_here", default=False)


def remember_tool_calls(call_id: str, tool_calls: Sequence[Mapping[str, Any]] | None) -> None:
    """Note that the logged call ``call_id`` asked for ``tool_calls`` (OpenAI format), so the tool
    executions that follow link back to it."""
    for tc in tool_calls or ():
        if tc.get("id"):
            TOOL_OWNERS.set(tc["id"], call_id)


def claim(store: Any, key: Any, owner: Any) -> bool:
    """Whether ``owner`` is the one to log ``key`` (a run id, a span id, a step) to ``store``.

    The first owner to claim a key on a store logs it; every other capturer on that store
    skips it. This is the one place that keeps a call from being captured twice. Pair it with
    :func:`release` once the record is written (the claim is forgotten past 10,000 keys).
    """
    return _CLAIMS.claim((id(store), key), owner)


def release(store: Any, key: Any) -> None:
    """Forget the claim on ``key`` (the record was written)."""
    _CLAIMS.pop((id(store), key))


@contextlib.contextmanager
def captured_here() -> Iterator[None]:
    """Model and tool calls made inside are logged by the caller (a router, a middleware, a
    graph node); framework-wide handlers skip them."""
    token = _CAPTURED_HERE.set(True)
    try:
        yield
    finally:
        _CAPTURED_HERE.reset(token)


def is_captured_elsewhere() -> bool:
    """True inside :func:`captured_here`."""
    return _CAPTURED_HERE.get()
