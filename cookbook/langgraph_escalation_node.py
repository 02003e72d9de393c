"""Recipe: a LangGraph graph with an escalation node: SLM first, the LLM when the SLM's step fails.

Nodes: "agent" (the local SLM, SmolLM2-135M, with the tool bound), "escalate"
(``escalation_node``: re-runs the step on the LLM and replaces the SLM's message in place) and
"tools". ``route_after_slm`` decides after "agent": a failed SLM answer goes to "escalate", tool
calls to "tools", text to the end. The LLM is a langchain_core fake chat model standing in for
the frontier model, so this runs offline; ``confidence_threshold=0.9`` makes the escalation
happen (SmolLM2's forced tool calls come in around 0.5). The tool call is forced with
``tool_choice`` because the model is tiny. ``create_slm_agent`` builds this graph for you.

Run: python cookbook/langgraph_escalation_node.py   (one SLM call)
"""

from __future__ import annotations

import functools
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langchain_slm import ChatSLM, SLMCaptureHandler, escalation_node, route_after_slm
from slm_agents.policy import EscalationPolicy


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny and 21 C in {city}."


class FrontierStandIn(FakeMessagesListChatModel):
    """Plays the frontier LLM offline: canned answers, accepts bound tools."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def main() -> None:
    tools = [get_weather]
    policy = EscalationPolicy(confidence_threshold=0.9)
    slm = ChatSLM(max_tokens=48, temperature=0.0).bind_tools(tools, tool_choice="get_weather")
    llm = FrontierStandIn(responses=[
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "llm_1"}])])

    def agent(state: MessagesState) -> dict:
        return {"messages": [slm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("escalate", escalation_node(llm, policy=policy, tools=tools, capture=True, task="agent"))
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", functools.partial(route_after_slm, policy=policy, tools=tools),
                                ["tools", "escalate", END])
    graph.add_edge("escalate", "tools")
    graph.add_edge("tools", END)
    app = graph.compile(checkpointer=InMemorySaver())

    handler = SLMCaptureHandler()  # records the SLM call and the tool execution; the node links the pair
    config = {"configurable": {"thread_id": "weather-1"}, "callbacks": [handler]}
    for update in app.stream({"messages": [("user", "What's the weather in Paris?")]}, config,
                             stream_mode="updates"):
        for node, change in update.items():
            for m in (change or {}).get("messages", []):
                meta = m.response_metadata
                extra = f" route={meta.get('route')} reason={meta.get('escalation_reason')}" if m.type == "ai" else ""
                body = getattr(m, "tool_calls", None) or m.content
                print(f"[{node}] {m.type}: {str(body)[:90]}{extra}")
    final = app.get_state(config).values["messages"]
    print("messages in state:", [m.type for m in final], "(the SLM's step was replaced, not appended)")
    handler.flush()
    for e in handler.store.db.query("select reason, slm_call_id, llm_call_id from escalations order by id desc limit 1"):
        print("captured escalation:", dict(e))
    print("capture file:", handler.store.path)


if __name__ == "__main__":
    main()
