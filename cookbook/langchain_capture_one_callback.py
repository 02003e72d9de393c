"""Recipe: capture every model call and tool execution of an existing agent with ONE callback.

The graph below stands for an agent you already have: a "planner" node on a frontier model (here a
langchain_core fake chat model, so the recipe runs offline), an "extract" node on the local SLM
(``ChatSLM``, SmolLM2-135M; its tool call is forced with ``tool_choice`` because the model is tiny)
and a ``ToolNode``. Adding capture is one line: ``config={"callbacks": [SLMCaptureHandler()]}``.
Rows go to ``$SLM_AGENTS_DB`` (default ./slm_agents.db), with the node name as the task.

Run: python cookbook/langchain_capture_one_callback.py   (one SLM call)
"""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langchain_slm import ChatSLM, SLMCaptureHandler


@tool
def lookup_order(order_number: int) -> str:
    """Look up the status of an order by its number."""
    return f"Order {order_number}: shipped on Monday."


def build_agent():  # type: ignore[no-untyped-def]
    planner = FakeMessagesListChatModel(responses=[AIMessage("Plan: look the order up, then report its status.")])
    extractor = ChatSLM(max_tokens=48, temperature=0.0).bind_tools([lookup_order], tool_choice="lookup_order")

    def plan(state: MessagesState) -> dict:
        return {"messages": [planner.invoke(state["messages"])]}

    def extract(state: MessagesState) -> dict:
        return {"messages": [extractor.invoke(state["messages"][:1])]}  # the user request only

    graph = StateGraph(MessagesState)
    graph.add_node("planner", plan)
    graph.add_node("extract", extract)
    graph.add_node("tools", ToolNode([lookup_order]))
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "extract")
    graph.add_edge("extract", "tools")
    graph.add_edge("tools", END)
    return graph.compile()


def main() -> None:
    agent = build_agent()
    capture = SLMCaptureHandler()  # the default store: $SLM_AGENTS_DB or ./slm_agents.db
    store = capture.store
    before = store.db["calls"].count if "calls" in store.db.table_names() else 0
    out = agent.invoke({"messages": [("user", "Where is order 17?")]},
                       config={"callbacks": [capture], "configurable": {"thread_id": "support-1"}})  # <- the line
    print("agent answered:", out["messages"][-1].content or "(no tool result: the SLM's call was invalid)")
    capture.flush()
    rows = list(store.db.query(
        "select id, task, route, model, framework, thread_id, content, tool_calls, round(latency_ms) as ms "
        "from calls order by id limit -1 offset ?", [before]))
    print(f"captured {len(rows)} model call(s) into {store.path}:")
    for r in rows:
        print(f"  task={r['task']:8} route={r['route']:4} model={r['model']} thread={r['thread_id']} "
              f"ms={r['ms']:.0f} content={(r['content'] or '')[:40]!r} tool_calls={(r['tool_calls'] or '')[:70]}")
    ids = [r["id"] for r in rows]
    tools = [t for t in store.db.query("select * from tool_executions order by id") if t["model_call_id"] in ids]
    for t in tools:
        print(f"  tool {t['name']}({t['arguments']}) -> {t['result']!r}, requested by call {t['model_call_id']}")
    print("handler failures:", capture.failures)


if __name__ == "__main__":
    main()
