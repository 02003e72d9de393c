"""Any OpenAI-compatible chat endpoint, through the ``openai`` SDK.

llama-server, Ollama, vLLM, LM Studio, llama-cpp-python's server, or OpenAI itself: the same
:class:`~slm_agents.runtimes.Runtime` interface and ``tool_choice`` semantics as the in-process
runtime. Calls the server returns are validated against the tool schemas; any that fail, or that
``tool_choice`` forbids, are reported in ``invalid_tool_calls`` rather than passed on. This is also
how the frontier LLM is reached when a step escalates.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..decision import DecisionCalibration, calibration_for, decide, shipped_calibration
from ..errors import (
    BadServerResponse,
    ContextOverflow,
    GenerationError,
    GenerationTimeout,
    InvalidRequest,
    RuntimeUnavailable,
    SLMAgentsError,
)
from ..toolcalls import ToolCallFault, ToolChoice, diagnose_tool_call, invalid_call
from ..types import Completion, Message, StreamChunk, ToolCallDelta, Usage
from .base import BaseRuntime, Request, prepare_request

__all__ = ["OpenAICompatRuntime"]

_EXTRA_BODY_KEYS = ("top_k", "min_p", "repeat_penalty")
_LOCAL_KEYS = frozenset({"decision_threshold"})  # read here, never sent


class OpenAICompatRuntime(BaseRuntime):
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        model: The model name the server expects.
        base_url: The endpoint (e.g. ``http://127.0.0.1:8080/v1``); defaults to ``OPENAI_BASE_URL``
            or OpenAI's own.
        api_key: Defaults to ``OPENAI_API_KEY``, or a placeholder for local servers that need none.
        timeout: Seconds the whole request may take, retries and a slowly dripping answer
            included (raises :class:`GenerationTimeout`); a call's ``timeout=`` overrides it.
        max_retries: Retries on connection errors, 429 and 5xx, with backoff, within ``timeout``.
        logprobs: Ask for token log-probabilities to compute a confidence (servers differ in
            whether they return them for tool calls).
        default_params: Sampling defaults merged under each call's options.
        auto_decision: How a ``tool_choice="auto"`` request with tools decides between a call and
            a text answer. ``"calibrated"``: decide here, from the request's signals with the
            model's calibration (:mod:`slm_agents.decision`), then send ``"required"`` or
            ``"none"``, and report ``decision``/``p_call`` on the completion, as the in-process
            runtime does. ``"server"``: send ``"auto"`` and let the server's model choose. The
            default is ``"calibrated"`` for a model with a shipped calibration (a small model that
            rarely starts a call unprompted, e.g. SmolLM2) and ``"server"`` otherwise.
        decision_calibration: The calibration to decide with (default: the shipped one for
            ``model``, else the generic one); fit one with ``slm-agents calibrate --decision``.
        decision_threshold: Call when ``p_call`` is at or above this (default: the calibration's);
            also a per-call option.

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
        auto_decision: str | None = None,
        decision_calibration: DecisionCalibration | dict[str, Any] | None = None,
        decision_threshold: float | None = None,
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
        if auto_decision is None:
            auto_decision = "calibrated" if shipped_calibration(model) or decision_calibration else "server"
        if auto_decision not in ("calibrated", "server"):
            raise InvalidRequest(f"auto_decision={auto_decision!r}; use 'calibrated' or 'server'")
        self.auto_decision = auto_decision
        if isinstance(decision_calibration, dict):
            decision_calibration = DecisionCalibration.from_dict(decision_calibration)
        self.decision_calibration = decision_calibration or calibration_for(model)
        self.decision_threshold = decision_threshold

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
    def _prepare(self, messages: Any, tools: Any, tool_choice: Any, sampling: dict[str, Any]) -> Request:
        """Validate; in ``"calibrated"`` mode turn an ``"auto"`` request into ``"required"`` or ``"none"``."""
        req = prepare_request(messages, tools, tool_choice, sampling,
                              extra_keys=frozenset(_EXTRA_BODY_KEYS) | _LOCAL_KEYS)
        threshold = req.sampling.pop("decision_threshold", self.decision_threshold)
        if self.auto_decision != "calibrated" or req.choice.mode != "auto" or not req.tools:
            return req
        decision = decide(req.messages, req.tools, self.decision_calibration, threshold)
        choice = ToolChoice("required") if decision.calls else ToolChoice("none")
        return Request(req.messages, req.tools, choice, req.sampling, decision)

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

    # -- deadlines -----------------------------------------------------------------------------
    # The SDK's timeout bounds each read, so a server dripping bytes could hold a call for ever:
    # we read the body ourselves against one deadline and retry only while time remains.
    def _budget(self, kwargs: dict[str, Any]) -> float:
        budget = kwargs.pop("timeout", None)
        return float(self.timeout if budget is None else budget)

    def _where(self) -> str:
        return self.base_url or "api.openai.com"

    def _timeout(self, budget: float) -> GenerationTimeout:
        return GenerationTimeout(f"{self._where()} did not answer within {budget}s (retries included); "
                                 "raise timeout= or check the server")

    def _retry_wait(self, e: Exception, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before retrying after ``e``, or None when not to retry."""
        import openai

        retryable = isinstance(e, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError))
        if isinstance(e, openai.APIStatusError) and e.status_code in (408, 409):
            retryable = True
        if not retryable or attempt >= self.max_retries:
            return None
        wait = min(0.5 * 2 ** attempt, 8.0)
        return wait if time.monotonic() + wait < deadline else None

    def _wait_or_raise(self, e: Exception, attempt: int, deadline: float, budget: float) -> float:
        """After a failed post: the seconds to wait before retrying, or the typed error to raise."""
        if time.monotonic() >= deadline:
            raise self._timeout(budget) from e
        wait = self._retry_wait(e, attempt, deadline)
        if wait is None:
            raise self._translate(e, budget) from e
        return wait

    def _post_sync(self, kwargs: dict[str, Any], budget: float) -> Any:
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(budget)
            client = _with_options(self._sync_client(), max_retries=0, timeout=remaining)
            try:
                if not hasattr(client.chat.completions, "with_streaming_response"):  # a test double
                    return client.chat.completions.create(**kwargs)
                with client.chat.completions.with_streaming_response.create(**kwargs) as response:
                    body = bytearray()
                    for part in response.iter_bytes():
                        body += part
                        if time.monotonic() > deadline:
                            raise self._timeout(budget)
                return _parse_body(bytes(body), self._where())
            except SLMAgentsError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure becomes a typed error
                time.sleep(self._wait_or_raise(e, attempt, deadline, budget))
                attempt += 1

    async def _post_async(self, kwargs: dict[str, Any], budget: float) -> Any:
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(budget)
            client = _with_options(self._async_client(), max_retries=0, timeout=remaining)
            if not hasattr(client.chat.completions, "with_streaming_response"):  # a test double
                return await client.chat.completions.create(**kwargs)

            async def once(client: Any = client) -> bytes:
                async with client.chat.completions.with_streaming_response.create(**kwargs) as response:
                    body = bytearray()
                    async for part in response.iter_bytes():
                        body += part
                    return bytes(body)

            try:
                body = await asyncio.wait_for(once(), remaining)
                return _parse_body(body, self._where())
            except SLMAgentsError:
                raise
            except (asyncio.TimeoutError, TimeoutError) as e:
                raise self._timeout(budget) from e
            except Exception as e:  # noqa: BLE001 - every failure becomes a typed error
                await asyncio.sleep(self._wait_or_raise(e, attempt, deadline, budget))
                attempt += 1

    def _response(self, req: Request, resp: Any, start: float) -> Completion:
        try:
            return self._from_response(req, resp, start)
        except SLMAgentsError:
            raise
        except Exception as e:  # noqa: BLE001 - a malformed answer is the server's fault, typed
            raise BadServerResponse(f"{self._where()} returned a malformed chat completion "
                                    f"({type(e).__name__}); check the server and model") from e

    # -- sync ---------------------------------------------------------------------------------
    def complete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion:
        req = self._prepare(messages, tools, tool_choice, sampling)
        start = time.perf_counter()
        kwargs = self._kwargs(req, stream=False)
        resp = self._post_sync(kwargs, self._budget(kwargs))
        return self._response(req, resp, start)

    def stream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Iterator[StreamChunk]:
        req = self._prepare(messages, tools, tool_choice, sampling)
        start = time.perf_counter()
        acc = _StreamAssembler(self, req, start)
        kwargs = self._kwargs(req, stream=True)
        budget = self._budget(kwargs)
        deadline = time.monotonic() + budget
        watchdog: threading.Timer | None = None
        try:
            client = _with_options(self._sync_client(), timeout=budget)
            response = client.chat.completions.create(**kwargs)
            # a server dripping bytes never trips the per-read timeout: close it at the deadline
            if callable(getattr(response, "close", None)):
                watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), response.close)
                watchdog.daemon = True
                watchdog.start()
            for chunk in response:
                if time.monotonic() > deadline:
                    raise self._timeout(budget)
                out = acc.add(chunk)
                if out is not None:
                    yield out
            if time.monotonic() > deadline:
                raise self._timeout(budget)
        except SLMAgentsError:
            raise
        except Exception as e:  # noqa: BLE001
            if time.monotonic() >= deadline:
                raise self._timeout(budget) from e
            raise self._translate(e, budget) from e
        finally:
            if watchdog is not None:
                watchdog.cancel()
        yield acc.finish()

    # -- async --------------------------------------------------------------------------------
    async def acomplete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion:
        req = self._prepare(messages, tools, tool_choice, sampling)
        start = time.perf_counter()
        kwargs = self._kwargs(req, stream=False)
        resp = await self._post_async(kwargs, self._budget(kwargs))
        return self._response(req, resp, start)

    async def astream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> AsyncIterator[StreamChunk]:
        req = self._prepare(messages, tools, tool_choice, sampling)
        start = time.perf_counter()
        acc = _StreamAssembler(self, req, start)
        kwargs = self._kwargs(req, stream=True)
        budget = self._budget(kwargs)
        deadline = time.monotonic() + budget
        try:
            client = _with_options(self._async_client(), timeout=budget)
            response = await asyncio.wait_for(client.chat.completions.create(**kwargs), budget)
            iterator = response.__aiter__()
            while True:
                try:
                    chunk = await asyncio.wait_for(iterator.__anext__(), max(0.0, deadline - time.monotonic()))
                except StopAsyncIteration:
                    break
                out = acc.add(chunk)
                if out is not None:
                    yield out
        except SLMAgentsError:
            raise
        except (asyncio.TimeoutError, TimeoutError) as e:
            raise self._timeout(budget) from e
        except Exception as e:  # noqa: BLE001
            if time.monotonic() >= deadline:
                raise self._timeout(budget) from e
            raise self._translate(e, budget) from e
        yield acc.finish()

    # -- responses ----------------------------------------------------------------------------
    def _from_response(self, req: Request, resp: Any, start: float) -> Completion:
        latency = (time.perf_counter() - start) * 1000
        choices = getattr(resp, "choices", None)
        if not choices:
            raise BadServerResponse(f"{self.base_url or 'the server'} returned no choices; check the model name")
        scalar = (str, bytes, int, float, bool, dict, list)
        if not isinstance(choices, (list, tuple)) or isinstance(choices[0], scalar) \
                or getattr(choices[0], "message", None) is None or isinstance(choices[0].message, scalar):
            raise BadServerResponse(f"{self._where()} returned choices that are not chat messages")
        choice = choices[0]
        msg = choice.message
        raw_calls = []
        for c in getattr(msg, "tool_calls", None) or []:
            fn = None if isinstance(c, scalar) else getattr(c, "function", None)
            if fn is None or isinstance(fn, scalar) or not isinstance(getattr(fn, "name", None), str):
                raise BadServerResponse(f"{self._where()} returned a tool call without a function name")
            raw_calls.append({"id": c.id, "name": fn.name, "arguments": _arguments_text(fn.arguments)})
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
        completion = Completion(
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
        if req.decision is not None:
            req.decision.stamp(completion)
        return completion

    def _translate(self, e: Exception, budget: float | None = None) -> Exception:
        import openai

        where = self.base_url or "api.openai.com"
        if isinstance(e, openai.APITimeoutError):
            return self._timeout(self.timeout if budget is None else budget)
        if isinstance(e, openai.APIConnectionError):
            return RuntimeUnavailable(f"cannot reach {where}: {e}. Start the server or fix base_url=")
        if isinstance(e, openai.AuthenticationError):
            return RuntimeUnavailable(f"{where} refused the API key; pass api_key= or set OPENAI_API_KEY")
        if isinstance(e, openai.NotFoundError):
            return InvalidRequest(f"{where} has no model {self.model!r} (or no chat endpoint); check model= and base_url=")
        if isinstance(e, openai.BadRequestError):
            if _CONTEXT_OVERFLOW_CODES & {getattr(e, "code", None), getattr(e, "type", None)}:
                return ContextOverflow(f"{where} says the prompt does not fit the model's context: {e}; "
                                       "shorten the conversation or use a model with a longer context")
            return InvalidRequest(f"{where} rejected the request: {e}")
        if isinstance(e, openai.APIError):
            return GenerationError(f"{where} failed: {e}")
        if isinstance(e, (ValueError, TypeError, AttributeError, KeyError, IndexError, UnicodeError)):
            # the SDK parsing a body that is not what the API promises (e.g. a garbage stream)
            return BadServerResponse(f"{where} sent a malformed response ({type(e).__name__}); check the server")
        return e


#: The error ``code``/``type`` servers give a prompt longer than the context: OpenAI's
#: ``context_length_exceeded``, llama-server's ``exceed_context_size_error``.
_CONTEXT_OVERFLOW_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})


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
            args = _arguments_text(getattr(fn, "arguments", None)) if fn else ""
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


