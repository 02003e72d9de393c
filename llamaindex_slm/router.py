"""``RouterLLM``: the SLM first, any LlamaIndex LLM when the SLM's answer fails the policy.

The decision is the core's (:func:`slm_agents.routing.run_routed`); this class only translates.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import BaseModel, Field, PrivateAttr
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection

from slm_agents.arguments import bad_argument, reject_unknown, resolve_policy, split_policy_fields
from slm_agents.capture import records
from slm_agents.policy import EscalationPolicy
from slm_agents.routing import Routed, arun_routed, run_routed

from ._spans import current_task, get_tracker
from ._utils import (
    completion_from_response,
    resolve_tool_choice,
    response_fields,
    to_openai_messages,
    tool_selections,
    tools_to_openai,
)
from .capture import current_handler
from .llm import SLM

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["RouterLLM"]

logger = logging.getLogger(__name__)


@dataclass
class _Step:
    """One request, in both spellings: LlamaIndex objects for the sub-LLMs, OpenAI dicts for the policy."""

    messages: list[ChatMessage]
    tools: list[Any]
    tool_required: bool
    allow_parallel: bool
    tool_choice: Any
    extra: dict[str, Any]
    task: str | None
    oai_messages: list[dict[str, Any]] = field(default_factory=list)
    oai_tools: list[dict[str, Any]] = field(default_factory=list)
    slm_response: ChatResponse | None = None
    capture: records.Step | None = None
    span_id: str | None = None

    @property
    def choice(self) -> Any:
        return resolve_tool_choice(self.tool_choice, self.tool_required) if self.oai_tools else None


def _tool_kwargs(step: _Step) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "chat_history": list(step.messages),
        "allow_parallel_tool_calls": step.allow_parallel,
        "tool_required": step.tool_required,
        **step.extra,
    }
    if step.tool_choice is not None:
        kwargs["tool_choice"] = step.tool_choice
    return kwargs


def _uses_tool_api(llm: LLM, step: _Step) -> bool:
    return bool(step.tools) and isinstance(llm, FunctionCallingLLM) and not isinstance(step.tools[0], Mapping)


def _plain_kwargs(llm: LLM, step: _Step) -> dict[str, Any]:
    """Keyword arguments for ``llm.chat`` when the tool API is not used."""
    if step.tools and isinstance(step.tools[0], Mapping):  # OpenAI dicts passed straight to chat()
        kwargs = {"tools": step.tools, **step.extra}
        if step.tool_choice is not None or step.tool_required:
            kwargs["tool_choice"] = step.choice
        return kwargs
    return dict(step.extra)


def _invoke(llm: LLM, step: _Step, *, stream: bool) -> Any:
    if _uses_tool_api(llm, step):
        fcl: FunctionCallingLLM = llm  # type: ignore[assignment]
        call = fcl.stream_chat_with_tools if stream else fcl.chat_with_tools
        return call(step.tools, **_tool_kwargs(step))
    plain = llm.stream_chat if stream else llm.chat
    return plain(list(step.messages), **_plain_kwargs(llm, step))


async def _ainvoke(llm: LLM, step: _Step, *, stream: bool) -> Any:
    if _uses_tool_api(llm, step):
        fcl: FunctionCallingLLM = llm  # type: ignore[assignment]
        call = fcl.astream_chat_with_tools if stream else fcl.achat_with_tools
        return await call(step.tools, **_tool_kwargs(step))
    plain = llm.astream_chat if stream else llm.achat
    return await plain(list(step.messages), **_plain_kwargs(llm, step))


def _annotate(response: ChatResponse, info: dict[str, Any]) -> ChatResponse:
    """A copy of ``response`` with the routing facts in ``additional_kwargs`` and ``raw``."""
    raw = response.raw
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    raw = {**raw} if isinstance(raw, Mapping) else ({} if raw is None else {"raw": raw})
    raw.update(info)
    return response.model_copy(update={"raw": raw, "additional_kwargs": {**response.additional_kwargs, **info}})


def _streamed_for(step: _Step, start: float) -> None:
    """Add the time the LLM's stream took to be read to the step's LLM time (the router timed
    only its opening), before the step is logged."""
    if step.capture is not None and step.capture.llm_ms is not None:
        step.capture.llm_ms += (time.perf_counter() - start) * 1000


class RouterLLM(FunctionCallingLLM):
    """SLM-first routing for LlamaIndex: the SLM answers each step; when its answer fails the
    :class:`~slm_agents.policy.EscalationPolicy` (unknown tool, invalid arguments, no call when one
    was required, empty, truncated, low confidence, error, timeout) the LLM answers instead.

    Every response says what happened, in ``additional_kwargs`` and in ``raw`` (a dict), with the
    keys :class:`~langchain_slm.ChatSLMRouter` uses (:meth:`slm_agents.routing.Routed.report`):
    ``route`` (``"slm"``, ``"llm"`` or ``"shadow"``), ``escalation_reason`` (None when the SLM's
    answer was used; a reason, ``"route:<rule>"`` or ``"shadow"`` otherwise),
    ``escalation_detail``, ``slm_confidence``, ``slm_latency_ms`` and ``task``.

    Each step is captured by :func:`~llamaindex_slm.slm_agents_capture` when it is installed
    (the SLM attempt, the LLM answer and the escalation linking them), and by ``capture=``. The task label is ``task=`` if given, else the LlamaIndex workflow step
    the call runs in (e.g. ``run_agent_step``), found from the instrumentation spans.

    Args:
        slm: The small model: an :class:`~llamaindex_slm.SLM`, a GGUF path, a core
            :class:`~slm_agents.runtimes.Runtime`, or None (default: ``SLM()``, the packaged model).
        llm: Any LlamaIndex LLM to escalate to; None keeps the SLM's answer and reports the
            reason it would have escalated.
        policy: The routing and escalation rules (default ``EscalationPolicy.from_env()``);
            policy fields given as keywords (``confidence_threshold=0.6``) override it.
        shadow: Run both on every step and use the LLM's answer (to collect SLM-vs-LLM pairs).
        task: A fixed task label for the policy's per-task rules.
        capture: A :class:`~slm_agents.capture.CaptureStore`, a file path or ``True`` (the
            default store) to log each step to, besides an installed capture handler. Default None.

    Bad arguments raise :class:`~slm_agents.errors.InvalidRequest` (a ``ValueError``).

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> from llama_index.core.llms.mock import MockFunctionCallingLLM
        >>> from slm_agents import FakeRuntime
        >>> router = RouterLLM(slm=SLM(runtime=FakeRuntime([""])), llm=MockFunctionCallingLLM())
        >>> r = router.chat([ChatMessage(role="user", content="hi")], task="greet")
        >>> r.additional_kwargs["route"], r.additional_kwargs["escalation_reason"]
        ('llm', 'route:no_tools')
    """

    shadow: bool = Field(default=False, description="Run SLM and LLM on every step; use the LLM's answer.")
    task: str | None = Field(default=None, description="Fixed task label (default: the workflow step).")

    _slm: SLM = PrivateAttr()
    _llm: LLM | None = PrivateAttr(default=None)
    _policy: EscalationPolicy = PrivateAttr()
    _capture: Any = PrivateAttr(default=None)

    def __init__(
        self,
        slm: SLM | str | None = None,
        llm: LLM | None = None,
        *,
        policy: EscalationPolicy | None = None,
        shadow: bool = False,
        task: str | None = None,
        capture: Any = None,
        **kwargs: Any,
    ) -> None:
        overrides, kwargs = split_policy_fields(kwargs)
        reject_unknown("RouterLLM", kwargs, type(self).model_fields)  # LlamaIndex's own LLM fields pass
        resolved = resolve_policy(policy, **overrides)
        if llm is not None and not isinstance(llm, LLM):
            raise bad_argument("llm", "a LlamaIndex LLM (or None: never escalate)", llm)
        if isinstance(slm, (str, os.PathLike)):
            slm = SLM(model_path=slm)
        elif slm is None:
            slm = SLM()
        elif not isinstance(slm, SLM):
            if not (hasattr(slm, "complete") and hasattr(slm, "acomplete")):
                raise bad_argument("slm", "an llamaindex_slm.SLM, a GGUF path, an slm_agents Runtime or None "
                                          "(the packaged model)", slm)  # fmt: skip
            slm = SLM(runtime=slm)
        store = records.resolve_store(capture)
        super().__init__(shadow=shadow, task=task, **kwargs)
        self._slm = slm
        self._llm = llm
        self._policy = resolved
        self._capture = store
        get_tracker()  # so the workflow step can label each call

    @classmethod
    def class_name(cls) -> str:
        return "RouterLLM"

    @property
    def slm(self) -> SLM:
        """The small model."""
        return self._slm

    @property
    def llm(self) -> LLM | None:
        """The LLM steps escalate to (None: none configured)."""
        return self._llm

    @property
    def policy(self) -> EscalationPolicy:
        """The routing and escalation rules."""
        return self._policy

    @property
    def capture(self) -> Any:
        """The store each step is logged to besides an installed capture handler (None: none)."""
        return self._capture

    def _slm_agents_router_ids(self) -> tuple[int, int | None]:
        """Identities of the two models (lets the capture handler tell their calls apart)."""
        return id(self._slm), (id(self._llm) if self._llm is not None else None)

    @property
    def metadata(self) -> LLMMetadata:
        """The SLM's metadata, with the LLM's context window when one is configured (a step
        that does not fit the SLM escalates)."""
        slm_meta = self._slm.metadata
        llm_meta = self._llm.metadata if self._llm is not None else None
        return LLMMetadata(
            context_window=llm_meta.context_window if llm_meta is not None else slm_meta.context_window,
            num_output=slm_meta.num_output,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=f"router({slm_meta.model_name}|{llm_meta.model_name if llm_meta else 'none'})",
        )

    # -- routing ------------------------------------------------------------------------------
    def _step(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> _Step:
        tools = list(kwargs.pop("tools", None) or [])
        step = _Step(
            messages=list(messages),
            tools=tools,
            tool_required=bool(kwargs.pop("tool_required", False)),
            allow_parallel=bool(kwargs.pop("allow_parallel_tool_calls", False)),
            tool_choice=kwargs.pop("tool_choice", None),
            task=kwargs.pop("task", None) or self.task or current_task(),
            extra=kwargs,
        )
        step.oai_messages = to_openai_messages(step.messages)
        step.oai_tools = tools_to_openai(tools)
        return step

    def _slm_once(self, step: _Step) -> Any:
        step.slm_response = _invoke(self._slm, step, stream=False)
        return completion_from_response(step.slm_response)

    async def _aslm_once(self, step: _Step) -> Any:
        step.slm_response = await _ainvoke(self._slm, step, stream=False)
        return completion_from_response(step.slm_response)

    def _route(self, step: _Step, *, stream: bool) -> Routed[Any]:
        llm = self._llm
        return run_routed(
            self._policy, step.oai_messages, step.oai_tools, step.choice,
            slm=lambda: self._slm_once(step),
            llm=(lambda: _invoke(llm, step, stream=stream)) if llm is not None else None,
            task=step.task, shadow=self.shadow,
        )

    async def _aroute(self, step: _Step, *, stream: bool) -> Routed[Any]:
        llm = self._llm

        async def call_llm() -> Any:
            return await _ainvoke(llm, step, stream=stream)  # type: ignore[arg-type]

        return await arun_routed(
            self._policy, step.oai_messages, step.oai_tools, step.choice,
            slm=lambda: self._aslm_once(step),
            llm=call_llm if llm is not None else None,
            task=step.task, shadow=self.shadow,
        )

    def _info(self, routed: Routed[Any], step: _Step) -> dict[str, Any]:
        """The routing facts for the response; hands the step to capture (never raises)."""
        info = routed.report(step.task)
        if routed.route == "shadow" and routed.slm is not None:
            info["shadow_slm"] = routed.slm.to_dict()
        try:
            span_id = active_span_id.get()
            capture_step = records.step_from_routed(
                routed,
                records.request_fields(step.oai_messages, tools=step.oai_tools or None, tool_choice=step.choice,
                                       params=step.extra),
                records.context_fields(framework="llamaindex", task=step.task),
                slm_model=getattr(self._slm._runtime, "model_name", None) or self._slm.model or self._slm.model_path,
            )  # fmt: skip
            handler = current_handler()
            if handler is not None:
                handler.take_routed_step(span_id, capture_step)
            step.capture = capture_step
            step.span_id = span_id
        except Exception as e:  # noqa: BLE001 - the capture path never breaks the agent
            logger.warning("slm-agents capture failed (%s); the answer is unaffected", type(e).__name__)
        return info

    def _log_own(self, step: _Step, answer: ChatResponse | None) -> None:
        """Log the step to ``capture`` (unless an installed handler on that store logs it)."""
        store, capture_step = self._capture, step.capture
        if store is None or capture_step is None:
            return
        key = step.span_id or id(step)
        if records.claim(store, key, self):
            fields = response_fields(answer) if capture_step.llm_answered and answer is not None else None
            records.log_step(store, capture_step, answer=fields)
            records.release(store, key)

    def _final(self, routed: Routed[Any], step: _Step) -> ChatResponse:
        info = self._info(routed, step)
        response = step.slm_response if routed.route == "slm" else routed.result
        assert response is not None  # the SLM answered when its answer is used
        annotated = _annotate(response, info)
        self._log_own(step, annotated)
        return annotated

    # -- chat ---------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        step = self._step(messages, kwargs)
        return self._final(self._route(step, stream=False), step)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        step = self._step(messages, kwargs)
        return self._final(await self._aroute(step, stream=False), step)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        # The SLM's answer must be judged whole, so routing happens here, before streaming; an
        # escalated step streams the LLM's answer as it comes.
        step = self._step(messages, kwargs)
        routed = self._route(step, stream=True)
        info = self._info(routed, step)

        def gen() -> ChatResponseGen:
            if routed.route == "slm":
                response = _annotate(step.slm_response, info)  # type: ignore[arg-type]
                response.delta = response.message.content or ""
                self._log_own(step, response)
                yield response
                return
            start, last = time.perf_counter(), None
            for last in routed.result:
                yield _annotate(last, info)
            _streamed_for(step, start)
            self._log_own(step, last)

        return gen()

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        step = self._step(messages, kwargs)
        routed = await self._aroute(step, stream=True)
        info = self._info(routed, step)

        async def gen() -> ChatResponseAsyncGen:
            if routed.route == "slm":
                response = _annotate(step.slm_response, info)  # type: ignore[arg-type]
                response.delta = response.message.content or ""
                self._log_own(step, response)
                yield response
                return
            start, last = time.perf_counter(), None
            async for last in routed.result:
                yield _annotate(last, info)
            _streamed_for(step, start)
            self._log_own(step, last)

        return gen()

    # -- completion ---------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self.chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await achat_to_completion_decorator(self.achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self.stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self.astream_chat)(prompt, **kwargs)

    # -- function calling ---------------------------------------------------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Keeps the LlamaIndex tool objects, so each model prepares them its own way."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        out = {
            "messages": messages,
            "tools": list(tools),
            "tool_required": tool_required,
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            **kwargs,
        }
        if tool_choice is not None:
            out["tool_choice"] = tool_choice
        return out

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """Tool calls of the model that answered (the LLM's own parser for its answers)."""
        route = response.additional_kwargs.get("route")
        if route in ("llm", "shadow") and isinstance(self._llm, FunctionCallingLLM):
            return self._llm.get_tool_calls_from_response(response, error_on_no_tool_call=error_on_no_tool_call)
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but the model made none.")
        return selections
