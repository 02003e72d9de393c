"""The call-or-answer decision of tool_choice="auto" (slm_agents.decision) and how the policy judges it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slm_agents.decision import (
    FEATURES,
    DecisionCalibration,
    balanced_accuracy,
    calibration_for,
    fit_calibration,
    fit_threshold,
    request_features,
)
from slm_agents.errors import InvalidRequest
from slm_agents.policy import EscalationPolicy
from slm_agents.routing import run_routed
from slm_agents.runtimes.fake import FakeRuntime
from slm_agents.runtimes.llamacpp import _looping
from slm_agents.toolcalls import normalize_tools

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
EMAIL = {"type": "function", "function": {
    "name": "send_email", "description": "Send an e-mail message",
    "parameters": {"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
                   "required": ["to", "body"]}}}
CONVERT = {"type": "function", "function": {
    "name": "convert_units", "description": "Convert a quantity between units",
    "parameters": {"type": "object", "properties": {
        "value": {"type": "number"}, "unit": {"type": "string", "enum": ["km", "mi"]}},
        "required": ["value", "unit"]}}}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# --- request signals ----------------------------------------------------------------------------
def test_a_request_naming_a_tools_action_overlaps_it_and_fills_its_slots() -> None:
    f = request_features(user("What's the weather in Paris today?"), [WEATHER, EMAIL])
    assert f["overlap"] >= 1 and f["overlap_share"] > 0 and f["slots"] == 1.0
    assert f["after_tool"] == 0.0 and f["chat"] == 0.0


def test_small_talk_overlaps_no_tool() -> None:
    f = request_features(user("Who wrote Hamlet?"), [WEATHER, EMAIL])
    assert f["overlap"] == 0 and f["slots"] == 0.0
    assert request_features(user("Thanks so much!"), [WEATHER])["chat"] == 1.0


def test_time_words_in_small_talk_ask_nothing_live() -> None:
    greeting = request_features(user("Hello! How are you today?"), [WEATHER])
    assert greeting["chat"] == 1.0 and greeting["live"] == 0.0
    asking = request_features(user("What's the weather like today?"), [WEATHER])
    assert asking["chat"] == 0.0 and asking["live"] == 1.0
    shipped = calibration_for("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert shipped.p_call({**greeting, "model": 0.0}) < shipped.threshold < shipped.p_call({**asking, "model": 0.0})


def test_slots_see_numbers_enums_and_addresses() -> None:
    assert request_features(user("convert 5 km please"), [CONVERT])["slots"] == 1.0
    assert request_features(user("convert something"), [CONVERT])["slots"] == 0.0
    assert request_features(user("send an email to bob@example.com saying hi"), [EMAIL])["slots"] == 1.0


def test_a_turn_after_a_tool_result_is_marked() -> None:
    msgs = [*user("weather in Rome?"),
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "21C, clear"}]
    assert request_features(msgs, [WEATHER])["after_tool"] == 1.0


def test_content_parts_are_read() -> None:
    msgs = [{"role": "user", "content": [{"type": "text", "text": "weather in Oslo"}]}]
    assert request_features(msgs, [WEATHER])["overlap"] >= 1


# --- calibration ----------------------------------------------------------------------------------
def test_p_call_follows_the_logistic_model() -> None:
    cal = DecisionCalibration(weights={"after_tool": -4.0, "overlap": 1.0}, bias=0.0)
    assert cal.p_call({"overlap": 2.0}) > 0.85
    assert cal.p_call({"overlap": 2.0, "after_tool": 1.0}) < 0.15
    assert cal.p_call({}) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [{"weights": {"nope": 1.0}}, {"threshold": 1.5}, {"margin": -0.1}])
def test_a_bad_calibration_says_what_is_wrong(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        DecisionCalibration(**bad)


def test_calibration_round_trips_through_a_dict() -> None:
    cal = DecisionCalibration(weights={"model": 0.5}, bias=-1.0, threshold=0.4, margin=0.05, model="m")
    assert DecisionCalibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal


def test_the_default_model_has_a_shipped_calibration_and_others_the_generic_one() -> None:
    shipped = calibration_for("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert shipped.model != "generic" and shipped.fitted_on
    assert set(shipped.weights) <= set(FEATURES)
    assert calibration_for("qwen2.5-7b-instruct-q4_k_m.gguf").model == "generic"


def test_fit_separates_separable_cases_and_sets_threshold_and_margin() -> None:
    rows = [({"overlap": 2.0, "after_tool": 0.0}, True)] * 10 + [({"overlap": 0.0, "after_tool": 0.0}, False)] * 10 \
        + [({"overlap": 2.0, "after_tool": 1.0}, False)] * 10
    cal = fit_calibration(rows)
    assert balanced_accuracy((y, cal.p_call(f) >= cal.threshold) for f, y in rows) == 1.0
    assert cal.weights["after_tool"] < 0 < cal.weights["overlap"]
    assert 0 < cal.threshold < 1 and 0.05 <= cal.margin <= 0.45


def test_the_threshold_weighs_a_missed_call_above_an_unneeded_one() -> None:
    # overlapping classes: 0.4 catches every call for one unneeded call; 0.6 misses one call
    probs = [0.3, 0.4, 0.6, 0.7, 0.8, 0.2, 0.3, 0.5, 0.2, 0.1]
    truth = [False, True, True, True, True, False, False, False, False, False]
    assert fit_threshold(probs, truth, miss_cost=1.0) == 0.4  # = best balanced accuracy here
    assert fit_threshold(probs, truth) == 0.4
    strict = [0.3, 0.45, 0.6, 0.7, 0.8, 0.2, 0.5, 0.52, 0.55, 0.1]  # catching 0.45 costs three unneeded calls
    assert fit_threshold(strict, truth, miss_cost=1.0) == 0.6
    assert fit_threshold(strict, truth, miss_cost=4.0) == 0.45
    with pytest.raises(InvalidRequest, match="miss_cost"):
        fit_threshold(probs, truth, miss_cost=0)


def test_the_shipped_calibration_is_what_its_fit_gives_on_the_development_set() -> None:
    """Reproducible from the repo: request signals of bench/data/decision_dev.jsonl, the documented fit."""
    dev = Path(__file__).parents[3] / "bench" / "data" / "decision_dev.jsonl"
    cases = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [(request_features(c["messages"], normalize_tools(c["tools"])), bool(c["expected"])) for c in cases]
    fitted = fit_calibration(rows, features=tuple(f for f in FEATURES if f != "model"), l2=0.01)
    shipped = calibration_for("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert fitted.weights == shipped.weights and fitted.bias == shipped.bias
    assert (fitted.threshold, fitted.margin) == (shipped.threshold, shipped.margin)


def test_fit_refuses_one_class() -> None:
    with pytest.raises(InvalidRequest, match="with and without"):
        fit_calibration([({"overlap": 1.0}, True)] * 5)


def test_balanced_accuracy_weighs_both_classes_equally() -> None:
    pairs = [(True, True)] * 9 + [(False, True)]  # every call caught, the one non-call missed
    assert balanced_accuracy(pairs) == pytest.approx(0.5)
    assert balanced_accuracy([]) == 0.0


# --- the policy's view of the decision -----------------------------------------------------------
def answer(p_call: float, threshold: float = 0.5) -> Any:
    return FakeRuntime([{"content": "Hello!", "p_call": p_call, "decision_threshold": threshold}]).complete(
        user("hi"), [WEATHER])


def called(p_call: float) -> Any:
    return FakeRuntime([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}],
                         "p_call": p_call}]).complete(user("weather in Rome"), [WEATHER])


def test_a_decision_near_the_threshold_escalates_in_the_routers() -> None:
    v = EscalationPolicy().check(answer(0.45), [WEATHER], "auto")
    assert (v.ok, v.reason) == (False, "uncertain_decision") and "within" in v.detail
    assert EscalationPolicy().check(called(0.55), [WEATHER], "auto").reason == "uncertain_decision"


def test_a_clear_decision_is_accepted_and_margin_zero_turns_the_check_off() -> None:
    assert EscalationPolicy().check(answer(0.05), [WEATHER], "auto").ok
    assert EscalationPolicy().check(called(0.95), [WEATHER], "auto").ok
    assert EscalationPolicy(decision_margin=0).check(answer(0.45), [WEATHER], "auto").ok


def test_a_task_threshold_that_disagrees_with_the_runtime_escalates() -> None:
    policy = EscalationPolicy(decision_margin=0, task_decisions={"lookup": {"threshold": 0.2}})
    v = policy.check(answer(0.3), [WEATHER], "auto", task="lookup")
    assert v.reason == "uncertain_decision" and "task threshold" in v.detail
    assert policy.check(answer(0.3), [WEATHER], "auto", task="other").ok


def test_routing_escalates_an_uncertain_decision_and_keeps_the_reason() -> None:
    slm = FakeRuntime([{"content": "Sunny, probably.", "p_call": 0.48}])
    out = run_routed(EscalationPolicy(), user("weather in Rome"), [WEATHER], "auto",
                     slm=lambda: slm.complete(user("weather in Rome"), [WEATHER]), llm=lambda: "LLM")
    assert (out.route, out.reason, out.result) == ("llm", "uncertain_decision", "LLM")


def test_task_decisions_survive_save_and_load(tmp_path: Path) -> None:
    policy = EscalationPolicy(decision_margin=0.2, task_decisions={"lookup": {"threshold": 0.3, "margin": 0.1}})
    path = tmp_path / "policy.json"
    policy.save(path)
    loaded = EscalationPolicy.load(path)
    assert loaded.task_decisions == {"lookup": {"threshold": 0.3, "margin": 0.1}}
    assert loaded.decision_for("lookup", 0.5) == (0.3, 0.1)
    assert loaded.decision_for("other", 0.6) == (0.6, 0.2)


@pytest.mark.parametrize("bad", [{"lookup": 0.3}, {"lookup": {"threshold": 2}}, {"lookup": {"bias": 0.1}}])
def test_bad_task_decisions_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidRequest):
        EscalationPolicy(task_decisions=bad)


# --- the repetition guard -----------------------------------------------------------------------
def test_a_repeated_block_is_a_loop_and_varied_text_is_not() -> None:
    assert _looping([1, 2, 3] * 11, 32)
    assert _looping([7] * 32, 32)
    assert not _looping(list(range(40)), 32)
    assert not _looping([1, 2, 3] * 5 + list(range(100, 120)), 32)


# --- calibrate --decision ----------------------------------------------------------------------------
class ScoringRuntime:
    """Scores a decision from a fixed table (the real one reads llama.cpp's logits)."""

    def __init__(self, p_by_text: dict[str, float]):
        self.p = p_by_text

    def score_decision(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        return {"p_call": self.p[messages[-1]["content"]]}


def test_calibrate_decisions_fits_a_threshold_and_margin_per_task(tmp_path: Path) -> None:
    from slm_agents.dataset import calibrate_decisions, write_decisions
    from slm_agents.evaluate import EvalCase

    p = {f"call {i}": 0.3 + i / 100 for i in range(10)} | {f"chat {i}": 0.1 + i / 100 for i in range(10)}
    cases = [EvalCase(user(t), [WEATHER], [{"name": "get_weather", "arguments": {}}] if t.startswith("call") else [],
                      task="lookup") for t in p]
    cases += [EvalCase(user("call 0"), [WEATHER], [{"name": "get_weather", "arguments": {}}], task="one-sided")]
    got = calibrate_decisions(ScoringRuntime(p), cases)
    assert set(got) == {"lookup"}  # a task with one kind of turn cannot be calibrated
    assert got["lookup"]["balanced_accuracy"] == 1.0 and 0.19 < got["lookup"]["threshold"] <= 0.3
    path = tmp_path / "policy.json"
    EscalationPolicy(llm_tasks={"x"}).save(path)
    policy = write_decisions(got, path)
    assert EscalationPolicy.load(path).task_decisions["lookup"]["threshold"] == policy.task_decisions["lookup"]["threshold"]
    assert EscalationPolicy.load(path).llm_tasks == {"x"}
    with pytest.raises(InvalidRequest, match="cannot score"):
        calibrate_decisions(object(), cases)
