"""Translation between LangChain types and the core's OpenAI-format dicts.

Everything the LangChain face needs to talk to :mod:`slm_agents` lives here, so the chat models,
the callback handler, the middleware and the graph nodes translate the same way:

* LangChain messages -> OpenAI chat messages (:func:`messages_to_openai`), and an answer
  (:class:`~langchain_core.messages.AIMessage`) -> one OpenAI assistant message
  (:func:`ai_message_to_openai`);
* LangChain tools (``BaseTool``, pydantic models, functions, dicts) -> OpenAI tool dicts
  (:func:`tools_to_openai`);
* a core :class:`~slm_agents.types.Completion` -> ``AIMessage`` with ``tool_calls``,
  ``invalid_tool_calls``, ``usage_metadata`` and ``response_metadata``
  (:func:`completion_to_message`), and a :class:`~slm_agents.types.StreamChunk` ->
  ``AIMessageChunk`` with ``tool_call_chunks`` (:func:`stream_chunk_to_message_chunk`).

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> from slm_agents.types import Completion, Usage
    >>> messages_to_openai([HumanMessage("hi")])
    [{'role': 'user', 'content': 'hi'}]
    >>> c = Completion(message={"role": "assistant", "content": None, "tool_calls": [
    ...     {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]},
    ...     finish_reason="tool_calls", usage=Usage(12, 5), model="m.gguf", runtime="llamacpp")
    >>> msg = completion_to_message(c)
    >>> msg.tool_calls[0]["name"], msg.tool_calls[0]["args"], msg.usage_metadata["total_tokens"]
    ('add', {'a': 1}, 17)
    >>> msg.response_metadata["route"], msg.response_metadata["finish_reason"]
    ('slm', 'tool_calls')
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import (
    InvalidToolCall,
    ToolCallChunk,
    invalid_tool_call,
    tool_call,
    tool_call_chunk,
)
from langchain_core.utils.function_calling import convert_to_openai_tool

from slm_agents.types import Completion, StreamChunk, ToolCallDelta

__all__ = [
    "MODEL_PROVIDER",
    "messages_to_openai",
    "ai_message_to_openai",
    "tools_to_openai",
    "non_text_parts",
    "usage_metadata",
    "response_metadata",
    "completion_to_message",
    "stream_chunk_to_message_chunk",
    "message_to_chunk",
]

#: The ``model_provider`` reported in ``response_metadata`` and the ``ls_provider`` for tracing.
MODEL_PROVIDER = "slm_agents"


# -- LangChain -> OpenAI ------------------------------------------------------------------------
def messages_to_openai(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI chat-format dicts (tool calls with JSON-string arguments).

    Content lists are kept as OpenAI content parts; the core reads their text parts.
    """
    return convert_to_openai_messages(list(messages))  # type: ignore[return-value]


def ai_message_to_openai(message: BaseMessage) -> dict[str, Any]:
    """One answer (``AIMessage``) as an OpenAI assistant message dict."""
    return convert_to_openai_messages([message])[0]  # type: ignore[index,return-value]


