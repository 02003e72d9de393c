"""Curation: pick the captured calls worth training or evaluating on, streamed from SQLite.

:class:`Curator` filters captured calls (successful only; by route, model, task, date range,
label), drops requests it has already seen (de-duplication on a normalised request hash), drops
over-long conversations, and yields one plain dict per kept call. :func:`find_leakage` checks two
splits share no request.

A kept record::

    {"id", "ts", "task", "task_id", "route", "model", "messages", "tools", "tools_hash", "tool_choice", "params",
     "answer": {"role": "assistant", "content", "tool_calls"}, "request_hash", "stratum",
     "confidence", "input_tokens", "output_tokens", "redactions"}

``stratum`` is the first tool the answer called, or ``"<text>"`` for a text answer (the split is
stratified on it). ``task_id`` is the task cluster of the call when ``slm-agents tasks`` has run.

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> for text in ["hi", "hi ", "bye"]:
    ...     _ = store.log({"messages": [{"role": "user", "content": text}], "route": "llm", "content": "ok"})
    >>> _ = store.log({"messages": [{"role": "user", "content": "x"}], "route": "llm", "error_type": "Timeout"})
    >>> store.flush()
    True
    >>> curator = Curator(store.db)
    >>> [r["messages"][0]["content"] for r in curator]
    ['hi', 'bye']
    >>> curator.stats.dropped
    {'duplicate': 1}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from ..errors import InvalidRequest
from ._rows import BlobCache, answer_message, estimate_tokens, has_table, loads, request_key, text_of

__all__ = ["Curator", "CurateStats", "find_leakage", "TEXT_STRATUM", "FAILED_FINISH_REASONS"]

#: The stratum of an answer that called no tool.
TEXT_STRATUM = "<text>"
#: Finish reasons that mark an answer as not successful (cut off, cancelled, filtered, failed).
FAILED_FINISH_REASONS = ("length", "cancelled", "canceled", "content_filter", "error", "abort")

_COLUMNS = (
    "c.id, c.ts, c.task, c.route, c.model, c.messages, c.tools_hash, c.tool_choice, c.params, c.content, "
    "c.tool_calls, c.finish_reason, c.valid, c.confidence, c.input_tokens, c.output_tokens, c.redactions"
)


@dataclass
class CurateStats:
    """What a curation pass saw: rows scanned, kept, and dropped by reason."""

    scanned: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    redactions: int = 0
    rows_with_redactions: int = 0

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def _tuple(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    value = tuple(value)
    return value or None


class Curator:
    """Streams the captured calls that pass the filters, as plain dicts (see the module docstring).

    Filters run in SQL where they can (route, model, task, dates, labels, errors), so only
    candidate rows are decoded; de-duplication and length limits run in Python, one row at a time.

    Args:
        db: A migrated capture database (see :func:`slm_agents.dataset.open_db`).
        routes: Keep these routes (default ``("llm",)``: the teacher's answers); None keeps all.
        models: Keep calls answered by these models.
        tasks: Keep calls whose explicit ``task`` label is one of these.
        task_id: Keep the calls of this task (a ``t-…`` id or a task name from ``slm-agents tasks``).
        since: Keep calls with ``ts >= since`` (ISO date or datetime, UTC).
        until: Keep calls with ``ts < until`` (later than ``since``, else ``InvalidRequest``).
        labels: Keep calls (or calls of runs) labelled with one of these (``store.label``).
        exclude_labels: Drop calls (or calls of runs) labelled with one of these.
        successful_only: Drop errored, cancelled, cut-off and invalid calls and empty answers.
        dedupe: Keep only the first call of each normalised request.
        max_messages: Drop requests with more messages than this.
        max_chars: Drop requests whose message texts are longer than this in total.
        max_tokens: Drop calls whose tokens (recorded, else estimated) exceed this.
        limit: Stop after this many kept calls.
        newest_first: Read the newest calls first (default: oldest first).

    Attributes:
        stats: A :class:`CurateStats` filled while iterating.

    Example:
        >>> from sqlite_utils import Database
        >>> from slm_agents.capture import migrate
        >>> db = Database(memory=True); migrate(db)
        >>> Curator(db, routes=None, max_messages=4).count()
        0
    """

    def __init__(
        self,
        db: Database,
        *,
        routes: str | Iterable[str] | None = ("llm",),
        models: str | Iterable[str] | None = None,
        tasks: str | Iterable[str] | None = None,
        task_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        labels: str | Iterable[str] | None = None,
        exclude_labels: str | Iterable[str] | None = None,
        successful_only: bool = True,
        dedupe: bool = True,
        max_messages: int | None = None,
        max_chars: int | None = None,
        max_tokens: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> None:
        for name, value in (("max_messages", max_messages), ("max_chars", max_chars),
                            ("max_tokens", max_tokens), ("limit", limit)):
            if value is not None and value < 1:
                raise InvalidRequest(f"{name} must be at least 1, got {value}")
        if isinstance(since, str) and isinstance(until, str) and until <= since:  # compared as the ts column is
            raise InvalidRequest(f"until ({until}) must be later than since ({since}): no call is in that range")
        self.db = db
        self.routes = _tuple(routes)
        self.models = _tuple(models)
        self.tasks = _tuple(tasks)
        self.task_id = task_id
        self.since, self.until = since, until
        self.labels = _tuple(labels)
        self.exclude_labels = _tuple(exclude_labels)
        self.successful_only = successful_only
        self.dedupe = dedupe
        self.max_messages, self.max_chars, self.max_tokens = max_messages, max_chars, max_tokens
        self.limit = limit
        self.newest_first = newest_first
        self.stats = CurateStats()
        self._task = None
        if task_id is not None:
            from .tasks import resolve_task

            self._task = resolve_task(db, task_id)
        self._task_table = has_table(db, "call_tasks")

    # -- SQL -------------------------------------------------------------------------------------
    def _where(self) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []

        def among(column: str, values: tuple[str, ...] | None) -> None:
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)

        among("c.route", self.routes)
        among("c.model", self.models)
        among("c.task", self.tasks)
        if self._task is not None:
            where.append("ct.task_id = ?")
            args.append(self._task.id)
        if self.since:
            where.append("c.ts >= ?")
            args.append(self.since)
        if self.until:
            where.append("c.ts < ?")
            args.append(self.until)
        for values, negate in ((self.labels, False), (self.exclude_labels, True)):
            if values:
                marks = ", ".join("?" * len(values))
                sub = f"SELECT target_id FROM labels WHERE target_id IS NOT NULL AND label IN ({marks})"
                clause = f"(c.id IN ({sub}) OR (c.run_id IS NOT NULL AND c.run_id IN ({sub})))"
                where.append(f"NOT {clause}" if negate else clause)
                args.extend(values * 2)
        if self.successful_only:
            where.append("c.error_type IS NULL")
            where.append("(c.valid IS NULL OR c.valid != 0)")
            where.append(
                f"(c.finish_reason IS NULL OR c.finish_reason NOT IN ({', '.join('?' * len(FAILED_FINISH_REASONS))}))"
            )
            args.extend(FAILED_FINISH_REASONS)
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def _from(self) -> str:
        if self._task_table:
            return "calls c LEFT JOIN call_tasks ct ON ct.call_id = c.id"
        return "calls c"

    def count(self) -> int:
        """How many rows pass the SQL filters (before de-duplication and length limits)."""
        where, args = self._where()
        return int(self.db.execute(f"SELECT COUNT(*) FROM {self._from()}{where}", args).fetchone()[0])

    # -- rows ------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.stats = stats = CurateStats()
        where, args = self._where()
        task_col = "ct.task_id" if self._task_table else "NULL"
        order = "DESC" if self.newest_first else "ASC"
        sql = f"SELECT {_COLUMNS}, {task_col} FROM {self._from()}{where} ORDER BY c.id {order}"
        blobs = BlobCache(self.db)
        seen: set[str] = set()
        cursor = self.db.conn.execute(sql, args)
        for row in cursor:
            (cid, ts, task, route, model, messages_json, tools_hash, tool_choice, params, content,
             tool_calls_json, finish_reason, _valid, confidence, input_tokens, output_tokens,
             redactions, task_id) = row  # fmt: skip
            stats.scanned += 1
            key = request_key(messages_json, tools_hash)
            if self.dedupe and key in seen:
                stats.drop("duplicate")
                continue
            messages = loads(messages_json)
            if not isinstance(messages, list) or not messages:
                stats.drop("no_messages")
                continue
            tool_calls = loads(tool_calls_json)
            if not isinstance(tool_calls, list):
                tool_calls = []
            if self.successful_only and not tool_calls and not (content or "").strip():
                stats.drop("empty_answer")
                continue
            if self.max_messages is not None and len(messages) > self.max_messages:
                stats.drop("too_many_messages")
                continue
            if self.dedupe:
                seen.add(key)
            blobs.messages(messages)
            if self.max_chars is not None and sum(len(text_of(m.get("content"))) for m in messages
                                                  if isinstance(m, dict)) > self.max_chars:
                stats.drop("too_many_chars")
                continue
            answer = answer_message(content, tool_calls)
            if self.max_tokens is not None:
                tokens = (input_tokens + (output_tokens or 0)) if input_tokens else estimate_tokens(messages, answer)
                if tokens > self.max_tokens:
                    stats.drop("too_many_tokens")
                    continue
            first = answer.get("tool_calls")
            stats.kept += 1
            if redactions:
                stats.redactions += int(redactions)
                stats.rows_with_redactions += 1
            yield {
                "id": cid,
                "ts": ts,
                "task": task,
                "task_id": task_id,
                "route": route,
                "model": model,
                "messages": messages,
                "tools": blobs.tools(tools_hash),
                "tools_hash": tools_hash,
                "tool_choice": loads(tool_choice),
                "params": loads(params),
                "answer": answer,
                "request_hash": key,
                "stratum": first[0]["function"]["name"] if first else TEXT_STRATUM,
                "confidence": confidence,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "redactions": redactions or 0,
            }
            if self.limit is not None and stats.kept >= self.limit:
                break
        cursor.close()


def find_leakage(train: Iterable[Any], validation: Iterable[Any]) -> set[str]:
    """Normalised requests present in both splits (empty when there is no leakage).

    Args:
        train: Records with ``request_hash`` (from :class:`Curator`), or the hashes themselves.
        validation: The same for the validation split.

    Example:
        >>> find_leakage([{"request_hash": "a"}, "b"], ["b", "c"])
        {'b'}
    """

    def keys(items: Iterable[Any]) -> set[str]:
        return {i["request_hash"] if isinstance(i, dict) else str(i) for i in items}

    return keys(train) & keys(validation)


def count_strata(records: Iterable[dict[str, Any]]) -> Counter[str]:
    """How many records per stratum (first tool called, or ``<text>``)."""
    return Counter(r["stratum"] for r in records)
