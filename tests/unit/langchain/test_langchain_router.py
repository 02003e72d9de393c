"""ChatSLMRouter on a FakeRuntime SLM and a fake LLM: every route and escalation decision."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_slm import ChatSLM, ChatSLMRouter
from slm_agents.errors import ContextOverflow, GenerationError, GenerationTimeout, InvalidRequest
from slm_agents.policy import REASONS, EscalationPolicy
from slm_agents.runtimes.fake import FakeRuntime


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


class ToolFakeLLM(FakeMessagesListChatModel):
    """langchain_core's list-driven fake LLM, plus bind_tools and a record of each call."""

    calls: list[dict[str, Any]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=tools, tool_choice=tool_choice, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.calls.append({"messages": messages, "stop": stop, **kwargs})
        return super()._generate(messages, stop, run_manager, **kwargs)


LLM_ANSWER = AIMessage(
    "",
    tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "llm1"}],
    response_metadata={"model_name": "big-llm"},
    usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
)
GOOD_CALL = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "confidence": 0.9}

#: For each escalation reason: the SLM response that triggers it, the tool_choice, policy keywords.
REASON_CASES: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "unknown_tool": ({"tool_calls": [{"name": "subtract", "arguments": {}}]}, "auto", {}),
    "invalid_arguments": ({"tool_calls": [{"name": "add", "arguments": {"a": "one", "b": 2}}]}, "auto", {}),
    "malformed": ({"tool_calls": [{"name": "add", "arguments": "{not json"}]}, "auto", {}),
    "no_tool_call": ("I would rather chat", "any", {}),
    "empty": ({"content": ""}, "auto", {}),
    "truncated": ({"content": "The answer is", "finish_reason": "length"}, "auto", {}),
    "low_confidence": ({**GOOD_CALL, "confidence": 0.2}, "auto", {"confidence_threshold": 0.5}),
    "error": (GenerationError("the model crashed"), "auto", {}),
    "timeout": (GenerationTimeout("too slow"), "auto", {}),
    "context_overflow": (ContextOverflow("the prompt takes 9000 tokens but the context holds 2048"), "auto", {}),
    "uncertain_decision": ({"content": "Maybe 3?", "p_call": 0.47}, "auto", {}),
}


def make_router(*slm_responses: Any, llm: Any = "default", **kwargs: Any) -> tuple[ChatSLMRouter, FakeRuntime, Any]:
    rt = FakeRuntime(responses=list(slm_responses))
    if llm == "default":
        llm = ToolFakeLLM(responses=[LLM_ANSWER])
    return ChatSLMRouter(slm=rt, llm=llm, **kwargs), rt, llm


def test_every_reason_has_a_case() -> None:
    assert set(REASON_CASES) == set(REASONS)


# -- escalation: one test per reason, sync and async ------------------------------------------------
@pytest.mark.parametrize("reason", sorted(REASONS))
def test_escalates_for_reason(reason: str) -> None:
    response, choice, policy_kw = REASON_CASES[reason]
    router, rt, llm = make_router(response, **policy_kw)
    msg = router.bind_tools([add], tool_choice=choice).invoke("what is 1+2?")
    meta = msg.response_metadata
    assert meta["route"] == "llm"
    assert meta["escalation_reason"] == reason
    assert meta["escalation_detail"] is not None
    assert meta["slm_latency_ms"] is not None
    assert meta["model_name"] == "big-llm"  # the LLM's own metadata is kept
    assert msg.tool_calls[0]["id"] == "llm1"
    assert len(rt.requests) == 1
    # the LLM got the same messages, the same tools and the same tool_choice
    (call,) = llm.calls
    assert [m.content for m in call["messages"]] == ["what is 1+2?"]
    assert [t["function"]["name"] for t in call["tools"]] == ["add"]
    assert call["tool_choice"] == choice


