"""Benchmark the capture store: hot-path enqueue cost, sustained write throughput, bytes per call.

Run:  python bench/bench_capture.py [--calls 50000] [--no-redaction-only]

Records are realistic agent steps: a shared ~1.5 kB system prompt, three bound tools, a growing
conversation (the history is re-sent every turn, as agents do), a user message with some PII,
an assistant answer with a tool call, usage, latency and ids.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time

from slm_agents.capture import CaptureStore, Redactor

SYSTEM = ("You are a support agent for ACME. Use the tools to look up orders, refund payments and "
          "escalate to a human when the customer asks. Be concise. " * 12)
TOOLS = [
    {"type": "function", "function": {"name": name, "description": f"{name} tool",
     "parameters": {"type": "object", "properties": {"order_id": {"type": "string"},
                                                     "amount": {"type": "number"}},
                    "required": ["order_id"]}}}
    for name in ("lookup_order", "refund_payment", "escalate_to_human")
]


def make_record(i: int, rng: random.Random) -> dict:
    turns = [{"role": "system", "content": SYSTEM}]
    for t in range(rng.randint(0, 3)):
        turns.append({"role": "user", "content": f"Earlier question {t} about order A{1000 + t}"})
        turns.append({"role": "assistant", "content": f"Earlier answer {t}: your order ships Monday."})
    turns.append({"role": "user", "content": (
        f"Hi, I'm customer {i}. My order A{i:06d} never arrived; email me at user{i}@example.com "
        f"or call +1 415 555 {i % 10000:04d}. I paid {rng.randint(5, 500)} dollars last week."
    )})
    return {
        "run_id": f"run-{i // 5}", "thread_id": f"thread-{i // 20}", "framework": "langgraph",
        "task": rng.choice(["lookup", "refund", "triage"]), "runtime": "llamacpp",
        "model": "SmolLM2-135M-Instruct-Q4_1", "route": rng.choice(["slm", "slm", "slm", "llm"]),
        "messages": turns, "tools": TOOLS, "tool_choice": "auto",
        "params": {"temperature": 0.0, "max_tokens": 256},
        "content": None,
        "tool_calls": [{"id": f"call_{i}", "type": "function",
                        "function": {"name": "lookup_order", "arguments": f'{{"order_id": "A{i:06d}"}}'}}],
        "finish_reason": "tool_calls", "valid": True, "confidence": 0.93,
        "latency_ms": rng.uniform(80, 400), "ttft_ms": rng.uniform(20, 60),
        "input_tokens": rng.randint(400, 900), "output_tokens": rng.randint(10, 40),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench(label: str, redactor: Redactor | None, n: int) -> None:
    rng = random.Random(0)
    records = [make_record(i, rng) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        # 1. hot path: per-call enqueue cost while the writer runs
        store = CaptureStore(path, redactor=redactor, queue_size=n + 10)
        costs = []
        cpu0 = _cpu()
        t0 = time.perf_counter()
        for rec in records:
            s = time.perf_counter_ns()
            store.log(rec)
            costs.append(time.perf_counter_ns() - s)
        enqueue_done = time.perf_counter() - t0
        store.flush()
        total = time.perf_counter() - t0
        cpu = _cpu() - cpu0
        stats = store.stats
        store.close()
        costs.sort()
        p50 = costs[len(costs) // 2] / 1000
        p99 = costs[int(len(costs) * 0.99)] / 1000
        size = os.path.getsize(path)
        print(f"[{label}] {n} calls, written={stats.written} dropped={stats.dropped} failed={stats.failed_writes}")
        print(f"  enqueue (hot path): p50 {p50:.1f} us, p99 {p99:.1f} us, mean {statistics.mean(costs) / 1000:.1f} us"
              f" ({n / enqueue_done:,.0f} log() calls/s)")
        print(f"  sustained write throughput: {n / total:,.0f} calls/s (first log() to flush() done, batched)")
        print(f"  CPU, all threads: {cpu / n * 1e6:.0f} us per call (the whole path: log(), redaction, rows, SQLite;"
              f" {n / cpu:,.0f} calls per CPU-second, which a busy machine does not change)")
        print(f"  file size: {size / n:,.0f} bytes/call ({size / 1e6:.1f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args()
    bench("redaction off", None, args.calls)
    bench("default redaction", Redactor(), args.calls)


if __name__ == "__main__":
    main()
