"""``SLMCaptureHandler``: record every chat-model call and tool execution of a LangChain run.

One callback handler, added where the run is started, records every chat-model call — any model:
``ChatOpenAI`` as much as :class:`~langchain_slm.ChatSLM` — and every tool execution into the
slm-agents capture store (SQLite, see docs/capture.md), with the LangGraph node as the task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from slm_agents.capture import CaptureStore, records

from ._capture import CALL_IDS, answer_fields, context_fields, request_fields, tool_fields

__all__ = ["SLMCaptureHandler"]

logger = logging.getLogger("langchain_slm.capture")



class _Call:
    """A chat-model call in flight: references only; converted when it ends."""

    __slots__ = ("start", "messages", "params", "metadata", "tags", "parent", "model_requested",
                 "first", "chunks", "step")  # fmt: skip

    def __init__(self, messages: Sequence[BaseMessage], params: dict[str, Any], metadata: dict[str, Any],
                 tags: list[str] | None, parent: UUID | None, model_requested: str | None) -> None:  # fmt: skip
        self.start = time.perf_counter()
        self.messages = messages
        self.params = params
        self.metadata = metadata
        self.tags = tags
        self.parent = parent
        self.model_requested = model_requested
        self.first: float | None = None
        self.chunks: list[Any] = []
        self.step: tuple[records.Step, dict[str, Any] | None] | None = None  # a router's step


class _Tool:
    __slots__ = ("start", "name", "arguments", "call_id", "metadata", "tags", "parent")

    def __init__(self, name: str | None, arguments: Any, call_id: str | None, metadata: dict[str, Any],
                 tags: list[str] | None, parent: UUID | None) -> None:  # fmt: skip
        self.start = time.perf_counter()
        self.name = name
        self.arguments = arguments
        self.call_id = call_id
        self.metadata = metadata
        self.tags = tags
        self.parent = parent


class SLMCaptureHandler(BaseCallbackHandler):
    """Records every chat-model call and tool execution of a run into the capture store.

    Add it where the run starts — one line, nothing else changes::

        agent.invoke(inputs, config={"callbacks": [SLMCaptureHandler()]})

    For each chat-model call it records the request (messages in OpenAI format, the bound tools
    and ``tool_choice``, sampling options), the answer (text, tool calls in OpenAI format,
    finish reason, token usage; ``route``, ``escalation_reason`` and ``confidence`` when an
    slm-agents model reports them), latency and time to first token, ``run_id`` /
    ``parent_run_id``, the LangGraph node as ``task``, ``thread_id`` and the framework
    (``"langgraph"`` inside a graph, else ``"langchain"``). Streamed calls are recorded when the
    stream ends (a stream that fails keeps the text received so far); failed calls keep the
    error's type and message. Tool executions are recorded with their arguments, result or
    error and latency, linked to the model call that asked for them (through the tool call id).

    The handler never raises into the agent: a failure is counted in :attr:`failures` and
    logged by type only. On the agent's thread it keeps references when a call starts and,
    when it ends, converts and queues one record (the store writes in its own thread). It
    runs inline under ``ainvoke``/``astream`` too (no thread hop per event).

    A :class:`~langchain_slm.ChatSLMRouter` step is recorded whole: the SLM attempt (with the
    policy's verdict as ``valid``), the LLM answer when the LLM answered, both with the step's
    ``escalation_reason``, and the escalation linking them (a training pair).

    What it does not log, so nothing is logged twice (the core's
    :func:`~slm_agents.capture.records.claim` decides):

    * calls made inside :class:`~langchain_slm.middleware.SLMRoutingMiddleware`,
      :class:`~langchain_slm.middleware.CaptureMiddleware` or
      :func:`~langchain_slm.graph.escalation_node` when those capture themselves;
    * a call or router step another capturer (a second handler, a router's own ``capture=``)
      already records on the same store.

    Args:
        store: A :class:`~slm_agents.capture.CaptureStore`, a file path, or None for
            :func:`~slm_agents.capture.get_default_store` (``$SLM_AGENTS_DB`` or
            ``./slm_agents.db``).
        task: A fixed task label. Default None: the LangGraph node running the call.

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> from sqlite_utils import Database
        >>> from slm_agents.capture import CaptureStore
        >>> handler = SLMCaptureHandler(CaptureStore(Database(memory=True)))
        >>> FakeListChatModel(responses=["4"]).invoke("2+2?", config={"callbacks": [handler]}).content
        '4'
        >>> handler.flush()
        True
        >>> row = next(handler.store.db.query("select content, route, framework from calls"))
        >>> row["content"], row["route"], row["framework"]
        ('4', 'llm', 'langchain')
    """

    run_inline = True
    raise_error = False
    ignore_chain = True
    ignore_retriever = True
    ignore_retry = True
    ignore_custom_event = True

    def __init__(self, store: CaptureStore | str | Any = None, *, task: str | None = None) -> None:
        self.store: CaptureStore = records.resolve_store(True if store is None else store)  # type: ignore[assignment]
        self.task = task
        self.failures = 0
        self._calls: dict[UUID, _Call] = {}
        self._tools: dict[UUID, _Tool] = {}
        self._last_tool_step = records.BoundedMap(1000)  # thread id -> capture id of its last tool-calling call

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything recorded so far is written (tests, scripts)."""
        return self.store.flush(timeout)

    def feedback(self, target: str | UUID, *, good: bool | None = None, score: float | None = None,
                 note: str | None = None) -> str:
        """Thumbs up/down (``good=``) or a 0..1 ``score`` on a captured call or a run; see
        :meth:`slm_agents.capture.CaptureStore.feedback`.

        ``target`` is a call id, a LangChain run id (a model call's, or the run that made it) or
        a LangGraph ``thread_id`` (then the thread's final call). Negative feedback counts
        against the task's outcome readiness.
        """
        return self.store.feedback(str(target), good=good, score=score, note=note)

    def _failed(self, error: BaseException, where: str) -> None:
        self.failures += 1
        if self.failures & (self.failures - 1) == 0:  # 1, 2, 4, 8...: say so without flooding
            logger.warning("slm-agents capture: %s failed (%s); %d failure(s) so far",
                           where, type(error).__name__, self.failures)  # fmt: skip

    # -- chat models ------------------------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if records.is_captured_elsewhere() or not records.claim(self.store, run_id, self):
                return
            params = kwargs.get("invocation_params") or {}
            metadata = metadata or {}
            requested = (
                params.get("model") or params.get("model_name") or metadata.get("ls_model_name")
                or (serialized or {}).get("name")
            )  # fmt: skip
            self._calls[run_id] = _Call(messages[0] if messages else [], params, metadata, tags,
                                        parent_run_id, str(requested) if requested else None)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - never into the agent
            self._failed(e, "on_chat_model_start")

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], *, chunk: Any = None, run_id: UUID,
                         **kwargs: Any) -> None:
        call = self._calls.get(run_id)
        if call is None:
            return
        if call.first is None:
            call.first = time.perf_counter()
        if chunk is not None:
            call.chunks.append(chunk)

    def capture_routed_step(self, run_id: UUID, step: records.Step, answer: dict[str, Any] | None) -> None:
        """Take the step a :class:`~langchain_slm.ChatSLMRouter` run routed (the router calls
        this on the handlers of its run); it is logged, with the run's context, when the run ends."""
        call = self._calls.get(run_id)
        if call is not None:
            call.step = (step, answer)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        try:
            end = time.perf_counter()
            if call.step is not None:
                self._log_step(run_id, call)
                return
            message = _answer(response, call)
            answer = answer_fields(message, llm_output=response.llm_output) if message is not None else {}
            self._log(run_id, call, end, answer)
        except Exception as e:  # noqa: BLE001
            self._failed(e, "on_llm_end")
        finally:
            records.release(self.store, run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        try:
            end = time.perf_counter()
            partial = _join_chunks(call.chunks)
            answer = answer_fields(partial) if partial is not None else {}
            answer.pop("finish_reason", None)
            answer.pop("valid", None)
            self._log(run_id, call, end, {**answer, **records.error_fields(error)})
        except Exception as e:  # noqa: BLE001
            self._failed(e, "on_llm_error")
        finally:
            records.release(self.store, run_id)

    def _context(self, run_id: UUID, call: _Call) -> dict[str, Any]:
        context = context_fields(call.metadata, tags=call.tags, task=self.task)
        context["run_id"] = str(run_id)
        if call.parent is not None:
            context["parent_run_id"] = str(call.parent)
        return context

    def _log_step(self, run_id: UUID, call: _Call) -> None:
        step, answer = call.step  # type: ignore[misc]
        context = self._context(run_id, call)
        if self.task is None:  # the router's task label (a call's task=, the node, its default)
            context.pop("task", None)
        slm_id, llm_id = records.log_step(self.store, step, answer=answer, context=context)
        call_id = llm_id if step.llm_answered else slm_id
        if call_id is not None:
            CALL_IDS.set(str(run_id), call_id)

    def _log(self, run_id: UUID, call: _Call, end: float, answer: dict[str, Any]) -> None:
        params = call.params
        metadata = call.metadata
        record = records.merge(
            request_fields(call.messages, tools=params.get("tools"), tool_choice=params.get("tool_choice"),
                           params=params),
            context_fields(metadata, tags=call.tags, task=self.task),
            answer,
        )  # fmt: skip
        record["run_id"] = str(run_id)
        record["parent_run_id"] = str(call.parent) if call.parent is not None else None
        record["model_requested"] = call.model_requested
        record["latency_ms"] = (end - call.start) * 1000
        if call.first is not None:  # else what the model reported (ChatSLM does), if anything
            record["ttft_ms"] = (call.first - call.start) * 1000
        provider = metadata.get("ls_provider")
        if not record.get("route"):
            record["route"] = records.unrouted_route(provider == "slm_agents")
        if not record.get("runtime"):
            record["runtime"] = provider
        if not record.get("model"):
            record["model"] = call.model_requested
        call_id = self.store.log(record)
        CALL_IDS.set(str(run_id), call_id)
        tool_calls = record.get("tool_calls")
        if tool_calls:
            records.remember_tool_calls(call_id, tool_calls)
            self._last_tool_step.set(record.get("thread_id"), call_id)

    # -- tools ------------------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if records.is_captured_elsewhere() or not records.claim(self.store, run_id, self):
                return
            name = (serialized or {}).get("name") or kwargs.get("name")
            self._tools[run_id] = _Tool(name, inputs if inputs is not None else input_str,
                                        kwargs.get("tool_call_id"), metadata or {}, tags, parent_run_id)  # fmt: skip
        except Exception as e:  # noqa: BLE001
            self._failed(e, "on_tool_start")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        tool = self._tools.pop(run_id, None)
        if tool is not None:
            self._log_tool(run_id, tool, tool_fields(output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        tool = self._tools.pop(run_id, None)
        if tool is not None:
            if tool.call_id is None and kwargs.get("tool_call_id"):
                tool.call_id = kwargs["tool_call_id"]
            self._log_tool(run_id, tool, {"error": error})

    def _log_tool(self, run_id: UUID, tool: _Tool, outcome: dict[str, Any]) -> None:
        try:
            latency = (time.perf_counter() - tool.start) * 1000
            context = context_fields(tool.metadata, tags=tool.tags, task=self.task)
            context.update(run_id=str(run_id), parent_run_id=str(tool.parent) if tool.parent else None)
            owner = records.TOOL_OWNERS.get(tool.call_id) if tool.call_id else None
            if owner is None:
                owner = self._last_tool_step.get(context.get("thread_id"))
            self.store.log_tool(records.tool_record(
                name=tool.name, arguments=tool.arguments, call_id=tool.call_id, model_call_id=owner,
                latency_ms=latency, context=context, **outcome,
            ))  # fmt: skip
        except Exception as e:  # noqa: BLE001
            self._failed(e, "on_tool_end")
        finally:
            records.release(self.store, run_id)


def _join_chunks(chunks: list[Any]) -> AIMessageChunk | None:
    """The streamed chunks of a call joined into one message (None when nothing streamed)."""
    messages = [c.message for c in chunks if isinstance(getattr(c, "message", None), AIMessageChunk)]
    if not messages:
        return None
    joined = messages[0]
    for m in messages[1:]:
        joined = joined + m
    return joined


def _answer(response: LLMResult, call: _Call) -> BaseMessage | None:
    """The answer of a call: its generation's message, else its streamed chunks joined."""
    generations = response.generations[0] if response.generations else []
    if generations and isinstance(generations[0], ChatGeneration):
        return generations[0].message
    return _join_chunks(call.chunks)
