"""A queue-driven fake runtime for tests: it answers with what you queue, in order.

Example:
    >>> rt = FakeRuntime(responses=[
    ...     "hello",
    ...     {"tool_calls": [{"name": "add", "arguments": {"a": 1}}], "confidence": 0.4},
    ... ])
    >>> rt.complete([{"role": "user", "content": "hi"}]).content
    'hello'
    >>> tools = [{"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}]
    >>> c = rt.complete([{"role": "user", "content": "1+?"}], tools=tools)
    >>> c.parsed_tool_calls()[0]["arguments"], c.confidence
    ({'a': 1}, 0.4)
    >>> len(rt.requests)
    2
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import GenerationError
from ..toolcalls import diagnose_tool_call, invalid_call, new_call_id
from ..types import Completion, Message, StreamChunk, ToolCallDelta, Usage
from .base import BaseRuntime, prepare_request

__all__ = ["FakeRuntime"]


class FakeRuntime(BaseRuntime):
    """Answers each call with the next queued response.

    A response is a ``str`` (text), a :class:`Completion`, an exception instance (raised), or a
    dict with any of ``content``, ``tool_calls`` (``{"name", "arguments"}`` items, arguments as a
    dict or raw string), ``finish_reason``, ``confidence``, ``usage`` (``(input, output)``) and
    ``delay`` (seconds to sleep before answering), ``p_call`` and ``decision_threshold`` (an "auto"
    call-or-answer decision, as the llama.cpp runtime reports one). Invalid tool calls are reported in
    ``invalid_tool_calls``, as a real runtime would.

    Args:
        responses: The queue, consumed in order.
        model: The model name to report.
        cycle: Start again from the first response when the queue runs out (otherwise an
            exhausted queue raises :class:`GenerationError`).

    Attributes:
        requests: Every request received, as ``{"messages", "tools", "tool_choice", "sampling"}``.
    """

    name = "fake"

    def __init__(self, responses: Iterable[Any] = (), *, model: str = "fake-slm", cycle: bool = False):
        self._initial = list(responses)
        self._queue: deque[Any] = deque(self._initial)
        self._model = model
        self._cycle = cycle
        self.requests: list[dict[str, Any]] = []

    @property
    def model_name(self) -> str:
        return self._model

    def push(self, *responses: Any) -> None:
        """Queue more responses."""
        self._queue.extend(responses)

    def _next(self) -> Any:
        if not self._queue:
            if self._cycle and self._initial:
                self._queue.extend(self._initial)
            else:
                raise GenerationError("FakeRuntime has no responses left; queue more with push()")
        return self._queue.popleft()

    def stream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Iterator[StreamChunk]:
        req = prepare_request(messages, tools, tool_choice, sampling)
        self.requests.append(
            {"messages": messages, "tools": req.tools, "tool_choice": tool_choice, "sampling": req.sampling}
        )
        start = time.perf_counter()
        completion = self._to_completion(self._next(), req.tools)
        completion.latency_ms = (time.perf_counter() - start) * 1000
        completion.ttft_ms = completion.ttft_ms if completion.ttft_ms is not None else completion.latency_ms
        words = completion.content.split(" ") if completion.content else []
        for i, word in enumerate(words):
            yield StreamChunk(content=word if i == 0 else " " + word)
        for index, call in enumerate(completion.tool_calls):
            fn = call["function"]
            yield StreamChunk(tool_calls=[ToolCallDelta(index=index, id=call["id"], name=fn["name"])])
            yield StreamChunk(tool_calls=[ToolCallDelta(index=index, arguments=fn["arguments"])])
        yield StreamChunk(finish_reason=completion.finish_reason, completion=completion)

    def _to_completion(self, response: Any, tools: list[dict]) -> Completion:
        if isinstance(response, BaseException):
            raise response
        if isinstance(response, Completion):
            return response
        if isinstance(response, str):
            response = {"content": response}
        delay = response.get("delay")
        if delay:
            time.sleep(delay)
        valid, invalid = [], []
        for call in response.get("tool_calls", []):
            args = call.get("arguments", {})
            raw = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            fault = diagnose_tool_call(call.get("name"), raw, tools) if tools else None
            call_id = call.get("id") or new_call_id()
            if fault is not None:
                invalid.append(invalid_call(call_id, call.get("name"), raw, fault))
            else:
                valid.append({"id": call_id, "type": "function", "function": {"name": call["name"], "arguments": raw}})
        message: dict[str, Any] = {"role": "assistant", "content": response.get("content")}
        if valid:
            message["tool_calls"] = valid
        finish = response.get("finish_reason") or ("tool_calls" if valid else "stop")
        inp, out = response.get("usage", (10, 5))
        completion = Completion(
            message=message,
            finish_reason=finish,
            usage=Usage(inp, out),
            confidence=response.get("confidence", 1.0 if valid or invalid else None),
            model=self._model,
            runtime=self.name,
            invalid_tool_calls=invalid,
        )
        if response.get("p_call") is not None:  # an "auto" call-or-answer decision, as LlamaCppRuntime reports it
            p_call = float(response["p_call"])
            completion.decision = "call" if valid or invalid else "answer"
            completion.p_call = p_call
            completion.decision_confidence = p_call if completion.decision == "call" else 1.0 - p_call
            completion.decision_threshold = float(response.get("decision_threshold", 0.5))
        return completion
