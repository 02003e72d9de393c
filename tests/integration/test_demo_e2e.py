"""The Query Writer demo on the real default model, then the loop commands on what it captured."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from slm_agents.capture import CaptureStore
from slm_agents.cli import cli
from slm_agents.demo import run_demo, show_loop, slm_runtimes
from slm_agents.querywriter import NO_LLM_REASON, PARTS, Answer, QueryWriterAgent
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

QUESTIONS = ["Which customers live in Paris?", "Why do customers cancel orders?"]


def _threads() -> int | None:
    """One thread when the machine is already busy (llama.cpp threads spin-wait on shared cores)."""
    cores = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] >= cores else None


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list[str]]:
    tmp = tmp_path_factory.mktemp("demo")
    db = tmp / "capture.db"
    slm = slm_runtimes()  # one thread when the machine is already busy
    lines: list[str] = []
    store = CaptureStore(db)
    try:
        # The same local model stands in for the researcher's LLM, so route-'llm' calls exist to evaluate.
        answers = run_demo(slm, slm["researcher"], QUESTIONS, store=store, echo=lines.append, max_fixes=1)
    finally:
        store.close()
    return db, answers, lines


def test_demo_runs_the_five_parts_and_captures_every_call(captured) -> None:
    db, answers, lines = captured
    assert len(answers) == 2
    lookup, research = answers
    assert [s.part for s in lookup.steps][:3] == ["table_extractor", "reranker", "query_writer"]
    assert lookup.result is not None and (lookup.result.ok or lookup.result.error)
    assert [s.part for s in research.steps][0] == "researcher" and research.steps[-1].part == "researcher"
    assert {s.route for s in research.steps if s.part == "researcher"} == {"llm"}
    text = "\n".join(lines)
    assert "Q: Which customers live in Paris?" in text and "run_sql:" in text and "select_table:" in text

    from sqlite_utils import Database

    rows = Database(str(db))
    calls = list(rows.query("SELECT task, route, run_id, input_tokens, latency_ms FROM calls"))
    steps = [s for a in answers for s in a.steps] + [s for a in answers for sub in a.sub_answers for s in sub.steps]
    escalated = rows["escalations"].count  # an escalated step is two calls: the SLM attempt and the LLM answer
    assert len(calls) == len(steps) + escalated
    assert escalated == sum(1 for s in steps if s.route == "llm" and s.part != "researcher")
    assert {c["task"] for c in calls} >= {"table_extractor", "reranker", "query_writer", "researcher"}
    assert all(c["input_tokens"] and c["latency_ms"] for c in calls)
    assert {c["route"] for c in calls if c["task"] == "researcher"} == {"llm"}
    assert rows["tool_executions"].count >= len(steps) - 1  # every step but the researcher's answer ran a tool
    assert rows.execute("SELECT COUNT(*) FROM tool_executions WHERE name = 'run_sql'").fetchone()[0] >= 1
    assert rows["labels"].count >= 3


def test_cli_tasks_lists_the_parts(captured) -> None:
    db, _, _ = captured
    result = CliRunner().invoke(cli, ["tasks", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    names = {t["name"] for t in json.loads(result.output)}
    assert {"table_extractor", "reranker", "query_writer", "researcher"} <= names


def test_export_writes_well_formed_files(captured, tmp_path: Path) -> None:
    db, _, _ = captured
    lines: list[str] = []
    out = show_loop(db, echo=lines.append, export_dir=tmp_path / "export")
    assert set(out["files"]) == {"train.jsonl", "validation.jsonl", "README.md"}
    examples = [json.loads(line) for name in ("train.jsonl", "validation.jsonl")
                for line in (tmp_path / "export" / name).read_text(encoding="utf-8").splitlines()]
    # Only SQL that ran is exported (label "verified"); whether the 135M model writes any in two
    # questions is the model's luck, so the card must account for every kept row either way.
    card = (tmp_path / "export" / "README.md").read_text(encoding="utf-8")
    assert f"{len(examples)}" in card
    for example in examples:
        assert example["messages"][-1]["role"] == "assistant"
        assert example["messages"][0]["role"] == "system"
    assert any("$ slm-agents stats" in line for line in lines)


def test_eval_replays_the_llm_calls(captured) -> None:
    # The functions behind `slm-agents eval` (the command builds a fresh all-core runtime; this
    # replays on the demo's own, which is already loaded and sized for a busy machine).
    from slm_agents.dataset import cases_from_db, open_db
    from slm_agents.evaluate import evaluate

    db, _, _ = captured
    cases = cases_from_db(open_db(db), task_id="researcher", limit=1)
    assert len(cases) == 1 and cases[0].task == "researcher"
    report = evaluate(slm_runtimes()["researcher"], cases, max_tokens=48)
    task = report.tasks["researcher"]
    assert task.n == 1 and 0.0 <= task.readiness <= 1.0 and task.recommendation


def test_without_llm_the_slm_stands_in_for_the_researcher_and_it_is_recorded(tmp_path: Path) -> None:
    slm = LlamaCppRuntime(n_ctx=1024, seed=len(PARTS), n_threads=_threads())
    store = CaptureStore(tmp_path / "c.db")
    try:
        agent = QueryWriterAgent(slm, None, store=store, max_tokens={"researcher": 24})
        step, completion = agent._step(Answer("Why?", run_id="r1"), "researcher",
                                       [{"role": "user", "content": "Why do customers cancel orders?"}], None, None)
        store.flush()
        row = dict(next(store.db.query("SELECT route, escalation_reason, task, run_id FROM calls")))
    finally:
        store.close()
    assert completion is not None and step.route == "slm" and step.reason == NO_LLM_REASON
    assert row == {"route": "slm", "escalation_reason": NO_LLM_REASON, "task": "researcher", "run_id": "r1"}


def test_report_outcome_readiness_is_under_100_for_parts_whose_sql_failed(captured) -> None:
    """An SLM part whose run_sql failed (a tool error on a kept step) is not 100% ready in the report."""
    from sqlite_utils import Database

    from slm_agents.report import report_data

    db, answers, _ = captured
    every = [a for answer in answers for a in (answer, *answer.sub_answers)]
    failed = {s.part for a in every for s in a.steps
              if s.route == "slm" and s.reason is None and s.result is not None and not s.result.ok}
    tasks = {t["task"]: t for t in report_data(Database(str(db)))["tasks"]}
    for part in failed:
        assert tasks[part]["tool_errors"] >= 1 and tasks[part]["outcome_readiness"] < 1.0, (part, tasks[part])
    for task in tasks.values():
        assert "readiness" not in task  # "not escalated" is never shown as readiness
