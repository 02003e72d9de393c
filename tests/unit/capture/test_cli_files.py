"""Issue 13, section 3: file modes, --force, read-only opens, schema versions, corrupt files."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from slm_agents.capture import CaptureStore
from slm_agents.cli import cli

from .conftest import msg


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def capture_db(tmp_path):
    path = tmp_path / "cap.db"
    with CaptureStore(path, redactor=None) as store:
        for i in range(8):
            store.log({"messages": msg(f"what is the weather in city {i}"), "route": "llm", "task": "weather",
                       "content": f"sunny {i}", "model": "gpt", "input_tokens": 10, "output_tokens": 5})
    return path


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), result.output
    for needle in needles:
        assert needle in result.output, result.output


def _commands(db: str, tmp_path) -> list[list[str]]:
    return [
        ["stats", "--db", db], ["calls", "--db", db], ["call", "x", "--db", db], ["calls", "--db", db, "show", "x"],
        ["tasks", "--db", db], ["export", "--db", db, "-o", str(tmp_path / "exp")], ["eval", "--db", db],
        ["calibrate", "--db", db, "--from", "shadow", "-o", str(tmp_path / "p.json")],
        ["report", "--db", db, "-o", str(tmp_path / "r.html")], ["merge", db, "-o", str(tmp_path / "m.db")],
    ]


@pytest.mark.parametrize("content", [b"this is not sqlite at all\x00\xff" * 100, b"SQLite format 3\x00" + b"\x07" * 500])
def test_corrupt_or_non_sqlite_file_gives_one_line_naming_it_in_every_command(tmp_path, content):
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    for args in _commands(str(bad), tmp_path):
        _one_line_error(_run(*args), "bad.db")


def test_read_commands_never_add_tables_to_a_non_capture_db(tmp_path):
    other = tmp_path / "other.db"
    Database(other)["things"].insert({"a": 1})
    for args in _commands(str(other), tmp_path):
        _one_line_error(_run(*args), "other.db")
    assert Database(other).table_names() == ["things"]


def test_read_commands_work_on_a_read_only_file_and_do_not_change_it(capture_db, tmp_path):
    os.chmod(capture_db, 0o400)
    before = capture_db.read_bytes()
    try:
        for args in (["stats", "--db", str(capture_db)], ["calls", "--db", str(capture_db)],
                     ["report", "--db", str(capture_db), "-o", str(tmp_path / "r.html")]):
            result = _run(*args)
            assert result.exit_code == 0, (args, result.output, result.exception)
    finally:
        os.chmod(capture_db, 0o600)
    assert capture_db.read_bytes() == before


def test_a_db_from_a_newer_version_gives_a_clear_error(capture_db):
    Database(capture_db)["_sqlite_migrations"].insert({"migration_set": "slm_agents", "name": "m999_future",
                                                      "applied_at": "2030"})
    _one_line_error(_run("stats", "--db", str(capture_db)), "newer slm-agents")


def test_an_older_db_is_migrated_by_writing_commands_only(capture_db, tmp_path):
    conn = sqlite3.connect(capture_db)
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm003_add_indexes'")
    conn.commit()
    conn.close()
    assert _run("stats", "--db", str(capture_db)).exit_code == 0
    names = {r["name"] for r in Database(capture_db)["_sqlite_migrations"].rows}
    assert "m003_add_indexes" not in names  # a read command does not migrate
    assert _run("tasks", "--db", str(capture_db)).exit_code == 0
    names = {r["name"] for r in Database(capture_db)["_sqlite_migrations"].rows}
    assert "m003_add_indexes" in names


def test_exports_report_and_card_are_0600_in_a_0700_folder_and_export_refuses_to_overwrite(capture_db, tmp_path):
    out = tmp_path / "exp"
    result = _run("export", "--db", str(capture_db), "-o", str(out), "--val-fraction", "0.2")
    assert result.exit_code == 0, result.output
    assert _mode(out) == 0o700
    for name in ("train.jsonl", "validation.jsonl", "README.md"):
        assert _mode(out / name) == 0o600, name
    _one_line_error(_run("export", "--db", str(capture_db), "-o", str(out)), "--force")
    assert _run("export", "--db", str(capture_db), "-o", str(out), "--force").exit_code == 0
    report = tmp_path / "r.html"
    report.write_text("old")
    os.chmod(report, 0o644)
    assert _run("report", "--db", str(capture_db), "-o", str(report)).exit_code == 0
    assert _mode(report) == 0o600


def test_missing_parent_folder_is_a_one_line_error(capture_db, tmp_path):
    _one_line_error(_run("export", "--db", str(capture_db), "-o", str(tmp_path / "no" / "such")), "does not exist")
    _one_line_error(_run("report", "--db", str(capture_db), "-o", str(tmp_path / "no" / "r.html")), "does not exist")


@pytest.mark.parametrize("content", [b"this is not sqlite at all\x00\xff" * 100, b"SQLite format 3\x00" + b"\x07" * 500])
def test_demo_with_a_corrupt_capture_file_is_one_line_naming_it_before_any_model_loads(tmp_path, content):
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    _one_line_error(_run("demo", "--db", str(bad), "--model-path", str(tmp_path / "never-loaded.gguf")), "bad.db")


def test_models_with_a_missing_gguf_is_one_line(tmp_path):
    _one_line_error(_run("models", "--model-path", str(tmp_path / "missing.gguf")), "missing.gguf")
