"""Where a step runs (SLM or LLM), whether the SLM's answer is good enough, and why not.

The faces (LangChain router, middleware, LangGraph node, LlamaIndex router) all ask one
:class:`EscalationPolicy`; none re-implements these rules.

Example:
    >>> from slm_agents.types import Completion
    >>> policy = EscalationPolicy(confidence_threshold=0.5)
    >>> tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    >>> policy.route([{"role": "user", "content": "1+1"}], tools).route
    'slm'
    >>> c = Completion(message={"role": "assistant", "content": None, "tool_calls": [
    ...     {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}]},
    ...     confidence=0.2)
    >>> policy.check(c, tools, "auto").reason
    'low_confidence'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ContextOverflow, GenerationTimeout, InvalidRequest, MalformedOutput
from .toolcalls import FAULT_KINDS, ToolChoice, diagnose_tool_call, normalize_tool_choice, normalize_tools
from .types import Completion, Message

__all__ = ["EscalationPolicy", "RouteDecision", "Verdict", "REASONS", "ERROR_REASONS", "FAULT_REASONS",
           "reason_for_error"]

#: Every reason a step escalates, and what it means.
REASONS: dict[str, str] = {
    "unknown_tool": "the SLM called a tool that is not bound",
    "invalid_arguments": "the SLM's arguments fail the tool's JSON schema",
    "malformed": "the SLM's tool call does not parse",
    "no_tool_call": "tool_choice required a call and the SLM made none",
    "empty": "the SLM returned neither text nor a tool call",
    "truncated": "the SLM hit max_tokens before finishing",
    "low_confidence": "the SLM's confidence is under the threshold",
    "error": "the SLM raised an error",
    "timeout": "the SLM did not answer in time",
    "context_overflow": "the prompt does not fit the SLM's context window",
    "uncertain_decision": "the SLM's call-or-answer decision (tool_choice='auto') was too close to call",
}


#: The reason an exception the SLM raised escalates with, by class (the first match wins; any
#: other exception is ``"error"``). The message text is never read.
ERROR_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (GenerationTimeout, "timeout"),
    (TimeoutError, "timeout"),
    (ContextOverflow, "context_overflow"),
    (MalformedOutput, "malformed"),
)

#: The reason an invalid tool call escalates with, by its kind (:data:`~slm_agents.toolcalls.FAULT_KINDS`):
#: a call ``tool_choice`` forbids names a tool the step may not call.
FAULT_REASONS: dict[str, str] = {
    "malformed": "malformed",
    "unknown_tool": "unknown_tool",
    "invalid_arguments": "invalid_arguments",
    "forbidden": "unknown_tool",
}


def reason_for_error(error: BaseException) -> str:
    """The escalation reason of an exception the SLM raised, from its type alone.

    Example:
        >>> from slm_agents.errors import ContextOverflow, GenerationTimeout
        >>> reason_for_error(GenerationTimeout("slow")), reason_for_error(ContextOverflow("long"))
        ('timeout', 'context_overflow')
        >>> reason_for_error(RuntimeError("timeout"))  # the text says timeout; the type does not
        'error'
    """
    for kind, reason in ERROR_REASONS:
        if isinstance(error, kind):
            return reason
    return "error"


def _fault_kind(call: dict[str, Any], tools: list[dict[str, Any]], choice: ToolChoice) -> str:
    """The kind of an ``invalid_tool_calls`` entry: as the runtime reported it, else found again
    from its structure (entries built elsewhere, e.g. from a framework's message, carry none)."""
    kind = call.get("kind")
    if kind in FAULT_KINDS:
        return str(kind)
    if call.get("name") is None:
        return "malformed"  # no name could be read out of the call
    if choice.mode == "none" or (choice.name and call.get("name") != choice.name):
        return "forbidden"
    fault = diagnose_tool_call(call.get("name"), call.get("arguments") or "{}", tools)
    return fault.kind if fault is not None else "invalid_arguments"


def _check_threshold(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise InvalidRequest(f"{what} must be a number between 0 and 1, got {value!r}")


def _task_set(name: str, value: Any) -> set[str]:
    if isinstance(value, str):
        raise InvalidRequest(f"{name} must be a list or set of task names, e.g. {name}={{{value!r}}}")
    return set(value)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where a step goes first: ``"slm"`` or ``"llm"``, and the rule that decided it."""

    route: str
    rule: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an SLM answer is accepted; when not, the reason (a key of :data:`REASONS`)."""

    ok: bool
    reason: str | None = None
    detail: str = ""

    @property
    def escalate(self) -> bool:
        return not self.ok


@dataclass
class EscalationPolicy:
    """The rules for SLM-first routing and escalation.

    Args:
        confidence_threshold: Tool calls whose confidence is under this escalate (None: never).
        task_thresholds: Per-task thresholds that override ``confidence_threshold``; written by
            ``slm-agents calibrate``.
        slm_tasks: If set, only these tasks (agent node names / labels) try the SLM first.
        llm_tasks: These tasks always go to the LLM.
        tool_steps_only: Only steps with tools bound try the SLM (the default: free-form
            answers stay on the LLM).
        max_tools: Steps with more tools than this go to the LLM.
        max_depth: Conversations with more messages than this go to the LLM.
        accept_text: Accept a plain-text answer when tools were bound with ``tool_choice="auto"``.
        accept_truncated: Accept an answer cut off by ``max_tokens``.
        decision_margin: With ``tool_choice="auto"``, an answer whose calibrated ``p_call`` lies
            within this of the decision threshold escalates (reason ``uncertain_decision``);
            0 or None turns it off. See :mod:`slm_agents.decision`.
        task_decisions: Per-task ``{"threshold": t, "margin": m}`` for the call-or-answer
            decision, written by ``slm-agents calibrate --decision``; an SLM answer on the other
            side of its task's threshold escalates too.
        task_adapters: Per-task LoRA adapters (``adapter.gguf`` paths) the SLM runs that task's
            steps with, written by ``slm-agents finetune --promote`` when the tuned model beats
            the base; every router applies it (the runtime's own ``lora_path`` wins).

    Example:
        >>> p = EscalationPolicy(llm_tasks={"researcher"})
        >>> p.route([{"role": "user", "content": "hi"}], [{"name": "f"}], task="researcher").rule
        'llm_tasks'
    """

    confidence_threshold: float | None = None
    task_thresholds: dict[str, float] = field(default_factory=dict)
    slm_tasks: set[str] | None = None
    llm_tasks: set[str] = field(default_factory=set)
    tool_steps_only: bool = True
    max_tools: int | None = None
    max_depth: int | None = None
    accept_text: bool = True
    accept_truncated: bool = False
    decision_margin: float | None = 0.1
    task_decisions: dict[str, dict[str, float]] = field(default_factory=dict)
    task_adapters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.confidence_threshold is not None:
            _check_threshold("confidence_threshold", self.confidence_threshold)
        if not isinstance(self.task_thresholds, dict):
            raise InvalidRequest("task_thresholds must map task names to thresholds, e.g. {'lookup': 0.6}")
        for task, value in self.task_thresholds.items():
            _check_threshold(f"the threshold of task {task!r}", value)
        if self.slm_tasks is not None:
            self.slm_tasks = _task_set("slm_tasks", self.slm_tasks)
        self.llm_tasks = _task_set("llm_tasks", self.llm_tasks)
        if self.decision_margin is not None:
            _check_threshold("decision_margin", self.decision_margin)
        if not isinstance(self.task_decisions, dict):
            raise InvalidRequest("task_decisions must map task names to {'threshold': t, 'margin': m}")
        for task, decision in self.task_decisions.items():
            if not isinstance(decision, dict) or not set(decision) <= {"threshold", "margin"}:
                raise InvalidRequest(f"the decision of task {task!r} must be {{'threshold': t, 'margin': m}}")
            for key, number in decision.items():
                _check_threshold(f"the decision {key} of task {task!r}", number)
        if not isinstance(self.task_adapters, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in self.task_adapters.items()
        ):
            raise InvalidRequest("task_adapters must map task names to adapter paths, e.g. {'lookup': 'out/adapter.gguf'}")

    # -- routing ------------------------------------------------------------------------------
    def route(self, messages: list[Message], tools: list[dict] | None, *, task: str | None = None) -> RouteDecision:
        """Where this step goes first."""
        if task is not None and task in self.llm_tasks:
            return RouteDecision("llm", "llm_tasks")
        if self.slm_tasks is not None and task not in self.slm_tasks:
            return RouteDecision("llm", "slm_tasks")
        if self.tool_steps_only and not tools:
            return RouteDecision("llm", "no_tools")
        if self.max_tools is not None and len(tools or []) > self.max_tools:
            return RouteDecision("llm", "max_tools")
        if self.max_depth is not None and len(messages) > self.max_depth:
            return RouteDecision("llm", "max_depth")
        return RouteDecision("slm", "default")

    def threshold_for(self, task: str | None) -> float | None:
        """The confidence threshold that applies to ``task``."""
        if task is not None and task in self.task_thresholds:
            return self.task_thresholds[task]
        return self.confidence_threshold

    def adapter_for(self, task: str | None) -> str | None:
        """The LoRA adapter ``task``'s SLM steps run with (None: the base model)."""
        return self.task_adapters.get(task) if task is not None else None

    def decision_for(self, task: str | None, runtime_threshold: float | None) -> tuple[float, float]:
        """The call-or-answer ``(threshold, margin)`` that applies to ``task``."""
        own = self.task_decisions.get(task, {}) if task is not None else {}
        threshold = own.get("threshold", runtime_threshold if runtime_threshold is not None else 0.5)
        return float(threshold), float(own.get("margin", self.decision_margin or 0.0))

    def _check_decision(self, result: Completion, task: str | None) -> Verdict | None:
        if result.p_call is None or result.decision is None:
            return None
        threshold, margin = self.decision_for(task, result.decision_threshold)
        if margin and abs(result.p_call - threshold) < margin:
            return Verdict(False, "uncertain_decision", f"p_call {result.p_call:.3f} within {margin:.2f} of {threshold:.2f}")
        if (result.p_call >= threshold) != (result.decision == "call"):
            return Verdict(False, "uncertain_decision",
                           f"decided {result.decision!r} but p_call {result.p_call:.3f} vs task threshold {threshold:.2f}")
        return None

    # -- checking -----------------------------------------------------------------------------
    def check(
        self,
        result: Completion | BaseException,
        tools: list[dict] | None,
        tool_choice: Any = None,
        *,
        task: str | None = None,
    ) -> Verdict:
        """Judge an SLM answer (or the exception it raised).

        Reasons come from types, never from message text: an exception's class (see
        :data:`ERROR_REASONS`) and the ``kind`` of each invalid tool call (see
        :data:`slm_agents.toolcalls.FAULT_KINDS`).
        """
        if isinstance(result, BaseException):
            detail = f"{type(result).__name__}: {result}" if str(result) else type(result).__name__
            return Verdict(False, reason_for_error(result), detail)
        norm = normalize_tools(tools)
        choice = normalize_tool_choice(tool_choice, norm)
        # Before the call checks: a call cut off by max_tokens does not parse, but it is truncated.
        if result.finish_reason == "length" and not self.accept_truncated:
            return Verdict(False, "truncated", "finish_reason=length")
        if result.invalid_tool_calls:
            first = result.invalid_tool_calls[0]
            return Verdict(False, FAULT_REASONS[_fault_kind(first, norm, choice)], str(first.get("error", "")))
        calls = result.tool_calls
        if calls and choice.mode == "none":
            return Verdict(False, "unknown_tool", "tool_choice='none' forbids tool calls")
        for call in calls:
            fn = call.get("function", {})
            fault = diagnose_tool_call(fn.get("name"), fn.get("arguments", "{}"), norm)
            if fault is not None:
                return Verdict(False, FAULT_REASONS[fault.kind], fault.message)
            if choice.name and fn.get("name") != choice.name:
                return Verdict(False, "unknown_tool", f"tool_choice requires {choice.name!r}")
        if not calls:
            if choice.mode == "required":
                return Verdict(False, "no_tool_call", f"tool_choice={tool_choice!r}")
            if not result.content.strip():
                return Verdict(False, "empty", "")
            if norm and choice.mode == "auto" and not self.accept_text:
                return Verdict(False, "no_tool_call", "accept_text=False")
            return self._check_decision(result, task) or Verdict(True)
        uncertain = self._check_decision(result, task)
        if uncertain is not None:
            return uncertain
        threshold = self.threshold_for(task)
        if threshold is not None and result.confidence is not None and result.confidence < threshold:
            return Verdict(False, "low_confidence", f"{result.confidence:.3f} < {threshold:.3f}")
        return Verdict(True)

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence_threshold": self.confidence_threshold,
            "task_thresholds": dict(self.task_thresholds),
            "slm_tasks": sorted(self.slm_tasks) if self.slm_tasks is not None else None,
            "llm_tasks": sorted(self.llm_tasks),
            "tool_steps_only": self.tool_steps_only,
            "max_tools": self.max_tools,
            "max_depth": self.max_depth,
            "accept_text": self.accept_text,
            "accept_truncated": self.accept_truncated,
            "decision_margin": self.decision_margin,
            "task_decisions": {k: dict(v) for k, v in self.task_decisions.items()},
            "task_adapters": dict(self.task_adapters),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the policy as JSON (``slm-agents calibrate`` writes thresholds this way)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EscalationPolicy:
        """Read a policy written by :meth:`save` or ``slm-agents calibrate``."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InvalidRequest(f"cannot read policy file {path}: {e}") from e
        if not isinstance(data, dict):
            raise InvalidRequest(f"policy file {path} must hold a JSON object (as EscalationPolicy.save writes)")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("slm_tasks", "llm_tasks"):
            value = known.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
                raise InvalidRequest(f"policy file {path}: {key} must be a list of task names, got {value!r}")
        if known.get("slm_tasks") is not None:
            known["slm_tasks"] = set(known["slm_tasks"])
        known["llm_tasks"] = set(known.get("llm_tasks") or [])
        try:
            return cls(**known)
        except InvalidRequest as e:  # the constructor's check, with the file it came from
            raise InvalidRequest(f"policy file {path}: {e}") from e

    @classmethod
    def from_env(cls, **overrides: Any) -> EscalationPolicy:
        """The policy in ``SLM_AGENTS_POLICY`` (a JSON file) if set, else the defaults."""
        path = os.environ.get("SLM_AGENTS_POLICY")
        policy = cls.load(path) if path else cls()
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidRequest(f"unknown policy option(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(cls.__dataclass_fields__)}")
        return replace(policy, **overrides)  # validated like the constructor's arguments
