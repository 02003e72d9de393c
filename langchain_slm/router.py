"""``ChatSLMRouter``: a drop-in chat model that tries the SLM first and escalates to the LLM.

The routing and escalation flow is the core's (:func:`slm_agents.routing.run_routed`); this
module only translates LangChain messages and tools to OpenAI dicts, runs the SLM and the LLM
when the core asks, and reports the outcome in ``response_metadata``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from slm_agents.arguments import bad_argument, reject_unknown, resolve_policy, split_policy_fields
from slm_agents.capture import records
from slm_agents.errors import InvalidRequest
from slm_agents.policy import EscalationPolicy
from slm_agents.routing import Routed, arun_routed, run_routed
from slm_agents.types import Completion

from . import _capture, _convert
from .chat_models import ChatSLM, _check_tool_choice, structured_output_runnable

__all__ = ["ChatSLMRouter"]

logger = logging.getLogger(__name__)

#: Call keyword arguments the router reads itself; the rest are the SLM's sampling options.
_ROUTER_KWARGS = frozenset({"tools", "tool_choice", "task", "structured_output", "stream"})
_ISOLATED: RunnableConfig = {"callbacks": [], "tags": [], "metadata": {}}


@dataclass
class _Request:
    """One call, in both spellings: LangChain messages for the LLM, OpenAI dicts for the core."""

    lc_messages: list[BaseMessage]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    sampling: dict[str, Any]
    stop: list[str] | None
    task: str | None
    structured: dict[str, Any] | None
    run_manager: Any = None


class ChatSLMRouter(BaseChatModel):
    """A chat model that answers with the SLM when it can and with your LLM when it must.

    Use it anywhere a chat model is accepted (``create_agent``, LangGraph nodes, chains). Each
    call goes through :func:`slm_agents.routing.run_routed`: the
    :class:`~slm_agents.policy.EscalationPolicy` decides whether the step tries the SLM first
    (by default: steps with tools bound), judges the SLM's answer (unknown tool, invalid
    arguments, no call when one was required, empty, truncated, low confidence, error,
    timeout) and, when it fails, the same messages and the same bound tools (with the same
    ``tool_choice``) go to ``llm``.

    Every answer's ``response_metadata`` holds ``route`` (``"slm"``, ``"llm"`` or ``"shadow"``),
    ``escalation_reason`` (None when the SLM's answer was used; a key of
    :data:`slm_agents.policy.REASONS`, ``"route:<rule>"`` or ``"shadow"`` otherwise),
    ``escalation_detail``, ``slm_confidence``, ``slm_latency_ms`` and ``task``.

    The task label (for per-task rules and thresholds) is, in order: a call's ``task=``
    keyword, the LangGraph node running the call (``metadata["langgraph_node"]``), ``task``.

    Streaming runs the routed call to the end and emits its answer as one chunk (with
    tool-call chunks, usage and metadata): which model answers is only known once the SLM's
    whole answer has been judged.

    Args:
        slm: A :class:`~langchain_slm.ChatSLM` (its sampling options apply), a GGUF path or any
            core :class:`~slm_agents.runtimes.Runtime`. Default: ``ChatSLM()``, the packaged model.
        llm: Any LangChain chat model to escalate to. Default None: nothing escalates; a failed
            SLM answer is returned with ``escalation_reason`` set (an SLM exception is raised).
        policy: The rules. Default: :meth:`EscalationPolicy.from_env` (``SLM_AGENTS_POLICY``).
            Policy fields given as keywords (``confidence_threshold=0.6``, ``llm_tasks=...``)
            override it.
        shadow: Run both models on every step and answer with the LLM; the SLM's answer is
            kept (and captured) for comparison. Default False.
        task: Default task label. Default None.
        capture: A :class:`~slm_agents.capture.CaptureStore`, a file path or ``True`` (the
            default store): each step (the SLM attempt, the LLM answer and the escalation
            linking them) is logged there. Default None: a step is logged by the run's
            :class:`~langchain_slm.SLMCaptureHandler`, when it has one.

    Bad arguments raise :class:`~slm_agents.errors.InvalidRequest` (a ``ValueError``).

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        >>> from langchain_core.messages import AIMessage
        >>> from slm_agents import FakeRuntime
        >>> slm = FakeRuntime([{"tool_calls": [{"name": "no_such_tool", "arguments": {}}]}])
        >>> llm = FakeMessagesListChatModel(responses=[AIMessage("the LLM's answer")])
        >>> router = ChatSLMRouter(slm=slm, llm=llm, tool_steps_only=False)
        >>> msg = router.invoke("hi")
        >>> msg.content, msg.response_metadata["route"], msg.response_metadata["escalation_reason"]
        ("the LLM's answer", 'llm', 'unknown_tool')
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    slm: Any = Field(default_factory=ChatSLM)
    """The small model: a ChatSLM or any core Runtime. Default: ``ChatSLM()``."""

    llm: Any = None
    """The LangChain chat model to escalate to. Default None: report failures, never escalate."""

    policy: Any = Field(default_factory=EscalationPolicy.from_env)
    """The :class:`EscalationPolicy`. Default: ``EscalationPolicy.from_env()``."""

    shadow: bool = False
    """Run both models, answer with the LLM, keep the SLM's answer for comparison. Default False."""

    task: str | None = None
    """Default task label (overridden by a call's ``task=`` or the LangGraph node). Default None."""

    capture: Any = Field(default=None, exclude=True)
    """Where to log each step besides the run's capture handlers: a store, a path or True
    (see ``capture`` above). Default None."""

    def __init__(self, **kwargs: Any) -> None:
        overrides, kwargs = split_policy_fields(kwargs)
        reject_unknown("ChatSLMRouter", kwargs, type(self).model_fields)
        kwargs["policy"] = resolve_policy(kwargs.get("policy"), **overrides)
        slm = kwargs.pop("slm", None)
        if isinstance(slm, (str, os.PathLike)):
            slm = ChatSLM(model_path=os.fspath(slm))
        elif slm is not None and not isinstance(slm, ChatSLM) and not (hasattr(slm, "complete") and hasattr(slm, "acomplete")):
            raise bad_argument("slm", "a ChatSLM, a GGUF path, an slm_agents Runtime or None (the packaged model)", slm)
        if slm is not None:
            kwargs["slm"] = slm
        llm = kwargs.get("llm")
        if llm is not None and not isinstance(llm, Runnable):
            raise bad_argument("llm", "a LangChain chat model (or None: never escalate)", llm)
        kwargs["capture"] = records.resolve_store(kwargs.get("capture"))
        super().__init__(**kwargs)

    # -- LangChain metadata -----------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "chat-slm-router"

    @property
    def slm_model_name(self) -> str:
        """The SLM's model name."""
        if isinstance(self.slm, ChatSLM):
            return self.slm.model_name
        return str(getattr(self.slm, "model_name", "") or type(self.slm).__name__)

    def _slm_runtime_name(self) -> str | None:
        """The SLM runtime's name, without building a ChatSLM's runtime (it may be what failed)."""
        runtime = (self.slm.runtime or self.slm._runtime) if isinstance(self.slm, ChatSLM) else self.slm
        return getattr(runtime, "name", None)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "slm": self.slm_model_name,
            "llm": type(self.llm).__name__ if self.llm is not None else None,
            "policy": self.policy.to_dict(),
            "shadow": self.shadow,
            "task": self.task,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=_convert.MODEL_PROVIDER,
            ls_model_name=kwargs["model"] if isinstance(kwargs.get("model"), str) else self.slm_model_name,
            ls_model_type="chat",
        )
        if isinstance(kwargs.get("temperature"), (int, float)):
            params["ls_temperature"] = kwargs["temperature"]
        if isinstance(kwargs.get("max_tokens"), int):
            params["ls_max_tokens"] = kwargs["max_tokens"]
        if stop:
            params["ls_stop"] = list(stop)
        return params

    # -- one call ---------------------------------------------------------------------------------
    def _request(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> _Request:
        metadata = getattr(run_manager, "metadata", None) or {}
        task = kwargs.get("task") or metadata.get("langgraph_node") or self.task
        sampling = {k: v for k, v in kwargs.items() if k not in _ROUTER_KWARGS}
        return _Request(
            lc_messages=messages,
            messages=_convert.messages_to_openai(messages),
            tools=kwargs.get("tools") or None,
            tool_choice=kwargs.get("tool_choice"),
            sampling=sampling,
            stop=stop,
            task=str(task) if task is not None else None,
            structured=kwargs.get("structured_output"),
            run_manager=run_manager,
        )

    def _slm_args(self, req: _Request) -> tuple[Any, ...]:
        sampling = dict(req.sampling)
        if req.stop is not None:
            sampling["stop"] = req.stop
        if isinstance(self.slm, ChatSLM):
            return req.messages, req.tools, req.tool_choice, sampling
        return ChatSLM.to_openai_request(req.messages, req.tools, req.tool_choice, sampling)

    def _slm_call(self, req: _Request) -> Completion:
        messages, tools, tool_choice, sampling = self._slm_args(req)
        if isinstance(self.slm, ChatSLM):
            return self.slm.complete_openai(messages, tools, tool_choice, **sampling)
        return self.slm.complete(messages, tools, tool_choice, **sampling)

    async def _aslm_call(self, req: _Request) -> Completion:
        messages, tools, tool_choice, sampling = self._slm_args(req)
        if isinstance(self.slm, ChatSLM):
            return await self.slm.acomplete_openai(messages, tools, tool_choice, **sampling)
        return await self.slm.acomplete(messages, tools, tool_choice, **sampling)

    def _llm_runnable(self, req: _Request) -> Runnable[Any, Any]:
        """The LLM with the request's tools (same tool_choice) or structured-output schema."""
        llm = self.llm
        if req.structured is not None:
            structured = llm.with_structured_output(req.structured["schema"], method=req.structured["method"], include_raw=True)
            return structured | _structured_to_message
        if req.tools:
            try:
                if req.tool_choice is None:
                    return llm.bind_tools(req.tools)
                return llm.bind_tools(req.tools, tool_choice=req.tool_choice)
            except NotImplementedError as e:
                raise InvalidRequest(
                    f"the router's llm ({type(llm).__name__}) has no bind_tools, so it cannot take over a "
                    "tool-calling step; pass a chat model that supports tool calling as llm="
                ) from e
        return llm

    # The LLM runs inside the router's own run, without callbacks: handlers and tracers see one
    # chat-model run (the router's, whose response_metadata says which model answered), so usage
    # is counted once and LangGraph's message stream gets one message per step.
    def _llm_call(self, req: _Request) -> AIMessage:
        extra = {"stop": req.stop} if req.stop is not None and req.structured is None else {}
        return _as_ai_message(self._llm_runnable(req).invoke(req.lc_messages, _ISOLATED, **extra))

    async def _allm_call(self, req: _Request) -> AIMessage:
        extra = {"stop": req.stop} if req.stop is not None and req.structured is None else {}
        return _as_ai_message(await self._llm_runnable(req).ainvoke(req.lc_messages, _ISOLATED, **extra))

    def _finish(self, routed: Routed[Any], req: _Request) -> ChatResult:
        extra = routed.report(req.task)
        extra.pop("route")
        if isinstance(routed.result, Completion):
            message = _convert.completion_to_message(routed.result, route=routed.route, **extra)
        else:
            answer: AIMessage = routed.result
            metadata = {**answer.response_metadata, "route": routed.route, **extra}
            message = answer.model_copy(update={"response_metadata": metadata})
        self._capture(routed, req, message)
        finish = message.response_metadata.get("finish_reason")
        return ChatResult(generations=[ChatGeneration(message=message, generation_info={"finish_reason": finish})])

    # -- capture seam -----------------------------------------------------------------------------
    def _capture(self, routed: Routed[Any], req: _Request, message: AIMessage) -> None:
        """Hand the step to the run's capture handlers and log it to ``capture``.

        The step is the SLM attempt, the LLM answer (when the LLM answered) and the escalation
        linking them. Every :class:`~langchain_slm.SLMCaptureHandler` of the run gets it (and logs
        it when the run ends); ``capture`` logs it here unless a handler on the same store does.
        Never raises: a failing store must not break the agent (only the error type is logged).
        """
        takers = [take for handler in getattr(req.run_manager, "handlers", None) or ()
                  if (take := getattr(handler, "capture_routed_step", None)) is not None]  # fmt: skip
        if not takers and self.capture is None:
            return  # nobody captures this run: build nothing
        try:
            step = records.step_from_routed(
                routed,
                records.request_fields(req.messages, tools=req.tools, tool_choice=req.tool_choice,
                                       params=req.sampling),
                _capture.graph_context(task=req.task),
                slm_model=self.slm_model_name, slm_runtime=self._slm_runtime_name(),
            )  # fmt: skip
            answer = _capture.answer_fields(message) if step.llm_answered else None
            run_id = getattr(req.run_manager, "run_id", None)
            for take in takers:
                take(run_id, step, answer)
            store = self.capture
            if store is not None and records.claim(store, run_id or id(req), self):
                records.log_step(store, step, answer=answer)
                records.release(store, run_id or id(req))
        except Exception as e:  # noqa: BLE001 - the capture path never breaks the agent
            logger.warning("slm-agents capture failed (%s); the answer is unaffected", type(e).__name__)

    # -- generation -------------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        req = self._request(messages, stop, run_manager, kwargs)
        llm: Callable[[], AIMessage] | None = None
        if self.llm is not None:

            def llm() -> AIMessage:
                return self._llm_call(req)

        routed = run_routed(
            self.policy, req.messages, req.tools, req.tool_choice,
            slm=lambda: self._slm_call(req), llm=llm, task=req.task, shadow=self.shadow,
        )  # fmt: skip
        return self._finish(routed, req)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        req = self._request(messages, stop, run_manager, kwargs)
        llm = None
        if self.llm is not None:

            async def llm() -> AIMessage:
                return await self._allm_call(req)

        async def slm() -> Completion:
            return await self._aslm_call(req)

        routed = await arun_routed(
            self.policy, req.messages, req.tools, req.tool_choice,
            slm=slm, llm=llm, task=req.task, shadow=self.shadow,
        )  # fmt: skip
        return self._finish(routed, req)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop, run_manager, **kwargs)
        chunk = _as_generation_chunk(result)
        if run_manager is not None:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        result = await self._agenerate(messages, stop, run_manager, **kwargs)
        chunk = _as_generation_chunk(result)
        if run_manager is not None:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    # -- tools and structured output ----------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: dict | str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools and ``tool_choice``; both models get the same ones.

        Args:
            tools: ``BaseTool`` objects, pydantic models, functions or OpenAI/JSON-schema dicts.
            tool_choice: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` or a tool name.
            **kwargs: More call options (the SLM's sampling options, ``task=``).
        """
        formatted = _convert.tools_to_openai(tools)
        _check_tool_choice(formatted, tool_choice)
        kwargs.pop("strict", None)
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable whose output matches ``schema``, SLM first.

        ``function_calling`` (default) makes the schema the one forced tool, so the step is a
        tool step that the policy sends to the SLM and validates against the schema.
        ``json_schema``/``json_mode`` give the SLM a JSON ``response_format``; on escalation
        the LLM answers through its own ``with_structured_output(schema, method=...)`` and the
        parsed object comes back as JSON text. With the default policy
        (``tool_steps_only=True``) such tool-less steps go straight to the LLM.
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {', '.join(kwargs)}")
        extra = {"structured_output": {"schema": schema, "method": method}} if method != "function_calling" else None
        return structured_output_runnable(
            self, schema, method=method, include_raw=include_raw, strict=strict, bind_kwargs=extra
        )


def _as_ai_message(result: Any) -> AIMessage:
    if isinstance(result, AIMessage):
        return result
    if isinstance(result, BaseMessage):
        return AIMessage(content=result.content, response_metadata=dict(result.response_metadata))
    raise TypeError(f"the LLM returned {type(result).__name__}, not a message")


def _structured_to_message(out: dict[str, Any]) -> AIMessage:
    """The LLM's ``with_structured_output(include_raw=True)`` result as a JSON-text AIMessage."""
    if out.get("parsing_error") is not None:
        raise out["parsing_error"]
    parsed, raw = out.get("parsed"), out.get("raw")
    if isinstance(parsed, BaseModel):
        text = parsed.model_dump_json()
    elif parsed is not None and not isinstance(parsed, dict) and callable(getattr(parsed, "json", None)):  # pydantic v1
        text = parsed.json()
    else:
        text = json.dumps(parsed, ensure_ascii=False)
    meta = dict(raw.response_metadata) if isinstance(raw, BaseMessage) else {}
    usage = raw.usage_metadata if isinstance(raw, AIMessage) else None
    return AIMessage(content=text, response_metadata=meta, usage_metadata=usage)


def _as_generation_chunk(result: ChatResult) -> ChatGenerationChunk:
    generation = result.generations[0]
    message = generation.message
    assert isinstance(message, AIMessage)
    return ChatGenerationChunk(message=_convert.message_to_chunk(message), generation_info=generation.generation_info)
