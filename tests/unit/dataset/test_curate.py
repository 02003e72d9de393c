"""Curation filters, de-duplication, length limits and the leakage check."""

from __future__ import annotations

import pytest

from slm_agents.dataset import Curator, find_leakage, request_hash
from slm_agents.errors import InvalidRequest


def test_default_keeps_successful_llm_calls_and_drops_duplicates(db, db_path) -> None:
    curator = Curator(db)
    records = list(curator)
    ids = {r["id"] for r in records}
    # 12 weather + 12 math + 4 labelled + 1 escalated LLM + 10 shadow-paired LLM calls
    assert len(records) == 39
    assert curator.stats.dropped == {"duplicate": 1}
    assert all(r["route"] == "llm" for r in records)
    rows = {r["id"]: r for r in db.query("select id, error_type, finish_reason from calls")}
    assert not any(rows[i]["error_type"] or rows[i]["finish_reason"] == "cancelled" for i in ids)


def test_without_successful_only_errors_come_back(db) -> None:
    records = list(Curator(db, successful_only=False, dedupe=False))
    assert len(records) == 42  # + the duplicate, the error, the cancelled call
    assert Curator(db, successful_only=False, dedupe=False).count() == 42


def test_record_shape(db) -> None:
    rec = next(iter(Curator(db, tasks="triage")))
    assert rec["answer"] == {"role": "assistant", "content": "priority 0"}
    assert rec["stratum"] == "<text>"
    weather = next(iter(Curator(db, since="2025-05-01", until="2025-05-02", tasks=None)))
    assert weather["stratum"] in ("get_weather", "add")
    assert [t["function"]["name"] for t in weather["tools"]] == ["get_weather", "add"]
    assert isinstance(weather["answer"]["tool_calls"][0]["function"]["arguments"], str)


def test_route_model_task_and_date_filters(db) -> None:
    assert {r["route"] for r in Curator(db, routes=None, dedupe=False)} == {"llm", "slm", "shadow"}
    assert len(list(Curator(db, routes="shadow"))) == 10
    assert len(list(Curator(db, models="gpt-big"))) == 28
    assert len(list(Curator(db, models="other"))) == 0
    assert len(list(Curator(db, tasks=["triage", "router"]))) == 14
    day1 = list(Curator(db, since="2025-05-01", until="2025-05-02"))
    assert day1 and all(r["ts"].startswith("2025-05-01") for r in day1)


def test_label_filters(db) -> None:
    gold = list(Curator(db, labels="gold"))
    assert len(gold) == 1 and "Paris" in gold[0]["messages"][-1]["content"]
    assert len(list(Curator(db, exclude_labels="bad"))) == 38


def test_length_limits(db) -> None:
    assert len(list(Curator(db, max_messages=1))) == 4  # only the labelled single-message calls
    assert all(len(r["messages"][-1]["content"]) <= 40 for r in Curator(db, max_chars=68))
    short = Curator(db, max_tokens=60)
    assert len(list(short)) == 14 + 1  # calls without recorded tokens are estimated small, triage has 55
    assert short.stats.dropped["too_many_tokens"] == 24
    with pytest.raises(InvalidRequest, match="max_tokens"):
        Curator(db, max_tokens=0)


def test_limit_and_order(db) -> None:
    first = list(Curator(db, limit=3))
    newest = list(Curator(db, limit=3, newest_first=True))
    assert len(first) == 3 and first[0]["id"] < newest[0]["id"]


def test_dedupe_ignores_whitespace_and_call_ids() -> None:
    a = [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "x1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "x1", "content": "ok"}]
    b = [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "y9", "type": "function", "function": {"name": "f", "arguments": '{ "a":1 }'}}]},
        {"role": "tool", "tool_call_id": "y9", "content": " ok\n"}]
    assert request_hash(a, "t") == request_hash(b, "t")
    b[1]["content"] = "not ok"
    assert request_hash(a, "t") != request_hash(b, "t")


def test_leakage_check() -> None:
    assert find_leakage(["a", "b"], ["c"]) == set()
    assert find_leakage([{"request_hash": "a"}], [{"request_hash": "a"}, "b"]) == {"a"}