@pytest.mark.parametrize("reason", sorted(REASONS))
async def test_escalates_for_reason_async(reason: str) -> None:
    response, choice, policy_kw = REASON_CASES[reason]
    router, rt, llm = make_router(response, **policy_kw)
    msg = await router.bind_tools([add], tool_choice=choice).ainvoke("what is 1+2?")
    assert (msg.response_metadata["route"], msg.response_metadata["escalation_reason"]) == ("llm", reason)
    assert msg.tool_calls[0]["id"] == "llm1"
    assert len(rt.requests) == 1 and len(llm.calls) == 1


def test_slm_answer_is_used_when_it_passes() -> None:
    router, rt, llm = make_router(GOOD_CALL, confidence_threshold=0.5)
    msg = router.bind_tools([add], tool_choice="any").invoke("1+2")
    meta = msg.response_metadata
    assert meta["route"] == "slm"
    assert meta["escalation_reason"] is None
    assert meta["model_provider"] == "slm_agents"
    assert meta["confidence"] == meta["slm_confidence"] == 0.9
    assert msg.tool_calls[0]["args"] == {"a": 1, "b": 2}
    assert llm.calls == []
    assert rt.requests[0]["tool_choice"] == "any"


def test_text_answer_accepted_with_auto() -> None:
    router, _, llm = make_router("It is 3.")
    msg = router.bind_tools([add]).invoke("1+2")
    assert (msg.content, msg.response_metadata["route"]) == ("It is 3.", "slm")
    assert llm.calls == []


def test_text_answer_escalates_when_policy_refuses_text() -> None:
    router, _, _ = make_router("It is 3.", accept_text=False)
    msg = router.bind_tools([add]).invoke("1+2")
    assert msg.response_metadata["escalation_reason"] == "no_tool_call"


# -- routing rules --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy_kw", "invoke_kw", "rule"),
    [
        ({"llm_tasks": {"research"}}, {"task": "research"}, "llm_tasks"),
        ({"slm_tasks": {"extract"}}, {"task": "chat"}, "slm_tasks"),
        ({"max_tools": 1}, {}, "max_tools"),
        ({"max_depth": 1}, {}, "max_depth"),
    ],
)
def test_route_rules_send_straight_to_the_llm(policy_kw: dict, invoke_kw: dict, rule: str) -> None:
    router, rt, llm = make_router(GOOD_CALL, **policy_kw)
    history = [HumanMessage("hi"), AIMessage("hello"), HumanMessage("1+2")]
    msg = router.bind_tools([add, weather], **invoke_kw).invoke(history)
    assert msg.response_metadata["route"] == "llm"
    assert msg.response_metadata["escalation_reason"] == f"route:{rule}"
    assert msg.response_metadata["slm_latency_ms"] is None
    assert rt.requests == []  # the SLM never ran
    assert len(llm.calls) == 1


def test_tool_less_steps_go_to_the_llm_by_default() -> None:
    router, rt, llm = make_router("hi")
    llm.responses = [AIMessage("hello from the LLM")]
    msg = router.invoke("hi")
    assert (msg.content, msg.response_metadata["escalation_reason"]) == ("hello from the LLM", "route:no_tools")
    assert rt.requests == []
    assert "tools" not in llm.calls[0]


def test_tool_less_steps_try_the_slm_when_allowed() -> None:
    router, _, llm = make_router("hi there", tool_steps_only=False)
    msg = router.invoke("hi")
    assert (msg.content, msg.response_metadata["route"]) == ("hi there", "slm")
    assert llm.calls == []


def test_task_from_langgraph_node_metadata() -> None:
    router, rt, _ = make_router(GOOD_CALL, llm_tasks={"planner"})
    bound = router.bind_tools([add])
    msg = bound.invoke("1+2", config={"metadata": {"langgraph_node": "planner"}})
    assert msg.response_metadata["escalation_reason"] == "route:llm_tasks"
    assert msg.response_metadata["task"] == "planner"
    assert rt.requests == []


def test_task_precedence_call_then_node_then_default() -> None:
    router, _, _ = make_router(GOOD_CALL, GOOD_CALL, GOOD_CALL, llm=None, task="default-task")
    bound = router.bind_tools([add])
    node = {"metadata": {"langgraph_node": "node-task"}}
    assert bound.invoke("x").response_metadata["task"] == "default-task"
    assert bound.invoke("x", config=node).response_metadata["task"] == "node-task"
    assert bound.invoke("x", config=node, task="call-task").response_metadata["task"] == "call-task"


