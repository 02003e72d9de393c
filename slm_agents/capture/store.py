"""The capture store: every model call, tool execution, escalation and label, in one SQLite file.

The agent's thread only stamps an id and puts the record on a bounded queue
(:meth:`CaptureStore.log` costs a few microseconds); a daemon writer thread redacts, serialises
and batch-inserts in one transaction per batch. A write that fails is counted and logged (by
type, never with prompt content) and never raised into the agent.

Example:
    >>> from sqlite_utils import Database
    >>> with CaptureStore(Database(memory=True), redactor=Redactor()) as store:
    ...     call_id = store.log({"messages": [{"role": "user", "content": "mail me: a@b.io"}],
    ...                          "route": "slm", "content": "ok"})
    ...     store.flush()
    ...     row = store.db["calls"].get(call_id)
    True
    >>> row["messages"], row["redactions"]
    ('[{"role":"user","content":"mail me: <EMAIL_1>"}]', 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from sqlite_utils import Database

from .._ids import new_id
from ..errors import CaptureError, InvalidRequest
from ..types import Completion
from ._paths import DEFAULT_PATH, ENV_DB, resolve_path
from ._writer import STOP, FlushMarker, RowBuilder, Writer, _describe, check_ts
from .outcomes import log_feedback
from .query import read_call
from .redact import Redactor
from .schema import migrations

__all__ = ["CaptureStore", "CaptureStats", "get_default_store", "set_default_store", "resolve_path",
           "record_from_completion", "DEFAULT_PATH", "ENV_DB"]

logger = logging.getLogger("slm_agents.capture")

OnFull = Literal["drop_newest", "block"]
_DEFAULT = object()


@dataclass(frozen=True)
class CaptureStats:
    """Counters of a store.

    ``accepted`` records were taken by :meth:`CaptureStore.log` & co.; each ends up ``written``,
    ``failed`` (could not be built or inserted; logged by type), a ``duplicates`` (its id was
    already stored: the first row is kept, the later one is not stored) or ``unwritten`` (still
    queued or in flight; after a timed-out close or exit these are lost, and logged with their
    exact count). ``dropped`` records were never accepted (queue full, store closed).
    ``accepted == written + failed + duplicates + unwritten`` at all times.
    """

    enqueued: int
    written: int
    dropped: int
    failed_writes: int
    queued: int
    accepted: int = 0
    failed: int = 0
    duplicates: int = 0
    unwritten: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _create_private(path: Path) -> bool:
    """Create ``path`` with mode 0600 if missing (and its missing folders 0700); True when this call created it."""
    for folder in reversed([p for p in (path.parent, *path.parent.parents) if not p.exists()]):
        folder.mkdir(mode=0o700, exist_ok=True)  # each one: mkdir(parents=True) gives the parents 0755
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _retry_locked(fn: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _connect(path: Path, busy_timeout: float, *, autocommit: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout, check_same_thread=False,
        isolation_level=None if autocommit else "DEFERRED",  # sqlite3's default: deferred transactions
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall(), busy_timeout)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _migrate(db: Database, busy_timeout: float) -> None:
    """Apply pending migrations under a write lock, so concurrent openers do not race."""
    if not migrations.pending(db):
        return

    def attempt() -> None:
        conn = db.conn
        if conn.in_transaction:
            conn.commit()
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrations.apply(db)  # each migration nests as a savepoint
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    _retry_locked(attempt, busy_timeout)


def _db_file(db: Database) -> str:
    for _, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return file or ""
    return ""


def _usable_from_another_thread(conn: sqlite3.Connection) -> bool:
    result: list[bool] = []

    def probe() -> None:
        try:
            conn.execute("SELECT 1").fetchall()
            result.append(True)
        except sqlite3.ProgrammingError:
            result.append(False)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return bool(result and result[0])


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def record_from_completion(
    completion: Completion,
    *,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
    params: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A call record built from a :class:`~slm_agents.types.Completion` (``fields`` win).

    Example:
        >>> from slm_agents.types import Completion
        >>> rec = record_from_completion(Completion(message={"role": "assistant", "content": "hi"}),
        ...                              messages=[{"role": "user", "content": "hello"}], route="slm")
        >>> rec["content"], rec["route"], rec.get("valid")
        ('hi', 'slm', None)
    """
    from .records import completion_fields, merge

    request = {"messages": messages, "tools": tools, "tool_choice": tool_choice,
               "params": dict(params) if params else None}
    return merge(request, completion_fields(completion), fields)


