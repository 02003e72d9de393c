"""Reading a capture database: one call, a filtered list, summary statistics.

These back the ``slm-agents stats / calls`` commands (merging files is :mod:`.merge`) and work on any migrated file (a
store's ``db``, or ``sqlite_utils.Database(path)``).

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> cid = store.log({"messages": [{"role": "user", "content": "hi"}], "route": "slm",
    ...                  "input_tokens": 1000, "output_tokens": 100, "latency_ms": 80})
    >>> store.flush()
    True
    >>> summary = stats(store.db, Prices(llm_input=2.5, llm_output=10.0))
    >>> summary["calls"], summary["by_route"][0]["route"], round(summary["cost"]["saved"], 6)
    (1, 'slm', 0.0035)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from sqlite_utils import Database

from ..errors import CaptureError
from ._paths import resolve_path
from .columns import JSON_COLUMNS
from .schema import migrate

__all__ = ["open_db", "loads", "BlobCache", "read_call", "list_calls", "stats", "capture_counters", "Prices", "JSON_COLUMNS"]


def open_db(path_or_db: str | os.PathLike[str] | Database | None = None) -> Database:
    """The capture database at ``path_or_db`` (default ``$SLM_AGENTS_DB`` or ./slm_agents.db), migrated.

    Raises:
        CaptureError: The file does not exist (the message says how to create one).
    """
    if isinstance(path_or_db, Database):
        db = path_or_db
    else:
        path = resolve_path(path_or_db)
        if not path.exists():
            raise CaptureError(
                f"no capture database at {path}. Run an agent with capture on (CaptureStore / "
                "get_default_store), or pass --db PATH / set SLM_AGENTS_DB."
            )
        db = Database(str(path))
        db.conn.execute("PRAGMA busy_timeout = 30000")
    migrate(db)  # an older file gets the current schema (migrations only add)
    return db


def loads(value: Any) -> Any:
    """``json.loads`` for a JSON column; None for NULL/empty and the raw text when it is not JSON."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class BlobCache:
    """Looks up ``blobs`` rows (tool lists, long message texts) once each.

    Example:
        >>> from sqlite_utils import Database
        >>> db = Database(memory=True)
        >>> _ = db["blobs"].insert({"hash": "h1", "kind": "text", "size": 2, "content": "hi"}, pk="hash")
        >>> cache = BlobCache(db)
        >>> cache.messages([{"role": "user", "content": {"$blob": "h1"}}])[0]["content"]
        'hi'
    """

    def __init__(self, db: Database, max_items: int = 4096) -> None:
        self._db = db
        self._cache: dict[str, Any] = {}
        self._max = max_items

    def get(self, digest: str | None) -> str | None:
        if not digest:
            return None
        if digest in self._cache:
            return self._cache[digest]
        row = self._db.execute("SELECT content FROM blobs WHERE hash = ?", [digest]).fetchone()
        value = row[0] if row else None
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[digest] = value
        return value

    def tools(self, tools_hash: str | None) -> list[dict[str, Any]]:
        """The tools list stored under ``tools_hash`` (decoded once, shared: do not mutate)."""
        if not tools_hash:
            return []
        key = "tools:" + tools_hash
        if key in self._cache:
            return self._cache[key]
        value = loads(self.get(tools_hash)) or []
        self._cache[key] = value if isinstance(value, list) else []
        return self._cache[key]

    def messages(self, messages: Any) -> list[dict[str, Any]]:
        """``messages`` with every ``{"$blob": hash}`` content put back (in place)."""
        if not isinstance(messages, list):
            return []
        for message in messages:
            if isinstance(message, dict):
                content = message.get("content")
                if isinstance(content, dict) and len(content) == 1 and "$blob" in content:
                    message["content"] = self.get(content["$blob"]) or ""
        return messages


