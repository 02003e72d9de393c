"""The Query Writer's database: a small shop, built in memory from the shipped ``shop.sql``.

Queries run read-only: an SQLite authorizer allows reading and nothing else (no INSERT, UPDATE,
DELETE, DDL, ATTACH or PRAGMA), a progress handler stops runaway queries, and results are cut to
a few rows. Bad SQL never raises: :meth:`ShopDatabase.run` returns the database's error message,
which is what the query fixer works from.

Example:
    >>> db = ShopDatabase()
    >>> db.tables
    ['customers', 'products', 'orders', 'order_items', 'employees']
    >>> db.run("SELECT COUNT(*) FROM customers").rows
    [(10,)]
    >>> db.run("DELETE FROM customers").error
    'not authorized: the database is read-only (SELECT queries only)'
    >>> db.run("SELECT * FROM nope").error
    'no such table: nope'
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

__all__ = ["ShopDatabase", "SqlResult", "load_sql"]

_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}
_READ_ONLY = "not authorized: the database is read-only (SELECT queries only)"
_WORD = re.compile(r"[a-z]+")


def load_sql() -> str:
    """The text of the shipped ``shop.sql`` (schema and rows)."""
    return resources.files(__package__).joinpath("shop.sql").read_text(encoding="utf-8")


@dataclass
class SqlResult:
    """What one query returned: column names and rows, or the database's error message.

    Attributes:
        query: The SQL as run.
        columns: Column names.
        rows: Up to ``max_rows`` rows.
        error: The error message (None on success).
        truncated: True when more rows existed than were kept.
    """

    query: str
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    error: str | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_text(self, max_rows: int = 5) -> str:
        """A compact rendering for prompts and logs: ``col1 | col2`` then rows."""
        if self.error is not None:
            return f"error: {self.error}"
        if not self.rows:
            return "(no rows)"
        lines = [" | ".join(self.columns)]
        lines += [" | ".join(str(v) for v in row) for row in self.rows[:max_rows]]
        if len(self.rows) > max_rows or self.truncated:
            lines.append("...")
        return "\n".join(lines)


class ShopDatabase:
    """The demo database, in memory, read-only once built.

    Args:
        sql: The script to build it from (default: the shipped ``shop.sql``).
        max_rows: Most rows kept per query.
        max_steps: SQLite virtual-machine steps (in thousands) before a query is interrupted.

    Example:
        >>> ShopDatabase().schema(["products"])
        'products(id, name, category, price)'
    """

    def __init__(self, sql: str | None = None, *, max_rows: int = 20, max_steps: int = 2_000):
        self.max_rows = max_rows
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.executescript(sql if sql is not None else load_sql())
        self._conn.commit()
        self.tables: list[str] = [
            r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
        ]
        self.columns: dict[str, list[str]] = {
            t: [r[1] for r in self._conn.execute(f'PRAGMA table_info("{t}")')] for t in self.tables
        }
        self._conn.set_authorizer(self._authorize)
        budget = {"steps": 0}
        self._budget = budget
        self._max_steps = max_steps

        def progress() -> int:
            budget["steps"] += 1
            return 1 if budget["steps"] > max_steps else 0

        self._conn.set_progress_handler(progress, 1000)

    @staticmethod
    def _authorize(action: int, *_: Any) -> int:
        return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY

    def schema(self, tables: list[str] | None = None) -> str:
        """One ``table(col, ...)`` line per table (all tables when None)."""
        return "\n".join(f"{t}({', '.join(self.columns[t])})" for t in (tables or self.tables) if t in self.columns)

    def candidates(self, question: str, extra: list[str] | None = None, k: int = 3) -> list[str]:
        """Up to ``k`` tables for ``question``: ``extra`` first, then by word overlap with names and columns.

        A cheap lexical retriever: the re-ranker (an SLM step) orders what it returns.

        Example:
            >>> ShopDatabase().candidates("average salary per department", k=2)
            ['employees', 'customers']
        """
        words = set(_WORD.findall(question.lower()))
        words |= {w[:-1] for w in words if w.endswith("s")}

        def score(table: str) -> int:
            names = {table, table.rstrip("s"), *table.split("_")}
            cols = {c for col in self.columns[table] for c in col.split("_") if c != "id"}
            return 3 * len(words & names) + len(words & cols)

        ranked = sorted(self.tables, key=lambda t: (-score(t), self.tables.index(t)))
        out: list[str] = []
        for table in [*(extra or []), *ranked]:
            if table in self.columns and table not in out:
                out.append(table)
        return out[:k]

    def run(self, query: str) -> SqlResult:
        """Run one query read-only; never raises for bad SQL (the error is in the result)."""
        text = (query or "").strip().rstrip(";").strip()
        result = SqlResult(query=text)
        if not text:
            result.error = "empty query"
            return result
        self._budget["steps"] = 0
        try:
            cursor = self._conn.execute(text)
            result.columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(self.max_rows + 1)
            result.truncated = len(rows) > self.max_rows
            result.rows = [tuple(r) for r in rows[: self.max_rows]]
        except sqlite3.DatabaseError as e:
            message = str(e)
            if "not authorized" in message or "prohibited" in message:
                message = _READ_ONLY
            elif "interrupted" in message:
                message = "the query took too long and was stopped"
            result.error = message
        except (sqlite3.Warning, ValueError, OverflowError) as e:  # e.g. several statements at once
            result.error = str(e)
        return result

    def close(self) -> None:
        self._conn.close()
