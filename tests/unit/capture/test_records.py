"""slm_agents.capture.records: the rules every face's records follow, tested once here."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlite_utils import Database

from slm_agents.capture import CaptureStore, get_default_store, records
from slm_agents.errors import GenerationError, InvalidRequest
from slm_agents.policy import EscalationPolicy
from slm_agents.routing import run_routed
from slm_agents.runtimes.fake import FakeRuntime
from slm_agents.types import Completion

MESSAGES = [{"role": "user", "content": "2+3?"}]
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]


@pytest.fixture
def store(mem_store: CaptureStore) -> CaptureStore:
    return mem_store


def rows(store: CaptureStore) -> list[dict[str, Any]]:
    assert store.flush()
    return list(store.db.query("select * from calls order by id"))


def test_answer_rules_valid_and_finish() -> None:
    call = records.tool_call("c1", "add", {"a": 2})
    assert records.answer_fields(content="hi") == {"content": "hi", "finish_reason": "stop"}
    assert records.answer_fields(tool_calls=[call])["valid"] is True
    assert records.answer_fields(tool_calls=[call])["finish_reason"] == "tool_calls"
    bad = records.answer_fields(tool_calls=[call], invalid_tool_calls=[{"name": "x", "error": "bad"}])
    assert bad["valid"] is False and bad["metadata"] == {
        "invalid_tool_calls": [{"id": None, "name": "x", "arguments": None, "error": "bad"}]}
    langchain_shape = {"type": "invalid_tool_call", "id": "c9", "name": "x", "args": "{oops", "error": None}
    assert records.answer_fields(invalid_tool_calls=[langchain_shape])["metadata"] == {
        "invalid_tool_calls": [{"id": "c9", "name": "x", "arguments": "{oops", "error": ""}]}  # one shape
    assert records.answer_fields(content="", finish_reason="length") == {"finish_reason": "length"}
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "b"}]
    assert records.answer_fields(content=parts)["content"] == "ab"  # joined as the runtimes join parts
    assert call["function"]["arguments"] == '{"a": 2}'
    assert records.tool_call("c2", "add", None)["function"]["arguments"] == "{}"


def test_request_keeps_only_sampling_params() -> None:
    req = records.request_fields(MESSAGES, tools=TOOLS, tool_choice="auto",
                                 params={"temperature": 0.2, "top_p": None, "callbacks": object(), "model": "x"})
    assert req == {"messages": MESSAGES, "tools": TOOLS, "tool_choice": "auto", "params": {"temperature": 0.2}}


def test_completion_fields_and_policy_verdict() -> None:
    done = Completion(message={"role": "assistant", "content": "5"}, latency_ms=3.0, model="m", runtime="fake")
    fields = records.completion_fields(done, valid=False)
    assert (fields["content"], fields["valid"], fields["model"], fields["latency_ms"]) == ("5", False, "m", 3.0)
    err = records.attempt_fields(None, GenerationError("boom"), latency_ms=2.0, model="m")
    assert err == {"error_type": "GenerationError", "error_message": "boom", "latency_ms": 2.0, "model": "m",
                   "valid": False}
    assert records.attempt_fields(None, None) is None


def test_tools_without_a_choice_record_auto() -> None:
    assert records.request_fields(MESSAGES, tools=TOOLS)["tool_choice"] == "auto"  # OpenAI's default
    assert records.request_fields(MESSAGES, tools=TOOLS, tool_choice="required")["tool_choice"] == "required"
    assert records.request_fields(MESSAGES)["tool_choice"] is None  # no tools: no choice to record


def test_resolve_store_same_everywhere(tmp_path: Any) -> None:
    path = tmp_path / "a.db"
    assert records.resolve_store(None) is None and records.resolve_store(False) is None
    assert records.resolve_store(str(path)) is records.resolve_store(path) is get_default_store(path)
    db = Database(memory=True)
    assert records.resolve_store(db).db is db
    for bad in (42, object()):
        with pytest.raises(InvalidRequest, match="capture= takes"):
            records.resolve_store(bad)


def step_of(slm_answer: Any, *, llm_answer: str = "5", shadow: bool = False) -> records.Step:
    rt = FakeRuntime([slm_answer])
    routed = run_routed(EscalationPolicy(), MESSAGES, TOOLS, "auto", slm=lambda: rt.complete(MESSAGES, TOOLS, "auto"),
                        llm=lambda: llm_answer, shadow=shadow)  # fmt: skip
    return records.step_from_routed(routed, records.request_fields(MESSAGES, tools=TOOLS, tool_choice="auto"),
                                    records.context_fields(framework="test", task="math"))  # fmt: skip


def test_escalated_step_logs_pair_and_link(store: CaptureStore) -> None:
    step = step_of({"tool_calls": [{"name": "mul", "arguments": {}}]})
    assert (step.route, step.reason, step.slm["valid"]) == ("llm", "unknown_tool", False)
    slm_id, llm_id = records.log_step(store, step, answer=records.answer_fields(content="5"),
                                      context={"run_id": "r1"})  # fmt: skip
    slm, llm = rows(store)
    assert (slm["id"], llm["id"]) == (slm_id, llm_id)
    assert [(r["route"], r["escalation_reason"], r["task"], r["run_id"]) for r in (slm, llm)] == [
        ("slm", "unknown_tool", "math", "r1"), ("llm", "unknown_tool", "math", "r1")]
    (link,) = store.db["escalations"].rows
    assert (link["slm_call_id"], link["llm_call_id"], link["reason"]) == (slm_id, llm_id, "unknown_tool")


def test_shadow_step_marks_both_rows_shadow(store: CaptureStore) -> None:
    step = step_of({"tool_calls": [{"name": "add", "arguments": {}}]}, shadow=True)
    records.log_step(store, step, answer=records.answer_fields(content="5"))
    assert [(r["route"], r["escalation_reason"], r["valid"]) for r in rows(store)] == [
        ("shadow", "shadow", 1), ("llm", "shadow", None)]
    assert store.db["escalations"].count == 1


def test_accepted_step_and_failed_llm_have_no_link(store: CaptureStore) -> None:
    ok = step_of({"tool_calls": [{"name": "add", "arguments": {}}]})
    assert ok.route == "slm"
    _, llm_id = records.log_step(store, ok, answer=records.answer_fields(content="ignored"))
    assert llm_id is None  # the SLM's answer was used: no LLM row
    bad = step_of({"tool_calls": [{"name": "mul", "arguments": {}}]})
    records.log_step(store, bad, answer=records.error_fields(TimeoutError("upstream")))
    assert [r["route"] for r in rows(store)] == ["slm", "slm", "llm"]
    assert "escalations" not in store.db.table_names() or store.db["escalations"].count == 0


def test_log_step_never_raises_and_skips_a_logged_attempt(store: CaptureStore) -> None:
    class Broken:
        def log(self, record: Any) -> str:
            raise OSError("disk full")

    step = step_of({"tool_calls": [{"name": "mul", "arguments": {}}]})
    assert records.log_step(Broken(), step, answer={"content": "5"}) == (None, None)
    assert records.log_step(None, step, answer={"content": "5"}) == (None, None)
    slm_id, _ = records.log_step(store, step, answer=records.answer_fields(content="5"), slm_id="logged-before")
    assert slm_id == "logged-before" and [r["route"] for r in rows(store)] == ["llm"]


def test_a_logged_attempt_gets_the_step_verdict_and_reason(store: CaptureStore) -> None:
    """The SLM call a handler logged as an ordinary call ends up as a router's SLM attempt would."""
    ordinary = store.log({**records.request_fields(MESSAGES, tools=TOOLS), "route": "slm",
                          **records.answer_fields(tool_calls=[records.tool_call("c1", "mul", {})])})
    step = step_of({"tool_calls": [{"name": "mul", "arguments": {}}]})
    slm_id, llm_id = records.log_step(store, step, answer=records.answer_fields(content="5"), slm_id=ordinary)
    slm, llm = rows(store)
    assert (slm["id"], slm["valid"], slm["escalation_reason"]) == (ordinary, 0, "unknown_tool")
    assert (llm["id"], llm["escalation_reason"]) == (llm_id, "unknown_tool")
    assert store.db["escalations"].count == 1


