"""Private helpers: LlamaIndex messages, tools and responses <-> the core's OpenAI-format dicts.

Everything here is a translation; no routing, parsing or storage logic lives in the face.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection

from slm_agents.capture import records
from slm_agents.toolcalls import new_call_id
from slm_agents.types import Completion, Usage

__all__ = [
    "ROLE_MAP",
    "to_openai_messages",
    "to_openai_message",
    "message_tool_calls",
    "tools_to_openai",
    "resolve_tool_choice",
    "completion_to_message",
    "completion_to_response",
    "completion_from_response",
    "tool_selections",
    "usage_from_response",
    "keep_first_tool_call",
    "usage_kwargs",
    "jsonable",
    "request_fields",
    "response_fields",
    "span_context",
]

#: LlamaIndex roles that are spelled differently in OpenAI's chat format.
ROLE_MAP = {
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.FUNCTION.value: "tool",
}


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON-able data (pydantic models dumped, unknown objects as ``repr``)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump())
        except Exception:  # a broken model_dump must not break translation
            pass
    return repr(value)


def _openai_call(call: Any) -> dict[str, Any] | None:
    """One tool call in OpenAI format, from a dict or an SDK object (``additional_kwargs`` style)."""
    if not isinstance(call, Mapping):
        dump = getattr(call, "model_dump", None)
        if callable(dump):
            call = dump()
        elif isinstance(call, ToolSelection):
            call = {"id": call.tool_id, "function": {"name": call.tool_name, "arguments": call.tool_kwargs}}
        else:
            return None
    fn = call.get("function") or {}
    name = fn.get("name") or call.get("name")
    if not name:
        return None
    return records.tool_call(call.get("id") or new_call_id(), name, fn.get("arguments", call.get("arguments")))


def message_tool_calls(message: ChatMessage) -> list[dict[str, Any]]:
    """The tool calls of a LlamaIndex message, in OpenAI format.

    ``ToolCallBlock`` blocks (llama-index-core 0.14) come first; messages from older integrations
    that keep their calls in ``additional_kwargs["tool_calls"]`` are read from there.
    """
    calls = [
        records.tool_call(block.tool_call_id or new_call_id(), block.tool_name, block.tool_kwargs)
        for block in message.blocks
        if isinstance(block, ToolCallBlock)
    ]
    if calls:
        return calls
    found = []
    for call in message.additional_kwargs.get("tool_calls") or []:
        converted = _openai_call(call)
        if converted is not None:
            found.append(converted)
    return found


def _text_of(message: ChatMessage) -> str:
    """The text of a message's text blocks, joined as the core joins content parts."""
    return records.text_of([{"type": "text", "text": b.text} for b in message.blocks if isinstance(b, TextBlock)])


