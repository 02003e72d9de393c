"""The escalation policy (slm_agents.policy) and the SLM-first step (slm_agents.routing)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slm_agents.errors import GenerationError, GenerationTimeout, InvalidRequest
from slm_agents.policy import REASONS, EscalationPolicy, RouteDecision, Verdict
from slm_agents.routing import Routed, arun_routed, run_routed
from slm_agents.runtimes.fake import FakeRuntime
from slm_agents.types import Completion

TOOLS = [
    {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}},
    {"name": "ping"},
]
MSGS = [{"role": "user", "content": "1+1?"}]


def completion(response: Any) -> Completion:
    """What the fake runtime makes of ``response`` with TOOLS bound."""
    return FakeRuntime([response]).complete(MSGS, TOOLS)


def call(name: str, arguments: Any) -> dict:
    return {"tool_calls": [{"id": "call_1", "name": name, "arguments": arguments}]}


# --- one test per reason ------------------------------------------------------------------------
def test_every_reason_is_documented_and_tested() -> None:
    assert set(REASONS) == {
        "unknown_tool", "invalid_arguments", "malformed", "no_tool_call", "empty",
        "truncated", "low_confidence", "error", "timeout", "uncertain_decision", "context_overflow",
    }
    assert all(REASONS.values())


def verdict(result: Any, tool_choice: Any = "auto", policy: EscalationPolicy | None = None, **kw: Any) -> Verdict:
    return (policy or EscalationPolicy()).check(result, TOOLS, tool_choice, **kw)


def test_reason_unknown_tool() -> None:
    v = verdict(completion(call("sub", {"a": 1})))
    assert (v.ok, v.reason) == (False, "unknown_tool") and "unknown tool 'sub'" in v.detail
    assert v.escalate


def test_reason_unknown_tool_for_a_valid_call_to_the_wrong_named_tool() -> None:
    v = verdict(completion(call("ping", {})), tool_choice="add")
    assert v.reason == "unknown_tool" and "requires 'add'" in v.detail


def test_reason_invalid_arguments() -> None:
    v = verdict(completion(call("add", {"a": "two"})))
    assert v.reason == "invalid_arguments" and "a: 'two' is not of type 'integer'" in v.detail


def test_reason_invalid_arguments_on_unchecked_completion() -> None:
    """A runtime that did not validate its calls is still judged by the schema."""
    c = Completion(message={"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "add", "arguments": "{}"}}]})
    assert verdict(c).reason == "invalid_arguments"


@pytest.mark.parametrize("raw", ["{a: 1", "[1]"])
def test_reason_malformed(raw: str) -> None:
    v = verdict(completion(call("add", raw)))
    assert v.reason == "malformed"


def test_reason_malformed_when_the_call_has_no_name() -> None:
    c = Completion(message={"role": "assistant", "content": None},
                   invalid_tool_calls=[{"id": "x", "name": None, "arguments": "<tool_call>{", "error": "bad"}])
    assert verdict(c).reason == "malformed"


@pytest.mark.parametrize("choice", ["required", "any", True, "add"])
def test_reason_no_tool_call(choice: Any) -> None:
    assert verdict(completion("I think it is 2."), tool_choice=choice).reason == "no_tool_call"


def test_reason_empty() -> None:
    assert verdict(completion({"content": "   "})).reason == "empty"
    assert verdict(completion({"content": None})).reason == "empty"


def test_reason_truncated_and_accept_truncated() -> None:
    c = completion({"content": "It is", "finish_reason": "length"})
    assert verdict(c).reason == "truncated"
    assert verdict(c, policy=EscalationPolicy(accept_truncated=True)).ok


def test_reason_truncated_for_a_call_cut_off_by_max_tokens() -> None:
    """What llama.cpp returns when max_tokens ends a call mid-JSON: truncated, not malformed."""
    c = Completion(message={"role": "assistant", "content": None}, finish_reason="length", invalid_tool_calls=[
        {"id": "c", "name": None, "arguments": '{"name', "error": "tool call is not valid JSON: Unterminated string"}])
    assert verdict(c, tool_choice="required").reason == "truncated"
    assert verdict(c, tool_choice="required", policy=EscalationPolicy(accept_truncated=True)).reason == "malformed"


def test_reason_low_confidence_and_task_thresholds() -> None:
    c = completion({**call("add", {"a": 1}), "confidence": 0.4})
    assert verdict(c).ok  # no threshold
    v = verdict(c, policy=EscalationPolicy(confidence_threshold=0.5))
    assert v.reason == "low_confidence" and v.detail == "0.400 < 0.500"
    policy = EscalationPolicy(confidence_threshold=0.5, task_thresholds={"easy": 0.3, "hard": 0.9})
    assert verdict(c, policy=policy, task="easy").ok
    assert verdict(c, policy=policy, task="hard").reason == "low_confidence"
    assert verdict(c, policy=policy, task="other").reason == "low_confidence"
    assert policy.threshold_for("easy") == 0.3 and policy.threshold_for(None) == 0.5
    unknown = completion(call("add", {"a": 1}))
    unknown.confidence = None
    assert verdict(unknown, policy=policy).ok  # no confidence known: not judged on it


def test_reason_error_and_timeout() -> None:
    v = verdict(GenerationError("llama.cpp failed"))
    assert (v.reason, v.detail) == ("error", "GenerationError: llama.cpp failed")
    assert verdict(ValueError("x")).reason == "error"
    assert verdict(GenerationTimeout("slow")).reason == "timeout"
    assert verdict(TimeoutError()).reason == "timeout"


def test_accepted_answers() -> None:
    assert verdict(completion(call("add", {"a": 1}))) == Verdict(True)
    assert verdict(completion("It is 2."), tool_choice="auto").ok
    assert verdict(completion("It is 2."), tool_choice="none").ok


def test_accept_text_false() -> None:
    policy = EscalationPolicy(accept_text=False)
    v = verdict(completion("It is 2."), policy=policy)
    assert (v.reason, v.detail) == ("no_tool_call", "accept_text=False")
    assert verdict(completion("It is 2."), tool_choice="none", policy=policy).ok
    assert policy.check(completion("hi"), None, None).ok  # no tools: text is the only answer


# --- routing rules ------------------------------------------------------------------------------
def test_route_rules_in_order() -> None:
    assert EscalationPolicy().route(MSGS, TOOLS) == RouteDecision("slm", "default")
    assert EscalationPolicy(llm_tasks={"research"}).route(MSGS, TOOLS, task="research") == RouteDecision("llm", "llm_tasks")
    assert EscalationPolicy(llm_tasks={"research"}).route(MSGS, TOOLS, task="lookup").route == "slm"
    slm_only = EscalationPolicy(slm_tasks={"lookup"})
    assert slm_only.route(MSGS, TOOLS, task="lookup").route == "slm"
    assert slm_only.route(MSGS, TOOLS, task="write") == RouteDecision("llm", "slm_tasks")
    assert slm_only.route(MSGS, TOOLS) == RouteDecision("llm", "slm_tasks")  # no task label
    assert EscalationPolicy().route(MSGS, None) == RouteDecision("llm", "no_tools")
    assert EscalationPolicy(tool_steps_only=False).route(MSGS, None).route == "slm"
    assert EscalationPolicy(max_tools=1).route(MSGS, TOOLS) == RouteDecision("llm", "max_tools")
    assert EscalationPolicy(max_tools=2).route(MSGS, TOOLS).route == "slm"
    assert EscalationPolicy(max_depth=1).route(MSGS * 2, TOOLS) == RouteDecision("llm", "max_depth")
    assert EscalationPolicy(max_depth=2).route(MSGS * 2, TOOLS).route == "slm"
    both = EscalationPolicy(llm_tasks={"t"}, slm_tasks={"t"})
    assert both.route(MSGS, TOOLS, task="t").rule == "llm_tasks"  # llm_tasks wins


# --- validation and persistence -----------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"confidence_threshold": 1.5}, {"confidence_threshold": -0.1},
                                    {"task_thresholds": {"a": 2}}, {"task_thresholds": {"a": -1}}])
def test_bad_thresholds_rejected(kwargs: dict) -> None:
    with pytest.raises(InvalidRequest, match="between 0 and 1"):
        EscalationPolicy(**kwargs)


def test_task_sets_are_sets() -> None:
    p = EscalationPolicy(slm_tasks=["a", "a"], llm_tasks=("b",))  # type: ignore[arg-type]
    assert p.slm_tasks == {"a"} and p.llm_tasks == {"b"}


def test_save_load_round_trip(tmp_path: Path) -> None:
    policy = EscalationPolicy(
        confidence_threshold=0.6, task_thresholds={"lookup": 0.2}, slm_tasks={"lookup", "math"},
        llm_tasks={"research"}, tool_steps_only=False, max_tools=4, max_depth=20, accept_text=False,
        accept_truncated=True,
    )
    path = tmp_path / "policy.json"
    policy.save(path)
    data = json.loads(path.read_text())
    assert data["slm_tasks"] == ["lookup", "math"]
    assert EscalationPolicy.load(path) == policy
    default = tmp_path / "default.json"
    EscalationPolicy().save(default)
    assert EscalationPolicy.load(default) == EscalationPolicy()


def test_load_ignores_unknown_keys_and_reports_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"confidence_threshold": 0.3, "future_key": 1}))
    assert EscalationPolicy.load(path) == EscalationPolicy(confidence_threshold=0.3)
    path.write_text("{not json")
    with pytest.raises(InvalidRequest, match="cannot read policy file"):
        EscalationPolicy.load(path)
    with pytest.raises(InvalidRequest, match="cannot read policy file"):
        EscalationPolicy.load(tmp_path / "missing.json")
    path.write_text(json.dumps({"confidence_threshold": 7}))
    with pytest.raises(InvalidRequest, match="between 0 and 1"):
        EscalationPolicy.load(path)


def test_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLM_AGENTS_POLICY", raising=False)
    assert EscalationPolicy.from_env() == EscalationPolicy()
    path = tmp_path / "p.json"
    EscalationPolicy(confidence_threshold=0.7, llm_tasks={"x"}).save(path)
    monkeypatch.setenv("SLM_AGENTS_POLICY", str(path))
    assert EscalationPolicy.from_env() == EscalationPolicy(confidence_threshold=0.7, llm_tasks={"x"})
    assert EscalationPolicy.from_env(max_tools=3).max_tools == 3
    assert EscalationPolicy.from_env(max_tools=3).confidence_threshold == 0.7  # the file still applies


def test_from_env_overrides_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLM_AGENTS_POLICY", raising=False)
    with pytest.raises(InvalidRequest, match="unknown policy option\\(s\\) confidence_treshold; known: "):
        EscalationPolicy.from_env(confidence_treshold=0.5)  # a typo used to be ignored silently
    with pytest.raises(InvalidRequest, match="between 0 and 1"):
        EscalationPolicy.from_env(confidence_threshold=5)
    assert EscalationPolicy.from_env(llm_tasks=["a"]).llm_tasks == {"a"}


# --- run_routed / arun_routed parity ------------------------------------------------------------
class Calls:
    """Counts SLM/LLM invocations; each scenario runs once sync and once async."""

    def __init__(self, slm_response: Any, llm_answer: Any = "LLM answer"):
        self.slm_rt = FakeRuntime([slm_response])
        self.llm_answer = llm_answer
        self.slm_calls = 0
        self.llm_calls = 0

    def slm(self) -> Completion:
        self.slm_calls += 1
        return self.slm_rt.complete(MSGS, TOOLS)

    def llm(self) -> Any:
        self.llm_calls += 1
        return self.llm_answer

    async def aslm(self) -> Completion:
        self.slm_calls += 1
        return await self.slm_rt.acomplete(MSGS, TOOLS)

    async def allm(self) -> Any:
        self.llm_calls += 1
        return self.llm_answer


async def both(slm_response: Any, *, with_llm: bool = True, **kw: Any) -> tuple[tuple[Routed, Calls], tuple[Routed, Calls]]:
    policy = kw.pop("policy", EscalationPolicy())
    tool_choice = kw.pop("tool_choice", "auto")
    s = Calls(slm_response)
    sync = run_routed(policy, MSGS, TOOLS, tool_choice, slm=s.slm, llm=s.llm if with_llm else None, **kw)
    a = Calls(slm_response)
    asyn = await arun_routed(policy, MSGS, TOOLS, tool_choice, slm=a.aslm, llm=a.allm if with_llm else None, **kw)
    return (sync, s), (asyn, a)


def same(x: Routed, y: Routed) -> None:
    assert (x.route, x.reason, x.verdict, x.escalated) == (y.route, y.reason, y.verdict, y.escalated)
    assert (x.slm is None) == (y.slm is None)
    assert (x.llm_ms is None) == (y.llm_ms is None) == (x.route == "slm")  # timed whenever the LLM ran
    assert type(x.slm_error) is type(y.slm_error)
    if isinstance(x.result, Completion):
        assert x.result.to_dict()["message"] == y.result.to_dict()["message"]
    else:
        assert x.result == y.result


async def test_routed_accepted_slm_answer() -> None:
    (r, calls), (ar, acalls) = await both(call("add", {"a": 1}))
    for out, c in ((r, calls), (ar, acalls)):
        assert out.route == "slm" and out.reason is None and not out.escalated
        assert out.result is out.slm and out.result.parsed_tool_calls()[0]["arguments"] == {"a": 1}
        assert out.verdict == Verdict(True) and out.slm_ms >= 0
        assert (c.slm_calls, c.llm_calls) == (1, 0)
    same(r, ar)


async def test_routed_escalation_calls_llm_once_and_keeps_slm() -> None:
    (r, calls), (ar, acalls) = await both(call("sub", {}))
    for out, c in ((r, calls), (ar, acalls)):
        assert out.route == "llm" and out.reason == "unknown_tool" and out.escalated
        assert out.result == "LLM answer" and out.llm_ms is not None and out.llm_ms >= 0
        assert out.slm is not None and out.slm.invalid_tool_calls[0]["name"] == "sub"
        assert (c.slm_calls, c.llm_calls) == (1, 1)
    same(r, ar)


async def test_routed_slm_exception_escalates() -> None:
    (r, calls), (ar, acalls) = await both(GenerationTimeout("slow"))
    for out, c in ((r, calls), (ar, acalls)):
        assert out.route == "llm" and out.reason == "timeout" and out.escalated
        assert isinstance(out.slm_error, GenerationTimeout) and out.slm is None
        assert (c.slm_calls, c.llm_calls) == (1, 1)
    same(r, ar)


async def test_routed_to_llm_without_calling_slm() -> None:
    (r, calls), (ar, acalls) = await both(call("add", {"a": 1}), policy=EscalationPolicy(llm_tasks={"research"}),
                                          task="research")
    for out, c in ((r, calls), (ar, acalls)):
        assert out.route == "llm" and out.reason == "route:llm_tasks" and not out.escalated
        assert out.verdict is None and out.slm is None and out.result == "LLM answer"
        assert (c.slm_calls, c.llm_calls) == (0, 1)
    same(r, ar)


async def test_routed_shadow_runs_both_and_returns_llm() -> None:
    (r, calls), (ar, acalls) = await both(call("add", {"a": "bad"}), shadow=True)
    for out, c in ((r, calls), (ar, acalls)):
        assert out.route == "shadow" and out.reason == "shadow" and not out.escalated
        assert out.result == "LLM answer"
        assert out.verdict is not None and out.verdict.reason == "invalid_arguments"
        assert out.slm is not None
        assert (c.slm_calls, c.llm_calls) == (1, 1)
    same(r, ar)
    # a shadowed step that routing would send to the LLM still runs the SLM
    (r, calls), (ar, acalls) = await both(call("add", {"a": 1}), shadow=True,
                                          policy=EscalationPolicy(llm_tasks={"t"}), task="t")
    assert (calls.slm_calls, acalls.slm_calls) == (1, 1) and r.verdict == ar.verdict == Verdict(True)


async def test_routed_without_llm_keeps_slm_answer_with_reason() -> None:
    (r, calls), (ar, acalls) = await both(call("sub", {}), with_llm=False)
    for out, c in ((r, calls), (ar, acalls)):
        assert out.route == "slm" and out.reason == "unknown_tool" and not out.escalated
        assert out.result is out.slm and out.verdict is not None and not out.verdict.ok
        assert c.slm_calls == 1
    same(r, ar)
    # without an LLM, routing rules cannot send the step away: the SLM answers
    (r, calls), (ar, acalls) = await both(call("add", {"a": 1}), with_llm=False,
                                          policy=EscalationPolicy(llm_tasks={"t"}), task="t")
    assert r.route == ar.route == "slm" and r.reason is ar.reason is None
    # shadow without an LLM is an ordinary SLM step
    (r, calls), (ar, acalls) = await both(call("add", {"a": 1}), with_llm=False, shadow=True)
    assert r.route == ar.route == "slm"


async def test_routed_without_llm_reraises_slm_exception() -> None:
    boom = GenerationError("llama.cpp failed")
    with pytest.raises(GenerationError, match="llama.cpp failed"):
        run_routed(EscalationPolicy(), MSGS, TOOLS, "auto", slm=lambda: FakeRuntime([boom]).complete(MSGS, TOOLS),
                   llm=None)

    async def aslm() -> Completion:
        return await FakeRuntime([boom]).acomplete(MSGS, TOOLS)

    with pytest.raises(GenerationError, match="llama.cpp failed"):
        await arun_routed(EscalationPolicy(), MSGS, TOOLS, "auto", slm=aslm, llm=None)


def test_llm_exceptions_are_not_swallowed() -> None:
    def failing_llm() -> Any:
        raise RuntimeError("frontier down")

    slm: Callable[[], Completion] = lambda: FakeRuntime([call("sub", {})]).complete(MSGS, TOOLS)  # noqa: E731
    with pytest.raises(RuntimeError, match="frontier down"):
        run_routed(EscalationPolicy(), MSGS, TOOLS, "auto", slm=slm, llm=failing_llm)


def test_review_fixes_tool_choice_none_and_bad_config(tmp_path) -> None:
    from slm_agents.errors import InvalidRequest
    from slm_agents.policy import EscalationPolicy
    from slm_agents.types import Completion

    tools = [{"name": "sub", "parameters": {"type": "object"}}]
    call = Completion(message={"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "sub", "arguments": "{}"}}]})
    assert EscalationPolicy().check(call, tools, "none").reason == "unknown_tool"
    reported = Completion(message={"role": "assistant", "content": None}, invalid_tool_calls=[
        {"id": "c", "name": "sub", "arguments": "{}", "error": "tool_choice='none' forbids tool calls"}])
    assert EscalationPolicy().check(reported, tools, "none").reason == "unknown_tool"
    for bad in ({"llm_tasks": "researcher"}, {"slm_tasks": "x"}, {"task_thresholds": {"a": "0.5"}}):
        with pytest.raises(InvalidRequest):
            EscalationPolicy(**bad)
    path = tmp_path / "p.json"
    path.write_text("[]")
    with pytest.raises(InvalidRequest, match="JSON object"):
        EscalationPolicy.load(path)


@pytest.mark.parametrize("expected", ['["f"]', '[{"name": "f", "arguments": "{bad"}]'])
def test_load_cases_names_the_line_of_a_bad_expected_call(tmp_path, expected: str) -> None:
    from slm_agents.errors import InvalidRequest
    from slm_agents.evaluate import load_cases

    path = tmp_path / "cases.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "x"}], "expected": []}\n'
                    '{"messages": [{"role": "user", "content": "x"}], "expected": ' + expected + '}\n')
    with pytest.raises(InvalidRequest, match="cases.jsonl:2"):
        load_cases(path)


async def test_routed_times_the_llm_as_it_times_the_slm() -> None:
    """llm_ms is the time spent in the LLM (sync and async), beside slm_ms."""

    def slow_llm() -> str:
        time.sleep(0.03)
        return "LLM answer"

    async def aslow_llm() -> str:
        await asyncio.sleep(0.03)
        return "LLM answer"

    slm = FakeRuntime([call("sub", {}), call("sub", {})])
    sync = run_routed(EscalationPolicy(), MSGS, TOOLS, "auto", slm=lambda: slm.complete(MSGS, TOOLS), llm=slow_llm)
    asyn = await arun_routed(EscalationPolicy(), MSGS, TOOLS, "auto", slm=lambda: slm.acomplete(MSGS, TOOLS),
                             llm=aslow_llm)
    for out in (sync, asyn):
        assert out.route == "llm" and out.llm_ms is not None and out.llm_ms >= 30
        assert out.slm_ms < out.llm_ms