def tools_to_openai(tools: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Any LangChain tool spelling (``BaseTool``, pydantic model, function, dict) as OpenAI tools."""
    return [convert_to_openai_tool(t) for t in tools or []]


# Content blocks that restate what the message carries elsewhere (LangChain v1 output puts an
# AIMessage's tool calls and reasoning into its content too): not media, and not prompt text.
_RESTATED = frozenset({"text", None, "tool_call", "tool_call_chunk", "invalid_tool_call", "reasoning"})


def non_text_parts(messages: list[dict[str, Any]]) -> list[str]:
    """The types of content parts that are not text (images, audio, files), in order met."""
    kinds = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") not in _RESTATED:
                    kinds.append(str(part["type"]))
    return kinds


# -- core -> LangChain --------------------------------------------------------------------------
def usage_metadata(completion: Completion) -> UsageMetadata:
    """The completion's token counts as LangChain ``usage_metadata``."""
    return UsageMetadata(
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        total_tokens=completion.usage.total_tokens,
    )


def response_metadata(completion: Completion, *, route: str = "slm", **extra: Any) -> dict[str, Any]:
    """``response_metadata`` for an SLM answer: model, provider, finish reason, route, confidence.

    Args:
        completion: The SLM's completion.
        route: Which model's answer this is (``"slm"`` for a plain :class:`ChatSLM` call).
        **extra: More keys (the router adds ``escalation_reason`` and friends).
    """
    return {
        "model_name": completion.model,
        "model_provider": MODEL_PROVIDER,
        "finish_reason": completion.finish_reason,
        "route": route,
        "confidence": completion.confidence,
        "runtime": completion.runtime,
        "latency_ms": round(completion.latency_ms, 3),
        "ttft_ms": round(completion.ttft_ms, 3) if completion.ttft_ms is not None else None,
        "decision": completion.decision,
        "decision_confidence": completion.decision_confidence,
        **extra,
    }


def _parsed_args(raw: str) -> Any:
    return json.loads(raw or "{}")


def completion_to_message(completion: Completion, *, route: str = "slm", **metadata: Any) -> AIMessage:
    """A core :class:`Completion` as an ``AIMessage``.

    Valid calls become ``tool_calls`` (arguments parsed), calls the runtime rejected become
    ``invalid_tool_calls`` with their error; usage and :func:`response_metadata` are attached.
    """
    calls, invalid = [], []
    for call in completion.tool_calls:
        fn = call["function"]
        try:
            calls.append(tool_call(name=fn["name"], args=_parsed_args(fn["arguments"]), id=call.get("id")))
        except json.JSONDecodeError as e:  # a runtime never hands these over; keep them visible anyway
            invalid.append(invalid_tool_call(name=fn["name"], args=fn["arguments"], id=call.get("id"), error=str(e)))
    for bad in completion.invalid_tool_calls:
        args = bad.get("arguments")
        invalid.append(
            invalid_tool_call(
                name=bad.get("name"),
                args=args if isinstance(args, str) or args is None else json.dumps(args, ensure_ascii=False),
                id=bad.get("id"),
                error=bad.get("error"),
            )
        )
    return AIMessage(
        content=completion.content,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(completion),
        response_metadata=response_metadata(completion, route=route, **metadata),
    )


def stream_chunk_to_message_chunk(
    chunk: StreamChunk, *, route: str = "slm", hold_calls: bool = False, **metadata: Any
) -> AIMessageChunk:
    """A core :class:`StreamChunk` as an ``AIMessageChunk``.

    Text deltas become ``content``, tool-call deltas ``tool_call_chunks``. The last chunk (the one
    carrying the whole completion) holds ``usage_metadata`` and ``response_metadata`` and has
    ``chunk_position="last"``, so aggregating the chunks parses the tool calls and counts the
    tokens once.

    With ``hold_calls`` (a runtime whose calls are checked only at the end, such as an
    OpenAI-compatible server), tool-call deltas are held back and the last chunk carries only the
    calls that passed validation: a call streamed early could not be taken back.
    """
    if hold_calls:
        if chunk.completion is None:
            return AIMessageChunk(content=chunk.content)
        deltas = [
            ToolCallDelta(index=i, id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
            for i, c in enumerate(chunk.completion.tool_calls)
        ]
        chunk = StreamChunk(content=chunk.content, tool_calls=deltas, finish_reason=chunk.finish_reason,
                            completion=chunk.completion)
    chunks = _tool_call_chunks(chunk.tool_calls)
    if chunk.completion is not None:
        meta = response_metadata(chunk.completion, route=route, **metadata)
        if chunk.completion.invalid_tool_calls:
            meta["invalid_tool_calls"] = list(_invalid_calls(chunk.completion.invalid_tool_calls))
        return AIMessageChunk(
            content=chunk.content,
            tool_call_chunks=chunks,
            usage_metadata=usage_metadata(chunk.completion),
            response_metadata=meta,
            chunk_position="last",
        )
    return AIMessageChunk(content=chunk.content, tool_call_chunks=chunks)


def _invalid_calls(invalid: Sequence[dict[str, Any]]) -> Iterator[InvalidToolCall]:
    for bad in invalid:
        args = bad.get("arguments")
        yield invalid_tool_call(
            name=bad.get("name"),
            args=args if isinstance(args, str) or args is None else json.dumps(args, ensure_ascii=False),
            id=bad.get("id"),
            error=bad.get("error"),
        )


def invalid_calls_of(message: AIMessage) -> list[InvalidToolCall]:
    """A message's rejected tool calls, wherever they are.

    LangChain turns an ``invalid_tool_call`` whose arguments are valid JSON into a runnable
    ``tool_call`` when it adds stream chunks together, so streamed answers never carry rejected
    calls in ``tool_call_chunks``/``invalid_tool_calls``: they travel in
    ``response_metadata["invalid_tool_calls"]`` instead.
    """
    return list(message.invalid_tool_calls) + list((message.response_metadata or {}).get("invalid_tool_calls") or [])


def _tool_call_chunks(deltas: Sequence[ToolCallDelta]) -> list[ToolCallChunk]:
    """Tool-call deltas as ``tool_call_chunks``, one per call index.

    A runtime may put several deltas of the same call in one stream chunk (its name, then the
    start of its arguments); LangChain merges chunks *across* messages by index but not
    within one message, so they are joined here.
    """
    merged: dict[int, dict[str, Any]] = {}
    for d in deltas:
        slot = merged.setdefault(d.index, {"name": None, "args": "", "id": None})
        slot["name"] = slot["name"] or d.name
        slot["id"] = slot["id"] or d.id
        slot["args"] += d.arguments or ""
    return [
        tool_call_chunk(name=v["name"], args=v["args"] or None, id=v["id"], index=i) for i, v in merged.items()
    ]


def _with_invalid(message: AIMessage) -> dict[str, Any]:
    meta = dict(message.response_metadata)
    if message.invalid_tool_calls:
        meta["invalid_tool_calls"] = list(message.invalid_tool_calls)
    return meta


def message_to_chunk(message: AIMessage) -> AIMessageChunk:
    """A whole ``AIMessage`` as one last ``AIMessageChunk`` (content, tool-call chunks, usage, metadata).

    Used to stream an answer that was produced in one piece (the router's LLM branch).
    """
    chunks = [
        tool_call_chunk(
            name=tc["name"], args=json.dumps(tc["args"], ensure_ascii=False), id=tc.get("id"), index=i
        )
        for i, tc in enumerate(message.tool_calls)
    ]
    return AIMessageChunk(
        content=message.content,
        tool_call_chunks=chunks,
        usage_metadata=message.usage_metadata,
        response_metadata=_with_invalid(message),
        additional_kwargs=dict(message.additional_kwargs),
        id=message.id,
        chunk_position="last",
    )
