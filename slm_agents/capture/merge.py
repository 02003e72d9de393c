"""``slm-agents merge``: combine capture files (one per worker or machine) into one.

Every row of the capture tables is copied, deduplicated on its id (blobs on their hash); the
sources are opened read-only. The task tables that ``slm-agents tasks`` writes (``tasks`` and
``call_tasks``) are copied too, so task ids that a policy file refers to stay valid; a task found
in several files is then recounted over the merged calls (each call once).

Example:
    >>> import tempfile, pathlib
    >>> from slm_agents.capture import CaptureStore
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.db", "b.db"):
    ...     with CaptureStore(folder / name, redactor=None) as store:
    ...         _ = store.log({"messages": [{"role": "user", "content": name}], "route": "slm"})
    >>> merge(folder / "all.db", [folder / "a.db", folder / "b.db"])["calls"]
    2
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import CaptureError
from .store import CaptureStore

__all__ = ["merge", "CAPTURE_TABLES", "TASK_TABLES"]

#: The capture tables, in copy order (blobs before the calls that point at them).
CAPTURE_TABLES = ("blobs", "calls", "tool_executions", "escalations", "labels", "capture_sessions")
#: The tables ``slm-agents tasks`` adds to a capture file.
TASK_TABLES = ("tasks", "call_tasks")


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})")]


def _create_like_source(conn: sqlite3.Connection, table: str) -> None:
    """Create ``table`` (and its indexes) in the output as the source defines it."""
    for (sql,) in conn.execute(
        "SELECT sql FROM src.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY type = 'index'", [table]
    ).fetchall():
        conn.execute(sql)  # unqualified names: created in main, the output


def merge(output: str | os.PathLike[str], sources: list[str | os.PathLike[str]]) -> dict[str, int]:
    """Copy every row of ``sources`` into ``output`` (created and migrated if needed).

    Returns:
        Rows added per table (the task tables included when any source has them).

    Raises:
        CaptureError: A source is missing or is the output file.
    """
    out_path = Path(output).absolute()
    for source in sources:
        if not Path(source).exists():
            raise CaptureError(f"no such capture file: {source}")
        if Path(source).absolute() == out_path:
            raise CaptureError(f"{source} is the output file; choose another -o")
    CaptureStore(out_path, redactor=None).close()
    conn = sqlite3.connect(out_path.as_uri(), timeout=30, uri=True, isolation_level=None)
    added = dict.fromkeys(CAPTURE_TABLES, 0)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        for source in sources:
            uri = Path(source).absolute().as_uri() + "?mode=ro"
            conn.execute("ATTACH DATABASE ? AS src", [uri])
            try:
                conn.execute("BEGIN IMMEDIATE")
                for table in CAPTURE_TABLES + TASK_TABLES:
                    src_columns = set(_columns(conn, "src", table))
                    if not src_columns:
                        continue
                    if table in TASK_TABLES and not _columns(conn, "main", table):
                        _create_like_source(conn, table)
                    columns = [c for c in _columns(conn, "main", table) if c in src_columns]
                    if not columns:
                        continue
                    names = ", ".join(columns)
                    before = conn.total_changes
                    conn.execute(f"INSERT OR IGNORE INTO main.{table} ({names}) SELECT {names} FROM src.{table}")
                    added[table] = added.get(table, 0) + conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                conn.execute("DETACH DATABASE src")
    finally:
        conn.close()
    if any(table in added for table in TASK_TABLES):
        _recount(out_path)
    return added


def _recount(path: Path) -> None:
    from sqlite_utils import Database

    from ..dataset.tasks import recount_tasks  # the task tables belong to the dataset layer

    db = Database(str(path))
    try:
        recount_tasks(db)
    finally:
        db.conn.close()
