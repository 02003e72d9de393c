"""A LlamaIndex FunctionAgent whose tool-calling step runs on a local small model, captured.

Runs offline on the packaged SmolLM2-135M-Instruct: the agent is asked about the weather; in
``tool_choice="auto"`` (what FunctionAgent sends) the SLM first decides whether to call a tool (a
calibrated decision, reported as ``decision``/``p_call``), calls ``get_weather`` under a grammar,
so the call is always well-formed, then answers from the tool's result. Every LLM call lands in
the capture store (``$SLM_AGENTS_DB`` or ``./slm_agents.db``).

    python cookbook/llamaindex_function_agent.py
"""

from __future__ import annotations

import asyncio
import json

from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ToolCallResult
from llama_index.core.tools import FunctionTool

from llamaindex_slm import SLM, slm_agents_capture


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"It is sunny and 22 C in {city}."


async def run() -> None:
    capture = slm_agents_capture()  # one line: every LlamaIndex LLM call goes to the store
    already = capture.store.db["calls"].count

    agent = FunctionAgent(
        name="weather",
        tools=[FunctionTool.from_defaults(get_weather)],
        llm=SLM(max_tokens=64),
        system_prompt="You answer weather questions with the get_weather tool.",
    )
    handler = agent.run("What is the weather in Paris?", max_iterations=3)
    async for event in handler.stream_events():
        if isinstance(event, AgentOutput) and event.tool_calls:
            decided = (event.raw or {}).get("p_call") if isinstance(event.raw, dict) else None
            for call in event.tool_calls:
                print(f"SLM called {call.tool_name}({json.dumps(call.tool_kwargs)})  id={call.tool_id}  p_call={decided}")
        elif isinstance(event, ToolCallResult):
            print(f"tool {event.tool_name} returned: {event.tool_output.content}")
    result = await handler
    print(f"answer: {result}")

    capture.flush()
    rows = list(capture.store.db.query(
        "select task, route, model, tool_calls, content, input_tokens, output_tokens, round(latency_ms) as ms "
        "from calls order by id limit -1 offset ?", [already],
    ))
    print(f"captured {len(rows)} call(s) into {capture.store.path or ':memory:'}:")
    for row in rows:
        print("  ", row)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
