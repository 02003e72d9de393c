"""Capture for ``langchain.agents.create_agent``: every model request and tool execution, logged."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ContextT,
    ModelRequest,
    ModelResponse,
    ResponseT,
)
from langchain_core.messages import BaseMessage, ToolMessage
from langgraph.errors import GraphBubbleUp

from slm_agents.capture import records

from .. import _capture
from ..chat_models import ChatSLM
from .routing import _last_ai_message

if TYPE_CHECKING:
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.types import Command

    from slm_agents.capture import CaptureStore

__all__ = ["CaptureMiddleware"]


def _model_name(model: Any) -> str | None:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


class CaptureMiddleware(AgentMiddleware[AgentState[ResponseT], ContextT, ResponseT]):
    """Log every model request/response and tool execution of a ``create_agent`` agent.

    The middleware twin of :class:`~langchain_slm.SLMCaptureHandler`, for agents built with
    ``create_agent(..., middleware=[CaptureMiddleware()])`` (no ``config`` to pass at each
    call). Records are built by the same code, so they look the same: the request (system
    prompt included, OpenAI format), tools, ``tool_choice``, ``model_settings``, the answer,
    usage, latency, the LangGraph node as ``task``, ``thread_id``; tool executions with their
    arguments, result or error and latency, linked to the model call that requested them.

    The calls it logs are not logged again by an ``SLMCaptureHandler`` on the same run. Under
    :class:`~langchain_slm.middleware.SLMRoutingMiddleware` with ``capture`` set (which logs
    the SLM attempt and the LLM answer itself), it logs nothing more. Logging never raises into
    the agent; ``GraphBubbleUp`` (interrupts) always propagates unrecorded.

    Args:
        store: A :class:`~slm_agents.capture.CaptureStore`, a file path, or None for the default
            store (``$SLM_AGENTS_DB`` or ``./slm_agents.db``).

    Example:
        >>> from langchain.agents import create_agent
        >>> from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        >>> from langchain_core.messages import AIMessage
        >>> from sqlite_utils import Database
        >>> from slm_agents.capture import CaptureStore
        >>> store = CaptureStore(Database(memory=True))
        >>> llm = FakeMessagesListChatModel(responses=[AIMessage("hello")])
        >>> agent = create_agent(llm, [], middleware=[CaptureMiddleware(store)])
        >>> agent.invoke({"messages": [("user", "hi")]})["messages"][-1].content
        'hello'
        >>> store.flush()
        True
        >>> next(store.db.query("select content, task, framework from calls"))
        {'content': 'hello', 'task': 'model', 'framework': 'langgraph'}
    """

    def __init__(self, store: CaptureStore | str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.store: CaptureStore = records.resolve_store(True if store is None else store)  # type: ignore[assignment]

    # -- model calls -------------------------------------------------------------------------------
    def _log_model(self, request: ModelRequest[Any], start: float, response: Any = None,
                   error: BaseException | None = None) -> None:  # fmt: skip
        latency = (time.perf_counter() - start) * 1000
        try:
            messages: list[BaseMessage] = list(request.messages)
            if request.system_message is not None:
                messages.insert(0, request.system_message)
            answer = _last_ai_message(response) if response is not None else None
            if answer is not None and answer.response_metadata.get("capture_id"):
                return  # an inner SLMRoutingMiddleware logged this step already
            record = records.merge(
                _capture.request_fields(messages, tools=request.tools, tool_choice=request.tool_choice,
                                        params=request.model_settings),
                _capture.graph_context(),
                _capture.answer_fields(answer) if answer is not None else None,
                records.error_fields(error) if error is not None else None,
            )  # fmt: skip
            record["latency_ms"] = latency
            record["model_requested"] = _model_name(request.model)
            record["model"] = record.get("model") or record["model_requested"]
            if not record.get("route"):
                record["route"] = "slm" if isinstance(request.model, ChatSLM) else "llm"
            call_id = self.store.log(record)
            records.remember_tool_calls(call_id, record.get("tool_calls"))
        except Exception as e:  # noqa: BLE001 - the capture path never breaks the agent
            records.logger.warning("slm-agents capture failed (%s); the answer is unaffected", type(e).__name__)

    def wrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], ModelResponse[ResponseT]],
    ) -> ModelResponse[ResponseT]:
        """Run the model call and log it (or its error)."""
        if records.is_captured_elsewhere():
            return handler(request)
        start = time.perf_counter()
        with records.captured_here():
            try:
                response = handler(request)
            except GraphBubbleUp:
                raise
            except Exception as e:
                self._log_model(request, start, error=e)
                raise
        self._log_model(request, start, response)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], Awaitable[ModelResponse[ResponseT]]],
    ) -> ModelResponse[ResponseT]:
        """Async twin of :meth:`wrap_model_call`."""
        if records.is_captured_elsewhere():
            return await handler(request)
        start = time.perf_counter()
        with records.captured_here():
            try:
                response = await handler(request)
            except GraphBubbleUp:
                raise
            except Exception as e:
                self._log_model(request, start, error=e)
                raise
        self._log_model(request, start, response)
        return response

    # -- tool calls --------------------------------------------------------------------------------
    def _log_tool(self, request: ToolCallRequest, start: float, outcome: dict[str, Any]) -> None:
        latency = (time.perf_counter() - start) * 1000
        try:
            call = request.tool_call
            self.store.log_tool(records.tool_record(
                name=call.get("name"), arguments=call.get("args"), call_id=call.get("id"), latency_ms=latency,
                context=_capture.graph_context(), **outcome,
            ))  # fmt: skip
        except Exception as e:  # noqa: BLE001
            records.logger.warning("slm-agents capture failed (%s); the tool result is unaffected", type(e).__name__)

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Run the tool and log its execution (or its error)."""
        if records.is_captured_elsewhere():
            return handler(request)
        start = time.perf_counter()
        with records.captured_here():
            try:
                result = handler(request)
            except GraphBubbleUp:
                raise
            except Exception as e:
                self._log_tool(request, start, {"error": e})
                raise
        self._log_tool(request, start, _capture.tool_fields(result))
        return result

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async twin of :meth:`wrap_tool_call`."""
        if records.is_captured_elsewhere():
            return await handler(request)
        start = time.perf_counter()
        with records.captured_here():
            try:
                result = await handler(request)
            except GraphBubbleUp:
                raise
            except Exception as e:
                self._log_tool(request, start, {"error": e})
                raise
        self._log_tool(request, start, _capture.tool_fields(result))
        return result
