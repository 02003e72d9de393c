"""RouterLLM: the core's routing decisions, surfaced on LlamaIndex responses (one reason per
escalation kind is covered in the core; here: the translation)."""

from __future__ import annotations

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms.mock import MockFunctionCallingLLM

from llamaindex_slm import SLM, RouterLLM
from slm_agents import FakeRuntime
from slm_agents.policy import EscalationPolicy

GOOD = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "confidence": 0.9}
UNKNOWN = {"tool_calls": [{"name": "subtract", "arguments": {}}]}


def router(*responses, llm=None, **kw) -> tuple[RouterLLM, FakeRuntime]:
    rt = FakeRuntime(list(responses))
    return RouterLLM(slm=SLM(runtime=rt), llm=llm, **kw), rt


def test_accepted_slm_answer(add_tool) -> None:
    r, _ = router(GOOD, llm=MockFunctionCallingLLM())
    response = r.chat_with_tools([add_tool], user_msg="1+2?")
    info = response.additional_kwargs
    assert (info["route"], info["escalation_reason"], info["confidence"]) == ("slm", None, 0.9)
    assert response.raw["route"] == "slm" and response.raw["usage"]["input_tokens"] == 10
    assert r.get_tool_calls_from_response(response)[0].tool_kwargs == {"a": 1, "b": 2}


def test_escalation_uses_the_llm_and_says_why(add_tool) -> None:
    llm = MockFunctionCallingLLM()
    r, _ = router(UNKNOWN, llm=llm)
    response = r.chat_with_tools([add_tool], user_msg="1+2?")
    assert response.additional_kwargs["route"] == "llm"
    assert response.additional_kwargs["escalation_reason"] == "unknown_tool"
    assert response.raw["escalation_reason"] == "unknown_tool" and "subtract" in response.raw["escalation_detail"]
    calls = r.get_tool_calls_from_response(response)  # the mock LLM's own call, read by its own parser
    assert [c.tool_name for c in calls] == ["add"] and calls[0].tool_id.startswith("mock-tool-call-")


def test_tool_required_is_judged(add_tool) -> None:
    r, rt = router("just text", llm=MockFunctionCallingLLM())
    response = r.chat_with_tools([add_tool], user_msg="1+2?", tool_required=True)
    assert response.additional_kwargs["escalation_reason"] == "no_tool_call"
    assert rt.requests[0]["tool_choice"] == "required"


def test_without_llm_the_slm_answer_is_kept_with_the_reason(add_tool) -> None:
    r, _ = router(UNKNOWN)
    response = r.chat_with_tools([add_tool], user_msg="1+2?")
    assert (response.additional_kwargs["route"], response.additional_kwargs["escalation_reason"]) == ("slm", "unknown_tool")


def test_slm_error_without_llm_is_raised(add_tool) -> None:
    r, _ = router(RuntimeError("model crashed"))
    with pytest.raises(RuntimeError, match="model crashed"):
        r.chat_with_tools([add_tool], user_msg="1+2?")


def test_shadow_runs_both_and_uses_the_llm(add_tool) -> None:
    r, rt = router(GOOD, llm=MockFunctionCallingLLM(), shadow=True)
    response = r.chat_with_tools([add_tool], user_msg="1+2?")
    assert (response.additional_kwargs["route"], response.additional_kwargs["escalation_reason"]) == ("shadow", "shadow")
    assert response.raw["shadow_slm"]["message"]["tool_calls"][0]["function"]["name"] == "add"
    assert len(rt.requests) == 1


def test_routing_rule_sends_step_to_llm_without_running_slm() -> None:
    r, rt = router(llm=MockFunctionCallingLLM(), task="chitchat")
    response = r.chat([ChatMessage(role="user", content="hello")])
    assert response.additional_kwargs["escalation_reason"] == "route:no_tools"
    assert response.additional_kwargs["task"] == "chitchat"
    assert rt.requests == []


def test_stream_chat_routes_first(add_tool) -> None:
    r, _ = router(UNKNOWN, GOOD, llm=MockFunctionCallingLLM())
    escalated = list(r.stream_chat_with_tools([add_tool], user_msg="1+2?"))
    assert escalated[-1].additional_kwargs["route"] == "llm"
    accepted = list(r.stream_chat_with_tools([add_tool], user_msg="1+2?"))
    assert len(accepted) == 1 and accepted[0].additional_kwargs["route"] == "slm"
    assert r.get_tool_calls_from_response(accepted[0])[0].tool_name == "add"


async def test_async_parity(add_tool) -> None:
    for method in ("achat_with_tools", "astream_chat_with_tools"):
        r, _ = router(UNKNOWN, llm=MockFunctionCallingLLM())
        out = await getattr(r, method)([add_tool], user_msg="1+2?")
        if method.startswith("astream"):
            out = [c async for c in out][-1]
        assert (out.additional_kwargs["route"], out.additional_kwargs["escalation_reason"]) == ("llm", "unknown_tool")
    r, _ = router(GOOD)
    assert (await r.achat_with_tools([add_tool], user_msg="x")).additional_kwargs["route"] == "slm"


async def test_task_label_comes_from_the_workflow_step(add_tool) -> None:
    policy = EscalationPolicy(llm_tasks={"run_agent_step"})
    llm = MockFunctionCallingLLM()
    r, rt = router(GOOD, llm=llm, policy=policy)
    result = await FunctionAgent(tools=[add_tool], llm=r).run("1+2?")
    assert rt.requests == []  # the policy kept the step on the LLM, by its task label
    assert result.raw["task"] == "run_agent_step" and result.raw["escalation_reason"] == "route:llm_tasks"


def test_metadata_and_validation() -> None:
    r, _ = router(llm=MockFunctionCallingLLM())
    meta = r.metadata
    assert meta.is_function_calling_model and meta.model_name.startswith("router(fake-slm|")
    with pytest.raises(ValueError, match="LlamaIndex LLM"):
        RouterLLM(slm=SLM(runtime=FakeRuntime([])), llm="gpt")  # type: ignore[arg-type]


def test_an_unknown_argument_is_refused_as_chat_slm_router_refuses_it() -> None:
    """A misspelt policy field was accepted and ignored (the threshold never applied)."""
    from slm_agents.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=r"unknown argument\(s\) confidence_treshold; it takes slm=, llm="):
        RouterLLM(slm=FakeRuntime(), policy=EscalationPolicy(), confidence_treshold=0.5)
    router = RouterLLM(slm=FakeRuntime(), system_prompt="Be brief.")  # LlamaIndex's own LLM fields still pass
    assert router.system_prompt == "Be brief."
