"""Capture basics: log model calls, a tool execution and an escalation; read them back.

Runs offline in a second:  python cookbook/capture_basics.py [path/to/capture.db]

Afterwards try:  slm-agents stats --db <file>   /   datasette <file>
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from slm_agents import FakeRuntime
from slm_agents.capture import CaptureStore, StreamRecorder, read_call, stats

TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order by id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]


def main(path: Path) -> None:
    runtime = FakeRuntime(responses=["Your order A17 shipped on Monday.", "It shipped on Monday."])
    messages = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Where is order A17? Reply to jane@example.com or +1 415 555 0100."},
    ]
    with CaptureStore(path) as store:  # default redaction: e-mails, phones, cards, keys, ...
        # 1. an SLM call, built from the runtime's Completion
        completion = runtime.complete(messages)
        slm_id = store.log_completion(completion, messages=messages, tools=TOOLS, route="slm",
                                      framework="core", task="order_status", run_id="run-1")
        # 2. suppose the policy rejected it: the LLM answered instead, and we link the pair
        llm_id = store.log({"messages": messages, "tools": TOOLS, "route": "llm", "model": "big-llm",
                            "task": "order_status", "run_id": "run-1", "escalation_reason": "low_confidence",
                            "tool_calls": [{"id": "call_1", "type": "function", "function": {
                                "name": "lookup_order", "arguments": '{"order_id": "A17"}'}}],
                            "finish_reason": "tool_calls", "input_tokens": 120, "output_tokens": 14})
        store.link_escalation(slm_id, llm_id, "low_confidence")
        # 3. the tool ran
        store.log_tool({"call_id": "call_1", "model_call_id": llm_id, "name": "lookup_order",
                        "arguments": {"order_id": "A17"}, "result": {"status": "shipped"}, "latency_ms": 3.1})
        # 4. a streamed answer, reassembled from its chunks
        recorder = StreamRecorder(store, messages=messages, route="slm", task="order_status")
        for chunk in runtime.stream(messages):
            recorder.add(chunk)
        recorder.finish()
        # 5. feedback, later
        store.label(llm_id, "good", score=1.0)
        store.flush()

        call = read_call(store.db, llm_id)
        print("stored user message:", call["messages"][1]["content"])
        print("escalated from:", call["escalations"][0]["slm_call_id"] == slm_id)
        summary = stats(store.db)
        print("calls by route:", {r["route"]: r["calls"] for r in summary["by_route"]})
        print("counters:", store.stats.as_dict())
    print(f"capture file: {path}  (try: slm-agents stats --db {path})")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "capture.db")
