"""The background writer: turns queued records into rows (redacting them first) and batch-inserts.

Private to :mod:`slm_agents.capture`; :class:`~slm_agents.capture.store.CaptureStore` is the
public face. Nothing here ever raises into the agent: failures are counted and logged by type,
never with prompt content.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import itertools
import json
import logging
import operator
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._ids import new_id
from ..errors import InvalidRequest
from . import columns
from ._utils import clean_text, dumps, jsonable, to_float, to_int, truncation_marker
from .redact import RedactionSession, Redactor, drop_credentials, is_credential_key

logger = logging.getLogger("slm_agents.capture")

CALL_COLUMNS = columns.names("calls")
TOOL_COLUMNS = columns.names("tool_executions")
ESCALATION_COLUMNS = columns.names("escalations")
LABEL_COLUMNS = columns.names("labels")
BLOB_COLUMNS = columns.names("blobs")

#: Keys of a call record that map to their own column; any other key goes into ``metadata``.
CALL_KEYS = frozenset(CALL_COLUMNS) | {"tools", "usage"}
TOOL_KEYS = frozenset(TOOL_COLUMNS) | {"error"}
#: Columns copied from the record key of the same name (the other columns are built below).
_CALL_PLAIN = columns.names("calls", "plain")
_CALL_FLOAT = columns.names("calls", "float")
_TOOL_PLAIN = columns.names("tool_executions", "plain")
_ESCALATION_PLAIN = columns.names("escalations", "plain")
_LABEL_PLAIN = columns.names("labels", "plain")

_SQL = {
    "calls": "INSERT OR IGNORE INTO calls ({}) VALUES ({})".format(", ".join(CALL_COLUMNS), ", ".join("?" * len(CALL_COLUMNS))),
    "tool_executions": "INSERT OR IGNORE INTO tool_executions ({}) VALUES ({})".format(", ".join(TOOL_COLUMNS), ", ".join("?" * len(TOOL_COLUMNS))),
    "escalations": "INSERT OR IGNORE INTO escalations ({}) VALUES ({})".format(", ".join(ESCALATION_COLUMNS), ", ".join("?" * len(ESCALATION_COLUMNS))),
    "labels": "INSERT OR REPLACE INTO labels ({}) VALUES ({})".format(", ".join(LABEL_COLUMNS), ", ".join("?" * len(LABEL_COLUMNS))),
    # a call already written, given the verdict and reason of the step it turned out to be
    "verdicts": "UPDATE calls SET valid = ?, escalation_reason = ? WHERE id = ?",
    "blobs": "INSERT OR IGNORE INTO blobs ({}) VALUES ({})".format(", ".join(BLOB_COLUMNS), ", ".join("?" * len(BLOB_COLUMNS))),
}  # fmt: skip
_TABLE_ORDER = ("blobs", "calls", "verdicts", "tool_executions", "escalations", "labels")
# A row's values in column order, from the dict built by name (one C call, not a generator).
_CALL_ROW = operator.itemgetter(*CALL_COLUMNS)
_TOOL_ROW = operator.itemgetter(*TOOL_COLUMNS)
_ESCALATION_ROW = operator.itemgetter(*ESCALATION_COLUMNS)
_LABEL_ROW = operator.itemgetter(*LABEL_COLUMNS)
SESSION_COLUMNS = columns.names("capture_sessions")
_SESSION_SQL = "INSERT OR REPLACE INTO capture_sessions ({}) VALUES ({})".format(
    ", ".join(SESSION_COLUMNS), ", ".join("?" * len(SESSION_COLUMNS)))
#: Tables whose rows carry a caller-chosen id: a duplicate id keeps the first row and is counted.
_KEEP_FIRST = ("calls", "tool_executions", "escalations")
#: One record's rows as ``(table, row)`` pairs: tuples, which the garbage collector stops tracking
#: once it has seen they hold only text and numbers (a backlog of built rows then costs it nothing).
RecordRows = tuple[tuple[str, tuple[Any, ...]], ...]
#: Most seconds the build stage prepares rows before handing them to the commit stage.
BUILD_SLICE = 0.1
_TS_MIN, _TS_MAX = 946_684_800.0, 4_102_444_800.0  # 2000-01-01 .. 2100-01-01 UTC


def check_ts(value: Any) -> None:
    """Reject a ``ts`` that is not seconds since the epoch between 2000 and 2100.

    Raises:
        InvalidRequest: milliseconds, NaN/inf, or out of range, with how to fix it.
    """
    if value is None or isinstance(value, str):
        return
    if isinstance(value, _dt.datetime):
        if not 2000 <= value.year < 2100:
            raise InvalidRequest(f"record ts {value.isoformat()} is out of range (years 2000-2099)")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"record ts must be seconds since the epoch, a datetime or ISO text, "
                             f"not {type(value).__name__}")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidRequest(f"record ts must be a finite number of seconds, not {value!r}")
    if _TS_MIN * 1000 <= number <= _TS_MAX * 1000:
        raise InvalidRequest(f"record ts {value!r} looks like milliseconds; pass seconds (ts / 1000)")
    if not _TS_MIN <= number <= _TS_MAX:
        raise InvalidRequest(f"record ts {value!r} is out of range: seconds since the epoch between "
                             "2000 and 2100 expected (time.time())")


class FlushMarker:
    """Put on the queue by ``flush()``; set once every earlier item has been handled."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


