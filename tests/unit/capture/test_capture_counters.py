"""Issue 13, section 2: ``slm-agents stats`` shows what the stores accepted, wrote, dropped and failed.

Each store saves its counters in ``capture_sessions`` with every batch it writes and at close, so
a loss is visible in the file itself, not only in the writing process's log.
"""

from __future__ import annotations

import json
import threading

from click.testing import CliRunner
from sqlite_utils import Database

from slm_agents.capture import CaptureStore, merge
from slm_agents.capture.query import capture_counters
from slm_agents.cli import cli

from .conftest import msg, run_python


class Unprintable:
    """A value no row can be built from (its text raises): the record is counted as failed."""

    def __str__(self) -> str:
        raise RuntimeError("no text")

    __repr__ = __str__


def _stats(path) -> tuple[str, dict]:
    runner = CliRunner()
    text = runner.invoke(cli, ["stats", "--db", str(path)])
    as_json = runner.invoke(cli, ["stats", "--db", str(path), "--json"])
    assert text.exit_code == 0 and as_json.exit_code == 0, text.output + as_json.output
    return text.output, json.loads(as_json.output)["capture"]


def test_stats_shows_accepted_written_dropped_failed_and_duplicates(tmp_path):
    path = tmp_path / "c.db"
    release = threading.Event()
    # the writer's first connection waits: the queue (2 records) fills and later records are dropped
    store = CaptureStore(path, redactor=None, queue_size=2, flush_interval=0.01,
                         on_connect=lambda conn: release.wait(30))
    offered = 40
    for i in range(offered):
        store.log({"messages": msg(f"call {i}")})
    release.set()
    assert store.flush(30)
    store.log({"id": "twice", "messages": msg("first")})
    assert store.flush(30)
    store.log({"id": "twice", "messages": msg("second")})
    store.log({"messages": msg("x"), "route": Unprintable()})
    assert store.close() == 0
    s = store.stats
    assert s.dropped > 0 and s.failed == 1 and s.duplicates == 1

    line, counters = _stats(path)
    assert counters == {"stores": 1, "not_closed": 0, "accepted": s.accepted, "written": s.written,
                        "dropped": s.dropped, "failed": 1, "duplicates": 1, "not_written": 0}
    assert counters["accepted"] + counters["dropped"] == offered + 3
    assert counters["written"] == Database(path)["calls"].count
    assert (f"capture: {s.accepted} accepted, {s.written} written, {s.dropped} dropped, 1 failed, "
            f"1 duplicate ids, 0 not written (1 store(s))") in line


def test_a_process_that_ends_without_close_shows_as_not_closed_with_what_it_had_not_written(tmp_path):
    path = tmp_path / "killed.db"
    code = f"""
import os
from slm_agents.capture import CaptureStore
store = CaptureStore({str(path)!r}, redactor=None)
for i in range(5):
    store.log({{"messages": [{{"role": "user", "content": f"m{{i}}"}}]}})
assert store.flush(30)
for i in range(7):
    store.log({{"messages": [{{"role": "user", "content": f"late{{i}}"}}]}})
os._exit(0)  # like a kill: no close, no exit flush
"""
    assert run_python(code).returncode == 0
    line, counters = _stats(path)
    assert counters["stores"] == 1 and counters["not_closed"] == 1
    assert counters["written"] == Database(path)["calls"].count >= 5
    assert counters["accepted"] - counters["written"] == counters["not_written"]
    assert "1 not closed" in line


def test_opening_a_store_without_logging_adds_no_counters_and_old_files_say_so(tmp_path):
    CaptureStore(tmp_path / "empty.db").close()
    assert capture_counters(Database(tmp_path / "empty.db")) == {
        "stores": 0, "not_closed": 0, "accepted": 0, "written": 0, "dropped": 0, "failed": 0, "duplicates": 0,
        "not_written": 0}
    old = Database(tmp_path / "empty.db")
    old["capture_sessions"].drop()
    assert capture_counters(old) is None
    assert "no store counters" in _stats(tmp_path / "empty.db")[0]


def test_merge_adds_up_every_source_stores_counters(tmp_path):
    for name in ("a.db", "b.db"):
        with CaptureStore(tmp_path / name, redactor=None) as store:
            for i in range(3):
                store.log({"messages": msg(f"{name} {i}")})
    merge(tmp_path / "all.db", [tmp_path / "a.db", tmp_path / "b.db"])
    counters = capture_counters(Database(tmp_path / "all.db"))
    assert counters is not None and counters["stores"] == 2 and counters["accepted"] == counters["written"] == 6
