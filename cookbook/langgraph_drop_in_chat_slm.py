"""Recipe: drop ChatSLM into an existing LangChain 1.x / LangGraph agent in place of the frontier model.

The agent is an ordinary ``langchain.agents.create_agent`` graph with a real Python tool; the only
change is the model: ``ChatSLM()`` runs the packaged SmolLM2-135M-Instruct in-process (offline).

SmolLM2-135M is tiny: left to itself it often answers in text instead of calling the tool. A
3-line middleware forces the tool on the first step and forbids it afterwards (the grammar makes
the forced call well-formed); a bigger GGUF (``ChatSLM(model_path=...)``) does not need it.

Run: python cookbook/langgraph_drop_in_chat_slm.py   (about two model calls)
"""

from __future__ import annotations

from langchain.agents import create_agent
from langchain.agents.middleware import wrap_model_call
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_slm import ChatSLM


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny and 21 C in {city}."


@wrap_model_call
def force_first_tool(request, handler):  # type: ignore[no-untyped-def]
    """First step: the tool must be called. After a tool result: answer in text."""
    used_tool = any(isinstance(m, ToolMessage) for m in request.messages)
    return handler(request.override(tool_choice="none" if used_tool else "get_weather"))


def main() -> None:
    model = ChatSLM(max_tokens=48, temperature=0.0)  # was: ChatOpenAI(model="gpt-4o-mini")
    agent = create_agent(model, [get_weather], middleware=[force_first_tool], checkpointer=InMemorySaver(),
                         system_prompt="You answer weather questions with the get_weather tool.")
    config = {"configurable": {"thread_id": "demo"}}
    out = agent.invoke({"messages": [("user", "What's the weather in Paris?")]}, config)
    for m in out["messages"]:
        if m.type == "ai" and m.tool_calls:
            call = m.tool_calls[0]
            meta = m.response_metadata
            print(f"ai    -> {call['name']}({call['args']})  confidence={meta.get('confidence') or 0:.2f} "
                  f"latency={meta.get('latency_ms') or 0:.0f} ms")
        else:
            print(f"{m.type:5} -> {str(m.content)[:100]!r}")
    print("model:", model.model_name, "| steps:", sum(m.type == "ai" for m in out["messages"]))


if __name__ == "__main__":
    main()
