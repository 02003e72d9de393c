"""Capture records for one routed gateway step, in the same shape the faces write.

A step writes the SLM attempt (when the SLM ran) and the LLM answer (when the LLM ran), both
carrying the request's fields, and links them as an escalation pair, exactly as the LangChain and
LlamaIndex routers do. The request's id (``chatcmpl-…``) is the records' ``run_id``, so a client
can attach feedback with ``store.label(run_id, ...)``.

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> from slm_agents.types import Completion
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> base = {"messages": [{"role": "user", "content": "hi"}], "framework": "gateway", "run_id": "chatcmpl-1"}
    >>> slm = completion_fields(Completion(message={"role": "assistant", "content": ""}), valid=False)
    >>> llm = completion_fields(Completion(message={"role": "assistant", "content": "hello"}))
    >>> ids = log_step(store, base, route="llm", reason="empty", slm=slm, llm=llm)
    >>> store.flush(), [r["route"] for r in store.db.query("select route from calls order by id")]
    (True, ['slm', 'llm'])
    >>> store.db["escalations"].count
    1
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slm_agents.capture import record_from_completion
from slm_agents.types import Completion

__all__ = ["FRAMEWORK", "completion_fields", "error_fields", "log_step", "merge"]

logger = logging.getLogger("slm_agents_gateway.capture")

#: ``calls.framework`` of everything the gateway records.
FRAMEWORK = "gateway"
_REQUEST_KEYS = ("messages", "tools", "tool_choice", "params")


def completion_fields(completion: Completion, *, valid: bool | None = None) -> dict[str, Any]:
    """A model's answer as record fields (the request's fields come from the step's base)."""
    fields = record_from_completion(completion, messages=[])
    for key in _REQUEST_KEYS:
        fields.pop(key, None)
    if valid is not None:
        fields["valid"] = valid
    return fields


def error_fields(error: BaseException, *, latency_ms: float | None = None, model: str | None = None,
                 runtime: str | None = None) -> dict[str, Any]:
    """A call that raised: ``error_type``, ``error_message``, and what is known of where it ran."""
    return {"error_type": type(error).__name__, "error_message": str(error), "valid": False,
            "latency_ms": latency_ms, "model": model or None, "runtime": runtime or None}


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


def log_step(store: Any, base: Mapping[str, Any], *, route: str, reason: str | None,
             slm: Mapping[str, Any] | None = None, llm: Mapping[str, Any] | None = None) -> tuple[str | None, str | None]:
    """Log one routed step: the SLM attempt, the LLM answer, and the escalation linking them.

    Args:
        store: The capture store (None: nothing is recorded).
        base: The request's fields, shared by both records.
        route: The step's outcome: ``"slm"``, ``"llm"`` or ``"shadow"``.
        reason: Why the LLM answered (None when the SLM's answer was used).
        slm: The SLM attempt's fields, when the SLM ran.
        llm: The LLM answer's fields, when the LLM ran (an error's fields when it failed).

    Returns:
        ``(slm_id, llm_id)``; a part not logged is None. Never raises.
    """
    if store is None:
        return None, None
    slm_id = llm_id = None
    try:
        if slm is not None:
            slm_route = "shadow" if route == "shadow" else "slm"
            slm_id = store.log(merge(base, slm, {"route": slm_route, "escalation_reason": reason}))
        if llm is not None:
            llm_id = store.log(merge(base, llm, {"route": "llm", "escalation_reason": reason}))
        if slm_id is not None and llm_id is not None and llm.get("error_type") is None:  # type: ignore[union-attr]
            store.link_escalation(slm_id, llm_id, reason or route)
    except Exception as e:  # the capture path never breaks the answer
        logger.warning("slm-agents gateway capture failed (%s); the answer is unaffected", type(e).__name__)
    return slm_id, llm_id