def read_call(db: Database, call_id: str, *, hydrate: bool = True) -> dict[str, Any] | None:
    """A call as a dict with JSON columns decoded, or None if there is no such id.

    With ``hydrate`` (the default), message texts stored once in ``blobs`` are put back and the
    tools list is added under ``tools``; also added: ``tool_executions`` (the tools its answer
    asked for, by ``model_call_id`` or by the tool call's id), ``escalations`` (as the SLM or the
    LLM side) and ``labels``.
    """
    cursor = db.execute("SELECT * FROM calls WHERE id = ?", [call_id])
    row = cursor.fetchone()
    if row is None:
        return None
    call = dict(zip([d[0] for d in cursor.description], row, strict=True))
    for column in JSON_COLUMNS["calls"]:
        call[column] = loads(call[column])
    if call.get("valid") is not None:
        call["valid"] = bool(call["valid"])
    if hydrate:
        blobs = BlobCache(db)
        blobs.messages(call["messages"])
        call["tools"] = list(blobs.tools(call["tools_hash"])) if call.get("tools_hash") else None
        # the tools this answer asked for: linked by model_call_id, or by the tool call's id when the
        # face that logged the tool did not know the model call (as slm_agents.capture.outcomes links them)
        asked = [c["id"] for c in call["tool_calls"] or [] if isinstance(c, dict) and isinstance(c.get("id"), str)]
        marks = ", ".join("?" * len(asked))
        by_tool_id = f" OR (model_call_id IS NULL AND call_id IN ({marks}))" if asked else ""
        call["tool_executions"] = [dict(r) for r in db.query(
            f"SELECT * FROM tool_executions WHERE model_call_id = ?{by_tool_id} ORDER BY id", [call_id, *asked])]
        call["escalations"] = [
            dict(r) for r in db.query(
                "SELECT * FROM escalations WHERE slm_call_id = ? OR llm_call_id = ? ORDER BY id", [call_id, call_id]
            )
        ]
        call["labels"] = [dict(r) for r in db.query("SELECT * FROM labels WHERE target_id = ? ORDER BY id", [call_id])]
    return call


