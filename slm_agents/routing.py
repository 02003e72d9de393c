"""The SLM-first step, shared by every face: route, try the SLM, judge, escalate, report.

A face supplies two callables, one that runs the SLM (returning a :class:`Completion`) and one that
runs the LLM (returning whatever its framework returns); :func:`run_routed` and
:func:`arun_routed` decide which run and why.

Example:
    >>> from slm_agents.runtimes.fake import FakeRuntime
    >>> slm = FakeRuntime(responses=[{"tool_calls": [{"name": "nope", "arguments": {}}]}])
    >>> tools = [{"name": "add", "parameters": {"type": "object"}}]
    >>> msgs = [{"role": "user", "content": "2+2"}]
    >>> out = run_routed(EscalationPolicy(), msgs, tools, "auto",
    ...                  slm=lambda: slm.complete(msgs, tools), llm=lambda: "LLM answer")
    >>> out.route, out.reason, out.result
    ('llm', 'unknown_tool', 'LLM answer')
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .policy import EscalationPolicy, Verdict
from .runtimes._lora import task_adapter
from .types import Completion, Message

__all__ = ["Routed", "run_routed", "arun_routed"]

T = TypeVar("T")


@dataclass
class Routed(Generic[T]):
    """The outcome of one routed step.

    Attributes:
        route: ``"slm"`` (the SLM's answer was used), ``"llm"`` (the LLM answered, first or after
            escalation) or ``"shadow"`` (both ran; the LLM's answer was used).
        reason: Why the LLM answered: an escalation reason (see :data:`slm_agents.policy.REASONS`),
            a routing rule prefixed ``route:``, or ``"shadow"``; None when the SLM's answer was used.
        result: The answer used: the SLM's :class:`Completion` or the LLM's own result.
        slm: The SLM's completion, when the SLM ran and answered.
        slm_error: The exception the SLM raised, if any.
        verdict: The policy's verdict on the SLM answer (None when the SLM did not run).
        slm_ms: Time spent in the SLM.
        llm_ms: Time spent in the LLM; None when it did not run.
    """

    route: str
    reason: str | None
    result: Any
    slm: Completion | None = None
    slm_error: BaseException | None = None
    verdict: Verdict | None = None
    slm_ms: float = 0.0
    llm_ms: float | None = None

    @property
    def escalated(self) -> bool:
        """True when the SLM ran, failed the policy, and the LLM answered instead."""
        return self.route == "llm" and self.verdict is not None and not self.verdict.ok

    def report(self, task: str | None = None) -> dict[str, Any]:
        """The routing facts every face reports with its answer (one key set for all faces).

        ``route``, ``escalation_reason``, ``escalation_detail`` (what the policy found, when the
        SLM's answer failed), ``slm_confidence``, ``slm_latency_ms`` (when the SLM ran) and
        ``task``. LangChain puts them in ``response_metadata``, LlamaIndex in
        ``additional_kwargs`` and ``raw``, the gateway in its response headers.

        Example:
            >>> Routed("llm", "route:no_tools", "answer").report("greet")["escalation_reason"]
            'route:no_tools'
        """
        verdict = self.verdict
        ran = self.slm is not None or self.slm_error is not None
        return {
            "route": self.route,
            "escalation_reason": self.reason,
            "escalation_detail": verdict.detail if verdict is not None and not verdict.ok else None,
            "slm_confidence": self.slm.confidence if self.slm is not None else None,
            "slm_latency_ms": round(self.slm_ms, 3) if ran else None,
            "task": task,
        }


def _try_slm(
    slm: Callable[[], Completion], adapter: str | None = None
) -> tuple[Completion | None, BaseException | None, float]:
    start = time.perf_counter()
    try:
        with task_adapter(adapter):  # the task's fine-tuned adapter, when the policy maps one
            return slm(), None, (time.perf_counter() - start) * 1000
    except Exception as e:  # judged by the policy as "error"/"timeout"
        return None, e, (time.perf_counter() - start) * 1000


def _timed_llm(llm: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = llm()
    return result, (time.perf_counter() - start) * 1000


async def _atimed_llm(llm: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    start = time.perf_counter()
    result = await llm()
    return result, (time.perf_counter() - start) * 1000


def run_routed(
    policy: EscalationPolicy,
    messages: list[Message],
    tools: list[dict] | None,
    tool_choice: Any,
    *,
    slm: Callable[[], Completion],
    llm: Callable[[], T] | None,
    task: str | None = None,
    shadow: bool = False,
) -> Routed[T]:
    """Run one step SLM-first under ``policy``.

    Args:
        policy: The routing and escalation rules.
        messages: The request's messages (OpenAI format), for routing rules.
        tools: The bound tools (any spelling :func:`~slm_agents.toolcalls.normalize_tools` reads).
        tool_choice: The request's tool_choice.
        slm: Runs the SLM; returns a Completion.
        llm: Runs the LLM; None when no LLM is configured (the SLM's answer is then kept and the
            outcome says the step needed escalation).
        task: The step's task label (agent node name), for per-task rules and thresholds.
        shadow: Run both; use the LLM's answer; keep the SLM's for comparison.
    """
    if shadow and llm is not None:
        completion, error, ms = _try_slm(slm, policy.adapter_for(task))
        verdict = policy.check(error or completion, tools, tool_choice, task=task)  # type: ignore[arg-type]
        answer, llm_ms = _timed_llm(llm)
        return Routed("shadow", "shadow", answer, completion, error, verdict, ms, llm_ms)
    decision = policy.route(messages, tools, task=task)
    if decision.route == "llm" and llm is not None:
        answer, llm_ms = _timed_llm(llm)
        return Routed("llm", f"route:{decision.rule}", answer, llm_ms=llm_ms)
    completion, error, ms = _try_slm(slm, policy.adapter_for(task))
    verdict = policy.check(error or completion, tools, tool_choice, task=task)  # type: ignore[arg-type]
    if verdict.ok:
        return Routed("slm", None, completion, completion, None, verdict, ms)
    if llm is None:
        if error is not None:
            raise error
        return Routed("slm", verdict.reason, completion, completion, None, verdict, ms)
    answer, llm_ms = _timed_llm(llm)
    return Routed("llm", verdict.reason, answer, completion, error, verdict, ms, llm_ms)


async def arun_routed(
    policy: EscalationPolicy,
    messages: list[Message],
    tools: list[dict] | None,
    tool_choice: Any,
    *,
    slm: Callable[[], Awaitable[Completion]],
    llm: Callable[[], Awaitable[T]] | None,
    task: str | None = None,
    shadow: bool = False,
) -> Routed[T]:
    """Async twin of :func:`run_routed`; ``slm`` and ``llm`` return awaitables."""

    async def try_slm() -> tuple[Completion | None, BaseException | None, float]:
        start = time.perf_counter()
        try:
            with task_adapter(policy.adapter_for(task)):  # the context var follows into to_thread
                return await slm(), None, (time.perf_counter() - start) * 1000
        except Exception as e:
            return None, e, (time.perf_counter() - start) * 1000

    if shadow and llm is not None:
        completion, error, ms = await try_slm()
        verdict = policy.check(error or completion, tools, tool_choice, task=task)  # type: ignore[arg-type]
        answer, llm_ms = await _atimed_llm(llm)
        return Routed("shadow", "shadow", answer, completion, error, verdict, ms, llm_ms)
    decision = policy.route(messages, tools, task=task)
    if decision.route == "llm" and llm is not None:
        answer, llm_ms = await _atimed_llm(llm)
        return Routed("llm", f"route:{decision.rule}", answer, llm_ms=llm_ms)
    completion, error, ms = await try_slm()
    verdict = policy.check(error or completion, tools, tool_choice, task=task)  # type: ignore[arg-type]
    if verdict.ok:
        return Routed("slm", None, completion, completion, None, verdict, ms)
    if llm is None:
        if error is not None:
            raise error
        return Routed("slm", verdict.reason, completion, completion, None, verdict, ms)
    answer, llm_ms = await _atimed_llm(llm)
    return Routed("llm", verdict.reason, answer, completion, error, verdict, ms, llm_ms)
