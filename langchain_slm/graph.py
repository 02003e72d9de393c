"""LangGraph pieces: an escalation node, the edge that decides it, and a ready SLM-first agent.

* :func:`route_after_slm` — a conditional edge after an SLM step: ``"tools"``, ``"escalate"``
  or ``END``, judged by the core :class:`~slm_agents.policy.EscalationPolicy`.
* :func:`escalation_node` — a node that re-runs the last step on the LLM when the SLM's answer
  failed the policy, replaces the SLM's message with the LLM's and records why.
* :func:`create_slm_agent` — a compiled ReAct-style graph: SLM first, tools, escalation.

The policy judges an ``AIMessage`` by the same rules as a core ``Completion``
(:func:`message_to_completion` translates): invalid tool calls, unknown tools, arguments that
fail the schema, no call when one was required, empty or truncated answers, confidence under
the threshold (``response_metadata["confidence"]``, which :class:`~langchain_slm.ChatSLM` sets).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from slm_agents.arguments import resolve_policy
from slm_agents.capture import records
from slm_agents.errors import InvalidRequest
from slm_agents.policy import EscalationPolicy, Verdict
from slm_agents.types import Completion, Usage

from . import _capture, _convert
from .middleware.routing import resolve_slm

__all__ = ["escalation_node", "route_after_slm", "create_slm_agent", "message_to_completion", "judge_message"]

Route = Literal["tools", "escalate", "__end__"]
_END: Route = "__end__"  # langgraph's END, typed as one of the routes
assert _END == END


# -- judging a message ------------------------------------------------------------------------------
def message_to_completion(message: AIMessage) -> Completion:
    """An ``AIMessage`` as the core :class:`Completion` the policy judges.

    Example:
        >>> c = message_to_completion(AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}],
        ...                                     response_metadata={"confidence": 0.4}))
        >>> c.tool_calls[0]["function"], c.finish_reason, c.confidence
        ({'name': 'f', 'arguments': '{}'}, 'tool_calls', 0.4)
    """
    openai = _convert.ai_message_to_openai(message)
    meta = message.response_metadata or {}
    tool_calls = openai.get("tool_calls") or []
    msg: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    usage: dict[str, Any] = dict(message.usage_metadata or {})
    return Completion(
        message=msg,
        finish_reason=meta.get("finish_reason") or ("tool_calls" if tool_calls else "stop"),
        usage=Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
        latency_ms=float(meta.get("latency_ms") or 0.0),
        confidence=meta.get("confidence"),
        model=meta.get("model_name") or "",
        runtime=meta.get("runtime") or "",
        invalid_tool_calls=[
            {"id": c.get("id"), "name": c.get("name"), "arguments": c.get("args"), "error": c.get("error") or ""}
            for c in _convert.invalid_calls_of(message)
        ],
    )


def _permissive_tools(message: AIMessage) -> list[dict[str, Any]]:
    """Schema-less tools named as the message's calls: checks only what needs no schema."""
    names = {c["name"] for c in message.tool_calls} | {
        str(c["name"]) for c in _convert.invalid_calls_of(message) if c.get("name")
    }
    return [{"name": n, "parameters": {"type": "object"}} for n in sorted(names)]


def judge_message(
    message: AIMessage,
    *,
    policy: EscalationPolicy | None = None,
    tools: Sequence[Any] | None = None,
    tool_choice: Any = None,
    task: str | None = None,
) -> Verdict:
    """The policy's verdict on an SLM answer.

    Args:
        message: The SLM's answer.
        policy: The rules. Default: :meth:`EscalationPolicy.from_env`.
        tools: The tools the SLM was offered (any LangChain spelling). Default None: tool names
            and arguments are not checked against schemas (invalid calls, empty or truncated
            answers and confidence still are).
        tool_choice: The ``tool_choice`` of the step (``"any"`` makes "no call" a failure).
        task: The step's task label (per-task thresholds).
    """
    policy = policy or EscalationPolicy.from_env()
    spec = _convert.tools_to_openai(tools) if tools else _permissive_tools(message)
    return policy.check(message_to_completion(message), spec, tool_choice, task=task)


def _messages(state: Any, key: str) -> list[BaseMessage]:
    if isinstance(state, list):
        return state
    if isinstance(state, dict):
        return list(state.get(key) or [])
    return list(getattr(state, key, None) or [])


def _decided(message: AIMessage) -> bool:
    """The message already went through escalation (an LLM answer, or an SLM answer kept with a reason)."""
    meta = message.response_metadata or {}
    return meta.get("route") in ("llm", "shadow") or bool(meta.get("escalation_reason"))


