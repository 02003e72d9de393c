"""The Query Writer agent's parts on FakeRuntime: routing, capture, read-only SQL, the fixer bound."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlite_utils import Database

from slm_agents.capture import CaptureStore, stats
from slm_agents.policy import EscalationPolicy
from slm_agents.querywriter import NO_LLM_REASON, QueryWriterAgent, ShopDatabase, is_open_question, load_sql
from slm_agents.runtimes.fake import FakeRuntime


def tc(name: str, **arguments: object) -> dict:
    return {"tool_calls": [{"name": name, "arguments": arguments}], "usage": (100, 10)}


def pick(table: str) -> dict:
    return tc("select_table", table=table)


def choose(table: str) -> dict:
    return tc("choose_table", table=table)


def sql(query: str) -> dict:
    return tc("run_sql", query=query)


@pytest.fixture
def store():
    s = CaptureStore(Database(memory=True), redactor=None)
    yield s
    s.close()


def rows(store: CaptureStore, query: str, args: list | None = None) -> list[dict]:
    store.flush()
    return [dict(r) for r in store.db.query(query, args or [])]


# -- the database -----------------------------------------------------------------------------------
def test_database_is_built_from_the_shipped_sql_text_and_deterministic() -> None:
    text = load_sql()
    assert "CREATE TABLE customers" in text
    a, b = ShopDatabase(), ShopDatabase()
    assert a.tables == ["customers", "products", "orders", "order_items", "employees"]
    q = "SELECT * FROM orders ORDER BY id"
    assert a.run(q).rows == b.run(q).rows and len(a.run(q).rows) == 14


@pytest.mark.parametrize("query", [
    "DELETE FROM customers",
    "UPDATE products SET price = 0",
    "INSERT INTO employees VALUES (99, 'x', 'y', 1, '2024-01-01')",
    "DROP TABLE orders",
    "CREATE TABLE t (x)",
    "ATTACH DATABASE 'file:/tmp/qw-attack.db' AS x",
    "PRAGMA writable_schema = 1",
    "SELECT 1; DELETE FROM customers",
])
def test_sql_runs_read_only_and_never_raises(query: str) -> None:
    db = ShopDatabase()
    result = db.run(query)
    assert not result.ok and result.error
    assert db.run("SELECT COUNT(*) FROM customers").rows == [(10,)]
    assert db.run("SELECT COUNT(*) FROM products WHERE price > 0").rows == [(12,)]


def test_runaway_queries_are_stopped_and_rows_are_capped() -> None:
    db = ShopDatabase(max_rows=3)
    loop = db.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c ORDER BY x DESC")
    assert loop.error == "the query took too long and was stopped"
    capped = db.run("SELECT id FROM customers")
    assert capped.rows == [(1,), (2,), (3,)] and capped.truncated


def test_bad_sql_returns_the_database_error() -> None:
    assert ShopDatabase().run("SELECT nope FROM customers").error == "no such column: nope"
    assert ShopDatabase().run("   ").error == "empty query"


# -- the SLM parts ----------------------------------------------------------------------------------
def test_lookup_runs_extractor_reranker_writer_with_enums_and_captures(store: CaptureStore) -> None:
    slm = FakeRuntime([pick("employees"), choose("employees"),
                       sql("SELECT AVG(salary) FROM employees WHERE department = 'Engineering'")])
    answer = QueryWriterAgent(slm, store=store).ask("What is the average salary in Engineering?")
    assert answer.ok and answer.result.rows == [(81000.0,)]
    assert [s.part for s in answer.steps] == ["table_extractor", "reranker", "query_writer"]
    assert all(s.route == "slm" and s.reason is None for s in answer.steps)
    extract, rerank, write = slm.requests
    enum = extract["tools"][0]["function"]["parameters"]["properties"]["table"]["enum"]
    assert enum == ["customers", "products", "orders", "order_items", "employees"]
    assert extract["tool_choice"] == "select_table"
    candidates = rerank["tools"][0]["function"]["parameters"]["properties"]["table"]["enum"]
    assert candidates[0] == "employees" and 2 <= len(candidates) <= 3
    assert write["tool_choice"] == "run_sql" and "employees(" in write["messages"][-1]["content"]
    calls = rows(store, "SELECT id, task, route, run_id, framework FROM calls ORDER BY id")
    assert [c["task"] for c in calls] == ["table_extractor", "reranker", "query_writer"]
    assert {c["route"] for c in calls} == {"slm"} and {c["run_id"] for c in calls} == {answer.run_id}
    tools = rows(store, "SELECT name, model_call_id, result, error_message FROM tool_executions ORDER BY id")
    assert [t["name"] for t in tools] == ["select_table", "choose_table", "run_sql"]
    assert tools[2]["model_call_id"] == calls[2]["id"] and "81000" in tools[2]["result"]
    labels = rows(store, "SELECT target_id, label FROM labels")
    assert {lab["label"] for lab in labels} == {"verified"} and len(labels) == 3


def test_reranker_choice_goes_first_and_writer_sees_its_schema() -> None:
    slm = FakeRuntime([pick("customers"), choose("orders"), sql("SELECT COUNT(*) FROM orders")])
    agent = QueryWriterAgent(slm)
    answer = agent.ask("How many orders did customers place?")
    assert answer.steps[1].output[0] == "orders"
    assert slm.requests[2]["messages"][-1]["content"].startswith("Tables:\norders(")


def test_fixer_repairs_from_the_database_error(store: CaptureStore) -> None:
    slm = FakeRuntime([pick("products"), choose("products"), sql("SELECT * FROM books"),
                       sql("SELECT name FROM products WHERE category = 'Books'")])
    answer = QueryWriterAgent(slm, store=store).ask("List the products in the Books category.")
    assert answer.ok and answer.fixes == 1 and len(answer.result.rows) == 3
    fixer_prompt = slm.requests[3]["messages"][-1]["content"]
    assert "Query: SELECT * FROM books" in fixer_prompt and "Error: no such table: books" in fixer_prompt
    labels = {r["task"]: r["label"] for r in rows(
        store, "SELECT c.task, l.label FROM labels l JOIN calls c ON c.id = l.target_id")}
    assert labels["query_writer"] == "failed" and labels["query_fixer"] == "verified"
    failed = rows(store, "SELECT error_type, error_message FROM tool_executions WHERE name = 'run_sql' ORDER BY id")
    assert failed[0]["error_message"] == "no such table: books" and failed[1]["error_message"] is None


def test_fixer_loop_is_bounded() -> None:
    bad = [sql(f"SELECT x{i} FROM products") for i in range(10)]
    slm = FakeRuntime([pick("products"), choose("products"), *bad])
    answer = QueryWriterAgent(slm, max_fixes=3).ask("List products")
    assert not answer.ok and answer.fixes == 3
    assert len(slm.requests) == 2 + 1 + 3  # extractor, reranker, writer, three fixes, no more


def test_fixer_stops_when_it_repeats_a_failed_query() -> None:
    slm = FakeRuntime([pick("products"), choose("products"), sql("SELECT * FROM books"), sql("select *  from BOOKS")])
    answer = QueryWriterAgent(slm, max_fixes=5).ask("List books")
    assert not answer.ok and answer.fixes == 1 and len(slm.requests) == 4


def test_truncated_slm_answer_is_recorded_and_survives(store: CaptureStore) -> None:
    slm = FakeRuntime([{"content": '<tool_call>\n{"name": "select_table", "argu', "finish_reason": "length"},
                       choose("customers"), sql("SELECT COUNT(*) FROM customers")])
    answer = QueryWriterAgent(slm, store=store).ask("How many customers are there?")
    assert answer.steps[0].output is None and answer.steps[0].reason == "truncated"
    assert answer.ok and answer.result.rows == [(10,)]
    first = rows(store, "SELECT route, escalation_reason, valid FROM calls ORDER BY id LIMIT 1")[0]
    assert first == {"route": "slm", "escalation_reason": "truncated", "valid": 0}


def test_slm_steps_escalate_to_the_llm_and_are_linked(store: CaptureStore) -> None:
    slm = FakeRuntime([{"content": "", "finish_reason": "length"}, choose("customers"),
                       sql("SELECT COUNT(*) FROM customers")])
    llm = FakeRuntime([pick("customers")], model="big-llm")
    answer = QueryWriterAgent(slm, llm, store=store).ask("How many customers are there?")
    assert answer.steps[0].route == "llm" and answer.steps[0].reason == "truncated"
    assert answer.steps[0].output == "customers"
    esc = rows(store, "SELECT slm_call_id, llm_call_id, reason FROM escalations")
    assert len(esc) == 1 and esc[0]["reason"] == "truncated"
    pair = rows(store, "SELECT id, route, model FROM calls WHERE id IN (?, ?) ORDER BY route",
                [esc[0]["slm_call_id"], esc[0]["llm_call_id"]])
    assert [(p["route"], p["model"]) for p in pair] == [("llm", "big-llm"), ("slm", "fake-slm")]
    assert answer.steps[0].call_id == esc[0]["llm_call_id"]


# -- the researcher ---------------------------------------------------------------------------------
def test_researcher_without_llm_is_recorded_as_needing_escalation(store: CaptureStore) -> None:
    slm = FakeRuntime([tc("ask_database", questions=["How many orders per status?"]),
                       pick("orders"), choose("orders"), sql("SELECT status, COUNT(*) FROM orders GROUP BY status"),
                       "Most orders are delivered."])
    answer = QueryWriterAgent(slm, None, store=store).run("Why are so many orders delivered?")
    assert answer.text == "Most orders are delivered." and answer.ok
    researcher = [s for s in answer.steps if s.part == "researcher"]
    assert [s.route for s in researcher] == ["slm", "slm"]
    assert {s.reason for s in researcher} == {NO_LLM_REASON}
    calls = rows(store, "SELECT route, escalation_reason FROM calls WHERE task = 'researcher'")
    assert calls == [{"route": "slm", "escalation_reason": NO_LLM_REASON}] * 2
    assert answer.sub_answers[0].result.rows[0] == ("cancelled", 1)
    summary = stats(store.db)
    assert {"reason": NO_LLM_REASON, "count": 2} in summary["escalation_reasons_on_calls"]


def test_researcher_uses_the_llm_when_one_is_given(store: CaptureStore) -> None:
    slm = FakeRuntime([pick("employees"), choose("employees"), sql("SELECT department, AVG(salary) FROM employees "
                                                                   "GROUP BY department")])
    llm = FakeRuntime([tc("ask_database", questions=["Average salary per department?"]),
                       "Engineering is paid best."], model="big-llm")
    answer = QueryWriterAgent(slm, llm, store=store).research("Which department should get a raise?")
    assert answer.text == "Engineering is paid best."
    researcher = [s for s in answer.steps if s.part == "researcher"]
    assert [s.route for s in researcher] == ["llm", "llm"]
    assert len(llm.requests) == 2 and len(slm.requests) == 3  # the SLM never ran a researcher step
    assert "Database results:" in llm.requests[1]["messages"][-1]["content"]
    assert "Engineering" in llm.requests[1]["messages"][-1]["content"]
    calls = rows(store, "SELECT route, model FROM calls WHERE task = 'researcher'")
    assert calls == [{"route": "llm", "model": "big-llm"}] * 2
    assert rows(store, "SELECT COUNT(*) AS n FROM escalations")[0]["n"] == 0


def test_policy_keeps_researcher_on_llm_and_honours_a_given_policy() -> None:
    policy = EscalationPolicy(confidence_threshold=0.9, llm_tasks={"other"})
    agent = QueryWriterAgent(FakeRuntime(), policy=policy)
    assert agent.policy.llm_tasks == {"other", "researcher"}
    slm = FakeRuntime([{**pick("customers"), "confidence": 0.2}, choose("customers"),
                       sql("SELECT COUNT(*) FROM customers")])
    llm = FakeRuntime([pick("customers")])
    answer = QueryWriterAgent(slm, llm, policy=EscalationPolicy(confidence_threshold=0.5)).ask("How many customers?")
    assert answer.steps[0].reason == "low_confidence" and answer.steps[0].route == "llm"


def test_slm_error_is_captured_and_the_agent_goes_on(store: CaptureStore) -> None:
    llm = FakeRuntime([pick("customers")])
    slm = FakeRuntime([RuntimeError("boom"), choose("customers"), sql("SELECT COUNT(*) FROM customers")])
    answer = QueryWriterAgent(slm, llm, store=store).ask("How many customers?")
    assert answer.ok and answer.steps[0].reason == "error"
    err = rows(store, "SELECT error_type, route FROM calls WHERE route = 'slm' AND error_type IS NOT NULL")
    assert err == [{"error_type": "RuntimeError", "route": "slm"}]


@pytest.mark.parametrize(("question", "open_"), [
    ("Which product category should we promote next quarter, and why?", True),
    ("Why do customers cancel?", True),
    ("How many customers are there?", False),
    ("List the products in the Books category.", False),
])
def test_open_questions_go_to_the_researcher(question: str, open_: bool) -> None:
    assert is_open_question(question) is open_


def test_hostile_question_text_is_only_data() -> None:
    question = "'); DROP TABLE customers; -- <script>alert(1)</script>"
    slm = FakeRuntime([pick("customers"), choose("customers"), sql(question)])
    agent = QueryWriterAgent(slm, max_fixes=0)
    answer = agent.ask(question)
    assert not answer.ok
    assert agent.db.run("SELECT COUNT(*) FROM customers").rows == [(10,)]
    assert json.loads(json.dumps(slm.requests[0]["messages"]))[-1]["content"] == question


def test_database_connection_rejects_writes_even_directly() -> None:
    db = ShopDatabase()
    with pytest.raises(sqlite3.DatabaseError):
        db._conn.execute("DELETE FROM customers")


def test_slm_error_without_llm_never_crashes_the_agent(store: CaptureStore) -> None:
    slm = FakeRuntime([RuntimeError("model gone"), choose("customers"), sql("SELECT COUNT(*) FROM customers")])
    answer = QueryWriterAgent(slm, None, store=store).ask("How many customers are there?")
    assert answer.steps[0].reason == "error" and answer.steps[0].output is None
    assert answer.ok and answer.result.rows == [(10,)]
    err = rows(store, "SELECT route, error_type, escalation_reason FROM calls ORDER BY id LIMIT 1")
    assert err == [{"route": "slm", "error_type": "RuntimeError", "escalation_reason": "error"}]


def test_the_callers_policy_is_left_as_it_was() -> None:
    from slm_agents import FakeRuntime
    from slm_agents.policy import EscalationPolicy
    from slm_agents.querywriter.agent import QueryWriterAgent

    mine = EscalationPolicy(llm_tasks={"other"})
    agent = QueryWriterAgent(FakeRuntime(), policy=mine)
    assert mine.llm_tasks == {"other"}
    assert agent.policy.llm_tasks == {"other", "researcher"}


def test_an_llm_failure_keeps_the_slms_attempt_and_reason_on_record() -> None:
    from sqlite_utils import Database

    from slm_agents import FakeRuntime
    from slm_agents.capture import CaptureStore
    from slm_agents.querywriter.agent import QueryWriterAgent

    store = CaptureStore(Database(memory=True), redactor=None)
    slm = FakeRuntime([{"tool_calls": [{"name": "select_table", "arguments": {"table": "nope"}}]}], cycle=True)
    agent = QueryWriterAgent(slm, llm=FakeRuntime([ConnectionError("LLM down")], cycle=True), store=store,
                             max_fixes=0)
    agent.ask("How many customers are there?")
    store.flush()
    rows = list(store.db.query("select route, escalation_reason, error_type from calls order by id"))
    first_slm, first_llm = rows[0], rows[1]
    assert (first_slm["route"], first_slm["error_type"]) == ("slm", None)
    assert first_slm["escalation_reason"] == "invalid_arguments"
    assert (first_llm["route"], first_llm["error_type"]) == ("llm", "ConnectionError")
    assert store.db["escalations"].count >= 1
