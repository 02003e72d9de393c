"""SLM-first routing for ``langchain.agents.create_agent``: try the local model, fall back to the agent's."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ContextT,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    ResponseT,
)
from langchain_core.messages import AIMessage, BaseMessage

from slm_agents.arguments import bad_argument, resolve_policy
from slm_agents.capture import records
from slm_agents.policy import EscalationPolicy
from slm_agents.routing import Routed, arun_routed, run_routed

from .. import _capture, _convert
from ..chat_models import ChatSLM

if TYPE_CHECKING:
    from slm_agents.capture import CaptureStore

__all__ = ["SLMRoutingMiddleware"]

logger = logging.getLogger(__name__)

ModelCallResult = ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]


def resolve_slm(slm: Any) -> ChatSLM:
    """``None`` (the packaged model), a GGUF path, a :class:`ChatSLM` or a core Runtime, as a ChatSLM."""
    if slm is None:
        return ChatSLM()
    if isinstance(slm, ChatSLM):
        return slm
    if isinstance(slm, (str, os.PathLike)):
        return ChatSLM(model_path=os.fspath(slm))
    if hasattr(slm, "complete") and hasattr(slm, "acomplete"):
        return ChatSLM(runtime=slm)
    raise bad_argument("slm", "a ChatSLM, a GGUF path, an slm_agents Runtime or None (the packaged model)", slm)


@dataclass
class _Step:
    """One model request in the core's spelling, plus where it runs."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    task: str | None
    context: dict[str, Any]
    name: str | None
    stores: list[Any]