STOP = object()


_iso_second: tuple[int, str] = (-1, "")


def iso(t: float) -> str:
    """UTC ISO-8601 with milliseconds, e.g. ``2025-05-01T12:00:00.123Z``."""
    global _iso_second
    second = int(t)
    cached = _iso_second  # one read: another writer thread may replace it meanwhile
    if cached[0] != second:  # formatting is slow; the prefix changes once a second
        cached = _iso_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int((t - second) * 1000):03d}Z"


def _ts(value: Any, t: float) -> str:
    if value is None:
        return iso(t)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return iso(value.timestamp())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return iso(float(value))
    return clean_text(str(value))


def _plain(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str and value.isascii():
        return value
    return clean_text(value if isinstance(value, str) else str(value))


def _numbers_only(value: dict[Any, Any]) -> bool:
    """Text keys and only numbers, booleans or None as values: nothing in it to redact."""
    for k, v in value.items():
        t = type(v)
        if type(k) is not str or not (v is None or t is int or t is bool or (t is float and v - v == 0)):
            return False
    return True


class RowBuilder:
    """Turns one record into rows. Holds the blob hashes already written (to skip re-sending)."""

    def __init__(self, redactor: Redactor | None, *, max_string_chars: int | None, blob_min_chars: int) -> None:
        self.redactor = redactor if redactor is not None and redactor.enabled else None
        self.max_string_chars = max_string_chars
        self.blob_min_chars = blob_min_chars
        self.known_blobs: set[str] = set()
        self._tools_cache: dict[str, tuple[str, str]] = {}
        self._digests: dict[str, str] = {}
        self._tools_by_id: dict[int, tuple[Any, tuple[str, str, int]]] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _clean(self, value: Any, session: RedactionSession | None, stats: dict[str, int]) -> Any:
        if session is not None:
            return session.value(value, max_string_chars=self.max_string_chars, stats=stats)
        return jsonable(value, max_string_chars=self.max_string_chars, stats=stats)

    def _json(self, value: Any, session: RedactionSession | None, stats: dict[str, int]) -> str | None:
        if value is None:
            return None
        if session is None:
            out = dumps(value)
            if self.max_string_chars is None or len(out) <= self.max_string_chars:
                return out  # no single string inside can be longer than the whole document
        return dumps(self._clean(value, session, stats))

    def _text(self, value: Any, session: RedactionSession | None, stats: dict[str, int]) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            return self._json(value, session, stats)
        limit = self.max_string_chars
        if limit is not None and len(value) > limit:
            value = value[:limit] + truncation_marker(len(value) - limit)
            stats["truncated"] = stats.get("truncated", 0) + 1
        if session is not None:
            value = session.text(value)
        return clean_text(value)

    def _blob(self, kind: str, content: str, blobs: list[tuple[Any, ...]], ts: str) -> str:
        digest = self._digests.get(content)
        if digest is None:
            content = clean_text(content)
            digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
            if len(self._digests) > 4096:
                self._digests.clear()
            self._digests[content] = digest
        if digest not in self.known_blobs:
            blobs.append((digest, kind, len(content), clean_text(content), ts))
        return digest

    def _tools(self, tools: Any, blobs: list[tuple[Any, ...]], ts: str) -> tuple[str | None, str | None]:
        if not tools:
            return None, None
        # A face passes the same bound-tools list on every call: skip re-encoding it. The entry
        # keeps the list alive, so its id cannot be reused by another object.
        known = self._tools_by_id.get(id(tools))
        if known is not None and known[0] is tools:
            digest, names, size = known[1]
            if digest not in self.known_blobs:
                text = dumps(tools)
                blobs.append((digest, "tools", len(text), clean_text(text), ts))
            return digest, names
        text = dumps(tools)
        cached = self._tools_cache.get(text)
        if cached is None:
            tool_names: list[Any] = []
            if isinstance(tools, list):
                for tool in tools:
                    if isinstance(tool, Mapping):
                        fn = tool.get("function")
                        tool_names.append(fn.get("name") if isinstance(fn, Mapping) else tool.get("name"))
            digest = self._blob("tools", text, [], ts)
            cached = (digest, dumps(tool_names))
            if len(self._tools_cache) > 256:
                self._tools_cache.clear()
            self._tools_cache[text] = cached
        if cached[0] not in self.known_blobs:
            blobs.append((cached[0], "tools", len(text), clean_text(text), ts))
        if len(self._tools_by_id) > 64:
            self._tools_by_id.clear()
        self._tools_by_id[id(tools)] = (tools, (cached[0], cached[1], len(text)))
        return cached

    def _messages(self, messages: Any, session: RedactionSession | None, stats: dict[str, int],
                  blobs: list[tuple[Any, ...]], ts: str) -> str:
        if session is None and type(messages) is list:  # fast path: no copy of the whole tree
            limit = self.blob_min_chars
            shallow = [
                {**m, "content": {"$blob": self._blob("text", m["content"], blobs, ts)}}
                if type(m) is dict and type(m.get("content")) is str and len(m["content"]) >= limit else m
                for m in messages
            ]
            out = dumps(shallow)
            if self.max_string_chars is None or len(out) <= self.max_string_chars:
                return out
        if session is not None:
            cleaned = session.messages(messages, max_string_chars=self.max_string_chars, stats=stats)
        else:
            cleaned = jsonable(messages, max_string_chars=self.max_string_chars, stats=stats)
        if isinstance(cleaned, list):
            for message in cleaned:
                if isinstance(message, dict):
                    content = message.get("content")
                    if isinstance(content, str) and len(content) >= self.blob_min_chars:
                        message["content"] = {"$blob": self._blob("text", content, blobs, ts)}
        return dumps(cleaned)

    def _metadata(self, record: Mapping[str, Any], known: frozenset[str], session: RedactionSession | None,
                  stats: dict[str, int]) -> str | None:
        meta = record.get("metadata")
        data_urls = dict(session.data_urls) if session is not None and session.data_urls else None
        if meta is None and data_urls is None and known.issuperset(record):
            return None
        extra = {k: v for k, v in record.items() if k not in known}
        merged: dict[str, Any] = {}
        if isinstance(meta, Mapping):
            merged.update(meta)
        elif meta is not None:
            merged["metadata"] = meta
        for key, value in extra.items():
            merged[str(key)] = value
        out = self._json(merged, session, stats)
        if data_urls:  # media types of the base64 data URLs kept as they are (never redacted)
            decoded = json.loads(out) if out else {}
            decoded["data_urls"] = data_urls
            out = dumps(decoded)
        return out

    def _tool_calls(self, value: Any, session: RedactionSession | None, stats: dict[str, int]) -> str | None:
        if not value:
            return None
        if session is None:
            return self._json(value, None, stats)
        return dumps(session.tool_calls(value, max_string_chars=self.max_string_chars, stats=stats))

    def _params(self, value: Any, session: RedactionSession | None, stats: dict[str, int]) -> str | None:
        if value is None:
            return None
        # credential-shaped keys (Authorization, api keys, cookies...) are dropped, redactor or not
        if type(value) is dict and _numbers_only(value):  # the usual {"temperature": 0, "max_tokens": 256}
            return dumps({k: v for k, v in value.items() if not is_credential_key(k)})
        return self._json(drop_credentials(jsonable(value)), session, stats)

    # -- rows ------------------------------------------------------------------------------------
    def call(self, rid: str, t: float, rec: Mapping[str, Any], blobs: list[tuple[Any, ...]]) -> tuple[Any, ...]:
        session = self.redactor.session() if self.redactor is not None else None
        stats: dict[str, int] = {}
        get = rec.get
        ts = _ts(get("ts"), t)
        usage = get("usage")
        if not isinstance(usage, Mapping):
            usage = {}
        tools_hash, tool_names = self._tools(get("tools"), blobs, ts)
        valid = get("valid")
        row: dict[str, Any] = {}
        for name in _CALL_PLAIN:  # _plain(value), its two common cases inline (a dozen columns a call)
            value = get(name)
            row[name] = value if value is None or (type(value) is str and value.isascii()) else _plain(value)
        for name in _CALL_FLOAT:
            row[name] = to_float(get(name))
        tool_choice = get("tool_choice")
        row.update(
            id=rid, ts=ts, tools_hash=tools_hash, tool_names=tool_names,
            messages=self._messages(get("messages"), session, stats, blobs, ts),
            content=self._text(get("content"), session, stats),
            tool_calls=self._tool_calls(get("tool_calls"), session, stats),
            error_message=self._text(get("error_message"), session, stats),
            tool_choice=None if tool_choice is None else (
                dumps(session.tool_choice(tool_choice)) if session is not None else self._json(tool_choice, None, stats)),
            params=self._params(get("params"), session, stats),
            tags=self._json(get("tags"), session, stats),
            metadata=self._metadata(rec, CALL_KEYS, session, stats),
            valid=None if valid is None else int(bool(valid)),
            input_tokens=to_int(get("input_tokens", usage.get("input_tokens"))),
            output_tokens=to_int(get("output_tokens", usage.get("output_tokens"))),
        )
        row["redactions"] = session.total if session is not None else 0  # after every text was redacted
        row["truncated"] = stats.get("truncated", 0) + stats.get("cut", 0)
        return _CALL_ROW(row)

    def tool(self, rid: str, t: float, rec: Mapping[str, Any]) -> tuple[Any, ...]:
        session = self.redactor.session() if self.redactor is not None else None
        stats: dict[str, int] = {}
        error = rec.get("error")
        error_type = rec.get("error_type")
        error_message = rec.get("error_message")
        if isinstance(error, BaseException):
            error_type = error_type or type(error).__name__
            error_message = error_message if error_message is not None else str(error)
        elif error is not None and error_message is None:
            error_message = error
        arguments = rec.get("arguments")
        if isinstance(arguments, str) and arguments[:1] in ("{", "["):
            with contextlib.suppress(ValueError, RecursionError):
                arguments = json.loads(arguments)
        result = rec.get("result")
        row = {
            "id": rid,
            "ts": _ts(rec.get("ts"), t),
            "arguments": self._json(arguments, session, stats),
            "result": self._text(result, session, stats),
            "error_message": self._text(error_message, session, stats),
            "latency_ms": to_float(rec.get("latency_ms")),
            "metadata": self._metadata(rec, TOOL_KEYS, session, stats),
        }
        for key in _TOOL_PLAIN:
            row[key] = _plain(rec.get(key))
        row["error_type"] = _plain(error_type)
        row["redactions"] = session.total if session is not None else 0
        return _TOOL_ROW(row)

    def escalation(self, rid: str, t: float, rec: Mapping[str, Any]) -> tuple[Any, ...]:
        extra = {k: v for k, v in rec.items() if k not in ESCALATION_COLUMNS}
        meta = rec.get("metadata")
        if isinstance(meta, Mapping):
            extra = {**meta, **extra}
        session = self.redactor.session() if self.redactor is not None else None
        row = {name: _plain(rec.get(name)) for name in _ESCALATION_PLAIN}
        row.update(id=rid, ts=_ts(rec.get("ts"), t),
                   metadata=self._json(drop_credentials(jsonable(extra)), session, {}) if extra else None)
        return _ESCALATION_ROW(row)

    def label(self, rid: str, t: float, rec: Mapping[str, Any]) -> tuple[Any, ...]:
        extra = rec.get("extra") or None
        session = self.redactor.session() if self.redactor is not None else None
        row: dict[str, Any] = {name: _plain(rec.get(name)) for name in _LABEL_PLAIN}
        row.update(id=rid, ts=_ts(rec.get("ts"), t), score=to_float(rec.get("score")),
                   note=self._text(rec.get("note"), session, {}),
                   extra=self._json(drop_credentials(jsonable(extra)), session, {}) if extra else None)
        return _LABEL_ROW(row)


# Tables inserted with multi-row ``INSERT ... VALUES (...), (...)`` statements. One statement for many
# rows is one sqlite3_step, during which sqlite3 releases the GIL: the build thread keeps working
# meanwhile (executemany takes the GIL back after every row, and waits for it each time).
_MULTI_ROW = frozenset({"blobs", "calls", "tool_executions"})
_MAX_CHUNK = 128  # rows per statement at most; chunks are powers of two: few statements to prepare
# SQLite copies every bound text until the statement ends: a table's rows go one by one
# (executemany) when one of them holds more than this many characters in its long text columns.
_MULTI_ROW_MAX_CHARS = 1 << 16
_LONG_TEXT = frozenset({"messages", "content", "tool_calls", "metadata", "error_message", "params", "tags",
                        "arguments", "result"})
_LONG_INDEXES = {table: tuple(i for i, name in enumerate(columns.names(table)) if name in _LONG_TEXT)
                 for table in _MULTI_ROW}


def _short_rows(table: str, rows: list[tuple[Any, ...]]) -> bool:
    """No row holds more than _MULTI_ROW_MAX_CHARS characters in its long text columns."""
    indexes = _LONG_INDEXES[table]
    for row in rows:
        size = 0
        for i in indexes:
            value = row[i]
            if type(value) is str:
                size += len(value)
        if size > _MULTI_ROW_MAX_CHARS:
            return False
    return True


@functools.lru_cache(maxsize=64)
def _multi_row_sql(table: str, rows: int) -> str:
    head, values = _SQL[table].split(" VALUES ")
    return f"{head} VALUES {', '.join([values] * rows)}"


def _chunk_rows(conn: sqlite3.Connection, width: int) -> int:
    """The largest power of two of rows (at most _MAX_CHUNK) whose parameters SQLite accepts."""
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+; older SQLite allowed 999 parameters
    limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit is not None else 999
    rows = _MAX_CHUNK
    while rows > 1 and rows * width > limit:
        rows //= 2
    return rows


def _insert_rows(conn: sqlite3.Connection, table: str, rows: list[tuple[Any, ...]]) -> int:
    """Insert ``rows`` into ``table`` by chunks of a power of two; returns how many were stored."""
    largest = _chunk_rows(conn, len(rows[0]))
    stored = 0
    start = 0
    while start < len(rows):
        size = largest
        while size > len(rows) - start:
            size //= 2
        chunk = rows[start:start + size]
        stored += conn.execute(_multi_row_sql(table, size), list(itertools.chain.from_iterable(chunk))).rowcount
        start += size
    return stored


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _describe(exc: BaseException) -> str:
    """An error description safe to log: SQLite's own message, else only the type."""
    if isinstance(exc, sqlite3.Error):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


class Writer:
    """The consumer side of the queue: two daemon threads in a pipeline.

    The *build* thread takes records off the queue, redacts and serialises them into rows (pure
    Python); the *commit* thread inserts each batch in one transaction. SQLite releases the GIL
    while it works, so building the next batch overlaps with committing the last one. Flush
    markers and the stop signal travel through both stages in order. In inline mode (an
    in-memory database bound to one thread) both stages run in the caller's thread.
    """

    def __init__(
        self,
        *,
        q: queue.Queue[Any],
        connect: Callable[[], tuple[sqlite3.Connection, Callable[[], Any]]],
        builder: RowBuilder,
        batch_size: int,
        flush_interval: float,
        lock_timeout: float,
        label: str,
    ) -> None:
        self.queue = q
        self._connect = connect
        self.builder = builder
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.lock_timeout = lock_timeout
        self.label = label
        self.written = 0
        self.dropped = 0  # counted by the store: offered but not accepted (queue full, closed)
        self.accepted = 0  # counted by the store as records are queued
        self.duplicates = 0
        self.abandoned = False  # set at close/exit timeout: nothing more is written after
        self.commit_lock = threading.Lock()
        self._build_failed = 0
        self._commit_failed = 0
        self.conn: sqlite3.Connection | None = None
        self._transaction: Callable[[], Any] | None = None
        self.thread: threading.Thread | None = None
        self.committer: threading.Thread | None = None
        self._built: queue.Queue[Any] | None = None
        self.inline_lock = threading.RLock()
        self._logged_failures = 0
        # This writer's counters are saved in capture_sessions (one row per store and process),
        # with every batch and at close, so `slm-agents stats` can show them.
        self.session_id = new_id()
        self._session_started = iso(time.time())
        self._session_saved = False

    @property
    def failed(self) -> int:
        return self._build_failed + self._commit_failed

    def alive(self) -> bool:
        return all(t is not None and t.is_alive() for t in (self.thread, self.committer))

    # -- threads ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._built = queue.Queue(maxsize=4)
        self.committer = threading.Thread(target=self._commit_loop, name=f"slm-agents-capture-commit:{self.label}",
                                          daemon=True)
        self.thread = threading.Thread(target=self._build_loop, name=f"slm-agents-capture:{self.label}", daemon=True)
        self.committer.start()
        self.thread.start()

    def join(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self.thread, self.committer):
            if thread is not None:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _build_loop(self) -> None:
        while True:
            try:
                if self._collect_and_build():
                    return
            except Exception as exc:  # noqa: BLE001 - the writer must survive anything
                logger.error("capture writer error (%s); continuing", _describe(exc))
                time.sleep(0.05)

    def _commit_loop(self) -> None:
        assert self._built is not None
        while True:
            item = self._built.get()
            try:
                if self._handle_built(item):
                    return
            except Exception as exc:  # noqa: BLE001
                logger.error("capture commit error (%s); continuing", _describe(exc))

    def _collect_and_build(self) -> bool:
        """Collect one batch, build its rows and pass them on. True when told to stop."""
        first = self.queue.get()
        items = [first]
        if first is not STOP and not isinstance(first, FlushMarker):
            deadline = time.monotonic() + self.flush_interval
            while len(items) < self.batch_size:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self.queue.get(timeout=min(remaining, 0.05))
                    except queue.Empty:
                        continue
                items.append(item)
                if item is STOP or isinstance(item, FlushMarker):
                    break
        return self.process(items)

    def drain(self) -> bool:
        """Write everything queued now, in the calling thread (inline mode). True if STOP seen."""
        with self.inline_lock:
            stop = False
            while True:
                items: list[Any] = []
                try:
                    while len(items) < self.batch_size:
                        items.append(self.queue.get_nowait())
                except queue.Empty:
                    pass
                if not items:
                    return stop
                stop = self.process(items) or stop

    # -- stage 1: build --------------------------------------------------------------------------
    def process(self, items: list[Any]) -> bool:
        """Build rows for ``items`` and pass them, with any markers, in order to the commit stage."""
        stop = False
        built: list[RecordRows] = []
        slice_end = time.monotonic() + BUILD_SLICE
        for item in items:
            if self.abandoned:
                return True
            if item is STOP or isinstance(item, FlushMarker):
                if built:
                    self._emit(built)
                    built = []
                self._emit(item)
                stop = stop or item is STOP
            else:
                built.extend(self.build([item]))
                if time.monotonic() >= slice_end:  # bounded slices: save what is ready
                    self._emit(built)
                    built = []
                    slice_end = time.monotonic() + BUILD_SLICE
        if built:
            self._emit(built)
        return stop

    def _emit(self, item: Any) -> None:
        if self._built is None:  # inline
            self._handle_built(item)
        else:
            self._built.put(item)

    def build(self, items: list[tuple[str, str, float, Mapping[str, Any]]]) -> list[RecordRows]:
        """Rows per table for each item; an item whose rows cannot be built is counted as failed."""
        built: list[RecordRows] = []
        builder = self.builder
        for kind, rid, t, rec in items:
            try:
                rows: RecordRows
                if kind == "call":
                    blobs: list[tuple[Any, ...]] = []
                    rows = (("calls", builder.call(rid, t, rec, blobs)),)
                    if blobs:
                        rows += tuple(("blobs", row) for row in blobs)
                        for row in blobs:  # sent once; if the commit fails the next call resends
                            builder.known_blobs.add(row[0])
                elif kind == "tool":
                    rows = (("tool_executions", builder.tool(rid, t, rec)),)
                elif kind == "escalation":
                    rows = (("escalations", builder.escalation(rid, t, rec)),)
                elif kind == "verdict":
                    rows = (("verdicts", (rec["valid"], rec["escalation_reason"], rid)),)
                else:
                    rows = (("labels", builder.label(rid, t, rec)),)
            except Exception as exc:  # noqa: BLE001
                self._build_failed += 1
                self._log_failure(1, exc, "building a row")
                continue
            built.append(rows)
        if len(builder.known_blobs) > 200_000:
            builder.known_blobs.clear()
        return built

    # -- stage 2: commit -------------------------------------------------------------------------
    def _handle_built(self, item: Any) -> bool:
        if item is STOP:
            self.save_session(closed=True)
            if self.conn is not None and self._built is not None:
                self.conn.close()
                self.conn = None
            return True
        if isinstance(item, FlushMarker):
            item.event.set()
            return False
        self.commit(item)
        return False

    def _ensure_conn(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn, self._transaction = self._connect()
        return self.conn

    def commit(self, built: list[RecordRows]) -> None:
        """Insert ``built`` in one transaction; on failure retry one by one; never raises."""
        if not built:
            return
        with self.commit_lock:
            if not self.abandoned:
                self._commit(built)

    def _commit(self, built: list[RecordRows]) -> None:
        try:
            self.written += len(built) - self._insert(built)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, sqlite3.Error) and len(built) > 1:
                # one bad row must not cost the whole batch: retry one by one
                for rows in built:
                    try:
                        self.written += 1 - self._insert([rows])
                    except Exception as inner:  # noqa: BLE001
                        self._commit_failed += 1
                        self._log_failure(1, inner, "writing")
            else:
                self._commit_failed += len(built)
                self._log_failure(len(built), exc, "writing")
            self.builder.known_blobs.clear()  # the blobs may not be there: send them again

    def _insert(self, batch: list[RecordRows]) -> int:
        """Insert in one transaction; returns how many rows were duplicates (not stored)."""
        merged: dict[str, list[tuple[Any, ...]]] = {}
        for rows in batch:
            for table, row in rows:
                table_rows = merged.get(table)
                if table_rows is None:
                    merged[table] = [row]
                else:
                    table_rows.append(row)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            conn = self._ensure_conn()
            assert self._transaction is not None
            try:
                with self._transaction():
                    duplicates = 0
                    for table in _TABLE_ORDER:
                        table_rows = merged.get(table)
                        if not table_rows:
                            continue
                        if table in _MULTI_ROW and _short_rows(table, table_rows):
                            stored = _insert_rows(conn, table, table_rows)
                        else:
                            stored = conn.executemany(_SQL[table], table_rows).rowcount
                        if table in _KEEP_FIRST and stored >= 0:
                            duplicates += len(table_rows) - stored
                    # the counters as they will be once this transaction commits
                    self._upsert_session(conn, self.written + len(batch) - duplicates,
                                         self.duplicates + duplicates, closed=False)
                if duplicates:
                    self.duplicates += duplicates
                    self._note_duplicates(duplicates)
                return duplicates
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _note_duplicates(self, count: int) -> None:
        total = self.duplicates
        if (total - count).bit_length() < total.bit_length():  # the first, then at powers of two
            logger.warning("capture: %d record(s) with an id already stored in %s were not stored "
                           "(the first row is kept; %d duplicate(s) so far)", count, self.label, total)

    def _session_row(self, written: int, duplicates: int, closed: bool) -> tuple[Any, ...]:
        now = iso(time.time())
        accepted, failed = self.accepted, self.failed
        row = {
            "id": self.session_id, "pid": os.getpid(), "label": self.label, "started": self._session_started,
            "updated": now, "closed": now if closed else None, "accepted": accepted, "written": written,
            "dropped": self.dropped, "failed": failed, "duplicates": duplicates,
            "unwritten": max(0, accepted - written - failed - duplicates),
        }
        return tuple(row[name] for name in SESSION_COLUMNS)

    def _upsert_session(self, conn: sqlite3.Connection, written: int, duplicates: int, *, closed: bool) -> None:
        try:
            conn.execute(_SESSION_SQL, self._session_row(written, duplicates, closed))
            self._session_saved = True
        except sqlite3.OperationalError as exc:  # a database without the table: the rows still go in
            if "capture_sessions" not in str(exc):
                raise

    def save_session(self, *, closed: bool) -> None:
        """Save this writer's counters in ``capture_sessions`` (at close: with its time). Never raises."""
        with self.commit_lock:
            if self.abandoned or not (self._session_saved or self.accepted or self.dropped):
                return  # nothing ever offered: no row (opening a store just to migrate adds none)
            try:
                conn = self._ensure_conn()
                assert self._transaction is not None
                with self._transaction():
                    self._upsert_session(conn, self.written, self.duplicates, closed=closed)
            except Exception as exc:  # noqa: BLE001 - the counters are also logged at close
                logger.warning("capture: could not save the store's counters in %s (%s)", self.label, _describe(exc))

    def unwritten(self) -> int:
        """Records accepted but neither written nor counted as failed (still queued or in flight)."""
        return max(0, self.accepted - self.written - self.failed - self.duplicates)

    def abandon(self) -> int:
        """Stop writing (close/exit timed out); returns the exact count that will not be written."""
        with self.commit_lock:
            self.abandoned = True
            return self.unwritten()

    def _log_failure(self, count: int, exc: BaseException, doing: str) -> None:
        self._logged_failures += 1
        n = self._logged_failures
        if n <= 10 or n & (n - 1) == 0:  # the first ten, then at powers of two
            logger.warning(
                "capture: %d record(s) not stored in %s while %s (%s); the agent is unaffected "
                "(failure #%d)", count, self.label, doing, _describe(exc), n,
            )