def test_task_inside_a_real_langgraph_node() -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    router, rt, _ = make_router(GOOD_CALL, llm_tasks={"researcher"})
    model = router.bind_tools([add])

    def researcher(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("researcher", researcher)
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", END)
    out = graph.compile().invoke({"messages": [HumanMessage("1+2")]})
    last = out["messages"][-1]
    assert last.response_metadata["task"] == "researcher"
    assert last.response_metadata["escalation_reason"] == "route:llm_tasks"
    assert rt.requests == []


def test_per_task_threshold() -> None:
    policy = EscalationPolicy(task_thresholds={"strict": 0.95})
    router, _, _ = make_router(GOOD_CALL, GOOD_CALL, policy=policy)
    bound = router.bind_tools([add])
    assert bound.invoke("x", task="lenient").response_metadata["route"] == "slm"
    assert bound.invoke("x", task="strict").response_metadata["escalation_reason"] == "low_confidence"


# -- shadow, no LLM ------------------------------------------------------------------------------
def test_shadow_runs_both_and_answers_with_the_llm() -> None:
    router, rt, llm = make_router(GOOD_CALL, shadow=True)
    msg = router.bind_tools([add]).invoke("1+2")
    meta = msg.response_metadata
    assert (meta["route"], meta["escalation_reason"]) == ("shadow", "shadow")
    assert meta["slm_confidence"] == 0.9
    assert msg.tool_calls[0]["id"] == "llm1"
    assert len(rt.requests) == 1 and len(llm.calls) == 1


def test_shadow_runs_the_llm_even_when_the_slm_raises() -> None:
    router, _, llm = make_router(GenerationError("boom"), shadow=True)
    msg = router.bind_tools([add]).invoke("1+2")
    assert msg.response_metadata["route"] == "shadow"
    assert len(llm.calls) == 1


def test_without_llm_failures_are_reported_not_escalated() -> None:
    router, _, _ = make_router({"tool_calls": [{"name": "subtract", "arguments": {}}]}, llm=None)
    msg = router.bind_tools([add]).invoke("1+2")
    meta = msg.response_metadata
    assert (meta["route"], meta["escalation_reason"]) == ("slm", "unknown_tool")
    assert msg.tool_calls == [] and msg.invalid_tool_calls[0]["name"] == "subtract"


def test_without_llm_slm_errors_are_raised() -> None:
    router, _, _ = make_router(GenerationError("boom"), llm=None)
    with pytest.raises(GenerationError, match="boom"):
        router.bind_tools([add]).invoke("1+2")


async def test_without_llm_slm_errors_are_raised_async() -> None:
    router, _, _ = make_router(GenerationError("boom"), llm=None)
    with pytest.raises(GenerationError, match="boom"):
        await router.bind_tools([add]).ainvoke("1+2")


def test_without_llm_tool_less_steps_still_run_on_the_slm() -> None:
    router, _, _ = make_router("hi there", llm=None)
    assert router.invoke("hi").response_metadata["route"] == "slm"


def test_an_llm_without_bind_tools_gets_a_clear_error() -> None:
    router, _, _ = make_router(GenerationError("boom"), llm=FakeMessagesListChatModel(responses=[LLM_ANSWER]))
    with pytest.raises(InvalidRequest, match="bind_tools"):
        router.bind_tools([add]).invoke("1+2")


def test_llm_errors_propagate() -> None:
    class Broken(ToolFakeLLM):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise RuntimeError("LLM down")

    router, _, _ = make_router(GenerationError("boom"), llm=Broken(responses=[LLM_ANSWER]))
    with pytest.raises(RuntimeError, match="LLM down"):
        router.bind_tools([add]).invoke("1+2")


# -- sync / async parity ---------------------------------------------------------------------------
PARITY_CASES = [
    (GOOD_CALL, {}),
    ({"tool_calls": [{"name": "subtract", "arguments": {}}]}, {}),
    (GenerationTimeout("slow"), {}),
    (GOOD_CALL, {"shadow": True}),
    (GOOD_CALL, {"llm_tasks": {"t"}, "task": "t"}),
]


def _outcome(msg: AIMessage) -> tuple[Any, ...]:
    meta = msg.response_metadata
    return meta["route"], meta["escalation_reason"], meta["task"], [(c["name"], c["args"]) for c in msg.tool_calls]


@pytest.mark.parametrize(("response", "kwargs"), PARITY_CASES)
async def test_sync_async_and_stream_parity(response: Any, kwargs: dict) -> None:
    outcomes = []
    for mode in ("invoke", "ainvoke", "stream", "astream"):
        router, _, _ = make_router(response, **kwargs)
        bound = router.bind_tools([add])
        if mode == "invoke":
            msg = bound.invoke("1+2")
        elif mode == "ainvoke":
            msg = await bound.ainvoke("1+2")
        elif mode == "stream":
            chunks = list(bound.stream("1+2"))
            msg = sum(chunks[1:], chunks[0])
        else:
            chunks = [c async for c in bound.astream("1+2")]
            msg = sum(chunks[1:], chunks[0])
        outcomes.append(_outcome(msg))
    assert outcomes.count(outcomes[0]) == 4, outcomes


def test_stream_emits_one_last_chunk_with_usage() -> None:
    router, _, _ = make_router(GOOD_CALL)
    chunks = list(router.bind_tools([add]).stream("1+2"))
    assert len(chunks) == 1
    (chunk,) = chunks
    assert chunk.chunk_position == "last"
    assert chunk.usage_metadata == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    assert chunk.tool_calls[0]["args"] == {"a": 1, "b": 2}
    assert chunk.response_metadata["route"] == "slm"


# -- the SLM as a ChatSLM, policy keywords, validation ------------------------------------------------
def test_chat_slm_as_the_slm_keeps_its_sampling_options() -> None:
    rt = FakeRuntime([GOOD_CALL])
    router = ChatSLMRouter(slm=ChatSLM(runtime=rt, max_tokens=33, temperature=0.1), llm=None)
    router.bind_tools([add], tool_choice="any").invoke("1+2", stop=["END"])
    assert rt.requests[0]["sampling"] == {"max_tokens": 33, "temperature": 0.1, "stop": ["END"]}
    assert rt.requests[0]["tool_choice"] == "any"


def test_policy_keywords_build_or_override_the_policy() -> None:
    router = ChatSLMRouter(slm=FakeRuntime(), confidence_threshold=0.4, llm_tasks={"x"})
    assert router.policy.confidence_threshold == 0.4 and router.policy.llm_tasks == {"x"}
    base = EscalationPolicy(max_tools=3)
    router = ChatSLMRouter(slm=FakeRuntime(), policy=base, confidence_threshold=0.7)
    assert (router.policy.max_tools, router.policy.confidence_threshold) == (3, 0.7)
    assert base.confidence_threshold is None  # the caller's policy is not mutated


def test_default_policy_reads_the_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "policy.json"
    EscalationPolicy(confidence_threshold=0.42).save(path)
    monkeypatch.setenv("SLM_AGENTS_POLICY", str(path))
    assert ChatSLMRouter(slm=FakeRuntime()).policy.confidence_threshold == 0.42


def test_invalid_components_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="policy= takes"):
        ChatSLMRouter(slm=FakeRuntime(), policy={"confidence_threshold": 0.5})
    with pytest.raises(InvalidRequest, match="slm= takes"):
        ChatSLMRouter(slm=42)
    with pytest.raises(InvalidRequest, match="llm= takes"):
        ChatSLMRouter(slm=FakeRuntime(), llm="gpt")
    with pytest.raises(InvalidRequest, match="unknown argument"):
        ChatSLMRouter(slm=FakeRuntime(), policy=EscalationPolicy(), confidence_treshold=0.5)
    assert ChatSLMRouter(slm="some/model.gguf").slm.model_path == "some/model.gguf"  # a GGUF path, as everywhere


