"""Benchmark the capture store: hot-path enqueue cost, sustained write throughput, bytes per call.

Run:  python bench/bench_capture.py [--calls 50000]

Records are the model calls of agent runs (8 in flight, interleaved): a shared ~1.5 kB system
prompt, three bound tools, and a history re-sent on every call that grows by the assistant's tool
call and the tool's JSON result; the user's message, the tool results and the final answer carry
PII; usage, latency and ids as a face logs them.

All the Python work of a call (``log()``, redaction, rows, SQLite's bindings) shares one GIL, so
N calls/s needs at most 1/N s of CPU per call: 20,000 calls/s is 50 us. The last lines split the
with-redaction figure: the build stage alone, and of it the scan of the texts never seen before
(the rest of a call's texts are findings-cache hits).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

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


CONCURRENT = 8  # conversations in flight at once: their calls interleave, as several agents' do


def _conversation(c: int, rng: random.Random) -> list[dict]:
    """The model calls of one agent run: look the order up, then refund it or hand over to a human.

    Every call re-sends the whole history (system prompt, the user's message, each earlier
    assistant tool call and its tool result); what is new per call is a tool result or the user's
    message, and the model's answer. The user's message, the tool results and the final answer
    carry PII (names, e-mail, phone, address), as customer data does.
    """
    name, email, phone = f"Jane Roe{c}", f"jane.roe{c}@example.com", f"+1 415 555 {c % 10000:04d}"
    order, amount = f"A{c:06d}", rng.randint(5, 500)
    history: list[dict] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": (
            f"Hi, I'm {name}. My order {order} never arrived; email me at {email} or call {phone}. "
            f"I paid {amount} dollars last week.")},
    ]
    results = [
        json.dumps({"order_id": order, "status": "lost in transit", "carrier": "UPS",
                    "customer": {"name": name, "email": email, "phone": phone,
                                 "address": f"{c % 900 + 100} Market St, San Francisco"},
                    "amount": amount, "shipped": "2025-05-02"}),
        json.dumps({"refund_id": f"R{c:07d}", "order_id": order, "status": "approved", "amount": amount}),
    ]
    steps = rng.choice((2, 3))  # 3: lookup, refund, answer; 2: lookup, hand over to a human
    calls = []
    for step in range(steps):
        base = {
            "run_id": f"run-{c}", "thread_id": f"thread-{c}", "framework": "langgraph", "task": "refund",
            "runtime": "llamacpp", "model": "SmolLM2-135M-Instruct-Q4_1", "route": rng.choice(["slm", "slm", "slm", "llm"]),
            "messages": list(history), "tools": TOOLS, "tool_choice": "auto",
            "params": {"temperature": 0.0, "max_tokens": 256},
            "valid": True, "confidence": 0.93, "latency_ms": rng.uniform(80, 400), "ttft_ms": rng.uniform(20, 60),
            "input_tokens": rng.randint(400, 900), "output_tokens": rng.randint(10, 40),
        }
        if step == steps - 1:  # the final answer
            text = (f"I've refunded {amount} dollars for order {order}; the confirmation goes to {email}."
                    if steps == 3 else f"I've passed order {order} to a colleague, who will call you on {phone}.")
            calls.append({**base, "content": text, "tool_calls": None, "finish_reason": "stop"})
            break
        fn, args = (("lookup_order", {"order_id": order}) if step == 0
                    else ("refund_payment", {"order_id": order, "amount": amount}))
        tool_calls = [{"id": f"call_{c}_{step}", "type": "function",
                       "function": {"name": fn, "arguments": json.dumps(args)}}]
        calls.append({**base, "content": None, "tool_calls": tool_calls, "finish_reason": "tool_calls"})
        history.append({"role": "assistant", "content": "", "tool_calls": tool_calls})
        history.append({"role": "tool", "tool_call_id": f"call_{c}_{step}", "name": fn, "content": results[step]})
    return calls


def make_records(n: int, rng: random.Random) -> list[dict]:
    """``n`` call records of agent runs, ``CONCURRENT`` runs interleaved call by call."""
    records: list[dict] = []
    c = 0
    while len(records) < n:
        group = [_conversation(c + k, rng) for k in range(CONCURRENT)]
        c += CONCURRENT
        for step in range(max(len(calls) for calls in group)):
            records.extend(calls[step] for calls in group if step < len(calls))
    return records[:n]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_cpu(records: list[dict], redactor: Redactor | None) -> float:
    """CPU seconds the writer's build stage (redaction, rows, JSON) takes for ``records`` alone."""
    from slm_agents.capture._writer import RowBuilder  # private: the stage the writer thread runs

    builder = RowBuilder(redactor, max_string_chars=1_000_000, blob_min_chars=1024)
    start = time.thread_time()
    for i, rec in enumerate(records):
        blobs: list[tuple] = []
        builder.call(str(i), time.time(), rec, blobs)
        builder.known_blobs.update(row[0] for row in blobs)
    return time.thread_time() - start


def new_texts(records: list[dict]) -> list[str]:
    """Every text of ``records`` in the order the writer first meets it, each once: what a
    redactor must scan (a text seen before is a findings-cache hit)."""
    seen: set[str] = set()
    texts: list[str] = []

    def meet(text: object) -> None:
        if isinstance(text, str) and text not in seen:
            seen.add(text)
            texts.append(text)

    for rec in records:
        for message in rec["messages"]:
            meet(message.get("content"))
            for call in message.get("tool_calls") or ():
                meet(call["function"]["arguments"])
        meet(rec.get("content"))
        for call in rec.get("tool_calls") or ():
            meet(call["function"]["arguments"])
    return texts


def scan_cpu(records: list[dict]) -> tuple[float, float]:
    """New texts per call, and CPU seconds per call the default detectors take to scan them."""
    texts = new_texts(records)
    redactor = Redactor(cache_size=0)  # no cache: every scan is a real one
    start = time.thread_time()
    for text in texts:
        redactor.find(text)
    return len(texts) / len(records), (time.thread_time() - start) / len(records)


def bench(label: str, new_redactor: Callable[[], Redactor | None], n: int) -> None:
    rng = random.Random(0)
    records = make_records(n, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        # 1. hot path: per-call enqueue cost while the writer runs
        store = CaptureStore(path, redactor=new_redactor(), queue_size=n + 10)
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
    # 2. where the time goes: the build stage alone, in this thread, with a fresh redactor (cold cache)
    print(f"  the writer's build stage measured alone (redaction, rows, JSON; one thread): "
          f"{build_cpu(records, new_redactor()) / n * 1e6:.0f} us per call")
    if new_redactor() is not None:
        per_call, cpu = scan_cpu(records)
        print(f"  of which scanning the texts never seen before ({per_call:.2f} per call, the detectors alone): "
              f"{cpu * 1e6:.0f} us per call")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args()
    bench("redaction off", lambda: None, args.calls)
    bench("default redaction", Redactor, args.calls)


if __name__ == "__main__":
    main()
