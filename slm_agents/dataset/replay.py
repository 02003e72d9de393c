"""Replay cases from captured calls: the LLM's successful answers become :class:`EvalCase` s.

Each case is a captured LLM call (route ``llm``, successful): its request, and the tool calls the
LLM made (or ``[]`` when it answered in text). Cases are labelled with their task's policy key
(the explicit task label, else the ``t-…`` cluster id), so :func:`slm_agents.evaluate.evaluate`
reports per task and ``slm-agents calibrate`` writes thresholds under the key the policy uses.

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> _ = store.log({"messages": [{"role": "user", "content": "add 1"}], "route": "llm", "task": "calc",
    ...                "tools": [{"name": "add", "parameters": {"type": "object"}}],
    ...                "tool_calls": [{"id": "c1", "type": "function",
    ...                                "function": {"name": "add", "arguments": '{"a": 1}'}}]})
    >>> store.flush()
    True
    >>> [(c.task, c.expected) for c in cases_from_db(store.db)]
    [('calc', [{'name': 'add', 'arguments': {'a': 1}}])]
"""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from ..evaluate import EvalCase
from .curate import Curator
from .tasks import list_tasks

__all__ = ["cases_from_db"]


def cases_from_db(
    db: Database,
    *,
    task_id: str | None = None,
    limit: int | None = None,
    **curate: Any,
) -> list[EvalCase]:
    """Evaluation cases from a task's captured LLM calls (newest first).

    Args:
        db: A migrated capture database (tasks are clustered first if calls are unassigned).
        task_id: Only this task (id or name); None: every task.
        limit: Most cases per task.
        **curate: More :class:`~slm_agents.dataset.Curator` filters (models, since, labels, ...).
    """
    keys = {t.id: t.policy_key for t in list_tasks(db)}
    curate.setdefault("routes", ("llm",))
    curator = Curator(db, task_id=task_id, newest_first=True,
                      limit=limit if task_id is not None else None, **curate)
    per_task: dict[str, int] = {}
    cases: list[EvalCase] = []
    for record in curator:
        task = keys.get(record["task_id"]) or record["task"] or "default"
        if limit is not None and per_task.get(task, 0) >= limit:
            continue
        expected = []
        try:
            for call in record["answer"].get("tool_calls", []):
                args = call["function"]["arguments"]
                expected.append({"name": call["function"]["name"],
                                 "arguments": json.loads(args) if args.strip() else {}})
        except (ValueError, TypeError):
            continue  # the teacher's own call does not parse: not a usable reference
        tool_choice = record["tool_choice"] if record["tool_choice"] is not None else "auto"
        cases.append(EvalCase(messages=record["messages"], tools=list(record["tools"]), expected=expected,
                              tool_choice=tool_choice, task=task, id=record["id"]))
        per_task[task] = per_task.get(task, 0) + 1
    return cases