def route_after_slm(
    state: Any,
    *,
    policy: EscalationPolicy | None = None,
    tools: Sequence[Any] | None = None,
    tool_choice: Any = None,
    task: str | None = None,
    messages_key: str = "messages",
) -> Route:
    """Conditional edge after an SLM step: ``"tools"``, ``"escalate"`` or ``END``.

    ``"escalate"`` when the last message is an SLM answer that fails the policy (see
    :func:`judge_message`); else ``"tools"`` when it calls tools, else ``END``. An answer that
    already went through escalation is never sent back. Use it as is
    (``graph.add_conditional_edges("agent", route_after_slm)``: default policy, no schemas) or
    bind the step's policy and tools with ``functools.partial``.

    Example:
        >>> bad = AIMessage("", invalid_tool_calls=[{"name": "f", "args": "{oops", "id": "1", "error": "bad"}])
        >>> route_after_slm({"messages": [bad]}), route_after_slm({"messages": [AIMessage("done")]})
        ('escalate', '__end__')
    """
    messages = _messages(state, messages_key)
    last = messages[-1] if messages else None
    if not isinstance(last, AIMessage):
        return _END
    if not _decided(last):
        verdict = judge_message(last, policy=policy, tools=tools, tool_choice=tool_choice,
                                task=task or _capture.graph_context().get("task"))  # fmt: skip
        if not verdict.ok:
            return "escalate"
    return "tools" if last.tool_calls else _END


def _route_after_escalation(state: Any, messages_key: str = "messages") -> Route:
    messages = _messages(state, messages_key)
    last = messages[-1] if messages else None
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else _END


