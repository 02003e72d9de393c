"""Issue 13 audit: inputs the first round of fixes missed (each test fails on the code before it).

A foreign SQLite file with its own ``calls`` table, a corrupt data page behind a good first page,
text where figures belong, and terminal escape codes in error lines, calibrate tables and chart labels.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from slm_agents.capture import CaptureStore
from slm_agents.cli import cli

ESC = "\x1b[31mRED\x1b[0m \x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\ \x1b]0;title\x07 \x9b31m"
RAW = ("\x1b", "\x07", "\x9b")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), result.output
    for needle in needles:
        assert needle in result.output, result.output


def _shadow_db(path, task: str, n: int = 30):
    with CaptureStore(path, redactor=None) as store:
        for i in range(n):
            call = [{"id": f"c{i}", "type": "function",
                     "function": {"name": "get_weather", "arguments": json.dumps({"city": f"P{i}"})}}]
            llm = store.log({"messages": [{"role": "user", "content": f"weather {i}"}], "tools": TOOLS,
                             "route": "llm", "task": task, "model": "gpt", "tool_calls": call})
            shadow = store.log({"messages": [{"role": "user", "content": f"weather {i}"}], "tools": TOOLS,
                                "route": "shadow", "task": task, "model": "smol", "tool_calls": call if i % 3 else [],
                                "confidence": (i % 10) / 10, "latency_ms": 10.0 + i})
            store.link_escalation(shadow, llm, "shadow")
    return path


def _tables(path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))
    finally:
        conn.close()


def test_a_foreign_sqlite_file_with_a_calls_table_is_refused_and_left_unchanged(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE calls (x)")
    conn.commit()
    conn.close()
    db = str(other)
    commands = [["stats", "--db", db], ["calls", "--db", db], ["call", "x", "--db", db], ["tasks", "--db", db],
                ["export", "--db", db, "-o", str(tmp_path / "exp")], ["eval", "--db", db],
                ["calibrate", "--db", db, "--from", "shadow", "-o", str(tmp_path / "p.json")],
                ["report", "--db", db, "-o", str(tmp_path / "r.html")], ["merge", db, "-o", str(tmp_path / "m.db")]]
    for args in commands:  # was: tasks/export/eval/calibrate added _sqlite_migrations, then "table calls already exists"
        _one_line_error(_run(*args), db, "not a slm-agents capture database")
    assert _tables(other) == ["calls"]
    assert not (tmp_path / "m.db").exists()  # merge took it as an empty capture file (0 calls, exit 0)


def test_a_corrupt_data_page_behind_a_good_first_page_names_the_file(tmp_path):
    path = _shadow_db(tmp_path / "cap.db", "weather", n=200)
    raw = bytearray(path.read_bytes())
    size = int.from_bytes(raw[16:18], "big")
    pages = len(raw) // size
    for page in range(pages // 2, pages):  # page 1 (the schema) stays readable: the file opens
        for k in range(8, size, 50):
            raw[page * size + k] ^= 0x5A
    path.write_bytes(bytes(raw))
    for args in (["stats"], ["calls"], ["report", "-o", str(tmp_path / "r.html")]):
        _one_line_error(_run(*args, "--db", str(path)), str(path), "malformed")  # was: "database error: ..." only


def test_text_where_figures_belong_gives_no_traceback(tmp_path):
    path = _shadow_db(tmp_path / "cap.db", "weather")
    conn = sqlite3.connect(path)  # as another tool could leave it: text in REAL/INTEGER columns
    conn.execute("UPDATE calls SET latency_ms = 'NaN', confidence = 'inf', input_tokens = 'lots'")
    conn.commit()
    conn.close()
    db = str(path)
    for args in (["stats", "--db", db], ["tasks", "--db", db], ["report", "--db", db, "-o", str(tmp_path / "r.html")],
                 ["calibrate", "--db", db, "--from", "shadow", "-o", str(tmp_path / "p.json")]):
        result = _run(*args)
        assert result.exit_code == 0 and result.exception is None, (args, result.output, result.exception)
    assert "latency p50 -" in _run("stats", "--db", db).output  # no number to take a percentile of


def test_escape_codes_in_task_names_are_shown_not_obeyed_in_error_lines_and_calibrate_tables(tmp_path):
    path = _shadow_db(tmp_path / "cap.db", "task " + ESC)
    assert _run("tasks", "--db", str(path)).exit_code == 0  # clusters: the task gets its name
    result = _run("export", "--db", str(path), "--task", "nope", "-o", str(tmp_path / "e"))
    _one_line_error(result, "no task", "\\x1b[31mRED")  # the error lists the known tasks' names
    assert not any(ch in result.output for ch in RAW), result.output
    result = _run("calibrate", "--db", str(path), "--from", "shadow", "-o", str(tmp_path / "p.json"))
    assert result.exit_code == 0, result.output
    assert "task \\x1b[31mRED" in result.output and not any(ch in result.output for ch in RAW), result.output


def test_report_chart_labels_show_escape_codes_and_nothing_raw_reaches_the_terminal(tmp_path):
    pytest.importorskip("matplotlib", reason="the report's charts need the loop extra")
    path = _shadow_db(tmp_path / "cap.db", "task " + ESC)
    out = tmp_path / "r.html"
    result = _run("report", "--db", str(path), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert not any(ch in result.output for ch in RAW), result.output  # was: matplotlib's missing-glyph warning
    charts = "".join(part.split("</svg>")[0] for part in out.read_text(encoding="utf-8").split("<svg")[1:])
    assert "\x1b" not in charts and "task \\x1b[31mRED" in charts


def test_folders_the_store_creates_are_0700_and_its_files_0600(tmp_path, monkeypatch):
    import os
    import stat

    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)  # a usual umask: mkdir(parents=True) made the parents 0755
    try:
        with CaptureStore("new/sub/cap.db", redactor=None) as store:
            store.log({"messages": [{"role": "user", "content": "x"}], "route": "llm"})
            assert store.flush(30)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "new" / "sub").iterdir()}
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "sub").stat().st_mode) == 0o700
    assert modes and set(modes.values()) == {0o600}, modes  # cap.db and its -wal/-shm


@pytest.mark.parametrize("content", [b"", b"hello, not a model\n" * 20, bytes(range(256)) * 8])
def test_models_with_a_file_that_is_not_gguf_is_one_line_naming_it(tmp_path, content):
    pytest.importorskip("llama_cpp", reason="models reads GGUF metadata through llama-cpp-python")
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(content)
    _one_line_error(_run("models", "--model-path", str(bad)), str(bad), "GGUF")  # was: llama_cpp's ValueError traceback


@pytest.mark.parametrize(("policy", "needle"), [
    ({"slm_tasks": 5}, "slm_tasks must be a list of task names"),  # was: TypeError traceback
    ({"llm_tasks": "weather"}, "llm_tasks must be a list of task names"),  # was: a set of its letters
    ({"confidence_threshold": float("inf")}, "confidence_threshold"),  # was: the line did not name the file
])
def test_a_bad_policy_file_is_one_line_naming_it(tmp_path, policy, needle):
    db = _shadow_db(tmp_path / "cap.db", "weather")
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy), encoding="utf-8")
    _one_line_error(_run("calibrate", "--db", str(db), "--from", "shadow", "-o", str(path)), str(path), needle)
    assert json.loads(path.read_text(encoding="utf-8")) == policy  # left as it was


@pytest.mark.parametrize("tokens", [10**30, 1e30, -(2**70)])
def test_a_token_count_past_64_bits_is_left_out_not_the_whole_record(tmp_path, tokens):
    with CaptureStore(tmp_path / "cap.db", redactor=None) as store:
        cid = store.log({"messages": [{"role": "user", "content": "x"}], "route": "llm", "input_tokens": tokens,
                         "output_tokens": 7})
        assert store.flush(30)
        row = store.db["calls"].get(cid)  # was: OverflowError, the record counted failed and lost
        assert store.stats.failed == 0
    assert row["input_tokens"] is None and row["output_tokens"] == 7



def test_report_leaves_out_latencies_that_are_text_or_infinite(tmp_path):
    import warnings

    pytest.importorskip("matplotlib", reason="the report's charts need the loop extra")
    path = _shadow_db(tmp_path / "cap.db", "weather")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE calls SET latency_ms = 'slow' WHERE rowid % 3 = 0")  # was: ValueError traceback
    conn.execute("UPDATE calls SET latency_ms = ? WHERE rowid % 3 = 1", [float("inf")])  # was: numpy RuntimeWarning
    conn.commit()
    conn.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning inside the report fails the command here
        result = _run("report", "--db", str(path), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)


@pytest.mark.parametrize("args", [["calls", "-n", "99999999999999999999"], ["calls", "-n", "-5"],
                                  ["eval", "--limit", "0"], ["eval", "--limit", "-1"], ["eval", "--max-tokens", "0"]])
def test_counts_out_of_range_are_usage_errors(tmp_path, args):
    db = _shadow_db(tmp_path / "cap.db", "weather", n=3)
    # was: OverflowError traceback (-n 1e20), every call listed (-n -5: SQLite's LIMIT -5 has no limit),
    # "no cases to evaluate" (--limit 0/-1), an empty replay (--max-tokens 0)
    result = _run(*args, "--db", str(db))
    assert result.exit_code == 2 and "is not in the range" in result.output, result.output
