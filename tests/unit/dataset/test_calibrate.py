"""Replay cases from captured calls, calibration from replay and from shadow pairs, the policy file."""

from __future__ import annotations

import json

import pytest

from slm_agents.dataset import calibrate_results, calibrate_shadow, cases_from_db, write_thresholds
from slm_agents.errors import InvalidRequest
from slm_agents.evaluate import CaseResult, compare_calls, evaluate
from slm_agents.policy import EscalationPolicy
from slm_agents.runtimes.fake import FakeRuntime


def test_cases_from_db(db) -> None:
    cases = cases_from_db(db)
    by_task: dict[str, list] = {}
    for case in cases:
        by_task.setdefault(case.task, []).append(case)
    assert {"triage", "router", "triage-tools"} <= set(by_task)
    assert all(c.expected == [] for c in by_task["triage"])
    assert by_task["router"][0].expected[0]["name"] == "get_weather"
    assert isinstance(by_task["router"][0].expected[0]["arguments"], dict)
    clustered = [k for k in by_task if k.startswith("t-")]
    assert len(clustered) == 2
    assert len(cases_from_db(db, task_id="router", limit=3)) == 3
    assert all(len(v) <= 2 for v in _group(cases_from_db(db, limit=2)).values())


def _group(cases):
    out: dict[str, list] = {}
    for c in cases:
        out.setdefault(c.task, []).append(c)
    return out


def test_calibrate_from_replay_writes_a_policy(db, tmp_path) -> None:
    cases = cases_from_db(db, task_id="router")
    responses = []
    for i, case in enumerate(cases):
        call = dict(case.expected[0])
        if i % 4 == 3:  # wrong answer, low confidence
            call = {"name": call["name"], "arguments": {"city": "Atlantis"}}
            responses.append({"tool_calls": [call], "confidence": 0.3})
        else:
            responses.append({"tool_calls": [call], "confidence": 0.8 + i / 100})
    report = evaluate(FakeRuntime(responses), cases, max_wrong_rate=0.0)
    cal = calibrate_results(report.results, max_wrong=0.0)["router"]
    assert cal.recommendation == "move with threshold"
    assert 0.3 < cal.threshold <= 0.8 and cal.wrong_rate == 0.0
    assert cal.coverage == pytest.approx(sum(1 for i in range(len(cases)) if i % 4 != 3) / len(cases))
    path = tmp_path / "policy.json"
    EscalationPolicy(llm_tasks={"researcher"}).save(path)
    write_thresholds(calibrate_results(report.results, max_wrong=0.0), path)
    policy = EscalationPolicy.load(path)
    assert policy.threshold_for("router") == cal.threshold
    assert policy.llm_tasks == {"researcher"}  # other settings survive


def test_errors_and_invalid_calls_always_escalate() -> None:
    def result(i, **kw):
        base = dict(id=str(i), task="t", predicted=[{"name": "f", "arguments": {}}], name_correct=True,
                    args_exact=True, schema_valid=True, abstention_correct=None, correct=True, confidence=0.9,
                    latency_ms=1.0, output_tokens=1)
        return CaseResult(**{**base, **kw})

    results = [result(0), result(1), result(2, error="GenerationError: x", predicted=[], correct=False),
               result(3, schema_valid=False, correct=False, confidence=0.99)]
    cal = calibrate_results(results, max_wrong=0.0)["t"]
    assert cal.escalated == 2 and cal.threshold == 0.9 and cal.coverage == 0.5 and cal.recommendation != "move"
    text_wrong = [result(i) for i in range(3)] + [result(9, predicted=[], correct=False, confidence=None)]
    # a wrong text answer is kept whatever the threshold: the target cannot be met
    assert calibrate_results(text_wrong, max_wrong=0.0)["t"].recommendation == "keep on LLM"
    with pytest.raises(InvalidRequest):
        calibrate_results(results, max_wrong=1.5)


def test_calibrate_from_shadow(db, tmp_path) -> None:
    cals = calibrate_shadow(db, max_wrong=0.0)
    router = cals["router"]
    assert router.source == "shadow" and router.n == 10
    assert router.threshold == 0.9 and router.coverage == 0.7 and router.accuracy == 0.7
    assert set(cals) == {"router"}  # the escalation pair is not a shadow pair
    path = tmp_path / "p.json"
    write_thresholds(cals, path)
    assert json.loads(path.read_text())["task_thresholds"] == {"router": 0.9}
    assert EscalationPolicy.load(path).task_thresholds == {"router": 0.9}


def test_shadow_without_pairs_says_what_to_do(tmp_path) -> None:
    from slm_agents.capture import CaptureStore
    from slm_agents.dataset import open_db

    CaptureStore(tmp_path / "e.db").close()
    with pytest.raises(InvalidRequest, match="shadow=True"):
        calibrate_shadow(open_db(tmp_path / "e.db"))


def test_compare_calls() -> None:
    assert compare_calls([{"name": "f", "arguments": {"a": " x "}}], [{"name": "f", "arguments": '{"a": "x"}'}])
    assert not compare_calls([{"name": "f", "arguments": {}}], [{"name": "g", "arguments": {}}])
    assert not compare_calls([{"name": "f", "arguments": {}}], [{"name": "f", "arguments": "{bad"}])
    assert not compare_calls([{"name": "f", "arguments": {}}], [])
