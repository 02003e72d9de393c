"""Reassembling a streamed answer into one call record.

:class:`StreamRecorder` takes the pieces a stream yields, in any of three shapes: the core's
:class:`~slm_agents.types.StreamChunk`, an OpenAI ``chat.completion.chunk`` (dict or SDK
object), or a bare OpenAI ``delta`` dict. Content is concatenated; tool-call deltas are joined by
``index`` (``id``/``name`` from the first delta of a call, ``arguments`` concatenated in order).
Time to first token and total latency are measured from the recorder's creation.

Example:
    >>> from slm_agents.types import StreamChunk, ToolCallDelta
    >>> rec = StreamRecorder(messages=[{"role": "user", "content": "weather?"}], route="slm")
    >>> rec.add(StreamChunk(tool_calls=[ToolCallDelta(index=0, id="call_1", name="get_weather")]))
    >>> rec.add(StreamChunk(tool_calls=[ToolCallDelta(index=0, arguments='{"city": ')]))
    >>> rec.add({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
    ...                       "finish_reason": "tool_calls"}]})
    >>> r = rec.record()
    >>> r["tool_calls"][0]["function"], r["finish_reason"]
    ({'name': 'get_weather', 'arguments': '{"city": "Oslo"}'}, 'tool_calls')
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..types import StreamChunk
from .store import CaptureStore, get_default_store, record_from_completion

__all__ = ["StreamRecorder"]


class StreamRecorder:
    """Collects streamed deltas; :meth:`record` gives the complete call record.

    Args:
        store: Where :meth:`finish` logs (the default store when None).
        **fields: Record fields known up front: ``messages`` (required to log), ``tools``,
            ``run_id``, ``route``, ``model``, ...
    """

    def __init__(self, store: CaptureStore | None = None, **fields: Any) -> None:
        self.store = store
        self.fields = fields
        self._started = time.perf_counter()
        self._first: float | None = None
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish_reason: str | None = None
        self._usage: dict[str, int] = {}
        self._completion_record: dict[str, Any] | None = None
        self._model: str | None = None
        self.chunks = 0

    def _mark(self) -> None:
        if self._first is None:
            self._first = time.perf_counter()

    def _tool_delta(self, index: int, call_id: str | None, name: str | None, arguments: str | None) -> None:
        call = self._calls.setdefault(index, {"id": None, "name": None, "arguments": []})
        if call_id:
            call["id"] = call_id
        if name:
            call["name"] = (call["name"] or "") + name if call["name"] and not call_id else name
        if arguments:
            call["arguments"].append(arguments)
        self._mark()

    def add(self, chunk: Any) -> None:
        """Add one streamed piece (StreamChunk, OpenAI chunk dict/object, or delta dict)."""
        self.chunks += 1
        if isinstance(chunk, StreamChunk):
            if chunk.content:
                self._text.append(chunk.content)
                self._mark()
            for d in chunk.tool_calls:
                self._tool_delta(d.index, d.id, d.name, d.arguments)
            if chunk.finish_reason:
                self._finish_reason = chunk.finish_reason
            if chunk.completion is not None:
                self._completion_record = record_from_completion(chunk.completion, messages=[])
            return
        if not isinstance(chunk, Mapping):
            dump = getattr(chunk, "model_dump", None)
            if not callable(dump):
                raise TypeError(f"cannot read a stream chunk of type {type(chunk).__name__}")
            chunk = dump()
        if "choices" in chunk:
            if chunk.get("model"):
                self._model = chunk["model"]
            usage = chunk.get("usage")
            if isinstance(usage, Mapping):
                self._usage = {
                    "input_tokens": usage.get("prompt_tokens", usage.get("input_tokens")),
                    "output_tokens": usage.get("completion_tokens", usage.get("output_tokens")),
                }
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue  # n > 1 is not captured; the first choice is the answer
                self._delta(choice.get("delta") or {})
                if choice.get("finish_reason"):
                    self._finish_reason = choice["finish_reason"]
            return
        self._delta(chunk)

    def _delta(self, delta: Mapping[str, Any]) -> None:
        content = delta.get("content")
        if content:
            self._text.append(content)
            self._mark()
        for position, d in enumerate(delta.get("tool_calls") or []):
            fn = d.get("function") or {}
            self._tool_delta(d.get("index", position), d.get("id"), fn.get("name"), fn.get("arguments"))
        if delta.get("finish_reason"):
            self._finish_reason = delta["finish_reason"]

    @property
    def content(self) -> str:
        return "".join(self._text)

    def tool_calls(self) -> list[dict[str, Any]]:
        """The reassembled tool calls in OpenAI format (arguments as a JSON string)."""
        return [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": "".join(c["arguments"])}}
            for _, c in sorted(self._calls.items())
        ]

    def record(self, **fields: Any) -> dict[str, Any]:
        """The complete record: fields given at creation, what the stream said, then ``fields``."""
        now = time.perf_counter()
        rec: dict[str, Any] = {
            "latency_ms": (now - self._started) * 1000,
            "ttft_ms": None if self._first is None else (self._first - self._started) * 1000,
        }
        if self._completion_record is not None:  # the core's last chunk has usage and confidence
            rec.update({k: v for k, v in self._completion_record.items()
                        if v is not None and k != "messages" and not (k == "latency_ms" and not v)})
        tool_calls = self.tool_calls()
        rec["content"] = self.content or None
        rec["tool_calls"] = tool_calls or None
        rec["finish_reason"] = self._finish_reason or ("tool_calls" if tool_calls else "stop")
        rec.update({k: v for k, v in self._usage.items() if v is not None})
        if self._model and "model" not in rec:
            rec["model"] = self._model
        rec.update(self.fields)
        rec.update(fields)
        return rec

    def finish(self, **fields: Any) -> str:
        """Log :meth:`record` to the store; returns the call id."""
        store = self.store or get_default_store()
        return store.log(self.record(**fields))