def list_calls(
    db: Database,
    *,
    route: str | None = None,
    task: str | None = None,
    model: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The newest calls first, optionally filtered; summary columns only."""
    where, args = [], []
    for column, value in (("route", route), ("task", task), ("model", model)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    sql = (
        "SELECT id, ts, route, framework, task, model, finish_reason, valid, latency_ms, input_tokens, "
        "output_tokens, escalation_reason, error_type, tool_names, substr(content, 1, 80) AS content "
        "FROM calls" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
    )
    return [dict(r) for r in db.query(sql, [*args, int(limit)])]


@dataclass
class Prices:
    """Prices in USD per million tokens (env ``SLM_AGENTS_PRICE_LLM_INPUT`` and friends)."""

    llm_input: float = 2.50
    llm_output: float = 10.00
    slm_input: float = 0.0
    slm_output: float = 0.0

    @classmethod
    def from_env(cls, **overrides: float | None) -> Prices:
        values = asdict(cls())
        for name in values:
            env = os.environ.get(f"SLM_AGENTS_PRICE_{name.upper()}")
            if env:
                values[name] = float(env)
            if overrides.get(name) is not None:
                values[name] = float(overrides[name])  # type: ignore[arg-type]
        return cls(**values)


def _percentiles(db: Database, group: str) -> dict[Any, tuple[float | None, float | None]]:
    sql = f"""
        WITH ranked AS (
            SELECT {group} AS g, latency_ms,
                   ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY latency_ms) AS rn,
                   COUNT(*) OVER (PARTITION BY {group}) AS n
            FROM calls WHERE typeof(latency_ms) IN ('integer', 'real'))  -- a number, not text
        SELECT g,
               MAX(CASE WHEN rn = MAX(1, (n * 50 + 99) / 100) THEN latency_ms END),
               MAX(CASE WHEN rn = MAX(1, (n * 95 + 99) / 100) THEN latency_ms END)
        FROM ranked GROUP BY g"""
    return {g: (p50, p95) for g, p50, p95 in db.execute(sql).fetchall()}


def _grouped(db: Database, group: str, limit: int | None = None) -> list[dict[str, Any]]:
    pct = _percentiles(db, group)
    sql = f"""SELECT {group} AS key, COUNT(*) AS calls, COALESCE(SUM(input_tokens), 0) AS input_tokens,
                     COALESCE(SUM(output_tokens), 0) AS output_tokens,
                     SUM(error_type IS NOT NULL) AS errors, SUM(valid = 0) AS invalid
              FROM calls GROUP BY {group} ORDER BY calls DESC""" + (f" LIMIT {int(limit)}" if limit else "")
    out = []
    for row in db.query(sql):
        p50, p95 = pct.get(row["key"], (None, None))
        out.append({group: row.pop("key"), **row, "p50_ms": p50, "p95_ms": p95})
    return out


def stats(db: Database, prices: Prices | None = None, *, top: int = 20) -> dict[str, Any]:
    """Calls by route, model and task; escalation reasons; tokens; latency; estimated savings.

    Savings: SLM calls that were not escalated and did not fail are priced at the LLM's rate
    minus the SLM's; escalated or failed SLM calls (including those that carry an escalation reason
    because no LLM was there to answer) and shadow calls only cost the SLM's rate.
    Token counts come from each model's own tokenizer, so this is an estimate.
    """
    prices = prices or Prices.from_env()
    total = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    tokens = db.execute(
        "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0) FROM calls"
    ).fetchone()
    escalations = [dict(r) for r in db.query(
        "SELECT reason, COUNT(*) AS count FROM escalations GROUP BY reason ORDER BY count DESC"
    )]
    reasons_on_calls = [dict(r) for r in db.query(
        "SELECT escalation_reason AS reason, COUNT(*) AS count FROM calls WHERE escalation_reason IS NOT NULL "
        "GROUP BY escalation_reason ORDER BY count DESC"
    )]
    slm = db.execute(
        """SELECT
             COALESCE(SUM(CASE WHEN ok THEN input_tokens END), 0), COALESCE(SUM(CASE WHEN ok THEN output_tokens END), 0),
             COALESCE(SUM(CASE WHEN NOT ok THEN input_tokens END), 0), COALESCE(SUM(CASE WHEN NOT ok THEN output_tokens END), 0),
             COALESCE(SUM(ok), 0), COALESCE(SUM(NOT ok), 0)
           FROM (SELECT input_tokens, output_tokens,
                        (route = 'slm' AND error_type IS NULL AND escalation_reason IS NULL
                         AND id NOT IN (SELECT slm_call_id FROM escalations WHERE slm_call_id IS NOT NULL)) AS ok
                 FROM calls WHERE route IN ('slm', 'shadow'))"""
    ).fetchone()
    ok_in, ok_out, spent_in, spent_out, ok_calls, other_calls = slm
    llm_in, llm_out = db.execute(
        "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0) FROM calls WHERE route = 'llm'"
    ).fetchone()
    per = 1_000_000
    avoided = (ok_in * prices.llm_input + ok_out * prices.llm_output) / per
    slm_cost = ((ok_in + spent_in) * prices.slm_input + (ok_out + spent_out) * prices.slm_output) / per
    llm_cost = (llm_in * prices.llm_input + llm_out * prices.llm_output) / per
    saved = avoided - slm_cost
    all_llm = llm_cost + avoided
    return {
        "calls": total,
        "by_route": _grouped(db, "route"),
        "by_model": _grouped(db, "model", top),
        "by_task": _grouped(db, "task", top),
        "escalations": escalations,
        "escalation_reasons_on_calls": reasons_on_calls,
        "tokens": {"input": tokens[0], "output": tokens[1]},
        "latency": _percentiles_all(db),
        "cost": {
            "prices_per_million_tokens": asdict(prices),
            "slm_calls_kept": ok_calls,
            "slm_calls_escalated_failed_or_shadow": other_calls,
            "llm_cost": llm_cost,
            "slm_cost": slm_cost,
            "cost_if_all_llm": all_llm,
            "saved": saved,
            "saved_fraction": (saved / all_llm) if all_llm else None,
        },
        "tool_executions": db.execute("SELECT COUNT(*) FROM tool_executions").fetchone()[0],
        "labels": db.execute("SELECT COUNT(*) FROM labels").fetchone()[0],
        "capture": capture_counters(db),
    }


def capture_counters(db: Database) -> dict[str, int] | None:
    """The stores' counters summed over ``capture_sessions`` (None in a file from before them).

    ``not_written`` counts what stores accepted but did not store: lost at a timed-out close, or
    still queued in a store that is open or whose process ended without closing it
    (``not_closed`` such stores).
    """
    if "capture_sessions" not in db.table_names():
        return None
    row = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(closed IS NULL), 0), COALESCE(SUM(accepted), 0), COALESCE(SUM(written), 0), "
        "COALESCE(SUM(dropped), 0), COALESCE(SUM(failed), 0), COALESCE(SUM(duplicates), 0), "
        "COALESCE(SUM(unwritten), 0) FROM capture_sessions"
    ).fetchone()
    keys = ("stores", "not_closed", "accepted", "written", "dropped", "failed", "duplicates", "not_written")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def _percentiles_all(db: Database) -> dict[str, float | None]:
    rows = _percentiles(db, "1")
    p50, p95 = next(iter(rows.values()), (None, None))
    return {"p50_ms": p50, "p95_ms": p95}
