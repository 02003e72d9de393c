"""The framework-neutral capture layer: every model call into one SQLite file, off the hot path.

The faces (LangChain, LangGraph, LlamaIndex) call :func:`get_default_store` and
:meth:`CaptureStore.log` / :meth:`CaptureStore.log_completion`; the store redacts PII in a
background thread and batch-inserts. The file opens in Datasette as it is. Schema and record
shape: docs/capture.md.

Example:
    >>> from sqlite_utils import Database
    >>> store = CaptureStore(Database(memory=True))
    >>> slm = store.log({"messages": [{"role": "user", "content": "hi"}], "route": "slm", "task": "greet"})
    >>> llm = store.log({"messages": [{"role": "user", "content": "hi"}], "route": "llm", "task": "greet",
    ...                  "escalation_reason": "low_confidence"})
    >>> esc = store.link_escalation(slm, llm, "low_confidence")
    >>> store.flush()
    True
    >>> [r["route"] for r in store.db.query("select route from calls order by id")]
    ['slm', 'llm']
    >>> store.close()  # how many records could not be written
    0
"""

from __future__ import annotations

from ._paths import DEFAULT_PATH, ENV_DB, resolve_path
from .merge import merge
from .query import Prices, list_calls, read_call, stats
from .redact import DEFAULT_KINDS, RedactionSession, Redactor
from .schema import migrate, migrations, schema_markdown
from .store import (
    CaptureStats,
    CaptureStore,
    get_default_store,
    record_from_completion,
    set_default_store,
)
from .stream import StreamRecorder

__all__ = [
    "CaptureStore",
    "CaptureStats",
    "get_default_store",
    "set_default_store",
    "resolve_path",
    "record_from_completion",
    "StreamRecorder",
    "Redactor",
    "RedactionSession",
    "DEFAULT_KINDS",
    "migrate",
    "migrations",
    "schema_markdown",
    "read_call",
    "list_calls",
    "stats",
    "Prices",
    "merge",
    "DEFAULT_PATH",
    "ENV_DB",
]
