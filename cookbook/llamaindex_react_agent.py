"""A LlamaIndex ReActAgent on a local small model, with every LLM call captured.

ReAct steps are plain text ("Thought: ... Action: ... Action Input: ..."), parsed by LlamaIndex.
``SLM`` reads the tools the agent's prompt lists, decides call-or-answer first (the same calibrated
decision as ``tool_choice="auto"``), and decodes the step in ReAct format under a grammar of those
tools, so even the packaged SmolLM2-135M-Instruct writes an ``Action`` naming ``get_weather`` with
valid ``Action Input``; after the observation it answers. Runs offline; captured rows go to
``$SLM_AGENTS_DB`` or ``./slm_agents.db``.

    python cookbook/llamaindex_react_agent.py
"""

from __future__ import annotations

import asyncio
import json

from llama_index.core.agent.workflow import AgentOutput, ReActAgent, ToolCallResult
from llama_index.core.tools import FunctionTool

from llamaindex_slm import SLM, slm_agents_capture


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"It is sunny and 22 C in {city}."


async def run() -> None:
    capture = slm_agents_capture()
    already = capture.store.db["calls"].count

    # ReAct never needs text past the next "Observation:"; stopping there saves tokens.
    llm = SLM(max_tokens=64, additional_kwargs={"stop": ["Observation:"]})
    agent = ReActAgent(tools=[FunctionTool.from_defaults(get_weather)], llm=llm)
    handler = agent.run("What is the weather in Paris?", max_iterations=3, early_stopping_method="generate")
    async for event in handler.stream_events():
        if isinstance(event, AgentOutput):
            for call in event.tool_calls:
                print(f"ReAct action: {call.tool_name}({json.dumps(call.tool_kwargs)})")
        elif isinstance(event, ToolCallResult):
            print(f"tool {event.tool_name} returned: {event.tool_output.content}")
    result = await handler
    print(f"answer: {str(result).strip()}")

    capture.flush()
    rows = list(capture.store.db.query(
        "select task, model, substr(content, 1, 80) as content, input_tokens, output_tokens, "
        "round(latency_ms) as ms from calls order by id limit -1 offset ?", [already],
    ))
    print(f"captured {len(rows)} call(s) into {capture.store.path or ':memory:'}:")
    for row in rows:
        print("  ", row)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
