"""Code shape of the capture layer (issue 12 §6): no store <-> query import cycle, one column
definition for every table, and merge copies the task tables (issue 13 §3)."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

from sqlite_utils import Database

import slm_agents.capture as capture_pkg
from slm_agents.capture import CaptureStore, merge
from slm_agents.capture import columns as cols
from slm_agents.capture.schema import COLUMN_DOCS, migrate
from slm_agents.dataset import list_tasks

CAPTURE = Path(capture_pkg.__file__).parent


def _imports(module: str) -> set[str]:
    """Every module ``slm_agents/capture/<module>.py`` imports from the capture package, at any depth."""
    tree = ast.parse((CAPTURE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.add(node.module or "")
    return found


def test_query_and_paths_do_not_import_the_store_so_there_is_no_cycle() -> None:
    assert _imports("query").isdisjoint({"store", "merge"}), _imports("query")
    assert _imports("_paths") == set()
    assert "query" in _imports("store") and "store" in _imports("merge")
    assert "merge" not in _imports("store")


def test_the_column_definition_is_the_migrated_schema() -> None:
    db = Database(memory=True)
    migrate(db)
    for table, definition in cols.TABLES.items():
        got = [(c.name, c.type) for c in db[table].columns]
        assert got == [(c.name, c.type) for c in definition], table
        assert COLUMN_DOCS[table] == {c.name: c.doc for c in definition}
        assert all(c.doc for c in definition)


def test_the_writer_fills_every_column_from_the_definition() -> None:
    """A record with every call column set lands in the column of that name (no position mix-up)."""
    store = CaptureStore(Database(memory=True), redactor=None)
    plain = {name: f"v-{name}" for name in cols.names("calls", "plain")}
    floats = {name: float(i + 1) for i, name in enumerate(cols.names("calls", "float"))}
    cid = store.log({"messages": [{"role": "user", "content": "hi"}], **plain, **floats, "content": "answer",
                     "error_message": "boom", "tags": ["t"], "valid": True, "input_tokens": 7,
                     "usage": {"output_tokens": 3}, "tool_choice": "auto", "params": {"temperature": 0.1}})
    tid = store.log_tool({"call_id": "c1", "model_call_id": cid, "name": "f", "error": ValueError("bad"),
                          "arguments": {"a": 1}, "latency_ms": 2})
    store.link_escalation(cid, "other", "timeout")
    store.label(cid, "good", score=1.0, note="fine")
    assert store.flush()
    row = store.db["calls"].get(cid)
    assert {k: row[k] for k in plain} == plain and {k: row[k] for k in floats} == floats
    assert (row["content"], row["error_message"], row["tags"], row["valid"]) == ("answer", "boom", '["t"]', 1)
    assert (row["input_tokens"], row["output_tokens"], row["tool_choice"]) == (7, 3, '"auto"')
    tool = store.db["tool_executions"].get(tid)
    assert (tool["call_id"], tool["model_call_id"], tool["error_type"], tool["error_message"]) == (
        "c1", cid, "ValueError", "bad")
    esc = next(store.db.query("select * from escalations"))
    assert (esc["slm_call_id"], esc["llm_call_id"], esc["reason"]) == (cid, "other", "timeout")
    label = next(store.db.query("select * from labels"))
    assert (label["target_id"], label["label"], label["score"], label["note"]) == (cid, "good", 1.0, "fine")


def _worker(path: Path, task: str, n: int, shared_id: str) -> None:
    with CaptureStore(path, redactor=None) as store:
        store.log({"id": shared_id, "messages": [{"role": "user", "content": "shared"}], "route": "llm",
                   "task": task, "input_tokens": 10})
        for i in range(n):
            store.log({"messages": [{"role": "user", "content": f"{path.name} {i}"}], "route": "slm", "task": task,
                       "input_tokens": 10})
    db = Database(path)
    list_tasks(db)  # clusters: writes tasks and call_tasks into this file
    db.conn.close()


def test_merge_copies_the_task_tables_and_recounts_a_shared_task(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _worker(a, "lookup", 2, "01SHARED")
    _worker(b, "lookup", 3, "01SHARED")  # the same call id in both: merged once
    added = merge(tmp_path / "all.db", [a, b])
    assert added["calls"] == 6 and added["call_tasks"] == 6 and added["tasks"] == 1
    db = Database(tmp_path / "all.db")
    rows = list(db.query("select id, name, calls, slm_calls, llm_calls, input_tokens from tasks"))
    assert [(r["name"], r["calls"], r["slm_calls"], r["llm_calls"], r["input_tokens"]) for r in rows] == [
        ("lookup", 6, 5, 1, 60)]
    # every merged call keeps its task: nothing to cluster again, and the id is the one a policy names
    assert [t.id for t in list_tasks(db, recluster=False)] == [rows[0]["id"]]
    assert db.execute("select count(*) from calls where id not in (select call_id from call_tasks)").fetchone()[0] == 0


def test_merge_without_task_tables_adds_none(tmp_path: Path) -> None:
    src = tmp_path / "plain.db"
    with CaptureStore(src, redactor=None) as store:
        store.log({"messages": [{"role": "user", "content": "x"}]})
    assert "tasks" not in merge(tmp_path / "out.db", [src])
    conn = sqlite3.connect(tmp_path / "out.db")
    assert conn.execute("select count(*) from sqlite_master where name = 'tasks'").fetchone()[0] == 0
    conn.close()
