"""OpenAI's chat-completions wire format: reading a request, writing answers, chunks and errors.

Everything here is pure translation between JSON and the core's values (OpenAI-format dicts,
:class:`~slm_agents.types.Completion`, :class:`~slm_agents.types.StreamChunk`); the gateway's
routing and capture live in :mod:`slm_agents_gateway.app`.

Example:
    >>> req = parse_chat_request(b'{"model": "slm-agents/support", "messages": [{"role": "user", "content": "hi"}]}')
    >>> req.task, req.stream, req.sampling
    ('support', False, {})
    >>> parse_chat_request(b'{"model": "m", "messages": [], "foo": 1}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slm_agents_gateway._protocol.RequestRejected: unknown field 'foo' ...
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from slm_agents.runtimes.base import prepare_request
from slm_agents.types import Completion, StreamChunk, ToolCallDelta

__all__ = [
    "MODEL_PREFIX",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONCURRENCY",
    "ChatRequest",
    "RequestRejected",
    "parse_chat_request",
    "error_body",
    "completion_body",
    "chunk_body",
    "new_completion_id",
]

#: ``model="slm-agents/<task>"`` names the step's task.
MODEL_PREFIX = "slm-agents"
#: Request bodies over this many bytes get 413 (``--max-body-bytes``).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: Chat requests in flight at once; more get 429 (``--max-concurrency``).
DEFAULT_MAX_CONCURRENCY = 64

# Fields the gateway passes to the runtimes as sampling options (OpenAI name -> runtime name).
_SAMPLING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "response_format": "response_format",
    "parallel_tool_calls": "parallel_tool_calls",
    # llama.cpp's extensions (llama-server and llama_cpp.server read them too)
    "top_k": "top_k",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
}
# Accepted and not used: they change nothing in the answer (or are the client's bookkeeping).
_IGNORED = frozenset({
    "user", "metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier",
    "reasoning_effort", "verbosity", "stream_options",
})  # fmt: skip
_STRUCTURE = frozenset({"model", "messages", "tools", "tool_choice", "stream", "n", "logprobs", "top_logprobs",
                        "logit_bias", "functions", "function_call"})
KNOWN_FIELDS = frozenset(_SAMPLING) | _IGNORED | _STRUCTURE


class RequestRejected(Exception):
    """A request the gateway answers with an OpenAI-shaped error and never routes or captures.

    Attributes:
        status: The HTTP status (400, 401, 413, 429, ...).
        message: What was wrong and how to fix it.
        param: The request field at fault, if one is.
        code: OpenAI's machine-readable ``code``.
        type: OpenAI's error ``type``.
    """

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error") -> None:  # noqa: A002 (OpenAI's field name)
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,  # noqa: A002
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass
class ChatRequest:
    """A validated ``POST /v1/chat/completions`` body.

    Attributes:
        model: The model the client asked for (echoed back).
        task: The task from a ``slm-agents/<task>`` model alias (None otherwise).
        messages: OpenAI-format messages.
        tools: The tools as sent (OpenAI format), or None.
        tool_choice: As sent.
        sampling: Runtime sampling options (OpenAI names mapped to the runtime's).
        stream: Whether the client asked for server-sent events.
        include_usage: ``stream_options.include_usage``.
    """

    model: str
    task: str | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    sampling: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False


def _reject(message: str, param: str | None = None, code: str | None = "invalid_value") -> RequestRejected:
    return RequestRejected(message, param=param, code=code)


def _number(body: dict[str, Any], key: str, lo: float, hi: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise _reject(f"{key} must be a number from {lo:g} to {hi:g}, got {value!r}", key)


def _integer(body: dict[str, Any], key: str, lo: int) -> None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lo):
        raise _reject(f"{key} must be an integer >= {lo}, got {value!r}", key)


def task_from_model(model: str) -> str | None:
    """``"slm-agents/support"`` -> ``"support"``; any other model name -> None."""
    prefix = MODEL_PREFIX + "/"
    return model[len(prefix):] or None if model.startswith(prefix) else None


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Read and validate a chat-completions body.

    Raises:
        RequestRejected: (400) the body is not JSON, not an object, has a field OpenAI's API does
            not define, a field of the wrong type, or messages/tools/tool_choice the core rejects.
    """
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestRejected(f"the request body is not valid JSON ({e.__class__.__name__} at {getattr(e, 'pos', 0)}); "
                              "send a JSON object as OpenAI's chat completions API takes", code="invalid_json") from None
    if not isinstance(body, dict):
        raise _reject("the request body must be a JSON object with 'model' and 'messages'", code="invalid_json")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise RequestRejected(f"unknown field {unknown[0]!r} in the request; slm-agents serve takes OpenAI's chat "
                              f"completions fields ({', '.join(sorted(KNOWN_FIELDS))})", param=unknown[0],
                              code="unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _reject("model is required: a name such as 'slm-agents' or 'slm-agents/<task>'", "model", "missing_required_parameter")
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise _reject("functions/function_call are OpenAI's deprecated spelling; send tools and tool_choice", "functions")
    if body.get("n") not in (None, 1):
        raise _reject("n must be 1: the gateway returns one choice per request", "n")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise _reject("logprobs are not returned by slm-agents serve; drop logprobs/top_logprobs "
                      "(the SLM's confidence is in the answer's slm_agents field)", "logprobs")
    if body.get("logit_bias"):
        raise _reject("logit_bias is not supported by slm-agents serve; drop it", "logit_bias")
    for key in ("temperature",):
        _number(body, key, 0.0, 2.0)
    for key in ("top_p", "min_p"):
        _number(body, key, 0.0, 1.0)
    for key in ("presence_penalty", "frequency_penalty"):
        _number(body, key, -2.0, 2.0)
    _number(body, "repeat_penalty", 0.0, 10.0)
    for key, lo in (("max_tokens", 1), ("max_completion_tokens", 1), ("top_k", 0), ("seed", -(2**63))):
        _integer(body, key, lo)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise _reject("stop must be a string or a list of strings", "stop")
    for key in ("stream", "parallel_tool_calls"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise _reject(f"{key} must be true or false", key)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _reject("stream_options must be an object such as {\"include_usage\": true}", "stream_options")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _reject("tools must be a list of {\"type\": \"function\", \"function\": {...}} objects", "tools")
    sampling = {_SAMPLING[k]: v for k, v in body.items() if k in _SAMPLING and v is not None}
    try:  # the core's own checks (messages, tools, tool_choice, response_format), before anything runs
        prepare_request(body.get("messages"), tools or None, body.get("tool_choice"), sampling)
    except Exception as e:  # InvalidRequest, or a malformed tool that the core cannot read
        param = "messages" if "message" in str(e) else ("tool_choice" if "tool_choice" in str(e) else None)
        raise _reject(str(e), param) from None
    return ChatRequest(
        model=model,
        task=task_from_model(model),
        messages=body["messages"],
        tools=tools or None,
        tool_choice=body.get("tool_choice"),
        sampling=sampling,
        stream=bool(body.get("stream")),
        include_usage=bool((options or {}).get("include_usage")),
    )


def new_completion_id() -> str:
    """``chatcmpl-`` and 24 hex digits, as OpenAI's ids look."""
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _usage(completion: Completion) -> dict[str, int]:
    u = completion.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total_tokens}


def _message(completion: Completion) -> dict[str, Any]:
    calls = completion.tool_calls
    message: dict[str, Any] = {"role": "assistant", "content": completion.content or (None if calls else "")}
    if calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or "{}"}}
            for c in calls
        ]  # fmt: skip
    return message


