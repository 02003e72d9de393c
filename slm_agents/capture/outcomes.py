"""What happened after a model call: tool errors, feedback, and the outcome readiness of each task.

"The SLM was not escalated" says only that the policy accepted its answer. Whether the answer was
*right* shows afterwards: the tool it called failed, or someone (the agent, a user, a grader)
marked the answer bad. This module links both back to the call that produced them and counts,
per task, the **outcome readiness**: the share of the task's SLM calls that were accepted *and*
not followed by a tool error or negative feedback.

* A tool error is linked to its call through ``tool_executions.model_call_id``, or, when a face
  did not know it, through the tool call's id (``tool_executions.call_id`` is one of the
  ``id`` s in the call's ``tool_calls``).
* Feedback is a ``labels`` row (:func:`feedback` or ``CaptureStore.label``). It is negative when
  its label is one of :data:`NEGATIVE_LABELS`, or, with no label that says otherwise, when its
  score is under :data:`NEGATIVE_BELOW`. The newest label on a target wins. A label on a call id
  applies to that call; a label on a run or thread id applies to the call that produced the run's
  final answer: its newest call (by ``run_id``, ``parent_run_id`` or ``thread_id``).

Replay readiness (``slm-agents eval``: the SLM replays captured LLM calls) is the other figure; the
report and ``slm-agents tasks`` show both.

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> calls = [{"id": f"c{i}", "type": "function", "function": {"name": "run_sql", "arguments": "{}"}}
    ...          for i in range(3)]
    >>> ids = [store.log({"messages": [{"role": "user", "content": "q"}], "route": "slm", "task": "sql",
    ...                   "tool_calls": [call]}) for call in calls]
    >>> _ = store.log_tool({"call_id": "c0", "name": "run_sql", "error": "no such table: x"})
    >>> _ = store.feedback(ids[1], good=False)
    >>> store.flush()
    True
    >>> o = outcome_readiness(store.db)["sql"]
    >>> (o.slm_calls, o.accepted, o.tool_errors, o.negative_feedback, o.good, round(o.readiness, 2))
    (3, 3, 1, 1, 1, 0.33)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from ..errors import InvalidRequest

if TYPE_CHECKING:
    from .store import CaptureStore

__all__ = [
    "NEGATIVE_LABELS",
    "POSITIVE_LABELS",
    "NEGATIVE_BELOW",
    "is_negative",
    "feedback_record",
    "TaskOutcome",
    "tool_error_calls",
    "negative_feedback_calls",
    "outcome_readiness",
    "log_feedback",
]

#: Labels that mark an answer bad (compared lower-case). ``failed`` is what the Query Writer demo
#: puts on a step whose SQL did not run.
NEGATIVE_LABELS = frozenset({"bad", "failed", "wrong", "incorrect", "rejected", "negative", "thumbs_down", "down"})
#: Labels that mark an answer good; a score does not override them.
POSITIVE_LABELS = frozenset({"good", "verified", "correct", "gold", "accepted", "positive", "thumbs_up", "up"})
#: Feedback scores are 0..1; a score under this is negative.
NEGATIVE_BELOW = 0.5

#: An SLM call the policy accepted: its answer was used (no error, no escalation reason, no
#: escalation, no invalid tool call).
_ACCEPTED = ("(route = 'slm' AND error_type IS NULL AND escalation_reason IS NULL AND COALESCE(valid, 1) != 0 "
             "AND id NOT IN (SELECT slm_call_id FROM escalations WHERE slm_call_id IS NOT NULL))")
_CHUNK = 500


def is_negative(label: str | None, score: float | None) -> bool:
    """True when a label (or, without a label that decides, its score) marks the answer bad.

    Example:
        >>> is_negative("failed", None), is_negative("good", 0.1), is_negative(None, 0.2), is_negative("note", None)
        (True, False, True, False)
    """
    name = (label or "").strip().lower()
    if name in NEGATIVE_LABELS:
        return True
    if name in POSITIVE_LABELS:
        return False
    return score is not None and score < NEGATIVE_BELOW


def feedback_record(*, good: bool | None = None, score: float | None = None) -> tuple[str | None, float | None]:
    """The ``(label, score)`` one piece of feedback is stored as: thumbs up/down, a 0..1 score, or both.

    Raises:
        InvalidRequest: Neither was given, ``good`` is not a bool, or the score is not in 0..1.

    Example:
        >>> feedback_record(good=False), feedback_record(score=0.8), feedback_record(good=True, score=0.9)
        (('bad', 0.0), (None, 0.8), ('good', 0.9))
    """
    if good is None and score is None:
        raise InvalidRequest("feedback needs good=True/False (thumbs up/down) or score= (0..1)")
    if good is not None and not isinstance(good, bool):
        raise InvalidRequest(f"good must be True or False (thumbs up/down), not {good!r}")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) \
                or not 0.0 <= score <= 1.0:
            raise InvalidRequest(f"score must be a number from 0 (bad) to 1 (good), not {score!r}")
        score = float(score)
    if good is None:
        return None, score
    return ("good" if good else "bad"), (score if score is not None else float(good))


@dataclass(frozen=True)
class TaskOutcome:
    """Outcome readiness of one task.

    Attributes:
        slm_calls: The task's SLM calls (route ``slm``).
        accepted: Those the policy accepted (not escalated, no error, no escalation reason).
        tool_errors: Accepted calls whose tool call then failed.
        negative_feedback: Accepted calls marked bad afterwards (and not already counted as a tool error).
        good: Accepted calls with neither.
        readiness: ``good / slm_calls`` (None without SLM calls).
    """

    slm_calls: int = 0
    accepted: int = 0
    tool_errors: int = 0
    negative_feedback: int = 0

    @property
    def good(self) -> int:
        return self.accepted - self.tool_errors - self.negative_feedback

    @property
    def readiness(self) -> float | None:
        return self.good / self.slm_calls if self.slm_calls else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "good": self.good, "readiness": self.readiness}


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    items = list(items)
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _has_table(db: Database, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone() is not None


def tool_error_calls(db: Database) -> set[str]:
    """Ids of the model calls whose tool call failed (linked by ``model_call_id`` or the tool call's id)."""
    linked: set[str] = set()
    unlinked: set[str] = set()
    for model_call_id, call_id in db.execute(
        "SELECT model_call_id, call_id FROM tool_executions WHERE error_type IS NOT NULL OR error_message IS NOT NULL"
    ):
        if model_call_id:
            linked.add(str(model_call_id))
        elif call_id:
            unlinked.add(str(call_id))
    if unlinked:
        # the call that asked for the tool: its answer holds the tool call's id
        for cid, tool_calls in db.execute("SELECT id, tool_calls FROM calls WHERE tool_calls IS NOT NULL"):
            try:
                calls = json.loads(tool_calls)
            except (TypeError, ValueError):
                continue
            if isinstance(calls, list) and any(isinstance(c, dict) and c.get("id") in unlinked for c in calls):
                linked.add(str(cid))
    return linked


def negative_feedback_calls(db: Database) -> set[str]:
    """Ids of the model calls whose newest feedback is negative (a run's feedback goes to its final call)."""
    newest: dict[str, bool] = {}
    for target, label, score in db.execute(
        "SELECT target_id, label, score FROM labels WHERE target_id IS NOT NULL ORDER BY ts, id"
    ):
        newest[str(target)] = is_negative(label, score)
    negative = {t for t, bad in newest.items() if bad}
    if not negative:
        return set()
    calls: set[str] = set()
    for chunk in _chunks(negative):
        marks = ", ".join("?" * len(chunk))
        calls.update(r[0] for r in db.execute(f"SELECT id FROM calls WHERE id IN ({marks})", chunk))
    runs = negative - calls
    for chunk in _chunks(runs):
        marks = ", ".join("?" * len(chunk))
        final: dict[str, tuple[str, str]] = {}  # run -> (ts, id) of its newest call
        for cid, ts, run_id, parent, thread in db.execute(
            f"SELECT id, COALESCE(ts, ''), run_id, parent_run_id, thread_id FROM calls "
            f"WHERE run_id IN ({marks}) OR parent_run_id IN ({marks}) OR thread_id IN ({marks})", chunk * 3
        ):
            for run in {run_id, parent, thread} & runs:
                if run not in final or (ts, cid) > final[run]:
                    final[run] = (ts, cid)
        calls.update(cid for _, cid in final.values())
    return calls


def outcome_readiness(db: Database, *, by: str = "task") -> dict[str, TaskOutcome]:
    """Outcome readiness per task.

    Args:
        db: A capture database.
        by: ``"task"``: group by the calls' task label ('' for calls without one), as the report
            does; ``"cluster"``: by the task ids ``slm-agents tasks`` assigned (``call_tasks``).

    Returns:
        ``{task: TaskOutcome}`` for every task with SLM calls.
    """
    if by == "task":
        source, key = "calls", "COALESCE(task, '')"
    elif by == "cluster":
        if not _has_table(db, "call_tasks"):
            return {}
        source, key = "calls JOIN call_tasks ON call_tasks.call_id = calls.id", "call_tasks.task_id"
    else:
        raise InvalidRequest(f"by must be 'task' or 'cluster', not {by!r}")
    counts = {
        str(k): [int(n), int(ok or 0)]
        for k, n, ok in db.execute(
            f"SELECT {key}, COUNT(*), SUM({_ACCEPTED}) FROM {source} WHERE route = 'slm' GROUP BY {key}"
        )
    }
    tool_errors = tool_error_calls(db)
    negative = negative_feedback_calls(db) - tool_errors
    bad: dict[str, list[int]] = {}
    for ids, column in ((tool_errors, 0), (negative, 1)):
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            for (k,) in db.execute(
                f"SELECT {key} FROM {source} WHERE calls.id IN ({marks}) AND {_ACCEPTED}", chunk
            ):
                bad.setdefault(str(k), [0, 0])[column] += 1
    return {
        k: TaskOutcome(slm_calls=n, accepted=ok, tool_errors=bad.get(k, [0, 0])[0],
                       negative_feedback=bad.get(k, [0, 0])[1])
        for k, (n, ok) in counts.items()
    }


def log_feedback(store: CaptureStore, target_id: str, *, good: bool | None = None, score: float | None = None,
                 note: str | None = None) -> str:
    """Record feedback on a call or a run in ``store``; what ``CaptureStore.feedback`` and the faces call."""
    if not isinstance(target_id, str) or not target_id:
        raise InvalidRequest("feedback needs the id of a call (calls.id) or of a run/thread, as a string")
    label, value = feedback_record(good=good, score=score)
    return store.label(target_id, label, score=value, note=note)