def to_openai_message(message: ChatMessage) -> dict[str, Any]:
    """One LlamaIndex ``ChatMessage`` as an OpenAI chat-format dict (text content only)."""
    role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
    role = ROLE_MAP.get(role, role)
    out: dict[str, Any] = {"role": role, "content": _text_of(message)}
    if role == "assistant":
        calls = message_tool_calls(message)
        if calls:
            out["tool_calls"] = calls
            out["content"] = out["content"] or None
    elif role == "tool":
        call_id = message.additional_kwargs.get("tool_call_id")
        if call_id:
            out["tool_call_id"] = str(call_id)
        name = message.additional_kwargs.get("name") or message.additional_kwargs.get("tool_name")
        if name:
            out["name"] = str(name)
    return out


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages as OpenAI chat-format dicts."""
    return [to_openai_message(m) for m in messages]


def tools_to_openai(tools: Sequence[Any] | None) -> list[dict[str, Any]]:
    """LlamaIndex tools (``BaseTool``, anything with ``.metadata.to_openai_tool``) or tool dicts
    as OpenAI tool dicts."""
    out: list[dict[str, Any]] = []
    for tool in tools or []:
        if isinstance(tool, Mapping):
            out.append(dict(tool))
            continue
        metadata = getattr(tool, "metadata", None)
        to_openai = getattr(metadata, "to_openai_tool", None)
        if callable(to_openai):
            out.append(to_openai(skip_length_check=True))
    return out


def resolve_tool_choice(tool_choice: Any, tool_required: bool) -> Any:
    """The OpenAI-style tool_choice for a request: ``tool_required`` turns ``None``/``"auto"`` into
    ``"required"``; anything else (``"none"``, a tool name, an OpenAI dict) passes through."""
    if tool_choice is None or tool_choice == "auto":
        return "required" if tool_required else "auto"
    return tool_choice


def completion_to_message(completion: Completion) -> ChatMessage:
    """The assistant message of a core ``Completion``: text in a ``TextBlock``, each tool call in a
    ``ToolCallBlock`` and, for integrations that read them there, in
    ``additional_kwargs["tool_calls"]`` (OpenAI format)."""
    blocks: list[Any] = []
    if completion.content:
        blocks.append(TextBlock(text=completion.content))
    for call in completion.parsed_tool_calls():
        blocks.append(ToolCallBlock(tool_call_id=call["id"], tool_name=call["name"], tool_kwargs=call["arguments"]))
    extra: dict[str, Any] = {}
    if completion.tool_calls:
        extra["tool_calls"] = [dict(c) for c in completion.tool_calls]
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def usage_kwargs(usage: Usage) -> dict[str, int]:
    """Token counts under the keys LlamaIndex integrations put in ``additional_kwargs``."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_to_response(completion: Completion, *, delta: str | None = None) -> ChatResponse:
    """A ``ChatResponse`` for a core ``Completion``.

    ``raw`` is ``completion.to_dict()`` (JSON-ready: message, finish_reason, usage with
    ``input_tokens``/``output_tokens``, latency, confidence, model, runtime, invalid calls);
    ``additional_kwargs`` has the token counts (``prompt_tokens``/``completion_tokens``/
    ``total_tokens``), ``finish_reason`` and ``confidence``.
    """
    return ChatResponse(
        message=completion_to_message(completion),
        raw=completion.to_dict(),
        delta=delta,
        additional_kwargs={
            **usage_kwargs(completion.usage),
            "finish_reason": completion.finish_reason,
            "confidence": completion.confidence,
        },
    )


def completion_from_response(response: ChatResponse) -> Completion:
    """The core ``Completion`` behind a ``ChatResponse``.

    Responses of :class:`~llamaindex_slm.SLM` carry it whole in ``raw``; any other LLM's answer is
    translated (message, usage when reported; no confidence).
    """
    raw = response.raw
    if isinstance(raw, Mapping) and isinstance(raw.get("message"), Mapping) and "finish_reason" in raw:
        return Completion.from_dict(dict(raw))
    message = to_openai_message(response.message)
    message["role"] = "assistant"
    inp, out = usage_from_response(response)
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return Completion(message=message, finish_reason=finish, usage=Usage(inp or 0, out or 0))


def tool_selections(message: ChatMessage) -> list[ToolSelection]:
    """``ToolSelection`` objects (with the call ids) for the tool calls in ``message``."""
    out = []
    for call in message_tool_calls(message):
        fn = call["function"]
        try:
            kwargs = json.loads(fn["arguments"] or "{}")
        except (TypeError, ValueError):  # a partial call while streaming
            kwargs = {}
        out.append(ToolSelection(tool_id=call["id"], tool_name=fn["name"], tool_kwargs=kwargs if isinstance(kwargs, dict) else {}))
    return out