class SLMRoutingMiddleware(AgentMiddleware[AgentState[ResponseT], ContextT, ResponseT]):
    """Answer each model step of a ``create_agent`` agent with a local SLM when it can.

    For every model call the agent makes, the SLM gets the same request (messages, system
    prompt, tools, ``tool_choice``). The core (:func:`slm_agents.routing.run_routed` and the
    :class:`~slm_agents.policy.EscalationPolicy`) decides whether the step tries the SLM at
    all (by default: steps with tools) and judges its answer: unknown tool, invalid
    arguments, no call when one was required, empty, truncated, low confidence, error,
    timeout. When the SLM's answer fails, the agent's own model answers instead (the rest of
    the middleware stack runs as usual).

    The answer's ``response_metadata`` says what happened: ``route`` (``"slm"``, ``"llm"`` or
    ``"shadow"``), ``escalation_reason``, ``escalation_detail``, ``slm_confidence``,
    ``slm_latency_ms``, ``task`` (and ``capture_id`` when captured). With ``capture``, the
    SLM attempt and the LLM answer are logged and an escalation links them (a training pair);
    calls made inside are then not logged again by :class:`~langchain_slm.SLMCaptureHandler`
    or :class:`~langchain_slm.middleware.CaptureMiddleware`.

    Steps with a ``response_format`` (structured output) go to the agent's model unchanged.
    ``GraphBubbleUp`` (interrupts) from the agent's model always propagates.

    Args:
        slm: The small model: a :class:`~langchain_slm.ChatSLM`, a GGUF path, a core
            ``Runtime``, or None for ``ChatSLM()`` (the packaged SmolLM2-135M).
        policy: The routing rules. Default: :meth:`EscalationPolicy.from_env`.
        confidence_threshold: Overrides the policy's threshold (tool calls under it escalate).
        shadow: Run both models on every step and answer with the agent's model; the SLM's
            answer is kept for comparison (captured when ``capture`` is set). Default False.
        capture: Where to log steps: a :class:`~slm_agents.capture.CaptureStore`, a path,
            ``True`` (the default store) or None/False (no logging). Default None.
        task: The task label for per-task policy rules and capture. Default: the LangGraph node
            running the call (``"model"`` in ``create_agent``).

    Example:
        >>> from langchain.agents import create_agent
        >>> from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        >>> from langchain_core.messages import AIMessage
        >>> from langchain_core.tools import tool
        >>> from slm_agents import FakeRuntime
        >>> @tool
        ... def lookup(order_id: str) -> str:
        ...     '''Look an order up.'''
        ...     return "shipped"
        >>> slm = FakeRuntime([{"tool_calls": [{"name": "lookup", "arguments": {"order_id": "A1"}}]},
        ...                    "It has shipped."])
        >>> llm = FakeMessagesListChatModel(responses=[AIMessage("(the frontier model)")])
        >>> agent = create_agent(llm, [lookup], middleware=[SLMRoutingMiddleware(slm)])
        >>> out = agent.invoke({"messages": [("user", "Where is order A1?")]})
        >>> [(m.content, m.response_metadata["route"]) for m in out["messages"] if m.type == "ai"]
        [('', 'slm'), ('It has shipped.', 'slm')]
    """

    def __init__(
        self,
        slm: ChatSLM | str | os.PathLike[str] | Any = None,
        *,
        policy: EscalationPolicy | None = None,
        confidence_threshold: float | None = None,
        shadow: bool = False,
        capture: CaptureStore | str | os.PathLike[str] | bool | None = None,
        task: str | None = None,
    ) -> None:
        super().__init__()
        self.slm = resolve_slm(slm)
        self.policy = resolve_policy(policy, confidence_threshold=confidence_threshold)
        self.shadow = bool(shadow)
        self.capture = records.resolve_store(capture)
        self.task = task

    # -- the request -------------------------------------------------------------------------------
    def _step(self, request: ModelRequest[Any]) -> _Step | None:
        """The request in OpenAI format; None when the SLM cannot take it (it then goes to the LLM)."""
        if request.response_format is not None:
            return None
        lc_messages: list[BaseMessage] = list(request.messages)
        if request.system_message is not None:
            lc_messages.insert(0, request.system_message)
        try:
            tools = _convert.tools_to_openai(request.tools) or None
        except Exception:  # provider built-in tools the SLM cannot run
            logger.debug("SLMRoutingMiddleware: tools not convertible; step goes to the agent's model")
            return None
        context = _capture.graph_context(task=self.task)
        name = (context.get("metadata") or {}).get("lc_agent_name")
        return _Step(_convert.messages_to_openai(lc_messages), tools, request.tool_choice,
                     context.get("task"), context, name, _capture.run_stores(self.capture))  # fmt: skip

    # -- the answer --------------------------------------------------------------------------------
    def _finish(self, routed: Routed[Any], step: _Step) -> ModelCallResult:
        extra = routed.report(step.task)
        if routed.route == "slm":
            message = _convert.completion_to_message(routed.result, **extra)
            if step.name:
                message.name = step.name
            message = self._captured(routed, step, message, None)
            return ModelResponse(result=[message])
        result = routed.result
        answer = _last_ai_message(result)
        if answer is None:
            return result
        updated = answer.model_copy(update={"response_metadata": {**answer.response_metadata, **extra}})
        updated = self._captured(routed, step, None, updated)
        return _replace_message(result, answer, updated)

    def _captured(self, routed: Routed[Any], step: _Step, slm_message: AIMessage | None,
                  llm_message: AIMessage | None) -> AIMessage:  # fmt: skip
        """Log the step when capturing; the answer gets its ``capture_id``."""
        answer = slm_message if slm_message is not None else llm_message
        assert answer is not None
        if not step.stores:
            return answer
        request = records.request_fields(step.messages, tools=step.tools, tool_choice=step.tool_choice)
        record_step = records.step_from_routed(routed, request, step.context, slm_model=self.slm.model_name)
        answer_fields = _capture.answer_fields(llm_message) if llm_message is not None else None
        capture_id = None
        for store in step.stores:
            slm_id, llm_id = records.log_step(store, record_step, answer=answer_fields)
            capture_id = capture_id or (llm_id if llm_message is not None else slm_id)
        if capture_id is None:
            return answer
        answer.response_metadata = {**answer.response_metadata, "capture_id": capture_id}
        return answer

    @staticmethod
    def _scope(step: _Step) -> contextlib.AbstractContextManager[None]:
        """Calls made inside a captured step are the step's: handlers skip them."""
        return records.captured_here() if step.stores else contextlib.nullcontext()

    # -- hooks -------------------------------------------------------------------------------------
    def wrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], ModelResponse[ResponseT]],
    ) -> ModelCallResult:
        """Try the SLM; fall back to ``handler`` (the agent's model) when the policy says so."""
        step = self._step(request)
        if step is None:
            return handler(request)
        with self._scope(step):
            routed = run_routed(
                self.policy, step.messages, step.tools, step.tool_choice,
                slm=lambda: self.slm.complete_openai(step.messages, step.tools, step.tool_choice),
                llm=lambda: handler(request), task=step.task, shadow=self.shadow,
            )  # fmt: skip
        return self._finish(routed, step)

    async def awrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], Awaitable[ModelResponse[ResponseT]]],
    ) -> ModelCallResult:
        """Async twin of :meth:`wrap_model_call`."""
        step = self._step(request)
        if step is None:
            return await handler(request)
        with self._scope(step):
            routed = await arun_routed(
                self.policy, step.messages, step.tools, step.tool_choice,
                slm=lambda: self.slm.acomplete_openai(step.messages, step.tools, step.tool_choice),
                llm=lambda: handler(request), task=step.task, shadow=self.shadow,
            )  # fmt: skip
        return self._finish(routed, step)


def _last_ai_message(result: Any) -> AIMessage | None:
    if isinstance(result, AIMessage):
        return result
    if isinstance(result, ExtendedModelResponse):
        result = result.model_response
    if isinstance(result, ModelResponse):
        for message in reversed(result.result):
            if isinstance(message, AIMessage):
                return message
    return None


def _replace_message(result: Any, old: AIMessage, new: AIMessage) -> Any:
    """``result`` with ``old`` replaced by ``new`` (same container type)."""
    if isinstance(result, AIMessage):
        return new
    if isinstance(result, ExtendedModelResponse):
        return dataclasses.replace(result, model_response=_replace_message(result.model_response, old, new))
    return dataclasses.replace(result, result=[new if m is old else m for m in result.result])
