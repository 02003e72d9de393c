"""Outcome readiness: what happened *after* the SLM answered counts, not only whether it escalated.

The default model answers four order lookups. None of its steps escalates, so every one is
"kept"; but a lookup of an order that does not exist fails in the tool, and the user gives a
thumbs down to another answer. Both are linked back to the SLM call that produced them, and the
task's outcome readiness drops accordingly (``slm-agents tasks`` and ``slm-agents report`` show it).

Runs offline on the packaged SmolLM2:  python cookbook/outcome_readiness.py [path/to/capture.db]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from slm_agents import LlamaCppRuntime
from slm_agents.capture import CaptureStore
from slm_agents.capture.outcomes import outcome_readiness

TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order by its number",
    "parameters": {"type": "object", "properties": {"order_number": {"type": "integer"}},
                   "required": ["order_number"]}}}]
ORDERS = {17: "shipped on Monday", 18: "packed, ships tomorrow"}
QUESTIONS = ["Where is order 17?", "Where is order 18?", "Where is order 99?", "Has order 18 shipped?"]


def lookup_order(order_number: int) -> str:
    return f"Order {order_number}: {ORDERS[order_number]}"  # KeyError: no such order


def main(path: Path) -> None:
    runtime = LlamaCppRuntime()
    with CaptureStore(path) as store:
        call_ids = []
        for question in QUESTIONS:
            messages = [{"role": "system", "content": "You look up orders."}, {"role": "user", "content": question}]
            completion = runtime.complete(messages, TOOLS, tool_choice="lookup_order", max_tokens=32)
            call_id = store.log_completion(completion, messages=messages, tools=TOOLS, tool_choice="lookup_order",
                                           route="slm", task="lookup")
            call_ids.append(call_id)
            for call in completion.parsed_tool_calls():
                record = {"call_id": call["id"], "model_call_id": call_id, "name": call["name"],
                          "arguments": call["arguments"], "task": "lookup"}
                try:
                    record["result"] = lookup_order(**call["arguments"])
                except KeyError as e:
                    record["error"] = e  # a tool error, linked to the call that asked for it
                store.log_tool(record)
                print(f"{question!r}: lookup_order({call['arguments']}) -> {record.get('result') or 'tool error'}")
        # the user reads the last answer and gives it a thumbs down
        store.feedback(call_ids[-1], good=False, note="I asked whether it shipped")
        store.flush()
        outcome = outcome_readiness(store.db)["lookup"]
    print(f"SLM calls {outcome.slm_calls}, kept (not escalated) {outcome.accepted}, "
          f"followed by a tool error {outcome.tool_errors}, by negative feedback {outcome.negative_feedback}")
    print(f"outcome readiness of task 'lookup': {outcome.readiness:.0%}")
    print(f"see it per task:  slm-agents tasks --db {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "capture.db")