def test_the_llm_answer_is_timed_by_the_router(store: CaptureStore) -> None:
    step = step_of({"tool_calls": [{"name": "mul", "arguments": {}}]})
    assert step.llm_ms is not None and step.llm_ms >= 0
    step.llm_ms = 12.5
    records.log_step(store, step, answer=records.answer_fields(content="5"))
    records.log_step(store, step, answer=records.answer_fields(content="5", latency_ms=40.0))
    assert [r["latency_ms"] for r in rows(store) if r["route"] == "llm"] == [12.5, 40.0]  # the answer's own wins


def test_claims_decide_once_per_store() -> None:
    a, b, owner1, owner2 = object(), object(), object(), object()
    assert records.claim(a, "run-1", owner1) and records.claim(a, "run-1", owner1)
    assert not records.claim(a, "run-1", owner2)  # someone else logs it to this store
    assert records.claim(b, "run-1", owner2)  # another store is another matter
    records.release(a, "run-1")
    assert records.claim(a, "run-1", owner2)
    assert not records.is_captured_elsewhere()
    with records.captured_here():
        assert records.is_captured_elsewhere()


def test_tool_record_links_to_the_asking_call() -> None:
    records.remember_tool_calls("model-call-9", [records.tool_call("tc-9", "add", {})])
    context = records.context_fields(framework="test", task="tools", run_id="run", parent_run_id="parent",
                                     tags=["x"], metadata={"agent": "calc"})  # fmt: skip
    rec = records.tool_record(name="add", arguments={"a": 1}, call_id="tc-9", error=ValueError("no"),
                              latency_ms=1.5, context=context)  # fmt: skip
    assert rec["model_call_id"] == "model-call-9" and isinstance(rec["error"], ValueError) and "result" not in rec
    assert rec["metadata"] == {"agent": "calc", "parent_run_id": "parent"} and "tags" not in rec
    assert (rec["framework"], rec["task"], rec["run_id"]) == ("test", "tools", "run")
    assert json.dumps(records.context_fields(framework="f", tags=["seq:step:1"])) == '{"framework": "f"}'
