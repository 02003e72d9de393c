"""Recipe: concurrent steps on one local model decode together (LangChain ``batch()``).

A LangGraph fan-out, ``batch()``/``abatch()``, or several agents in threads send steps to one
loaded model at once. Its ``slots`` (default 4) decode them in one llama.cpp batch per token,
each with its own sampler and grammar, and every answer is the one the step gets alone.

Run: python cookbook/concurrent_agents_batched.py
"""

from __future__ import annotations

from langchain_core.tools import tool

from langchain_slm import ChatSLM


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"It is sunny in {city}."


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a value between km and mi."""
    return f"{value} {from_unit} in {to_unit}"


SYSTEM = "You answer with one tool call: get_weather for the weather, convert_units for distances."
QUESTIONS = ["Weather in Paris?", "Convert 10 km to miles.", "What is the weather in Lima?", "How far is 3 mi in km?"]
STEPS = [[("system", SYSTEM), ("human", q)] for q in QUESTIONS]


def main() -> None:
    chat = ChatSLM(slots=4, max_tokens=48)  # slots: requests decoded together (4 is the default)
    agent_step = chat.bind_tools([get_weather, convert_units], tool_choice="required")
    alone = [agent_step.invoke(step) for step in STEPS]  # one at a time
    stats = chat.client.stats()
    steps_before = stats["batch_steps"]
    together = agent_step.batch(STEPS)  # four threads: decoded together
    for q, msg in zip(QUESTIONS, together, strict=True):
        calls = ", ".join(f"{c['name']}({c['args']})" for c in msg.tool_calls)
        print(f"{q:30s} -> {calls or repr(msg.content)}")
    stats = chat.client.stats()
    print(f"batched {len(QUESTIONS)} requests: {stats['batch_steps'] - steps_before} decodes, "
          f"up to {stats['batch_peak']} requests per decode ({stats['slots']} slots, "
          f"{stats['kv_bytes'] / 2**20:.0f} MiB of KV)")
    def answer(msg: object) -> list[tuple[str, dict]]:  # a call's id is new each time
        return [(c["name"], c["args"]) for c in msg.tool_calls]  # type: ignore[attr-defined]

    same = [answer(a) for a in alone] == [answer(t) for t in together]
    print(f"same answers as one at a time: {same}")


if __name__ == "__main__":
    main()
