"""A real LangGraph agent loop on the default model (SmolLM2-135M), captured by SLMCaptureHandler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_slm import ChatSLM, SLMCaptureHandler
from slm_agents.capture import CaptureStore

SEEN: list[dict[str, Any]] = []


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    SEEN.append({"city": city})
    return f"It is sunny and 21 C in {city}."


def build_agent() -> Any:
    # tool_choice="auto" (the default): the runtime decides call-or-answer before decoding, so
    # the model calls get_weather for the question and answers after the tool result.
    model = ChatSLM(max_tokens=48, temperature=0.0).bind_tools([get_weather])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver())


def test_real_agent_loop_is_captured(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path / "capture.db")
    handler = SLMCaptureHandler(store)
    config = {"configurable": {"thread_id": "it-1"}, "callbacks": [handler]}
    out = build_agent().invoke({"messages": [("user", "What's the weather in Paris?")]}, config)
    assert [m.type for m in out["messages"]] == ["human", "ai", "tool", "ai"]
    assert len(SEEN) == 1 and SEEN[0]["city"].strip()

    assert handler.flush() and handler.failures == 0
    calls = list(store.db.query("select * from calls order by id"))
    assert len(calls) == 2
    for row in calls:
        assert (row["task"], row["framework"], row["thread_id"], row["route"]) == ("agent", "langgraph", "it-1", "slm")
        assert row["runtime"] == "llamacpp" and row["model"].startswith("SmolLM2")
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["latency_ms"] > 0
        assert row["run_id"] and row["parent_run_id"]
    step, final = calls
    (tc,) = json.loads(step["tool_calls"])
    assert tc["function"]["name"] == "get_weather"
    assert json.loads(tc["function"]["arguments"]) == SEEN[0]
    assert step["valid"] == 1 and 0 < step["confidence"] <= 1 and step["finish_reason"] == "tool_calls"
    assert json.loads(step["tool_names"]) == ["get_weather"]
    assert [m["role"] for m in json.loads(final["messages"])] == ["user", "assistant", "tool"]
    assert final["tool_calls"] is None

    (exe,) = store.db.query("select * from tool_executions")
    assert (exe["name"], exe["call_id"], exe["model_call_id"]) == ("get_weather", tc["id"], step["id"])
    assert exe["task"] == "tools" and exe["thread_id"] == "it-1"
    assert "sunny" in exe["result"] and exe["error_type"] is None
    store.close()
