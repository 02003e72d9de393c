"""The writer's multi-row inserts: every row stored once, duplicates counted, within SQLite's parameter limit."""

from __future__ import annotations

import sqlite3

import pytest

from slm_agents.capture import CaptureStore, Redactor, _writer


@pytest.mark.parametrize("count", [1, 2, 3, 127, 128, 129, 300, 1000])
def test_every_record_of_a_batch_is_stored_once_whatever_its_size(tmp_path, count: int) -> None:
    store = CaptureStore(tmp_path / "c.db", redactor=Redactor(), batch_size=1000, queue_size=2 * count + 10)
    ids = [store.log({"id": f"c{i}", "messages": [{"role": "system", "content": f"{i % 200:03d}" + "x" * 1500},
                                                  {"role": "user", "content": f"mail me at u{i}@x.io"}]})
           for i in range(count)]  # 200 system prompts at most: each a blob, stored once
    tool_ids = [store.log_tool({"id": f"t{i}", "name": "find", "result": "ok"}) for i in range(count)]
    assert store.flush()
    assert sorted(r["id"] for r in store.db.query("select id from calls")) == sorted(ids)
    assert sorted(r["id"] for r in store.db.query("select id from tool_executions")) == sorted(tool_ids)
    assert store.db["blobs"].count == min(count, 200)
    messages = {r["id"]: r["messages"] for r in store.db.query("select id, messages from calls")}
    assert messages["c7" if count > 7 else "c0"].endswith('"content":"mail me at <EMAIL_1>"}]')
    assert store.stats.written == 2 * count and store.stats.duplicates == 0
    store.close()


def test_duplicate_ids_within_one_multi_row_statement_keep_the_first_and_are_counted(tmp_path) -> None:
    store = CaptureStore(tmp_path / "c.db", redactor=None, batch_size=500)
    for i in range(200):
        store.log({"id": f"c{i % 150}", "messages": [{"role": "user", "content": f"call {i}"}]})
    assert store.flush()
    assert store.db["calls"].count == 150
    assert store.db["calls"].get("c10")["messages"] == '[{"role":"user","content":"call 10"}]'  # the first
    stats = store.stats
    assert (stats.written, stats.duplicates, stats.unwritten) == (150, 50, 0)
    store.close()


class _OldSQLite:
    """A connection as Python 3.10 has it: no getlimit (SQLite then allowed 999 parameters)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: list[object]) -> sqlite3.Cursor:
        assert len(params) <= 999
        return self._conn.execute(sql, params)


def test_chunks_fit_the_parameter_limit_of_old_sqlite() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("create table calls (" + ", ".join(f"{c} primary key" if c == "id" else c
                                                     for c in _writer.CALL_COLUMNS) + ")")
    width = len(_writer.CALL_COLUMNS)
    assert _writer._chunk_rows(_OldSQLite(conn), width) * width <= 999  # type: ignore[arg-type]
    rows = [tuple(f"r{i}" if c == "id" else None for c in _writer.CALL_COLUMNS) for i in range(100)]
    rows.append(rows[0])  # a duplicate: ignored
    assert _writer._insert_rows(_OldSQLite(conn), "calls", rows) == 100  # type: ignore[arg-type]
    assert conn.execute("select count(*) from calls").fetchone() == (100,)


def test_a_batch_with_a_long_row_goes_row_by_row_and_is_stored_whole(tmp_path, monkeypatch) -> None:
    multi_row: list[str] = []  # ids of the call rows inserted by multi-row statements
    insert_rows = _writer._insert_rows

    def spy(conn, table, rows):
        multi_row.extend(row[0] for row in rows if table == "calls")
        return insert_rows(conn, table, rows)

    monkeypatch.setattr(_writer, "_insert_rows", spy)
    store = CaptureStore(tmp_path / "c.db", redactor=None, batch_size=100)
    for i in range(20):
        store.log({"id": f"c{i}", "messages": [{"role": "user", "content": "hi"}],
                   "content": "x" * (70_000 if i == 7 else 10)})  # an answer is never a blob
    assert store.flush()
    assert store.db["calls"].count == 20 and store.stats.written == 20
    assert "c7" not in multi_row  # the long row (and its batch) went through executemany
    assert len(store.get_call("c7")["content"]) == 70_000
    store.close()
    assert _writer._short_rows("calls", [tuple("x" * 10 for _ in _writer.CALL_COLUMNS)])
    blob = ("h", "text", 70_000, "x" * 70_000, "t")
    assert not _writer._short_rows("blobs", [("h", "text", 5, "short", "t"), blob])
