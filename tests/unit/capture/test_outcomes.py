"""Outcome readiness (issue 12 §5): tool errors and negative feedback are linked back to the call
that produced them and count against its task; 'not escalated' alone is not readiness."""

from __future__ import annotations

from typing import Any

import pytest
from sqlite_utils import Database

from slm_agents.capture import CaptureStore
from slm_agents.capture.outcomes import (
    feedback_record,
    is_negative,
    negative_feedback_calls,
    outcome_readiness,
    tool_error_calls,
)
from slm_agents.errors import InvalidRequest

MSG = [{"role": "user", "content": "q"}]


def call(store: CaptureStore, tool_id: str | None = None, **fields: Any) -> str:
    record: dict[str, Any] = {"messages": MSG, "route": "slm", "task": "t", **fields}
    if tool_id is not None:
        record["tool_calls"] = [{"id": tool_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    return store.log(record)


@pytest.fixture
def store() -> CaptureStore:
    return CaptureStore(Database(memory=True), redactor=None)


def test_a_tool_error_is_linked_by_model_call_id_or_by_the_tool_calls_id(store: CaptureStore) -> None:
    direct, by_id, ok = call(store, "c1"), call(store, "c2"), call(store, "c3")
    store.log_tool({"call_id": "c1", "model_call_id": direct, "name": "f", "error": RuntimeError("x")})
    store.log_tool({"call_id": "c2", "name": "f", "error": "no such table"})  # the face did not know the call
    store.log_tool({"call_id": "c3", "name": "f", "result": "fine"})
    assert store.flush()
    assert tool_error_calls(store.db) == {direct, by_id}
    assert ok not in tool_error_calls(store.db)


def test_readiness_counts_only_accepted_slm_calls_without_a_bad_outcome(store: CaptureStore) -> None:
    good = call(store, "g")
    tool_failed = call(store, "e")
    thumbs_down = call(store, "d")
    escalated = call(store, "x")
    llm = store.log({"messages": MSG, "route": "llm", "task": "t", "escalation_reason": "invalid_arguments"})
    store.link_escalation(escalated, llm, "invalid_arguments")
    call(store, error_type="GenerationTimeout", escalation_reason="timeout")  # failed, no LLM
    store.log_tool({"call_id": "e", "name": "f", "error": "boom"})
    store.feedback(thumbs_down, good=False)
    store.feedback(good, good=True)
    store.log_tool({"call_id": "x", "name": "f", "error": "boom"})  # not accepted: not counted twice
    assert store.flush()
    o = outcome_readiness(store.db)["t"]
    assert (o.slm_calls, o.accepted, o.tool_errors, o.negative_feedback, o.good) == (5, 3, 1, 1, 1)
    assert o.readiness == pytest.approx(1 / 5)
    assert o.to_dict()["readiness"] == pytest.approx(0.2)
    assert {tool_failed, thumbs_down} <= tool_error_calls(store.db) | negative_feedback_calls(store.db)


def test_the_newest_feedback_wins_and_a_run_label_goes_to_its_final_call(store: CaptureStore) -> None:
    first = call(store, run_id="run-1", ts="2026-01-01T00:00:00.000Z")
    final = call(store, run_id="run-1", ts="2026-01-01T00:00:05.000Z")
    changed = call(store)
    thread_final = call(store, thread_id="th-1")
    store.label("run-1", "failed")  # the agent marks the run's final answer failed
    store.feedback(changed, good=False)
    store.feedback(changed, score=0.9)  # corrected later
    store.feedback("th-1", score=0.1)
    assert store.flush()
    assert negative_feedback_calls(store.db) == {final, thread_final}
    assert first not in negative_feedback_calls(store.db)
    assert outcome_readiness(store.db)["t"].negative_feedback == 2


def test_readiness_by_cluster_uses_the_task_ids_of_slm_agents_tasks(store: CaptureStore) -> None:
    from slm_agents.dataset import list_tasks

    bad = call(store, "e")
    call(store, "g")
    store.log_tool({"call_id": "e", "model_call_id": bad, "name": "f", "error": "boom"})
    assert store.flush()
    assert outcome_readiness(store.db, by="cluster") == {}  # not clustered yet
    (task,) = list_tasks(store.db)
    by_id = outcome_readiness(store.db, by="cluster")
    assert list(by_id) == [task.id] and by_id[task.id].readiness == pytest.approx(0.5)
    with pytest.raises(InvalidRequest, match="'task' or 'cluster'"):
        outcome_readiness(store.db, by="model")


@pytest.mark.parametrize(("label", "score", "negative"), [
    ("failed", None, True), ("BAD", None, True), ("thumbs_down", 1.0, True), ("verified", 0.0, False),
    ("good", None, False), (None, 0.49, True), (None, 0.5, False), ("gold", None, False), ("note", None, False),
])
def test_what_counts_as_negative(label: str | None, score: float | None, negative: bool) -> None:
    assert is_negative(label, score) is negative


@pytest.mark.parametrize("kwargs", [{}, {"score": 1.5}, {"score": -0.1}, {"score": float("nan")},
                                    {"good": "no"}, {"score": True}])
def test_bad_feedback_is_rejected_with_the_fix(kwargs: dict[str, Any], store: CaptureStore) -> None:
    with pytest.raises(InvalidRequest, match="good=|score|True or False"):
        feedback_record(**kwargs)
    with pytest.raises(InvalidRequest):
        store.feedback("some-call", **kwargs)


def test_feedback_needs_a_target(store: CaptureStore) -> None:
    with pytest.raises(InvalidRequest, match="id of a call"):
        store.feedback("", good=True)


def test_read_call_shows_the_tool_executions_linked_by_the_tool_calls_id(store: CaptureStore) -> None:
    asked = call(store, "c9")
    other = call(store, "c8")
    store.log_tool({"call_id": "c9", "name": "f", "error": "no such table"})  # no model_call_id
    store.log_tool({"call_id": "c8", "model_call_id": other, "name": "f", "result": "ok"})
    assert store.flush()
    got = store.get_call(asked)
    assert got is not None
    assert [(t["call_id"], t["error_message"]) for t in got["tool_executions"]] == [("c9", "no such table")]
    assert [t["call_id"] for t in store.get_call(other)["tool_executions"]] == ["c8"]