def keep_first_tool_call(response: ChatResponse) -> ChatResponse:
    """A copy of ``response`` with every tool call after the first dropped (when parallel calls
    were not allowed). The response itself is left alone: instrumentation already holds it."""
    message = response.message
    blocks = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    calls = message.additional_kwargs.get("tool_calls")
    many_calls = isinstance(calls, list) and len(calls) > 1
    if len(blocks) <= 1 and not many_calls:
        return response
    kept = message.model_copy(deep=False)
    kept.blocks = [b for b in message.blocks if not isinstance(b, ToolCallBlock) or b is blocks[0]]
    kept.additional_kwargs = dict(message.additional_kwargs)
    if many_calls and isinstance(calls, list):
        kept.additional_kwargs["tool_calls"] = calls[:1]
    return response.model_copy(update={"message": kept})


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def usage_from_response(response: Any) -> tuple[int | None, int | None]:
    """(input tokens, output tokens) of any LlamaIndex chat/completion response, when reported.

    Looks in ``raw.usage`` (``input_tokens``/``output_tokens`` or OpenAI's ``prompt_tokens``/
    ``completion_tokens``), Ollama's ``prompt_eval_count``/``eval_count``, then
    ``additional_kwargs``.
    """
    raw = _get(response, "raw")
    places = [_get(raw, "usage"), raw, _get(response, "additional_kwargs")]
    for place in places:
        if place is None:
            continue
        for inp_key, out_key in (
            ("input_tokens", "output_tokens"),
            ("prompt_tokens", "completion_tokens"),
            ("prompt_eval_count", "eval_count"),
        ):
            inp, out = _get(place, inp_key), _get(place, out_key)
            if isinstance(inp, int) or isinstance(out, int):
                return (inp if isinstance(inp, int) else None, out if isinstance(out, int) else None)
    return None, None



# -- capture: LlamaIndex objects -> the core's record builder ------------------------------------------
def request_fields(kind: str, inputs: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`records.request_fields` of a chat call's messages (or a completion's prompt) and kwargs."""
    if kind == "chat":
        messages = to_openai_messages(inputs or [])
    else:
        messages = [{"role": "user", "content": str(inputs or "")}]
    tools = tools_to_openai(kwargs.get("tools")) or None
    return records.request_fields(messages, tools=tools, tool_choice=kwargs.get("tool_choice"), params=kwargs)


def _finish_reason(raw: Any) -> str | None:
    if isinstance(_get(raw, "finish_reason"), str):
        return _get(raw, "finish_reason")  # type: ignore[no-any-return]
    choices = _get(raw, "choices")
    if isinstance(choices, Sequence) and not isinstance(choices, str) and choices:
        value = _get(choices[0], "finish_reason")
        return value if isinstance(value, str) else None
    return None


def response_fields(response: Any, *, deltas: Sequence[str] | None = None) -> dict[str, Any]:
    """:func:`records.answer_fields` of a chat or completion response (an SLM's ``raw`` is read whole).

    ``deltas`` (streamed text) stand in for the content when the final response has none.
    """
    message = getattr(response, "message", None)
    if isinstance(message, ChatMessage):
        content, tool_calls = _text_of(message), message_tool_calls(message)
    else:
        content, tool_calls = str(getattr(response, "text", "") or ""), []
    if not content and deltas:
        content = "".join(deltas)
    raw = getattr(response, "raw", None)
    core = raw if isinstance(raw, Mapping) and isinstance(raw.get("message"), Mapping) \
        and "invalid_tool_calls" in raw else {}  # fmt: skip  # a Completion.to_dict(): what SLM answers
    inp, out = usage_from_response(response)
    model = _get(raw, "model")
    return records.answer_fields(
        content=content, tool_calls=tool_calls, invalid_tool_calls=core.get("invalid_tool_calls"),
        finish_reason=_finish_reason(raw), input_tokens=inp, output_tokens=out,
        confidence=core.get("confidence"), model=model if isinstance(model, str) else None,
        runtime=core.get("runtime"), ttft_ms=core.get("ttft_ms"),
    )  # fmt: skip


def span_context(span: Any, *, run_id: str | None = None, **metadata: Any) -> dict[str, Any]:
    """:func:`records.context_fields` of a call in a tracked span: the workflow step as ``task``,
    the agent, workflow and LlamaIndex run id in ``metadata`` (plus ``metadata`` given)."""
    return records.context_fields(
        framework="llamaindex",
        task=getattr(span, "step", None),
        run_id=run_id,
        parent_run_id=getattr(span, "parent_id", None),
        metadata={
            **metadata,
            "agent": getattr(span, "agent", None),
            "workflow": getattr(span, "workflow", None),
            "workflow_run_id": getattr(span, "workflow_run_id", None),
        },
    )
