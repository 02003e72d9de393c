"""The values runtimes return: a :class:`Completion`, and :class:`StreamChunk` while streaming.

Messages, tools and tool calls are OpenAI chat-format dicts everywhere in the core; these classes
only wrap what a model call produced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Usage", "Completion", "ToolCallDelta", "StreamChunk"]

Message = dict[str, Any]


@dataclass(slots=True)
class Usage:
    """Token counts of one model call.

    Example:
        >>> Usage(input_tokens=12, output_tokens=3).total_tokens
        15
    """

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class Completion:
    """The result of one model call.

    Attributes:
        message: The assistant message in OpenAI format: ``role``, ``content`` (str or None) and,
            when the model called tools, ``tool_calls`` (each ``{"id", "type": "function",
            "function": {"name", "arguments": <JSON string>}}``).
        finish_reason: ``"stop"``, ``"tool_calls"`` or ``"length"``.
        usage: Input and output tokens.
        latency_ms: Wall time of the whole call.
        ttft_ms: Time to the first generated token (None when unknown).
        confidence: For tool calls, the geometric-mean probability the model gave the tokens of
            the calls (from token log-probabilities); None when there were no tool calls or the
            runtime cannot tell.
        model: The model that answered (resolved name or file).
        runtime: The runtime that ran it (``"llamacpp"``, ``"openai"``, ...).
        invalid_tool_calls: Calls the model began but that do not parse or validate, each
            ``{"id", "name", "arguments", "error"}``. Empty when every call is valid.
        decision: With ``tool_choice="auto"`` and tools bound, what the runtime's call-or-answer
            step decided: ``"call"`` or ``"answer"`` (None when no such decision was made; see
            :mod:`slm_agents.decision`).
        decision_confidence: The calibrated probability of the side decided (0.5..1).
        p_call: The calibrated probability that the turn should call a tool.
        decision_threshold: The threshold ``p_call`` was compared with.

    Example:
        >>> c = Completion(message={"role": "assistant", "content": "hi"}, finish_reason="stop")
        >>> c.content
        'hi'
    """

    message: Message
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    confidence: float | None = None
    model: str = ""
    runtime: str = ""
    invalid_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    decision: str | None = None
    decision_confidence: float | None = None
    p_call: float | None = None
    decision_threshold: float | None = None

    @property
    def content(self) -> str:
        """The text of the answer ('' when the model only called tools)."""
        return self.message.get("content") or ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls, in OpenAI format (arguments as a JSON string)."""
        return self.message.get("tool_calls") or []

    def parsed_tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls as ``{"id", "name", "arguments": dict}``."""
        return [
            {
                "id": call["id"],
                "name": call["function"]["name"],
                "arguments": json.loads(call["function"]["arguments"] or "{}"),
            }
            for call in self.tool_calls
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "message": self.message,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "confidence": self.confidence,
            "model": self.model,
            "runtime": self.runtime,
            "invalid_tool_calls": self.invalid_tool_calls,
            "decision": self.decision,
            "decision_confidence": self.decision_confidence,
            "p_call": self.p_call,
            "decision_threshold": self.decision_threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        """The :class:`Completion` that :meth:`to_dict` wrote (unknown keys are ignored).

        Example:
            >>> c = Completion(message={"role": "assistant", "content": "hi"}, p_call=0.1, decision="answer")
            >>> Completion.from_dict(c.to_dict()) == c
            True
        """
        usage = data.get("usage") or {}

        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) else None

        return cls(
            message=dict(data.get("message") or {"role": "assistant", "content": ""}),
            finish_reason=str(data.get("finish_reason") or "stop"),
            usage=Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)),
            latency_ms=float(data.get("latency_ms") or 0.0),
            ttft_ms=number("ttft_ms"),
            confidence=number("confidence"),
            model=str(data.get("model") or ""),
            runtime=str(data.get("runtime") or ""),
            invalid_tool_calls=list(data.get("invalid_tool_calls") or []),
            decision=data.get("decision") if data.get("decision") in ("call", "answer") else None,
            decision_confidence=number("decision_confidence"),
            p_call=number("p_call"),
            decision_threshold=number("decision_threshold"),
        )


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call while streaming, as in OpenAI's ``delta.tool_calls``.

    ``id`` and ``name`` arrive once, in the first delta of a call; ``arguments`` is a fragment of
    the JSON arguments string, to be concatenated in order for the same ``index``.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamChunk:
    """One streamed piece of a completion.

    Attributes:
        content: Text delta ('' when this chunk carries none).
        tool_calls: Tool-call deltas.
        finish_reason: Set on the last chunk.
        completion: Set on the last chunk only: the whole :class:`Completion`, with usage,
            latency and confidence, assembled from the stream.
    """

    content: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: str | None = None
    completion: Completion | None = None
