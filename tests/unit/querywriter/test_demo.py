"""``slm-agents demo`` plumbing on FakeRuntime: printing, capture, and the stats/tasks/export tail."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from slm_agents.capture import CaptureStore
from slm_agents.cli import cli
from slm_agents.demo import DEMO_QUESTIONS, llm_from_env, run_demo, show_loop
from slm_agents.querywriter import is_open_question
from slm_agents.runtimes.fake import FakeRuntime


def tc(name: str, **arguments: object) -> dict:
    return {"tool_calls": [{"name": name, "arguments": arguments}], "usage": (120, 12)}


def lookup(table: str, query: str) -> list[dict]:
    return [tc("select_table", table=table), tc("choose_table", table=table), tc("run_sql", query=query)]


def test_demo_questions_are_four_lookups_and_one_open_question() -> None:
    assert 4 <= len(DEMO_QUESTIONS) <= 6
    assert [is_open_question(q) for q in DEMO_QUESTIONS].count(True) == 1


def test_llm_from_env() -> None:
    assert llm_from_env({}) is None
    llm = llm_from_env({"OPENAI_API_KEY": "sk-test"})
    assert llm.model == "gpt-4o-mini" and "sk-test" not in repr(llm)


def test_run_demo_prints_each_step_and_show_loop_exports(tmp_path: Path) -> None:
    slm = FakeRuntime([
        *lookup("customers", "SELECT name FROM customers WHERE city = 'Paris'"),
        tc("select_table", table="products"), tc("choose_table", table="products"),
        tc("run_sql", query="SELECT * FROM books"), tc("run_sql", query="SELECT name FROM products WHERE category = 'Books'"),
        tc("ask_database", questions=["Sales per category?"]),
        *lookup("products", "SELECT category, COUNT(*) FROM products GROUP BY category"),
        "Promote Sports: it sells most.",
    ])
    store = CaptureStore(tmp_path / "c.db", redactor=None)
    lines: list[str] = []
    questions = ["Which customers live in Paris?", "List the products in the Books category.",
                 "Which product category should we promote next quarter, and why?"]
    answers = run_demo(slm, None, questions, store=store, echo=lines.append)
    store.close()
    text = "\n".join(lines)
    assert "No LLM configured" in text
    assert "select_table: customers" in text and "choose_table: customers" in text
    assert "run_sql: SELECT name FROM customers WHERE city = 'Paris'" in text
    assert "-> 2 row(s): Alice Martin; Chloe Dubois" in text
    assert "-> error: no such table: books" in text and "SQL ran after 1 fix(es): 3 row(s)" in text
    assert "researcher      slm (route:llm_tasks)" in text and "answer: Promote Sports" in text
    assert "3/3 questions answered" in text
    assert [a.ok for a in answers] == [True, True, True]

    out: list[str] = []
    result = show_loop(tmp_path / "c.db", echo=out.append, export_dir=tmp_path / "export")
    assert result["files"]["train.jsonl"] + result["files"]["validation.jsonl"] > 0
    examples = [json.loads(line) for name in ("train.jsonl", "validation.jsonl")
                for line in (tmp_path / "export" / name).read_text(encoding="utf-8").splitlines()]
    # Only verified SLM answers are exported: the failed "books" query is not among them.
    assert not any("FROM books" in json.dumps(e) and e["messages"][-1].get("tool_calls") and
                   "FROM books" in json.dumps(e["messages"][-1]) for e in examples)
    assert all(e["messages"][-1]["role"] == "assistant" for e in examples)
    joined = "\n".join(out)
    assert "$ slm-agents stats --db" in joined and "$ slm-agents tasks --db" in joined
    assert "$ slm-agents export --db" in joined


def test_show_loop_exports_beside_the_capture_file_and_replaces_its_last_export(tmp_path: Path) -> None:
    # Before: every run (the tests' too) left a new /tmp/slm-agents-export-* folder behind.
    store = CaptureStore(tmp_path / "c.db", redactor=None)
    run_demo(FakeRuntime(lookup("customers", "SELECT name FROM customers WHERE city = 'Paris'")), None,
             ["Which customers live in Paris?"], store=store, echo=lambda line: None)
    store.close()
    first = show_loop(tmp_path / "c.db", echo=lambda line: None)
    again = show_loop(tmp_path / "c.db", echo=lambda line: None)  # no "already exists" refusal
    assert first["export_dir"] == again["export_dir"] == tmp_path / "slm_agents_export"
    assert again["files"] == first["files"] and first["files"]["train.jsonl"] + first["files"]["validation.jsonl"] == 3


def test_cli_demo_with_a_fake_server_is_not_needed_for_help() -> None:
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0 and "Query Writer" in result.output and "--max-fixes" in result.output
