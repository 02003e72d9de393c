"""Recipe: SLM-first routing in a ``create_agent`` agent with ``SLMRoutingMiddleware``.

The agent's own model stands for the frontier LLM (a langchain_core fake chat model, so this runs
offline). ``SLMRoutingMiddleware`` gives every tool step to the local SLM first (SmolLM2-135M) and
falls back to the agent's model when the core policy rejects the SLM's answer. Here the policy is
strict on purpose, so you see an escalation: ``confidence_threshold=0.9`` (SmolLM2's tool calls come
in around 0.5) and ``max_depth=2`` (longer conversations go straight to the LLM).

SmolLM2-135M is tiny, so the first step forces the tool call (``tool_choice``) with a 3-line
middleware; with a bigger GGUF you would not need it. Steps, routes, reasons and the captured
escalation pair (``$SLM_AGENTS_DB``, default ./slm_agents.db) are printed.

Run: python cookbook/create_agent_slm_routing.py   (one SLM call)
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import wrap_model_call
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from langchain_slm import ChatSLM, SLMRoutingMiddleware
from slm_agents.policy import EscalationPolicy


@tool
def lookup_order(order_number: int) -> str:
    """Look up the status of an order by its number."""
    return f"Order {order_number}: shipped on Monday."


class FrontierStandIn(FakeMessagesListChatModel):
    """Plays the frontier LLM (e.g. ChatOpenAI) offline: canned answers, accepts bound tools."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


@wrap_model_call
def force_first_tool(request, handler):  # type: ignore[no-untyped-def]
    used_tool = any(isinstance(m, ToolMessage) for m in request.messages)
    return handler(request if used_tool else request.override(tool_choice="lookup_order"))


def main() -> None:
    llm = FrontierStandIn(responses=[
        AIMessage("", tool_calls=[{"name": "lookup_order", "args": {"order_number": 17}, "id": "llm_1"}]),
        AIMessage("Order 17 shipped on Monday."),
    ])
    routing = SLMRoutingMiddleware(
        ChatSLM(max_tokens=48, temperature=0.0),
        policy=EscalationPolicy(max_depth=2),
        confidence_threshold=0.9,
        capture=True,  # log the SLM attempt, the LLM answer and the escalation linking them
    )
    agent = create_agent(llm, [lookup_order], system_prompt="You look up orders.",
                         middleware=[force_first_tool, routing])
    out = agent.invoke({"messages": [("user", "Where is order 17?")]})
    for m in out["messages"]:
        if m.type != "ai":
            print(f"{m.type:5} {str(m.content)[:70]!r}")
            continue
        meta = m.response_metadata
        what = f"{m.tool_calls[0]['name']}({m.tool_calls[0]['args']})" if m.tool_calls else repr(m.content[:60])
        conf = meta.get("slm_confidence")
        print(f"ai    {what}  route={meta['route']} reason={meta['escalation_reason']} "
              f"slm_confidence={'-' if conf is None else f'{conf:.2f}'}")
    store = routing.capture
    store.flush()
    for e in store.db.query("select * from escalations order by id desc limit 1"):
        slm = store.get_call(e["slm_call_id"])
        llm_row = store.get_call(e["llm_call_id"])
        print(f"captured escalation ({e['reason']}): SLM said {slm['tool_calls'] or slm['content']!r}")
        print(f"                                    LLM said {llm_row['tool_calls']!r}")
    print("capture file:", store.path)


if __name__ == "__main__":
    main()