def test_default_slm_is_a_lazy_chat_slm() -> None:
    router = ChatSLMRouter()
    assert isinstance(router.slm, ChatSLM) and router.slm._runtime is None
    assert router._get_ls_params()["ls_model_name"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert router._llm_type == "chat-slm-router"


# -- structured output through the router -----------------------------------------------------------
class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


def test_structured_output_slm_first() -> None:
    router, rt, llm = make_router({"tool_calls": [{"name": "Joke", "arguments": {"setup": "a", "punchline": "b"}}]})
    assert router.with_structured_output(Joke).invoke("joke") == Joke(setup="a", punchline="b")
    assert rt.requests[0]["tool_choice"] == "Joke"
    assert llm.calls == []


def test_structured_output_escalates_to_the_llm() -> None:
    llm_joke = AIMessage("", tool_calls=[{"name": "Joke", "args": {"setup": "big", "punchline": "llm"}, "id": "j"}])
    router, _, llm = make_router(
        {"tool_calls": [{"name": "Joke", "arguments": {"setup": "a"}}]}, llm=ToolFakeLLM(responses=[llm_joke])
    )
    out = router.with_structured_output(Joke, include_raw=True).invoke("joke")
    assert out["parsed"] == Joke(setup="big", punchline="llm")
    assert out["raw"].response_metadata["escalation_reason"] == "invalid_arguments"
    assert llm.calls[0]["tool_choice"] == "Joke"


def test_structured_json_schema_on_the_slm() -> None:
    router, rt, _ = make_router('{"setup": "a", "punchline": "b"}', tool_steps_only=False)
    assert router.with_structured_output(Joke, method="json_schema").invoke("joke") == Joke(setup="a", punchline="b")
    assert rt.requests[0]["sampling"]["response_format"]["type"] == "json_schema"
    assert "structured_output" not in rt.requests[0]["sampling"]


def test_structured_json_schema_escalation_uses_the_llms_structured_output() -> None:
    llm_joke = AIMessage("", tool_calls=[{"name": "Joke", "args": {"setup": "big", "punchline": "llm"}, "id": "j"}])
    router, _, llm = make_router(GenerationError("boom"), llm=ToolFakeLLM(responses=[llm_joke]), tool_steps_only=False)
    out = router.with_structured_output(Joke, method="json_mode", include_raw=True).invoke("joke")
    assert out["parsed"] == Joke(setup="big", punchline="llm")
    assert out["raw"].content == '{"setup":"big","punchline":"llm"}'
    assert (out["raw"].response_metadata["route"], out["raw"].response_metadata["escalation_reason"]) == ("llm", "error")
    assert "response_format" not in llm.calls[0]  # the LLM used its own structured-output method


async def test_structured_json_schema_escalation_async() -> None:
    llm_joke = AIMessage("", tool_calls=[{"name": "Joke", "args": {"setup": "big", "punchline": "llm"}, "id": "j"}])
    router, _, _ = make_router(GenerationError("boom"), llm=ToolFakeLLM(responses=[llm_joke]), tool_steps_only=False)
    out = await router.with_structured_output(Joke, method="json_schema").ainvoke("joke")
    assert out == Joke(setup="big", punchline="llm")


# -- capture seam -----------------------------------------------------------------------------------
class FakeStore:
    """The capture store contract: log / log_completion enqueue and return ids; link_escalation."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[dict[str, Any]] = []
        self.links: list[tuple[Any, Any, Any]] = []
        self.fail = fail

    def log(self, record: dict[str, Any]) -> str:
        if self.fail:
            raise OSError("disk full")
        self.records.append(record)
        return f"id{len(self.records)}"

    def log_completion(self, completion: Any, *, messages: Any, tools: Any = None, tool_choice: Any = None,
                       params: Any = None, **fields: Any) -> str:  # fmt: skip
        return self.log({"completion": completion, "messages": messages, "tools": tools, "tool_choice": tool_choice, **fields})

    def link_escalation(self, slm_call_id: Any, llm_call_id: Any, reason: Any) -> None:
        self.links.append((slm_call_id, llm_call_id, reason))


def test_capture_links_the_slm_attempt_to_the_llm_answer() -> None:
    store = FakeStore()
    router, _, _ = make_router({"tool_calls": [{"name": "subtract", "arguments": {}}]}, capture=store, task="math")
    router.bind_tools([add], tool_choice="any").invoke("1+2")
    slm_rec, llm_rec = store.records
    assert (slm_rec["route"], slm_rec["valid"], slm_rec["escalation_reason"]) == ("slm", False, "unknown_tool")
    assert slm_rec["metadata"]["invalid_tool_calls"][0]["name"] == "subtract"
    assert slm_rec["messages"] == [{"role": "user", "content": "1+2"}]
    assert slm_rec["tool_choice"] == "any" and slm_rec["framework"] == "langchain" and slm_rec["task"] == "math"
    assert (llm_rec["route"], llm_rec["model"], llm_rec["input_tokens"]) == ("llm", "big-llm", 100)
    assert llm_rec["tool_calls"][0]["function"]["name"] == "add"
    assert store.links == [("id1", "id2", "unknown_tool")]


def test_capture_logs_an_slm_error_as_a_record() -> None:
    store = FakeStore()
    router, _, _ = make_router(GenerationTimeout("slow"), capture=store)
    router.bind_tools([add]).invoke("1+2")
    assert store.records[0]["error_type"] == "GenerationTimeout" and store.records[0]["valid"] is False
    assert store.links == [("id1", "id2", "timeout")]


def test_capture_of_an_accepted_slm_answer_has_no_link() -> None:
    store = FakeStore()
    router, _, _ = make_router(GOOD_CALL, capture=store)
    router.bind_tools([add]).invoke("1+2")
    assert [r["route"] for r in store.records] == ["slm"]
    assert store.records[0]["valid"] is True and store.links == []


def test_capture_in_shadow_mode_links_the_pair() -> None:
    store = FakeStore()
    router, _, _ = make_router(GOOD_CALL, capture=store, shadow=True)
    router.bind_tools([add]).invoke("1+2")
    assert [r["route"] for r in store.records] == ["shadow", "llm"]
    assert store.links == [("id1", "id2", "shadow")]


async def test_capture_async_parity() -> None:
    store = FakeStore()
    router, _, _ = make_router({"tool_calls": [{"name": "subtract", "arguments": {}}]}, capture=store)
    await router.bind_tools([add]).ainvoke("1+2")
    assert store.links == [("id1", "id2", "unknown_tool")]


def test_a_failing_store_never_breaks_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    router, _, _ = make_router({"tool_calls": [{"name": "subtract", "arguments": {}}]}, capture=FakeStore(fail=True))
    msg = router.bind_tools([add]).invoke("secret prompt 1+2")
    assert msg.response_metadata["route"] == "llm"
    assert "OSError" in caplog.text and "secret prompt" not in caplog.text


def test_capture_into_a_real_store() -> None:
    from sqlite_utils import Database

    from slm_agents.capture import CaptureStore

    store = CaptureStore(Database(memory=True))
    try:
        slm = ChatSLM(runtime=FakeRuntime([GenerationTimeout("slow")]))
        router = ChatSLMRouter(slm=slm, llm=ToolFakeLLM(responses=[LLM_ANSWER]), capture=store, task="math")
        router.bind_tools([add]).invoke("1+2")
        store.flush()
        calls = list(store.db["calls"].rows_where(order_by="id"))
        assert [(c["route"], c["escalation_reason"], c["error_type"], c["runtime"]) for c in calls] == [
            ("slm", "timeout", "GenerationTimeout", "fake"),
            ("llm", "timeout", None, None),
        ]
        (link,) = store.db["escalations"].rows
        assert (link["slm_call_id"], link["llm_call_id"], link["reason"]) == (calls[0]["id"], calls[1]["id"], "timeout")
    finally:
        store.close()
