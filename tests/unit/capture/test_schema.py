"""Migrations from a blank file and from the previous schema; generated docs; file modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlite_utils import Database

from slm_agents.capture import CaptureStore, migrations, schema_markdown
from slm_agents.capture.schema import update_docs

from .conftest import REPO, msg

EXPECTED_TABLES = {"calls", "tool_executions", "escalations", "blobs", "labels"}


def test_blank_file_gets_every_table_and_every_migration(db_path):
    with CaptureStore(db_path, redactor=None):
        pass
    db = Database(db_path)
    assert set(db.table_names()) >= EXPECTED_TABLES
    assert [m.name for m in migrations.applied(db)] == [m.name for m in migrations._migrations]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    index_columns = {tuple(i.columns) for i in db["calls"].indexes}
    assert {("ts",), ("run_id",), ("task",), ("route",)} <= index_columns


def test_upgrade_from_the_previous_schema_keeps_rows(db_path):
    last = migrations._migrations[-1].name
    db = Database(db_path)
    migrations.apply(db, stop_before=last)  # the database as the previous release left it
    assert last not in {m.name for m in migrations.applied(db)}
    db["calls"].insert({"id": "01OLDROW", "ts": "2024-01-01T00:00:00.000Z", "messages": "[]", "route": "llm"})
    db.conn.commit()
    db.conn.close()

    with CaptureStore(db_path, redactor=None) as store:
        store.log({"messages": msg(), "route": "slm"})
        assert store.flush(10)
        applied = [m.name for m in migrations.applied(store.db)]
        assert applied[-1] == last
        assert store.db["calls"].count == 2
        assert store.db["calls"].get("01OLDROW")["route"] == "llm"


def test_opening_an_up_to_date_file_is_a_no_op(db_path):
    CaptureStore(db_path, redactor=None).close()
    before = Database(db_path).execute("select count(*) from _sqlite_migrations").fetchone()[0]
    CaptureStore(db_path, redactor=None).close()
    after = Database(db_path).execute("select count(*) from _sqlite_migrations").fetchone()[0]
    assert before == after == len(migrations._migrations)


def test_file_and_wal_files_are_owner_only(db_path):
    old = os.umask(0o022)  # a typical permissive umask must not leak into the files
    try:
        store = CaptureStore(db_path, redactor=None)
        store.log({"messages": msg()})
        assert store.flush(10)
        for suffix in ("", "-wal", "-shm"):
            path = Path(str(db_path) + suffix)
            assert path.exists(), suffix
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (suffix, oct(path.stat().st_mode))
        store.close()
    finally:
        os.umask(old)


def test_docs_schema_section_is_generated_from_the_code():
    doc = REPO / "docs" / "capture.md"
    assert doc.exists(), "docs/capture.md is missing"
    stale = update_docs(doc, check=True)
    assert not stale, "docs/capture.md is out of date: run python -m slm_agents.capture docs/capture.md"


def test_schema_markdown_documents_every_column():
    text = schema_markdown()
    db = Database(memory=True)
    migrations.apply(db)
    for table in EXPECTED_TABLES:
        assert f"### `{table}`" in text
        for column in db[table].columns_dict:
            line = next(line for line in text.splitlines() if line.startswith(f"| `{column}` |"))
            assert not line.rstrip().endswith("|  |"), f"{table}.{column} has no description"