class CaptureStore:
    """Records model calls, tool executions, escalations and labels into one SQLite file.

    Args:
        path_or_db: A file path, a ``sqlite_utils.Database`` (``Database(memory=True)`` in tests),
            or None for ``$SLM_AGENTS_DB`` / ``./slm_agents.db``. A new file is created mode 0600.
        redactor: ``"default"`` (every built-in kind plus plugins' redactors), a
            :class:`~slm_agents.capture.redact.Redactor`, or None to store text as given.
        queue_size: Records that may wait for the writer.
        batch_size: Most records written per transaction.
        flush_interval: Seconds the writer waits to fill a batch before writing what it has.
        on_full: What :meth:`log` does when the queue is full: ``"drop_newest"`` (default:
            the new record is dropped and counted in ``stats.dropped``; the agent never waits)
            or ``"block"`` (wait up to ``block_timeout`` seconds, None = forever, then drop).
        block_timeout: See ``on_full``.
        max_string_chars: A single string longer than this is cut, with a marker saying how
            much was dropped (``calls.truncated`` counts them); None stores everything.
        blob_min_chars: Message texts at least this long are stored once in ``blobs``.
        busy_timeout: Seconds to wait for another writer's lock before retrying/giving up.
        atexit_timeout: Seconds the interpreter waits at exit to flush what is queued.
        on_connect: Called with the writer's ``sqlite3.Connection`` after it is opened.

    Example:
        >>> from sqlite_utils import Database
        >>> store = CaptureStore(Database(memory=True))
        >>> cid = store.log({"messages": [{"role": "user", "content": "hi"}], "route": "llm"})
        >>> store.flush(), store.db["calls"].count, store.stats.written
        (True, 1, 1)
        >>> store.close()
        0
    """

    def __init__(
        self,
        path_or_db: str | os.PathLike[str] | Database | None = None,
        *,
        redactor: Redactor | str | None = "default",
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        on_full: OnFull = "drop_newest",
        block_timeout: float | None = None,
        max_string_chars: int | None = 1_000_000,
        blob_min_chars: int = 1024,
        busy_timeout: float = 30.0,
        atexit_timeout: float = 5.0,
        on_connect: Any = None,
    ) -> None:
        if on_full not in ("drop_newest", "block"):
            raise InvalidRequest(f"on_full must be 'drop_newest' or 'block', not {on_full!r}")
        if queue_size < 1 or batch_size < 1:
            raise InvalidRequest("queue_size and batch_size must be at least 1")
        if redactor == "default":
            redactor = Redactor.default()
        elif isinstance(redactor, str):
            raise InvalidRequest(f"redactor must be 'default', a Redactor or None, not {redactor!r}")
        self.redactor: Redactor | None = redactor
        self._options: dict[str, Any] = dict(
            queue_size=queue_size, batch_size=batch_size, flush_interval=flush_interval,
            max_string_chars=max_string_chars, blob_min_chars=blob_min_chars, busy_timeout=busy_timeout,
            atexit_timeout=atexit_timeout,
        )
        self.on_full: OnFull = on_full
        self.block_timeout = block_timeout
        self._on_connect = on_connect
        self._owns_db = not isinstance(path_or_db, Database)
        self.path: Path | None
        try:
            if isinstance(path_or_db, Database):
                self._db: Database | None = path_or_db
                self.path = Path(_db_file(path_or_db)) if _db_file(path_or_db) else None
                _migrate(path_or_db, busy_timeout)
            else:
                self.path = resolve_path(path_or_db)
                created = _create_private(self.path)
                old_umask = os.umask(0o077) if created else None
                try:
                    conn = _connect(self.path, busy_timeout, autocommit=False)
                    self._db = Database(conn)
                    _migrate(self._db, busy_timeout)
                finally:
                    if old_umask is not None:
                        os.umask(old_umask)
        except (sqlite3.Error, OSError) as exc:
            where = str(self.path) if getattr(self, "path", None) else "the given database"
            raise CaptureError(
                f"cannot open the capture store at {where}: {exc}. Check the path is writable, "
                f"or choose another with CaptureStore(path) or ${ENV_DB}."
            ) from exc
        self._shared_conn = self.path is None  # an in-memory database: one connection for all
        self._inline = self._shared_conn and not _usable_from_another_thread(self._db.conn)
        self._owner_thread = threading.get_ident()
        self._closed = False
        self._start()
        _live_stores.add(self)

    # -- lifecycle -------------------------------------------------------------------------------
    def _start(self) -> None:
        opts = self._options
        self._pid = os.getpid()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=opts["queue_size"])
        self._count_lock = threading.Lock()
        self._enqueued = 0
        builder = RowBuilder(self.redactor, max_string_chars=opts["max_string_chars"],
                             blob_min_chars=opts["blob_min_chars"])
        self._writer = Writer(
            q=self._queue, connect=_writer_connector(self), builder=builder,
            batch_size=opts["batch_size"], flush_interval=opts["flush_interval"],
            lock_timeout=opts["busy_timeout"], label=str(self.path or ":memory:"),
        )
        if not self._inline:
            self._writer.start()
        # at interpreter exit (no close()): flush for up to atexit_timeout, then say what was lost
        self._finalizer = weakref.finalize(self, _shutdown, self._writer, self._inline, None,
                                           self._options["atexit_timeout"])

    def _after_fork(self) -> None:
        """In a forked child: a fresh queue, writer and connections (never the parent's)."""
        if self._closed:
            return
        self._finalizer.detach()
        # Never close what the parent opened: closing a file descriptor drops this process's
        # POSIX locks on the file, including the ones our new connections hold.
        _inherited.extend(c for c in (self._writer.conn, self._db) if c is not None)
        if self._shared_conn:
            self._closed = True  # an in-memory database cannot be shared with a child
            return
        self._db = None  # reopened lazily: the parent's connection must not be used here
        self._start()

    @property
    def db(self) -> Database:
        """The ``sqlite_utils.Database`` to read from (rows appear after :meth:`flush`)."""
        if self._db is None:
            assert self.path is not None
            self._db = Database(_connect(self.path, self._options["busy_timeout"], autocommit=False))
        return self._db

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> CaptureStats:
        """A snapshot of the counters."""
        w = self._writer
        return CaptureStats(
            enqueued=self._enqueued, written=w.written, dropped=self._writer.dropped,
            failed_writes=w.failed, queued=self._queue.qsize(), accepted=w.accepted, failed=w.failed,
            duplicates=w.duplicates, unwritten=w.unwritten(),
        )

    enqueued = property(lambda self: self._enqueued, doc="Records accepted onto the queue.")
    written = property(lambda self: self._writer.written, doc="Records written.")
    dropped = property(lambda self: self._writer.dropped, doc="Records dropped (queue full, or store closed).")
    failed_writes = property(lambda self: self._writer.failed, doc="Records whose write failed.")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged before this call is written (or failed).

        Returns:
            True when done; False on timeout (or when the store is closed).
        """
        if self._closed:
            return self._queue.empty()
        if self._inline:
            if threading.get_ident() != self._owner_thread:
                return False  # the connection only works in its own thread
            self._writer.drain()
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        marker = FlushMarker()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        while not marker.event.wait(0.05):
            if not self._writer.alive():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` without blocking the event loop."""
        if self._inline:
            return self.flush(timeout)
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float | None = 10.0) -> int:
        """Flush, stop the writer and close the connections the store opened. Idempotent.

        Returns:
            How many accepted records could not be written within ``timeout`` (0 when all
            were; the count is also logged, and nothing more is written after close returns).
        """
        if self._closed:
            return self._writer.unwritten() if self._writer.abandoned else 0
        self._closed = True
        self._finalizer.detach()
        lost = _shutdown(self._writer, self._inline, self._db if self._owns_db else None, timeout)
        _live_stores.discard(self)
        if self.redactor is not None:
            self.redactor.clear_cache()  # texts remembered for their findings need not outlive the store
        return lost

    async def aclose(self, timeout: float | None = 10.0) -> int:
        """:meth:`close` without blocking the event loop."""
        if self._inline:
            return self.close(timeout)
        return await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> CaptureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CaptureStore {self.path or ':memory:'} {self.stats.as_dict()}>"

    # -- the hot path ----------------------------------------------------------------------------
    def _put(self, item: tuple[str, str, float, Mapping[str, Any]]) -> bool:
        if self._pid < 0:  # set in a forked child by _reinit_after_fork
            self._after_fork()
        if self._closed:
            with self._count_lock:
                self._writer.dropped += 1
            return False
        with self._count_lock:  # counted before the writer can see it: written <= accepted
            self._writer.accepted += 1
        try:
            if self.on_full == "block":
                self._queue.put(item, timeout=self.block_timeout)
            else:
                self._queue.put_nowait(item)
        except queue.Full:
            with self._count_lock:
                self._writer.accepted -= 1
                self._writer.dropped += 1
                dropped = self._writer.dropped
            if dropped & (dropped - 1) == 0:  # 1, 2, 4, 8, ...: say so without flooding the log
                logger.warning("capture queue full: %d record(s) dropped so far (raise queue_size?)", dropped)
            return False
        with self._count_lock:
            self._enqueued += 1
        if self._inline and self._queue.qsize() >= self._options["batch_size"] and \
                threading.get_ident() == self._owner_thread:
            self._writer.drain()
        return True

    def log(self, record: Mapping[str, Any]) -> str:
        """Queue one model call; returns its id at once (the write happens in the background).

        ``record`` keys are described in docs/capture.md; only ``messages`` is required. Do not
        mutate the record's nested values after logging it.

        Raises:
            InvalidRequest: ``record`` is not a mapping or has no ``messages`` (a programming
                error, raised immediately). Nothing else is ever raised.
        """
        if not isinstance(record, Mapping) or "messages" not in record:
            raise InvalidRequest("a call record is a dict with at least 'messages' (OpenAI chat format)")
        check_ts(record.get("ts"))
        rid = record.get("id") or new_id()
        self._put(("call", str(rid), time.time(), dict(record)))
        return str(rid)

    def log_completion(
        self,
        completion: Completion,
        *,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        params: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """Queue a call built from a :class:`~slm_agents.types.Completion`; returns its id."""
        return self.log(record_from_completion(
            completion, messages=messages, tools=tools, tool_choice=tool_choice, params=params, **fields
        ))

    def log_tool(self, record: Mapping[str, Any]) -> str:
        """Queue one tool execution: ``call_id``, ``name``, ``arguments``, ``result`` or
        ``error`` (an exception or text), ``latency_ms``, plus ``model_call_id``, ``run_id``, ...
        """
        if not isinstance(record, Mapping):
            raise InvalidRequest("a tool record is a dict: call_id, name, arguments, result or error, latency_ms")
        check_ts(record.get("ts"))
        rid = record.get("id") or new_id()
        self._put(("tool", str(rid), time.time(), dict(record)))
        return str(rid)

    def link_escalation(self, slm_call_id: str, llm_call_id: str, reason: str, **extra: Any) -> str:
        """Record that the LLM call ``llm_call_id`` replaced the SLM attempt ``slm_call_id``; returns the row's id.

        ``id=`` names the row and ``ts=`` dates it, as in :meth:`log` (a second row with the same
        id is not stored, and counted as a duplicate); any other keyword argument is kept in its
        ``metadata``, redacted.

        Raises:
            InvalidRequest: ``ts`` is not seconds since the epoch (2000-2100), a datetime or ISO text.
        """
        check_ts(extra.get("ts"))
        rid = str(extra.pop("id", None) or new_id())
        rec = {"slm_call_id": slm_call_id, "llm_call_id": llm_call_id, "reason": reason, **extra}
        self._put(("escalation", rid, time.time(), rec))
        return rid

    def record_verdict(self, call_id: str, *, valid: bool | None, escalation_reason: str | None) -> None:
        """Give the logged call ``call_id`` the verdict of the routed step it turned out to be.

        A LangGraph SLM node's call is logged as an ordinary call when it ends; the escalation
        node judges it afterwards. This sets its ``valid`` (the policy's verdict) and
        ``escalation_reason`` as a router sets them on the SLM attempts it logs (see
        :func:`slm_agents.capture.records.log_step`). Queued like every record, after the call.

        Example:
            >>> from sqlite_utils import Database
            >>> store = CaptureStore(Database(memory=True), redactor=None)
            >>> cid = store.log({"messages": [{"role": "user", "content": "hi"}], "route": "slm"})
            >>> store.record_verdict(cid, valid=False, escalation_reason="unknown_tool")
            >>> store.flush(), next(store.db.query("select valid, escalation_reason from calls"))
            (True, {'valid': 0, 'escalation_reason': 'unknown_tool'})
        """
        self._put(("verdict", str(call_id), time.time(), {"valid": valid, "escalation_reason": escalation_reason}))

    def label(self, call_or_run_id: str, label: str | None = None, *, score: float | None = None,
              note: str | None = None, **extra: Any) -> str:
        """Attach feedback to a call or a run; returns the label's id."""
        rid = new_id()
        rec = {"target_id": call_or_run_id, "label": label, "score": score, "note": note, "extra": extra}
        self._put(("label", rid, time.time(), rec))
        return rid

    def feedback(self, call_or_run_id: str, *, good: bool | None = None, score: float | None = None,
                 note: str | None = None) -> str:
        """Thumbs up/down (``good=``) or a 0..1 ``score`` on a call, or on a run or thread (then
        on the call that produced its final answer); returns the label's id.

        Negative feedback (thumbs down, a score under 0.5) counts against the call's task in
        outcome readiness (:mod:`slm_agents.capture.outcomes`): the report and
        ``slm-agents tasks`` show it. Stored as a ``labels`` row (``"good"``/``"bad"``, score).

        Raises:
            InvalidRequest: Neither ``good`` nor ``score`` was given, or the score is not in 0..1.

        Example:
            >>> from sqlite_utils import Database
            >>> store = CaptureStore(Database(memory=True), redactor=None)
            >>> cid = store.log({"messages": [{"role": "user", "content": "hi"}], "route": "slm"})
            >>> _ = store.feedback(cid, good=False, note="wrong table")
            >>> store.flush(), [(r["label"], r["score"]) for r in store.db.query("select * from labels")]
            (True, [('bad', 0.0)])
        """
        return log_feedback(self, call_or_run_id, good=good, score=score, note=note)

    def get_call(self, call_id: str, *, hydrate: bool = True) -> dict[str, Any] | None:
        """One stored call as a dict, JSON columns decoded and blobs put back (see ``read_call``)."""
        return read_call(self.db, call_id, hydrate=hydrate)


def _shutdown(writer: Writer, inline: bool, db: Database | None, timeout: float | None) -> int:
    """Stop ``writer`` after it wrote what is queued; close ``db`` (the store's own connection).

    Returns the exact number of accepted records that were not written (also logged); once
    this returns nothing more is written, so the count stays true.
    """
    lost = 0
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        if inline:
            writer.drain()
        elif writer.alive():
            with contextlib.suppress(queue.Full):
                writer.queue.put(STOP, timeout=timeout)
            writer.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if writer.alive() or writer.unwritten():
            lost = writer.abandon()
        if lost:
            logger.warning("capture: %d record(s) accepted but not written to %s within %ss of closing "
                           "(raise close(timeout=...) or atexit_timeout)", lost, writer.label, timeout)
        if db is not None and not writer.alive():
            db.conn.close()
    except Exception as exc:  # noqa: BLE001 - closing must never raise into the agent
        logger.warning("capture: error while closing (%s)", _describe(exc))
    return lost


def _writer_connector(store: CaptureStore) -> Any:
    """The writer's connection factory; it must not hold a reference to the store itself."""
    if store._shared_conn:
        db = store._db
        assert db is not None
        return lambda: (db.conn, db.atomic)
    path, busy_timeout, on_connect = store.path, store._options["busy_timeout"], store._on_connect
    assert path is not None

    def connect() -> tuple[sqlite3.Connection, Any]:
        conn = _connect(path, busy_timeout, autocommit=True)
        if on_connect is not None:
            on_connect(conn)
        return conn, lambda: _immediate(conn)

    return connect


_live_stores: weakref.WeakSet[CaptureStore] = weakref.WeakSet()
_inherited: list[Any] = []


def _reinit_after_fork() -> None:
    for store in list(_live_stores):
        store._pid = -1  # the next log() in the child rebuilds the writer
    _defaults.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)

_defaults_lock = threading.Lock()
_defaults: dict[str, CaptureStore] = {}


def get_default_store(path: str | os.PathLike[str] | None = None, **options: Any) -> CaptureStore:
    """The process-wide store for ``path`` (default ``$SLM_AGENTS_DB`` or ``./slm_agents.db``).

    Created on first use with ``options`` (later calls ignore them); one per process and path.
    """
    key = str(resolve_path(path))
    with _defaults_lock:
        store = _defaults.get(key)
        if store is None or store.closed:
            store = CaptureStore(key, **options)
            _defaults[key] = store
        return store


def set_default_store(store: CaptureStore | None, path: str | os.PathLike[str] | None = None) -> None:
    """Make ``store`` the default for ``path`` (None forgets it); for tests and embedding."""
    key = str(resolve_path(path))
    with _defaults_lock:
        if store is None:
            _defaults.pop(key, None)
        else:
            _defaults[key] = store
