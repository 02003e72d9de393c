"""Recipe: three agent nodes with their own system prompts on one loaded model, and the prefix cache.

An agent graph often shares one small model among nodes (planner, query writer, fixer), each with
its own system prompt and tools. The loaded model keeps each node's evaluated prefix (system prompt
+ tools) in its prefix cache, so switching nodes resumes it instead of evaluating it again.

Run: python cookbook/shared_model_many_nodes.py
"""

from __future__ import annotations

from slm_agents import LlamaCppRuntime

TOOLS = [
    {"type": "function", "function": {
        "name": "search_orders", "description": "Find a customer's orders",
        "parameters": {"type": "object", "properties": {"customer_id": {"type": "integer"}},
                       "required": ["customer_id"]}}},
    {"type": "function", "function": {
        "name": "refund", "description": "Refund an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}},
]
NODES = {
    "planner": "You plan the support desk's next step. Pick the tool that moves the case forward.",
    "lookup": "You look up orders. Always search the customer's orders first.",
    "fixer": "You fix problems with orders. Refund an order when the customer asks for it.",
}


def main() -> None:
    # 32 MiB of evaluated prefixes (the default is 128 MiB; 0 turns the cache off). ChatSLM and SLM
    # take the same prefix_cache_bytes argument.
    rt = LlamaCppRuntime(prefix_cache_bytes=32 * 2**20)
    question = "Customer 42 wants a refund for order A-17."
    for rnd in (1, 2):
        for name, system in NODES.items():
            c = rt.complete([{"role": "system", "content": system}, {"role": "user", "content": question}],
                            TOOLS, "required", max_tokens=48)
            call = c.parsed_tool_calls()[0]
            print(f"round {rnd} {name:8s} ttft {c.ttft_ms:7.1f} ms  -> {call['name']}({call['arguments']})")
    s = rt.stats()
    print(f"prefix cache: {s['cache_entries']} prefixes, {s['cache_bytes'] / 2**20:.1f} MiB, "
          f"hits {s['cache_hits']}, misses {s['cache_misses']}")
    print(f"memory: weights {s['model_bytes'] / 2**20:.0f} MiB, KV {s['kv_bytes_per_token']} bytes/token, "
          f"context slot {s['kv_bytes_per_slot'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
