"""The gateway: an ASGI app (Starlette) that speaks OpenAI's chat completions over the core.

Each ``POST /v1/chat/completions`` goes through the core's :func:`~slm_agents.routing.arun_routed`
under an :class:`~slm_agents.policy.EscalationPolicy`: the SLM runtime answers first (tool calls
decoded under a grammar), the policy judges the answer, and a bad one escalates to the upstream
LLM (any OpenAI-compatible runtime). Both attempts are captured in the same record shape the
LangChain and LlamaIndex faces write. Nothing here re-implements routing, checking or storage.

Example:
    >>> from starlette.testclient import TestClient
    >>> from slm_agents import FakeRuntime
    >>> gw = Gateway(FakeRuntime(["hello"]), llm=FakeRuntime(["from the LLM"]))
    >>> with TestClient(gw.app) as client:
    ...     r = client.post("/v1/chat/completions", json={
    ...         "model": "slm-agents/greet", "messages": [{"role": "user", "content": "hi"}]})
    >>> r.status_code, r.json()["choices"][0]["message"]["content"], r.headers["x-slm-agents-route"]
    (200, 'from the LLM', 'llm')
    >>> r.headers["x-slm-agents-reason"], r.json()["slm_agents"]["task"]
    ('route:no_tools', 'greet')
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from slm_agents.capture import records
from slm_agents.policy import EscalationPolicy, Verdict
from slm_agents.routing import Routed, arun_routed
from slm_agents.types import Completion, StreamChunk

from . import _protocol as proto

__all__ = ["Gateway", "create_app", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_CONCURRENCY", "HEADER_PREFIX"]

logger = logging.getLogger("slm_agents_gateway")

#: ``calls.framework`` of everything the gateway records.
FRAMEWORK = "gateway"

DEFAULT_MAX_BODY_BYTES = proto.DEFAULT_MAX_BODY_BYTES
DEFAULT_MAX_CONCURRENCY = proto.DEFAULT_MAX_CONCURRENCY
HEADER_PREFIX = "x-slm-agents-"
_NAME = re.compile(r"^[A-Za-z0-9_.:/@+\-]{1,128}$")  # task and thread names: safe in a header and a log
_SSE_DONE = b"data: [DONE]\n\n"


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status_code=status,
                    headers=headers, media_type="application/json")


def _error(exc: proto.RequestRejected, headers: dict[str, str] | None = None) -> Response:
    return _json(exc.body(), exc.status, headers)


class _ClientGone(Exception):
    """The client went away before the answer was sent in full."""


class _UpstreamFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(type(error).__name__)
        self.error = error


@dataclass
class _Step:
    """One chat request on its way through the gateway (what capture and the headers need)."""

    req: proto.ChatRequest
    run_id: str
    task: str | None
    thread_id: str | None
    created: int = field(default_factory=lambda: int(time.time()))
    slm: Completion | None = None
    slm_error: BaseException | None = None
    slm_ms: float = 0.0
    slm_ran: bool = False
    llm_ran: bool = False

    def record(self, route: str, reason: str | None, slm: dict[str, Any] | None) -> records.Step:
        """This request as a capture step (the core builds the records: the same as every face's).

        The request's id (``chatcmpl-…``) is the records' ``run_id``, so a client can attach
        feedback with ``store.label(run_id, ...)``.
        """
        req = self.req
        context = records.context_fields(framework=FRAMEWORK, task=self.task, thread_id=self.thread_id,
                                         run_id=self.run_id)  # fmt: skip
        context["model_requested"] = req.model
        request = records.request_fields(req.messages, tools=req.tools, tool_choice=req.tool_choice,
                                         params=req.sampling)  # fmt: skip
        return records.Step(request=request, context=context, route=route, reason=reason, slm=slm)


class Gateway:
    """An OpenAI-compatible HTTP front for SLM-first routing, escalation and capture.

    Args:
        slm: The SLM runtime (``LlamaCppRuntime``, ``OpenAICompatRuntime``, ``FakeRuntime``, ...).
        llm: The upstream LLM runtime a step escalates to (e.g. ``OpenAICompatRuntime``); None
            keeps every answer on the SLM (escalation reasons are still reported and captured).
        policy: The escalation policy (per-task thresholds, decisions and adapters included);
            default ``EscalationPolicy.from_env()`` (``$SLM_AGENTS_POLICY``).
        store: A capture store (``slm_agents.capture.CaptureStore``), or None to capture nothing.
        close_store: Close ``store`` when the app shuts down (flushes it and logs its counts).
        api_key: When set, every endpoint but ``/healthz`` needs ``Authorization: Bearer <key>``.
        max_body_bytes: Larger request bodies get 413.
        max_concurrency: Chat requests in flight at once; more get 429 at once (no queue).
        shadow: Run the SLM and the LLM on every step and answer with the LLM's (for data).
        served_name: The model id ``/v1/models`` lists; ``<served_name>/<task>`` names a task.

    Example:
        >>> from slm_agents import FakeRuntime
        >>> gw = Gateway(FakeRuntime(["hi"]), api_key="secret", max_concurrency=4)
        >>> gw.max_concurrency, gw.llm is None
        (4, True)
    """

    def __init__(
        self,
        slm: Any,
        *,
        llm: Any = None,
        policy: EscalationPolicy | None = None,
        store: Any = None,
        close_store: bool = True,
        api_key: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        shadow: bool = False,
        served_name: str = proto.MODEL_PREFIX,
    ) -> None:
        if max_body_bytes < 1 or max_concurrency < 1:
            raise ValueError("max_body_bytes and max_concurrency must be at least 1")
        self.slm = slm
        self.llm = llm
        self.policy = policy if policy is not None else EscalationPolicy.from_env()
        self.store = store
        self.close_store = close_store
        self._api_key = api_key or None
        self.max_body_bytes = max_body_bytes
        self.max_concurrency = max_concurrency
        self.shadow = shadow
        self.served_name = served_name
        self.in_flight = 0
        self.answered: Counter[str] = Counter()
        self.rejected: Counter[int] = Counter()
        self.failed = 0
        self._app: Starlette | None = None

    def __repr__(self) -> str:  # never shows the key
        return (f"Gateway(slm={getattr(self.slm, 'model_name', '?')!r}, "
                f"llm={getattr(self.llm, 'model_name', None)!r}, auth={'on' if self._api_key else 'off'})")

    # -- the ASGI app ------------------------------------------------------------------------------
    @property
    def app(self) -> Starlette:
        """The Starlette app (built once): serve it with any ASGI server (``slm-agents serve`` uses uvicorn)."""
        if self._app is None:
            routes = [
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/models", self.models, methods=["GET"]),
                Route("/healthz", self.healthz, methods=["GET"]),
            ]
            handlers: dict[Any, Callable[..., Any]] = {404: self._not_found, 405: self._not_allowed,
                                                       Exception: self._crashed}
            self._app = Starlette(routes=routes, exception_handlers=handlers, lifespan=self._lifespan)
            self._app.state.gateway = self
        return self._app

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()

    async def aclose(self) -> None:
        """Log the gateway's counts; flush and close the capture store (when ``close_store``)."""
        routes = ", ".join(f"{k} {v}" for k, v in sorted(self.answered.items())) or "none"
        rejected = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) or "none"
        logger.info("slm-agents gateway stopping: answered %d (%s), rejected %s, failed %d",
                    sum(self.answered.values()), routes, rejected, self.failed)
        store = self.store
        if store is not None and self.close_store and not getattr(store, "closed", False):
            lost = await store.aclose()
            s = store.stats
            logger.info("capture store %s closed: %d written, %d dropped, %d failed, %d not written",
                        getattr(store, "path", None) or ":memory:", s.written, s.dropped, s.failed_writes, lost)

    # -- small endpoints ---------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok", "in_flight": self.in_flight})

    def task_names(self) -> list[str]:
        """Tasks the policy knows (each is served as ``<served_name>/<task>``)."""
        p = self.policy
        names = set(p.task_thresholds) | set(p.task_adapters) | set(p.task_decisions) | set(p.llm_tasks)
        names |= set(p.slm_tasks or ())
        return sorted(n for n in names if _NAME.match(n))

    async def models(self, request: Request) -> Response:
        denied = self._check_key(request)
        if denied is not None:
            return _error(denied)
        created = int(time.time())
        ids = [self.served_name] + [f"{self.served_name}/{t}" for t in self.task_names()]
        return _json({"object": "list", "data": [
            {"id": i, "object": "model", "created": created, "owned_by": "slm-agents"} for i in ids]})

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return _error(proto.RequestRejected(f"no endpoint {request.url.path}; this gateway serves POST "
                                            "/v1/chat/completions, GET /v1/models and GET /healthz",
                                            status=404, code="not_found"))

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        return _error(proto.RequestRejected(f"{request.method} is not allowed on {request.url.path}",
                                            status=405, code="method_not_allowed"))

    async def _crashed(self, request: Request, exc: Exception) -> Response:
        self.failed += 1
        logger.error("slm-agents gateway: unexpected %s answering %s", type(exc).__name__, request.url.path)
        return _json(proto.error_body(f"internal error ({type(exc).__name__}); the gateway keeps running",
                                      type="server_error", code="internal_error"), 500)

    # -- checks before anything runs ---------------------------------------------------------------
    def _check_key(self, request: Request) -> proto.RequestRejected | None:
        if self._api_key is None:
            return None
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._api_key.encode()):
            return None
        return proto.RequestRejected(
            "missing or wrong API key: send 'Authorization: Bearer <key>' with the key the gateway was started "
            "with (--api-key or $SLM_AGENTS_GATEWAY_API_KEY); OpenAI clients send it as api_key=",
            status=401, code="invalid_api_key")

    async def _read_body(self, request: Request) -> bytes:
        too_big = proto.RequestRejected(
            f"request body over {self.max_body_bytes} bytes; send a shorter conversation or start the gateway "
            "with a larger --max-body-bytes", status=413, code="request_too_large")
        length = request.headers.get("content-length")
        if length is not None:
            try:
                if int(length) > self.max_body_bytes:
                    raise too_big
            except ValueError:
                raise proto.RequestRejected("Content-Length is not a number", code="invalid_header") from None
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_big
            parts.append(chunk)
        return b"".join(parts)

    def _name_header(self, request: Request, name: str) -> str | None:
        value = request.headers.get(HEADER_PREFIX + name)
        if value is None or value == "":
            return None
        if not _NAME.match(value):
            raise proto.RequestRejected(f"header {HEADER_PREFIX}{name} must be 1-128 characters of letters, digits "
                                        "and _.:/@+-", param=HEADER_PREFIX + name, code="invalid_header")
        return value

    # -- POST /v1/chat/completions -----------------------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        """Route one chat request SLM-first; answer as OpenAI does (JSON or server-sent events)."""
        denied = self._check_key(request)
        if denied is not None:
            self.rejected[401] += 1
            return _error(denied)
        if self.in_flight >= self.max_concurrency:
            self.rejected[429] += 1
            return _error(proto.RequestRejected(
                f"the gateway is answering {self.in_flight} requests, its limit (--max-concurrency); retry shortly",
                status=429, code="rate_limit_exceeded", type="rate_limit_error"), {"retry-after": "1"})
        self.in_flight += 1
        streaming = False
        try:
            try:
                body = await self._read_body(request)
                req = proto.parse_chat_request(body)
                task = req.task or self._name_header(request, "task")
                if req.task is not None and not _NAME.match(req.task):
                    raise proto.RequestRejected("the task in model='slm-agents/<task>' must be 1-128 characters of "
                                                "letters, digits and _.:/@+-", param="model")
                step = _Step(req, proto.new_completion_id(), task, self._name_header(request, "thread-id"))
            except proto.RequestRejected as e:  # nothing ran, nothing is captured
                self.rejected[e.status] += 1
                return _error(e)
            response = await (self._stream(step) if req.stream else self._complete(step))
            streaming = isinstance(response, StreamingResponse)
            return response
        finally:
            if not streaming:
                self.in_flight -= 1

    # -- the routed step ---------------------------------------------------------------------------
    async def _route(self, step: _Step) -> Routed[Any]:
        req = step.req

        async def slm() -> Completion:
            step.slm_ran = True
            start = time.perf_counter()
            try:
                step.slm = await self.slm.acomplete(req.messages, req.tools, req.tool_choice, **req.sampling)
                return step.slm
            except Exception as e:
                step.slm_error = e
                raise
            finally:
                step.slm_ms = (time.perf_counter() - start) * 1000

        async def llm() -> Any:
            step.llm_ran = True
            try:
                if req.stream:  # the first chunk is read here: an unreachable upstream fails before any byte is sent
                    stream = self.llm.astream(req.messages, req.tools, req.tool_choice, **req.sampling)
                    return (await stream.__anext__(), stream)
                return await self.llm.acomplete(req.messages, req.tools, req.tool_choice, **req.sampling)
            except Exception as e:
                raise _UpstreamFailed(e) from e

        return await arun_routed(self.policy, req.messages, req.tools, req.tool_choice, slm=slm,
                                 llm=llm if self.llm is not None else None, task=step.task, shadow=self.shadow)

    def _verdict(self, step: _Step) -> Verdict | None:
        attempt = step.slm_error or step.slm
        if attempt is None:
            return None
        return self.policy.check(attempt, step.req.tools, step.req.tool_choice, task=step.task)

    def _slm_fields(self, step: _Step, verdict: Verdict | None) -> dict[str, Any] | None:
        return records.attempt_fields(step.slm, step.slm_error, valid=verdict.ok if verdict is not None else None,
                                      latency_ms=step.slm_ms, model=getattr(self.slm, "model_name", None),
                                      runtime=getattr(self.slm, "name", None))  # fmt: skip

    def _llm_error(self, error: BaseException) -> dict[str, Any]:
        return {**records.error_fields(error, model=getattr(self.llm, "model_name", None),
                                       runtime=getattr(self.llm, "name", None)), "valid": False}  # fmt: skip

    def _failure(self, step: _Step, error: BaseException) -> Response:
        """The SLM (with no LLM to fall back on) or the upstream LLM failed: capture it, answer 5xx."""
        self.failed += 1
        upstream = isinstance(error, _UpstreamFailed)
        cause = error.error if isinstance(error, _UpstreamFailed) else error
        verdict = self._verdict(step)
        reason = verdict.reason if verdict is not None and not verdict.ok else None
        llm_fields = None
        if upstream:
            llm_fields = self._llm_error(cause)
        records.log_step(self.store, step.record("llm" if upstream else "slm", reason, self._slm_fields(step, verdict)),
                         answer=llm_fields)
        logger.warning("slm-agents gateway: the %s failed (%s)", "upstream LLM" if upstream else "SLM", type(cause).__name__)
        who = "the upstream LLM" if upstream else "the SLM (and no --llm-base-url is set to escalate to)"
        status, kind = (502, "upstream_error") if upstream else (500, "server_error")
        headers = self._headers(step, "llm" if upstream else "slm", reason)
        # The cause's own text stays in the capture store: it may name the upstream's address.
        kept = f"; its error is captured under run id {step.run_id}" if self.store is not None else ""
        return _json(proto.error_body(f"{who} failed ({type(cause).__name__}){kept}", type=kind,
                                      code="upstream_failed" if upstream else "slm_failed"), status, headers)

    def _meta(self, step: _Step, routed: Routed[Any], answer: Completion | None) -> dict[str, Any]:
        verdict = routed.verdict
        return {
            "route": routed.route,
            "reason": routed.reason,
            "detail": verdict.detail if verdict is not None and not verdict.ok else None,
            "task": step.task,
            "run_id": step.run_id,
            "model": answer.model if answer is not None else None,
            "runtime": answer.runtime if answer is not None else None,
            "confidence": answer.confidence if answer is not None else None,
            "slm_confidence": routed.slm.confidence if routed.slm is not None else None,
            "slm_latency_ms": round(step.slm_ms, 3) if step.slm_ran else None,
            "decision": routed.slm.decision if routed.slm is not None else None,
        }

    def _headers(self, step: _Step, route: str, reason: str | None) -> dict[str, str]:
        headers = {HEADER_PREFIX + "route": route, HEADER_PREFIX + "run-id": step.run_id}
        if reason:
            headers[HEADER_PREFIX + "reason"] = reason
        if step.task:
            headers[HEADER_PREFIX + "task"] = step.task
        return headers

    async def _complete(self, step: _Step) -> Response:
        try:
            routed = await self._route(step)
        except Exception as e:
            return self._failure(step, e)
        answer: Completion = routed.result
        slm_fields = self._slm_fields(step, routed.verdict)
        llm_fields = records.completion_fields(answer) if routed.route in ("llm", "shadow") else None
        records.log_step(self.store, step.record(routed.route, routed.reason, slm_fields), answer=llm_fields)
        self.answered[routed.route] += 1
        body = proto.completion_body(answer, cid=step.run_id, model=step.req.model, created=step.created,
                                     meta=self._meta(step, routed, answer))
        return _json(body, headers=self._headers(step, routed.route, routed.reason))

    async def _stream(self, step: _Step) -> Response:
        try:
            routed = await self._route(step)
        except Exception as e:
            return self._failure(step, e)
        if isinstance(routed.result, Completion):
            first: StreamChunk | None = None
            upstream: Any = None
            answer: Completion | None = routed.result
        else:
            (first, upstream), answer = routed.result, None
        done = False

        def finish(final: Completion | None, error: BaseException | None) -> None:
            nonlocal done
            if done:
                return
            done = True
            slm_fields = self._slm_fields(step, routed.verdict)
            llm_fields = None
            if routed.route in ("llm", "shadow"):
                if final is not None:
                    llm_fields = records.completion_fields(final)
                else:
                    llm_fields = self._llm_error(error or _ClientGone("the stream ended before the answer was complete"))
            elif error is not None and slm_fields is not None:
                slm_fields["error_type"] = type(error).__name__  # the SLM's answer did not reach the client in full
            records.log_step(self.store, step.record(routed.route, routed.reason, slm_fields), answer=llm_fields)
            if error is None:
                self.answered[routed.route] += 1
            else:
                self.failed += 1

        req, cid, created = step.req, step.run_id, step.created

        async def events() -> AsyncIterator[bytes]:
            final = answer
            try:
                yield _sse(proto.chunk_body(cid=cid, model=req.model, created=created,
                                            delta={"role": "assistant", "content": ""},
                                            meta=self._meta(step, routed, answer)))
                if answer is not None:
                    for delta in proto.deltas_of_completion(answer):
                        yield _sse(proto.chunk_body(cid=cid, model=req.model, created=created, delta=delta))
                else:
                    chunk: StreamChunk | None = first
                    while chunk is not None:
                        piece = proto.delta_of(chunk)
                        if piece is not None:
                            yield _sse(proto.chunk_body(cid=cid, model=req.model, created=created, delta=piece))
                        if chunk.completion is not None:
                            final = chunk.completion
                        chunk = await upstream.__anext__() if final is None else None
                assert final is not None
                finish(final, None)  # captured before the client reads the end of the answer
                finish_reason = final.finish_reason or ("tool_calls" if final.tool_calls else "stop")
                yield _sse(proto.chunk_body(cid=cid, model=req.model, created=created, delta={},
                                            finish_reason=finish_reason, meta=self._meta(step, routed, final)))
                if req.include_usage:
                    yield _sse(proto.chunk_body(cid=cid, model=req.model, created=created, usage=final))
                yield _SSE_DONE
            except StopAsyncIteration:  # the upstream ended without its final chunk
                err = RuntimeError("the upstream stream ended without a final chunk")
                finish(None, err)
                yield _sse(proto.error_body("the upstream LLM's stream ended early", type="upstream_error",
                                            code="upstream_failed"))
            except Exception as e:  # the upstream failed mid-stream: say so in the stream, keep running
                finish(None, e)
                logger.warning("slm-agents gateway: the upstream stream failed (%s)", type(e).__name__)
                yield _sse(proto.error_body(f"the upstream LLM failed mid-stream: {type(e).__name__}",
                                            type="upstream_error", code="upstream_failed"))
            finally:
                if upstream is not None:
                    with contextlib.suppress(Exception):
                        await upstream.aclose()

        def release() -> None:
            finish(None, _ClientGone("the client closed the connection before the answer was sent"))
            self.in_flight -= 1

        return _Tracked(events(), release, headers={**self._headers(step, routed.route, routed.reason),
                                                    "cache-control": "no-cache", "x-accel-buffering": "no"})


class _Tracked(StreamingResponse):
    """A server-sent-events response that runs ``release`` once it is over, however it ended."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None], headers: dict[str, str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def create_app(slm: Any, **options: Any) -> Starlette:
    """The gateway's ASGI app: ``Gateway(slm, **options).app`` (see :class:`Gateway` for options).

    Example:
        >>> from slm_agents import FakeRuntime
        >>> app = create_app(FakeRuntime(["hi"]))
        >>> type(app.state.gateway).__name__
        'Gateway'
    """
    return Gateway(slm, **options).app
