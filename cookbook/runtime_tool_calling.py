"""Recipe: call tools on the default local model with the core runtime, streaming and async.

Run: python cookbook/runtime_tool_calling.py
"""

from __future__ import annotations

import asyncio
import json

from slm_agents import LlamaCppRuntime

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
]


def main() -> None:
    rt = LlamaCppRuntime()  # the packaged SmolLM2-135M-Instruct; pass any GGUF path instead
    messages = [{"role": "user", "content": "What's the weather in Paris, in celsius?"}]

    # 1. A forced call: it always parses and validates against the schema.
    c = rt.complete(messages, TOOLS, tool_choice="get_weather", max_tokens=64)
    call = c.parsed_tool_calls()[0]
    print("call:", call["name"], json.dumps(call["arguments"]), f"confidence={c.confidence:.2f}")

    # 2. Feed the result back and let the model answer in text.
    messages += [c.message, {"role": "tool", "tool_call_id": call["id"], "content": "21°C, sunny"}]
    answer = rt.complete(messages, max_tokens=48)
    print("answer:", answer.content.strip())

    # 3. Streaming: tool-call deltas arrive like OpenAI's; the last chunk has the whole Completion.
    for chunk in rt.stream(messages[:1], TOOLS, tool_choice="required", max_tokens=64):
        for delta in chunk.tool_calls:
            print("delta:", delta.name or "", delta.arguments)
        if chunk.completion:
            print("usage:", chunk.completion.usage.to_dict())

    # 4. Structured output with a JSON schema, same grammar machinery.
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
              "required": ["city", "days"]}
    out = rt.complete([{"role": "user", "content": "Plan 3 days in Rome as JSON."}], max_tokens=48,
                      response_format={"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}})
    print("json:", json.loads(out.content))

    # 5. Async twin.
    c2 = asyncio.run(rt.acomplete(messages[:1], TOOLS, tool_choice="required", max_tokens=64))
    print("async call:", c2.parsed_tool_calls()[0]["name"])


if __name__ == "__main__":
    main()
