"""Calibration: each task's confidence threshold, from replay results or shadow pairs, into the policy.

The threshold is the lowest confidence at which the SLM's accepted answers are wrong at most
``max_wrong`` of the time (:func:`slm_agents.evaluate.choose_threshold`). The cases are modelled
the way :class:`~slm_agents.policy.EscalationPolicy` treats them at run time:

* an error or an invalid tool call always escalates: it is never accepted, whatever the threshold;
* a text answer, or a tool call without a confidence, is accepted whatever the threshold;
* a tool call is accepted when its confidence is at or above the threshold.

Thresholds are written to a policy JSON file under each task's policy key (the explicit task
label, else the ``t-…`` cluster id); :meth:`EscalationPolicy.load` and
:meth:`EscalationPolicy.from_env` (``SLM_AGENTS_POLICY=path``) read them back.

Shadow pairs: a shadow call (route ``shadow``: the SLM ran alongside the LLM, whose answer was
used) is linked to the LLM call of the same step through the ``escalations`` table (reason
``shadow``), which the LangChain and LlamaIndex routers write.

Example:
    >>> from slm_agents.evaluate import CaseResult
    >>> ok = CaseResult("1", "calc", [{"name": "add", "arguments": {}}], True, True, True, None, True, 0.9, 5.0, 3)
    >>> bad = CaseResult("2", "calc", [{"name": "add", "arguments": {}}], True, False, True, None, False, 0.2, 5.0, 3)
    >>> cal = calibrate_results([ok, bad], max_wrong=0.0)["calc"]
    >>> cal.threshold, cal.coverage, cal.recommendation
    (0.9, 0.5, 'move with threshold')
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..capture._utils import to_float
from ..errors import InvalidRequest
from ..evaluate import CaseResult, choose_threshold, compare_calls
from ..policy import EscalationPolicy
from ._rows import loads

__all__ = ["Calibration", "calibrate_results", "calibrate_shadow", "shadow_outcomes", "write_thresholds",
           "calibrate_decisions", "write_decisions", "DEFAULT_POLICY_PATH"]

#: Where ``slm-agents calibrate`` writes by default (point ``SLM_AGENTS_POLICY`` at it).
DEFAULT_POLICY_PATH = "slm_agents_policy.json"


@dataclass
class Calibration:
    """One task's calibrated threshold.

    Attributes:
        task: The task's policy key.
        source: ``"replay"`` or ``"shadow"``.
        n: Cases (replayed calls or shadow pairs).
        accuracy: Share of cases the SLM answered as the teacher did.
        escalated: Cases the policy escalates whatever the threshold (errors, invalid calls).
        threshold: The threshold meeting ``max_wrong`` (None when none does).
        coverage: Share of all cases the SLM keeps at that threshold.
        wrong_rate: Share of wrong answers among those it keeps.
        recommendation: ``"move"``, ``"move with threshold"`` or ``"keep on LLM"``.
    """

    task: str
    source: str
    n: int
    accuracy: float
    escalated: int
    threshold: float | None
    coverage: float
    wrong_rate: float | None
    max_wrong: float
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# An outcome: (accepted_regardless, escalated_regardless, confidence, correct)
_Outcome = tuple[bool, bool, float | None, bool]


def _calibrate(task: str, source: str, outcomes: list[_Outcome], max_wrong: float) -> Calibration:
    n = len(outcomes)
    pairs = [(1.0 if always or conf is None else conf, ok) for always, esc, conf, ok in outcomes if not esc]
    escalated = n - len(pairs)
    threshold, _ = choose_threshold(pairs, max_wrong)
    accepted = [(c, ok) for c, ok in pairs if threshold is not None and c >= threshold]
    wrong = (sum(not ok for _, ok in accepted) / len(accepted)) if accepted else None
    coverage = len(accepted) / n if n else 0.0
    if threshold is None or not accepted:
        threshold, recommendation = None, "keep on LLM"
    elif len(accepted) == n:
        recommendation = "move"
    else:
        recommendation = "move with threshold"
    return Calibration(task=task, source=source, n=n, accuracy=(sum(o[3] for o in outcomes) / n) if n else 0.0,
                       escalated=escalated, threshold=None if threshold is None else min(1.0, max(0.0, threshold)),
                       coverage=coverage, wrong_rate=wrong, max_wrong=max_wrong, recommendation=recommendation)


def _check(max_wrong: float) -> None:
    if not 0.0 <= max_wrong < 1.0:
        raise InvalidRequest(f"max_wrong must be in [0, 1), got {max_wrong}")


def calibrate_results(results: Iterable[CaseResult], *, max_wrong: float = 0.02) -> dict[str, Calibration]:
    """Per-task thresholds from replay results (``evaluate(...).results``)."""
    _check(max_wrong)
    by_task: dict[str, list[_Outcome]] = {}
    for r in results:
        escalates = r.error is not None or (bool(r.predicted) and not r.schema_valid)
        by_task.setdefault(r.task, []).append((not r.predicted, escalates, r.confidence, r.correct))
    return {task: _calibrate(task, "replay", outs, max_wrong) for task, outs in sorted(by_task.items())}


def shadow_outcomes(db: Database, *, task_id: str | None = None) -> dict[str, list[_Outcome]]:
    """Per-task outcomes of shadow pairs: was the SLM's call the LLM's call, and how confident was it."""
    from .tasks import list_tasks, resolve_task

    tasks = {t.id: t.policy_key for t in list_tasks(db)}
    where, args = ["s.route = 'shadow'", "l.error_type IS NULL"], []
    if task_id is not None:
        where.append("ct.task_id = ?")
        args.append(resolve_task(db, task_id).id)
    sql = (
        "SELECT s.task, ct.task_id, s.tool_calls, s.content, s.confidence, s.valid, s.error_type, "
        "l.tool_calls FROM escalations e JOIN calls s ON s.id = e.slm_call_id "
        "JOIN calls l ON l.id = e.llm_call_id LEFT JOIN call_tasks ct ON ct.call_id = s.id "
        f"WHERE {' AND '.join(where)} ORDER BY e.id"
    )
    out: dict[str, list[_Outcome]] = {}
    for task, tid, s_calls, _content, confidence, valid, error_type, l_calls in db.conn.execute(sql, args):
        key = tasks.get(tid) or task or "default"
        s_list = loads(s_calls) or []
        l_list = loads(l_calls) or []
        escalates = error_type is not None or valid == 0
        correct = (not s_list) if not l_list else compare_calls(l_list, s_list)
        confidence = to_float(confidence)  # text or inf in a file edited by another tool: none, as the store writes
        out.setdefault(key, []).append((not s_list, escalates, confidence, bool(correct and not escalates)))
    return out


def calibrate_shadow(db: Database, *, task_id: str | None = None, max_wrong: float = 0.02) -> dict[str, Calibration]:
    """Per-task thresholds from shadow pairs in the capture database.

    Raises:
        InvalidRequest: There are no linked shadow pairs (the message says how to get some).
    """
    _check(max_wrong)
    outcomes = shadow_outcomes(db, task_id=task_id)
    if not outcomes:
        raise InvalidRequest(
            "no shadow pairs in this capture database (route 'shadow' calls linked to an LLM call in "
            "'escalations'). Run the router with shadow=True for a while, or use --from replay."
        )
    return {task: _calibrate(task, "shadow", outs, max_wrong) for task, outs in sorted(outcomes.items())}


def _save_keeping_unknown(policy: EscalationPolicy, path: str | os.PathLike[str]) -> None:
    """Save ``policy``, keeping the file's keys this version does not know (a newer version's)."""
    import json

    target = Path(path)
    extra: dict[str, Any] = {}
    if target.exists():
        try:
            raw = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = None
        if isinstance(raw, dict):
            known = policy.to_dict()
            extra = {k: v for k, v in raw.items() if k not in known}
    policy.save(target)
    if extra:
        data = json.loads(target.read_text(encoding="utf-8"))
        target.write_text(json.dumps({**data, **extra}, indent=2) + "\n", encoding="utf-8")


def write_thresholds(
    calibrations: dict[str, Calibration] | Iterable[Calibration],
    path: str | os.PathLike[str] = DEFAULT_POLICY_PATH,
) -> EscalationPolicy:
    """Merge calibrated thresholds into the policy file at ``path`` (created if missing).

    Other settings in the file are kept; tasks without a threshold are left as they were.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "policy.json")
        >>> cal = Calibration("calc", "replay", 10, 0.9, 0, 0.7, 0.8, 0.0, 0.02, "move with threshold")
        >>> write_thresholds([cal], path).task_thresholds
        {'calc': 0.7}
        >>> EscalationPolicy.load(path).threshold_for("calc")
        0.7
    """
    items = calibrations.values() if isinstance(calibrations, dict) else calibrations
    policy = EscalationPolicy.load(path) if Path(path).exists() else EscalationPolicy()
    for cal in items:
        if cal.threshold is not None:
            policy.task_thresholds[cal.task] = round(float(cal.threshold), 6)
    _save_keeping_unknown(policy, path)
    return policy


def calibrate_decisions(runtime: Any, cases: Iterable[Any], *, progress: Any = None) -> dict[str, dict[str, Any]]:
    """Each task's call-or-answer threshold and margin, from replaying its cases' decisions.

    Every case is scored with ``runtime.score_decision`` (the runtime's own calibrated ``p_call``;
    nothing is generated); a case should call when the teacher called a tool. Per task, the
    threshold is the one of least expected cost, a missed call costing twice an unneeded one
    (:func:`slm_agents.decision.fit_threshold`), and the margin the band around it where
    decisions are wrong a third of the time or more (see :mod:`slm_agents.decision`).

    Returns:
        ``{task: {"threshold", "margin", "n", "balanced_accuracy"}}`` for tasks whose cases hold
        both kinds of turn (the others cannot be calibrated and are left out).

    Raises:
        InvalidRequest: the runtime cannot score decisions (only ``LlamaCppRuntime`` can).
    """
    from ..decision import _fit_margin, balanced_accuracy, fit_threshold

    if not hasattr(runtime, "score_decision"):
        raise InvalidRequest(f"{type(runtime).__name__} cannot score call-or-answer decisions; "
                             "calibrate --decision needs the in-process llama.cpp runtime (--model-path)")
    per_task: dict[str, list[tuple[float, bool]]] = {}
    cases = list(cases)
    for i, case in enumerate(cases, 1):
        if case.tools:
            scored = runtime.score_decision(case.messages, case.tools)
            per_task.setdefault(case.task, []).append((float(scored["p_call"]), bool(case.expected)))
        if progress is not None:
            progress(i, len(cases))
    out: dict[str, dict[str, Any]] = {}
    for task, pairs in sorted(per_task.items()):
        if len({y for _, y in pairs}) < 2:
            continue
        probs, truth = [p for p, _ in pairs], [y for _, y in pairs]
        threshold = fit_threshold(probs, truth)
        margin = _fit_margin(probs, truth, threshold)
        accuracy = balanced_accuracy((y, p >= threshold) for p, y in pairs)
        out[task] = {"threshold": threshold, "margin": margin, "n": len(pairs), "balanced_accuracy": accuracy}
    return out


def write_decisions(decisions: dict[str, dict[str, Any]], path: str | os.PathLike[str] = DEFAULT_POLICY_PATH
                    ) -> EscalationPolicy:
    """Merge per-task decision thresholds and margins into the policy file (other settings kept)."""
    policy = EscalationPolicy.load(path) if Path(path).exists() else EscalationPolicy()
    for task, d in decisions.items():
        policy.task_decisions[task] = {"threshold": round(float(d["threshold"]), 4), "margin": round(float(d["margin"]), 4)}
    _save_keeping_unknown(policy, path)
    return policy
