"""Any OpenAI-compatible chat endpoint, through the ``openai`` SDK.

llama-server, Ollama, vLLM, LM Studio, llama-cpp-python's server, or OpenAI itself: the same
:class:`~slm_agents.runtimes.Runtime` interface and ``tool_choice`` semantics as the in-process
runtime. Calls the server returns are validated against the tool schemas; any that fail, or that
``tool_choice`` forbids, are reported in ``invalid_tool_calls`` rather than passed on. This is also
how the frontier LLM is reached when a step escalates.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..errors import GenerationError, GenerationTimeout, InvalidRequest, RuntimeUnavailable
from ..toolcalls import ToolChoice, validate_tool_call
from ..types import Completion, Message, StreamChunk, ToolCallDelta, Usage
from .base import BaseRuntime, Request, prepare_request

__all__ = ["OpenAICompatRuntime"]

_EXTRA_BODY_KEYS = ("top_k", "min_p", "repeat_penalty")


class OpenAICompatRuntime(BaseRuntime):
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        model: The model name the server expects.
        base_url: The endpoint (e.g. ``http://127.0.0.1:8080/v1``); defaults to ``OPENAI_BASE_URL``
            or OpenAI's own.
        api_key: Defaults to ``OPENAI_API_KEY``, or a placeholder for local servers that need none.
        timeout: Seconds before a request is abandoned (raises :class:`GenerationTimeout`).
        max_retries: Retries on connection errors, 429 and 5xx, with backoff (by the SDK).
        logprobs: Ask for token log-probabilities to compute a confidence (servers differ in
            whether they return them for tool calls).
        default_params: Sampling defaults merged under each call's options.

    Example:
        >>> rt = OpenAICompatRuntime(model="qwen2.5:0.5b", base_url="http://127.0.0.1:11434/v1")
        >>> rt.name, rt.model_name
        ('openai', 'qwen2.5:0.5b')
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        logprobs: bool = False,
        default_params: dict[str, Any] | None = None,
    ):
        if not model:
            raise InvalidRequest("OpenAICompatRuntime needs model= (the name the server serves the model under)")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "sk-no-key-required"
        self.timeout = timeout
        self.max_retries = max_retries
        self.logprobs = logprobs
        self.default_params = dict(default_params or {})
        self._client: Any = None
        self._aclient: Any = None

    @property
    def model_name(self) -> str:
        return self.model

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatRuntime(model={self.model!r}, base_url={self.base_url!r})"

    # -- clients ------------------------------------------------------------------------------
    def _sync_client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.OpenAI(
                api_key=self._api_key, base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._client

    def _async_client(self) -> Any:
        if self._aclient is None:
            import openai

            self._aclient = openai.AsyncOpenAI(
                api_key=self._api_key, base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._aclient

    # -- request ------------------------------------------------------------------------------
    def _kwargs(self, req: Request, stream: bool) -> dict[str, Any]:
        opts = {**self.default_params, **req.sampling}
        kwargs: dict[str, Any] = {"model": self.model, "messages": _wire_messages(req.messages), "stream": stream}
        if stream:
            kwargs["stream_options"] = {"include_usage": True}
        if req.tools:
            kwargs["tools"] = req.tools
            kwargs["tool_choice"] = _wire_tool_choice(req.choice)
            if "parallel_tool_calls" in opts and req.choice.mode != "none":
                kwargs["parallel_tool_calls"] = bool(opts["parallel_tool_calls"])
        for key in ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty"):
            if key in opts:
                kwargs[key] = opts[key]
        fmt = opts.get("response_format")
        if fmt and fmt.get("type") != "text":
            kwargs["response_format"] = fmt
        extra = {k: opts[k] for k in _EXTRA_BODY_KEYS if k in opts}
        if extra:
            kwargs["extra_body"] = extra
        if "timeout" in opts:
            kwargs["timeout"] = opts["timeout"]
        if self.logprobs:
            kwargs["logprobs"] = True
        return kwargs

    # -- sync ---------------------------------------------------------------------------------
    def complete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion:
        req = prepare_request(messages, tools, tool_choice, sampling, extra_keys=frozenset(_EXTRA_BODY_KEYS))
        start = time.perf_counter()
        try:
            resp = self._sync_client().chat.completions.create(**self._kwargs(req, stream=False))
        except Exception as e:
            raise self._translate(e) from e
        return self._from_response(req, resp, start)

    def stream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Iterator[StreamChunk]:
        req = prepare_request(messages, tools, tool_choice, sampling, extra_keys=frozenset(_EXTRA_BODY_KEYS))
        start = time.perf_counter()
        acc = _StreamAssembler(self, req, start)
        try:
            for chunk in self._sync_client().chat.completions.create(**self._kwargs(req, stream=True)):
                out = acc.add(chunk)
                if out is not None:
                    yield out
        except Exception as e:
            raise self._translate(e) from e
        yield acc.finish()

    # -- async --------------------------------------------------------------------------------
    async def acomplete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion:
        req = prepare_request(messages, tools, tool_choice, sampling, extra_keys=frozenset(_EXTRA_BODY_KEYS))
        start = time.perf_counter()
        try:
            resp = await self._async_client().chat.completions.create(**self._kwargs(req, stream=False))
        except Exception as e:
            raise self._translate(e) from e
        return self._from_response(req, resp, start)

    async def astream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> AsyncIterator[StreamChunk]:
        req = prepare_request(messages, tools, tool_choice, sampling, extra_keys=frozenset(_EXTRA_BODY_KEYS))
        start = time.perf_counter()
        acc = _StreamAssembler(self, req, start)
        try:
            response = await self._async_client().chat.completions.create(**self._kwargs(req, stream=True))
            async for chunk in response:
                out = acc.add(chunk)
                if out is not None:
                    yield out
        except Exception as e:
            raise self._translate(e) from e
        yield acc.finish()

    # -- responses ----------------------------------------------------------------------------
    def _from_response(self, req: Request, resp: Any, start: float) -> Completion:
        latency = (time.perf_counter() - start) * 1000
        if not getattr(resp, "choices", None):
            raise GenerationError(f"{self.base_url or 'the server'} returned no choices; check the model name")
        choice = resp.choices[0]
        msg = choice.message
        raw_calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments or ""}
            for c in (msg.tool_calls or [])
        ]
        usage = getattr(resp, "usage", None)
        logprobs = _content_logprobs(getattr(choice, "logprobs", None))
        return self._build(
            req,
            content=msg.content,
            raw_calls=raw_calls,
            finish=choice.finish_reason or "stop",
            usage=Usage(getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0),
            latency=latency,
            ttft=latency,
            logprobs=logprobs,
            model=getattr(resp, "model", None) or self.model,
        )

    def _build(
        self,
        req: Request,
        *,
        content: str | None,
        raw_calls: list[dict[str, Any]],
        finish: str,
        usage: Usage,
        latency: float,
        ttft: float | None,
        logprobs: list[float],
        model: str,
    ) -> Completion:
        valid, invalid = _check_calls(raw_calls, req.tools, req.choice)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if valid:
            message["tool_calls"] = valid
            finish = "tool_calls" if finish in ("stop", "tool_calls", "function_call") else finish
        elif finish == "tool_calls":
            finish = "stop"
        confidence = math.exp(sum(logprobs) / len(logprobs)) if (logprobs and (valid or invalid)) else None
        return Completion(
            message=message,
            finish_reason=finish,
            usage=usage,
            latency_ms=latency,
            ttft_ms=ttft,
            confidence=confidence,
            model=model,
            runtime=self.name,
            invalid_tool_calls=invalid,
        )

    def _translate(self, e: Exception) -> Exception:
        import openai

        where = self.base_url or "api.openai.com"
        if isinstance(e, openai.APITimeoutError):
            return GenerationTimeout(f"{where} did not answer within {self.timeout}s; raise timeout= or check the server")
        if isinstance(e, openai.APIConnectionError):
            return RuntimeUnavailable(f"cannot reach {where}: {e}. Start the server or fix base_url=")
        if isinstance(e, openai.AuthenticationError):
            return RuntimeUnavailable(f"{where} refused the API key; pass api_key= or set OPENAI_API_KEY")
        if isinstance(e, openai.NotFoundError):
            return InvalidRequest(f"{where} has no model {self.model!r} (or no chat endpoint); check model= and base_url=")
        if isinstance(e, openai.BadRequestError):
            return InvalidRequest(f"{where} rejected the request: {e}")
        if isinstance(e, openai.APIError):
            return GenerationError(f"{where} failed: {e}")
        return e


class _StreamAssembler:
    """Turns OpenAI stream chunks into StreamChunks and the final Completion."""

    def __init__(self, runtime: OpenAICompatRuntime, req: Request, start: float):
        self.runtime, self.req, self.start = runtime, req, start
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason = "stop"
        self.usage = Usage()
        self.ttft: float | None = None
        self.logprobs: list[float] = []
        self.model = runtime.model

    def add(self, chunk: Any) -> StreamChunk | None:
        if getattr(chunk, "usage", None):
            self.usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
        if getattr(chunk, "model", None):
            self.model = chunk.model
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        self.logprobs += _content_logprobs(getattr(choice, "logprobs", None))
        delta = choice.delta
        text = getattr(delta, "content", None) or ""
        deltas = []
        for tc in getattr(delta, "tool_calls", None) or []:
            slot = self.calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            fn = tc.function
            name = getattr(fn, "name", None) if fn else None
            args = (getattr(fn, "arguments", None) or "") if fn else ""
            if tc.id:
                slot["id"] = tc.id
            if name and name != slot["name"]:
                slot["name"] += name
            else:  # llama-cpp-python's server repeats the whole name in every delta of a call
                name = None
            slot["arguments"] += args
            deltas.append(ToolCallDelta(index=tc.index, id=tc.id, name=name, arguments=args))
        if text:
            self.text.append(text)
        if not text and not deltas:
            return None
        if self.ttft is None:
            self.ttft = (time.perf_counter() - self.start) * 1000
        return StreamChunk(content=text, tool_calls=deltas)

    def finish(self) -> StreamChunk:
        latency = (time.perf_counter() - self.start) * 1000
        raw_calls = [self.calls[i] for i in sorted(self.calls)]
        completion = self.runtime._build(
            self.req,
            content="".join(self.text) or None,
            raw_calls=raw_calls,
            finish=self.finish_reason,
            usage=self.usage,
            latency=latency,
            ttft=self.ttft,
            logprobs=self.logprobs,
            model=self.model,
        )
        return StreamChunk(finish_reason=completion.finish_reason, completion=completion)


def _wire_messages(messages: list[Message]) -> list[Message]:
    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = dict(m)
            calls = []
            for call in m["tool_calls"]:
                fn = dict(call.get("function", call))
                if not isinstance(fn.get("arguments"), str):
                    fn["arguments"] = json.dumps(fn.get("arguments", {}), ensure_ascii=False)
                calls.append({"id": call.get("id"), "type": "function", "function": {"name": fn["name"], "arguments": fn["arguments"]}})
            m["tool_calls"] = calls
        out.append(m)
    return out


def _wire_tool_choice(choice: ToolChoice) -> Any:
    if choice.name:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _check_calls(
    raw_calls: list[dict[str, Any]], tools: list[dict], choice: ToolChoice
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    valid, invalid = [], []
    for raw in raw_calls:
        call_id = raw.get("id") or f"call_{len(valid) + len(invalid)}"
        if choice.mode == "none":
            problems = ["tool_choice='none' forbids tool calls"]
        elif choice.name and raw["name"] != choice.name:
            problems = [f"tool_choice requires {choice.name!r}, but the call names {raw['name']!r}"]
        else:
            problems = validate_tool_call(raw["name"], raw["arguments"], tools)
        if problems:
            invalid.append({"id": call_id, "name": raw["name"], "arguments": raw["arguments"], "error": "; ".join(problems)})
        else:
            args = raw["arguments"] if raw["arguments"].strip() else "{}"
            valid.append({"id": call_id, "type": "function", "function": {"name": raw["name"], "arguments": args}})
    return valid, invalid


def _content_logprobs(logprobs: Any) -> list[float]:
    items = getattr(logprobs, "content", None) or []
    return [float(i.logprob) for i in items if getattr(i, "logprob", None) is not None]