def _with_options(client: Any, **options: Any) -> Any:
    """``client.with_options(...)`` (the SDK's per-request settings); a test double as it is."""
    with_options = getattr(client, "with_options", None)
    return with_options(**options) if callable(with_options) else client


class _Obj:
    """A JSON object read with attribute access; a missing field reads as None."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)

    def __getattr__(self, name: str) -> Any:
        return None


def _parse_body(body: bytes, where: str) -> _Obj:
    try:
        data = json.loads(body, object_hook=_Obj)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BadServerResponse(f"{where} answered with a body that is not JSON ({len(body)} bytes); "
                                "check base_url= points at an OpenAI-compatible /v1 endpoint") from e
    if not isinstance(data, _Obj):
        raise BadServerResponse(f"{where} answered with JSON that is not a chat completion object")
    return data


def _arguments_text(arguments: Any) -> str:
    """Tool-call arguments as JSON text: some servers send an object instead of a string."""
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    if isinstance(arguments, _Obj):
        arguments = _plain(arguments)
    if isinstance(arguments, (dict, list)):
        return json.dumps(_plain(arguments), ensure_ascii=False)
    return str(arguments)


def _plain(value: Any) -> Any:
    if isinstance(value, _Obj):
        return {k: _plain(v) for k, v in vars(value).items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


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
    valid: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for raw in raw_calls:
        call_id = raw.get("id") or f"call_{len(valid) + len(invalid)}"
        fault: ToolCallFault | None
        if choice.mode == "none":
            fault = ToolCallFault("forbidden", ("tool_choice='none' forbids tool calls",))
        elif choice.name and raw["name"] != choice.name:
            fault = ToolCallFault(
                "forbidden", (f"tool_choice requires {choice.name!r}, but the call names {raw['name']!r}",))
        else:
            fault = diagnose_tool_call(raw["name"], raw["arguments"], tools)
        if fault is not None:
            invalid.append(invalid_call(call_id, raw["name"], raw["arguments"], fault))
        else:
            args = raw["arguments"] if raw["arguments"].strip() else "{}"
            valid.append({"id": call_id, "type": "function", "function": {"name": raw["name"], "arguments": args}})
    return valid, invalid


def _content_logprobs(logprobs: Any) -> list[float]:
    items = getattr(logprobs, "content", None) or []
    return [float(i.logprob) for i in items if getattr(i, "logprob", None) is not None]