def completion_body(completion: Completion, *, cid: str, model: str, created: int | None = None,
                    meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object; ``meta`` goes in the ``slm_agents`` field OpenAI clients ignore."""
    finish = completion.finish_reason or ("tool_calls" if completion.tool_calls else "stop")
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": _message(completion), "finish_reason": finish, "logprobs": None}],
        "usage": _usage(completion),
        "system_fingerprint": None,
    }
    if meta is not None:
        body["slm_agents"] = meta
    return body


def _delta_call(d: ToolCallDelta) -> dict[str, Any]:
    out: dict[str, Any] = {"index": d.index}
    fn: dict[str, Any] = {}
    if d.id is not None:
        out["id"] = d.id
        out["type"] = "function"
    if d.name is not None:
        fn["name"] = d.name
    fn["arguments"] = d.arguments or ""
    out["function"] = fn
    return out


def chunk_body(*, cid: str, model: str, created: int, delta: dict[str, Any] | None = None,
               finish_reason: str | None = None, usage: Completion | None = None,
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``chat.completion.chunk``; with ``usage`` set it is the usage-only last chunk (no choices)."""
    body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "system_fingerprint": None}
    if usage is not None:
        body["choices"] = []
        body["usage"] = _usage(usage)
    else:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
    if meta is not None:
        body["slm_agents"] = meta
    return body


def delta_of(chunk: StreamChunk) -> dict[str, Any] | None:
    """A runtime's :class:`StreamChunk` as an OpenAI ``delta`` (None when it carries nothing)."""
    delta: dict[str, Any] = {}
    if chunk.content:
        delta["content"] = chunk.content
    if chunk.tool_calls:
        delta["tool_calls"] = [_delta_call(d) for d in chunk.tool_calls]
    return delta or None


def deltas_of_completion(completion: Completion) -> list[dict[str, Any]]:
    """A whole answer as stream deltas: its text, then one delta per tool call (id, name, arguments)."""
    out: list[dict[str, Any]] = []
    if completion.content:
        out.append({"content": completion.content})
    for i, call in enumerate(completion.tool_calls):
        fn = call["function"]
        out.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                    "function": {"name": fn["name"], "arguments": fn.get("arguments") or "{}"}}]})
    return out