# -- the escalation node ------------------------------------------------------------------------------
def escalation_node(
    llm: BaseChatModel | Runnable[Any, Any] | None,
    *,
    policy: EscalationPolicy | None = None,
    tools: Sequence[Any] | None = None,
    tool_choice: Any = None,
    capture: Any = None,
    messages_key: str = "messages",
    system_prompt: str | None = None,
    task: str | None = None,
) -> Runnable[Any, dict[str, Any]]:
    """A graph node that hands a failed SLM step to the LLM.

    When the last message is an SLM answer that fails ``policy`` (see :func:`judge_message`),
    the node runs the LLM on the conversation before it (with the same ``tools`` and
    ``tool_choice``) and returns the LLM's answer under the SLM message's id, so the
    ``add_messages`` reducer replaces the SLM's message in place. The answer's
    ``response_metadata`` says ``route="llm"``, ``escalation_reason``, ``escalation_detail``,
    ``slm_confidence`` and ``task``. When the last answer passes (or is not an SLM answer),
    the node changes nothing.

    With ``llm=None`` nothing is re-run: the SLM's answer is kept, with ``route="slm"`` and the
    ``escalation_reason`` recorded.

    With ``capture`` (else the run's :class:`~langchain_slm.SLMCaptureHandler`), the SLM attempt
    and the LLM answer are logged and linked as an escalation, the same records a router makes:
    the attempt's ``valid`` is the policy's verdict and it carries the ``escalation_reason``; the
    LLM answer's ``latency_ms`` is the time the node spent in the LLM. An SLM attempt the
    handler already logged is not logged twice: it is given the verdict and reason.

    Args:
        llm: The chat model to escalate to, or None.
        policy: The rules. Default: :meth:`EscalationPolicy.from_env`.
        tools: The tools of the step (any LangChain spelling); bound to the LLM and used to
            check the SLM's calls. Default None: calls are not checked against schemas.
        tool_choice: The step's ``tool_choice`` (also bound to the LLM). Default None.
        capture: A :class:`~slm_agents.capture.CaptureStore`, a path, ``True`` (default store)
            or None (no logging).
        messages_key: The state key holding the messages. Default ``"messages"``.
        system_prompt: A system prompt to put before the conversation for the LLM (when the
            SLM node adds one that is not in the state).
        task: The task label. Default: the SLM answer's ``response_metadata["task"]``, else the
            running node.

    Returns:
        A runnable with sync and async paths, for ``graph.add_node("escalate", ...)``.

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        >>> from langchain_core.messages import HumanMessage
        >>> node = escalation_node(FakeMessagesListChatModel(responses=[AIMessage("from the LLM")]))
        >>> slm_msg = AIMessage("", id="m1", invalid_tool_calls=[
        ...     {"name": "f", "args": "{", "id": "1", "error": "arguments are not valid JSON"}])
        >>> out = node.invoke({"messages": [HumanMessage("hi"), slm_msg]})["messages"][0]
        >>> out.content, out.id, out.response_metadata["route"], out.response_metadata["escalation_reason"]
        ('from the LLM', 'm1', 'llm', 'malformed')
    """
    policy = resolve_policy(policy)
    store = records.resolve_store(capture)
    tool_spec = _convert.tools_to_openai(tools) if tools else None
    runnable: Runnable[Any, Any] | None = llm
    if llm is not None and tools:
        bind_tools = getattr(llm, "bind_tools", None)
        if bind_tools is None:
            raise TypeError(f"llm must support bind_tools to escalate tool steps, got {type(llm).__name__}")
        runnable = bind_tools(list(tools), **({"tool_choice": tool_choice} if tool_choice is not None else {}))

    def prepare(state: Any) -> tuple[AIMessage, Verdict, str | None, list[BaseMessage]] | None:
        messages = _messages(state, messages_key)
        if not messages or not isinstance(messages[-1], AIMessage) or _decided(messages[-1]):
            return None
        last = messages[-1]
        label = task or last.response_metadata.get("task") or _capture.graph_context().get("task")
        verdict = judge_message(last, policy=policy, tools=tools, tool_choice=tool_choice, task=label)
        if verdict.ok:
            return None
        history = list(messages[:-1])
        if system_prompt and not (history and isinstance(history[0], SystemMessage)):
            history.insert(0, SystemMessage(system_prompt))
        return last, verdict, label, history

    def metadata(last: AIMessage, verdict: Verdict, label: str | None, route: str) -> dict[str, Any]:
        return {
            "route": route,
            "escalation_reason": verdict.reason,
            "escalation_detail": verdict.detail or None,
            "slm_confidence": last.response_metadata.get("confidence"),
            "task": label,
        }

    def finish(prepared: tuple[Any, ...], answer: Any, stores: list[Any], llm_ms: float | None) -> dict[str, Any]:
        last, verdict, label, history = prepared
        if answer is None:  # no LLM: keep the SLM answer, say why it would have escalated
            new = last.model_copy(update={"response_metadata": {**last.response_metadata,
                                                                **metadata(last, verdict, label, "slm")}})  # fmt: skip
        else:
            if not isinstance(answer, AIMessage):
                raise TypeError(f"the LLM returned {type(answer).__name__}, not an AIMessage")
            meta = {**answer.response_metadata, **metadata(last, verdict, label, "llm")}
            new = answer.model_copy(update={"id": last.id or answer.id, "response_metadata": meta})
        logged = _capture.call_id_for_message(last)  # the run's handler logged the SLM call
        handler_stores = _capture.run_stores() if logged else []  # ... to its own store only
        for target in stores:
            # the SLM attempt as a router records it (the verdict as valid, the reason): logged
            # here, or given to the call the handler logged (records.log_step)
            step = records.Step(
                request=_capture.request_fields(history, tools=tool_spec, tool_choice=tool_choice),
                context=_capture.graph_context(task=label),
                route="slm" if answer is None else "llm", reason=verdict.reason,
                slm={**_capture.answer_fields(last), "valid": verdict.ok}, llm_ms=llm_ms,
            )  # fmt: skip
            in_target = any(target is s for s in handler_stores)
            slm_id, llm_id = records.log_step(target, step, slm_id=logged if in_target else None,
                                              answer=_capture.answer_fields(new) if answer is not None else None)
            capture_id = llm_id or slm_id
            if capture_id:
                new.response_metadata["capture_id"] = capture_id
        return {messages_key: [new]}

    def scope(stores: list[Any]) -> contextlib.AbstractContextManager[None]:
        return records.captured_here() if stores else contextlib.nullcontext()

    def escalate(state: Any, config: RunnableConfig) -> dict[str, Any]:
        prepared = prepare(state)
        if prepared is None:
            return {}
        stores = _capture.run_stores(store)  # capture=, else the run's SLMCaptureHandler
        answer, llm_ms = None, None
        if runnable is not None:
            start = time.perf_counter()
            with scope(stores):
                answer = runnable.invoke(prepared[3], config)
            llm_ms = (time.perf_counter() - start) * 1000
        return finish(prepared, answer, stores, llm_ms)

    async def aescalate(state: Any, config: RunnableConfig) -> dict[str, Any]:
        prepared = prepare(state)
        if prepared is None:
            return {}
        stores = _capture.run_stores(store)
        answer, llm_ms = None, None
        if runnable is not None:
            start = time.perf_counter()
            with scope(stores):
                answer = await runnable.ainvoke(prepared[3], config)
            llm_ms = (time.perf_counter() - start) * 1000
        return finish(prepared, answer, stores, llm_ms)

    return RunnableLambda(escalate, afunc=aescalate, name="escalate")


