"""The Query Writer demo's report: a task whose queries failed shows outcome readiness under 100%,
although none of its SLM steps was escalated (issue 12 §5)."""

from __future__ import annotations

import pytest
from sqlite_utils import Database

from slm_agents.capture import CaptureStore
from slm_agents.querywriter import QueryWriterAgent
from slm_agents.report import render_report, report_data
from slm_agents.runtimes.fake import FakeRuntime


def _sql(query: str) -> dict:
    return {"tool_calls": [{"name": "run_sql", "arguments": {"query": query}}]}


def test_failed_queries_lower_outcome_readiness_not_kept() -> None:
    slm = FakeRuntime([
        # a question whose SQL fails, and whose fixer repeats the same query
        {"tool_calls": [{"name": "select_table", "arguments": {"table": "products"}}]},
        {"tool_calls": [{"name": "choose_table", "arguments": {"table": "products"}}]},
        _sql("SELECT * FROM books"),
        _sql("SELECT * FROM books"),
        # a question whose SQL runs
        {"tool_calls": [{"name": "select_table", "arguments": {"table": "customers"}}]},
        {"tool_calls": [{"name": "choose_table", "arguments": {"table": "customers"}}]},
        _sql("SELECT COUNT(*) FROM customers"),
    ])
    store = CaptureStore(Database(memory=True), redactor=None)
    agent = QueryWriterAgent(slm, store=store, max_fixes=1)
    assert not agent.ask("List the products in the Books category.").ok
    assert agent.ask("How many customers are there?").ok
    assert store.flush()
    tasks = {t["task"]: t for t in report_data(store.db)["tasks"]}
    # every SLM step was kept: "not escalated" would have said 100% everywhere
    assert all(t["slm_needed_llm"] == 0 for t in tasks.values())
    assert tasks["query_writer"]["slm_kept"] == 2 and tasks["query_writer"]["tool_errors"] == 1
    assert tasks["query_writer"]["outcome_readiness"] == pytest.approx(0.5)
    assert tasks["query_fixer"]["outcome_readiness"] == 0.0
    # the picks of the failed question were labelled failed by the agent
    assert tasks["table_extractor"]["negative_feedback"] == 1
    assert tasks["table_extractor"]["outcome_readiness"] == pytest.approx(0.5)
    page = render_report(store.db)
    assert "outcome readiness 50%" in page and "100% ready" not in page
