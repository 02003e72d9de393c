"""The loop after capture: curate captured calls, cluster them into tasks, export fine-tuning
files, build replay cases and calibrate per-task thresholds.

Each piece reads a capture database (``slm_agents.db``, see :mod:`slm_agents.capture`) and is
driven by the ``slm-agents tasks / export / eval / calibrate`` commands (docs/loop.md).

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> _ = store.log({"messages": [{"role": "user", "content": "hi"}], "route": "llm", "content": "hello",
    ...                "task": "greet"})
    >>> store.flush()
    True
    >>> [t.policy_key for t in list_tasks(store.db)], len(list(Curator(store.db)))
    (['greet'], 1)
"""

from __future__ import annotations

from ._rows import open_db, request_hash
from .calibrate import (
    DEFAULT_POLICY_PATH,
    Calibration,
    calibrate_decisions,
    calibrate_results,
    calibrate_shadow,
    write_decisions,
    write_thresholds,
)
from .curate import CurateStats, Curator, find_leakage
from .export import (
    FORMATS,
    ExportResult,
    export_dataset,
    preference_pairs,
    stratified_split,
    to_openai_example,
    to_trl_example,
)
from .replay import cases_from_db
from .tasks import Task, cluster_tasks, list_tasks, resolve_task

__all__ = [
    "open_db",
    "request_hash",
    "Curator",
    "CurateStats",
    "find_leakage",
    "Task",
    "cluster_tasks",
    "list_tasks",
    "resolve_task",
    "FORMATS",
    "ExportResult",
    "export_dataset",
    "to_openai_example",
    "to_trl_example",
    "preference_pairs",
    "stratified_split",
    "cases_from_db",
    "Calibration",
    "calibrate_results",
    "calibrate_shadow",
    "write_thresholds",
    "calibrate_decisions",
    "write_decisions",
    "DEFAULT_POLICY_PATH",
]