# -- a ready agent ------------------------------------------------------------------------------------
def create_slm_agent(
    slm: BaseChatModel | str | os.PathLike[str] | Any,
    llm: BaseChatModel | None,
    tools: Sequence[Any],
    *,
    policy: EscalationPolicy | None = None,
    checkpointer: Any = None,
    system_prompt: str | None = None,
    capture: Any = None,
    tool_choice: Any = None,
) -> Any:
    """A compiled ReAct-style LangGraph agent that runs each step on the SLM first.

    Nodes: ``"agent"`` (the SLM with the tools bound), ``"tools"`` (a ``ToolNode``) and
    ``"escalate"`` (:func:`escalation_node`). After ``"agent"``, :func:`route_after_slm`
    sends a failed SLM answer to ``"escalate"`` (the LLM answers in its place), tool calls to
    ``"tools"``, and a final answer to the end. The state is ``MessagesState``.

    Args:
        slm: A :class:`~langchain_slm.ChatSLM` (or any chat model), a GGUF path or a core Runtime.
        llm: The chat model to escalate to; None keeps the SLM's answer and records the reason.
        tools: The agent's tools (``BaseTool`` objects or functions).
        policy: The rules. Default: :meth:`EscalationPolicy.from_env`.
        checkpointer: A LangGraph checkpointer (e.g. ``InMemorySaver()``) for threads.
        system_prompt: A system prompt put before the conversation on every step.
        capture: A :class:`~slm_agents.capture.CaptureStore`, a path or ``True``: every model
            call and tool execution is recorded (an :class:`~langchain_slm.SLMCaptureHandler`
            is attached to the graph) and escalations are linked. Default None.
        tool_choice: The ``tool_choice`` of the SLM step. Default None (``"auto"``).

    Example:
        >>> from langchain_core.tools import tool
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> from slm_agents import FakeRuntime
        >>> @tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add two integers.'''
        ...     return a + b
        >>> slm = FakeRuntime([{"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}, "5"])
        >>> agent = create_slm_agent(slm, None, [add], checkpointer=InMemorySaver())
        >>> out = agent.invoke({"messages": [("user", "2+3?")]}, {"configurable": {"thread_id": "1"}})
        >>> [m.type for m in out["messages"]], out["messages"][-1].content
        (['human', 'ai', 'tool', 'ai'], '5')
    """
    model = slm if isinstance(slm, BaseChatModel) else resolve_slm(slm)
    policy = resolve_policy(policy)
    tools = list(tools)
    store = records.resolve_store(capture)
    choice = {"tool_choice": tool_choice} if tool_choice is not None else {}
    bound = model.bind_tools(tools, **choice)
    try:
        llm_bound = llm.bind_tools(tools, **choice) if llm is not None else None
    except NotImplementedError as e:
        raise InvalidRequest(
            f"{type(llm).__name__} cannot bind tools, so it cannot answer this agent's steps; "
            "pass a chat model with tool calling as llm= (or llm=None)"
        ) from e
    oai_tools = _convert.tools_to_openai(tools)

    def with_system(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        return [SystemMessage(system_prompt), *messages] if system_prompt else list(messages)

    def first_model(messages: list[BaseMessage]) -> tuple[Any, str | None]:
        """The SLM, or the LLM when the policy's routing rules keep this step there."""
        decision = policy.route(_convert.messages_to_openai(messages), oai_tools, task="agent")
        if decision.route == "llm" and llm_bound is not None:
            return llm_bound, f"route:{decision.rule}"
        return bound, None

    def mark(message: BaseMessage, reason: str | None) -> BaseMessage:
        if reason is not None:  # an LLM answer routed there up front: route_after_slm leaves it alone
            message.response_metadata = {**message.response_metadata, "route": "llm", "escalation_reason": reason}
        return message

    def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        messages = with_system(state["messages"])
        runnable, reason = first_model(messages)
        return {"messages": [mark(runnable.invoke(messages, config), reason)]}

    async def aagent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        messages = with_system(state["messages"])
        runnable, reason = first_model(messages)
        return {"messages": [mark(await runnable.ainvoke(messages, config), reason)]}

    route: Callable[[Any], Route] = functools.partial(
        route_after_slm, policy=policy, tools=tools, tool_choice=tool_choice, task="agent"
    )
    graph = StateGraph(MessagesState)
    graph.add_node("agent", RunnableLambda(agent, afunc=aagent, name="agent"))
    graph.add_node("tools", ToolNode(tools))
    graph.add_node("escalate", escalation_node(
        llm, policy=policy, tools=tools, tool_choice=tool_choice, capture=store,
        system_prompt=system_prompt, task="agent",
    ))  # fmt: skip
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", "escalate", END])
    graph.add_conditional_edges("escalate", _route_after_escalation, ["tools", END])
    graph.add_edge("tools", "agent")
    compiled = graph.compile(checkpointer=checkpointer)
    if store is not None:
        from .callbacks import SLMCaptureHandler

        compiled = compiled.with_config(callbacks=[SLMCaptureHandler(store)])
    return compiled
