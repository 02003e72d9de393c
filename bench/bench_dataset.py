"""Benchmark the loop after capture: export, task clustering and replay-evaluation throughput.

Run:  python bench/bench_dataset.py [--calls 100000] [--real-cases 4] [--keep DB]

Synthesises ``--calls`` captured calls (written through CaptureStore, redaction off) into a
temporary database: five task families, two of them labelled, three unlabelled on shared tools
with a ~1.5 kB system prompt (stored once as a blob) and 0-3 earlier turns, plus escalation pairs.
Then times:

* ``export`` to OpenAI JSONL (target <= 10 s for 100,000 calls),
* ``cluster_tasks`` (target <= 30 s),
* replay evaluation on FakeRuntime and on the real default model (cases/s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time

from slm_agents.capture import CaptureStore
from slm_agents.dataset import cases_from_db, cluster_tasks, export_dataset, open_db
from slm_agents.evaluate import evaluate
from slm_agents.runtimes.fake import FakeRuntime

SYSTEM = ("You are the ACME operations agent. Use the tools to look up orders, check the weather for "
          "deliveries and do arithmetic. Answer briefly. " * 12)


def tool(name: str, **props: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": {
        "type": "object", "properties": {k: {"type": v} for k, v in props.items()}, "required": list(props)}}}


SHARED = [tool("get_weather", city="string"), tool("add", a="integer", b="integer"),
          tool("lookup_order", order_id="string")]
TRIAGE = [tool("set_priority", level="integer")]
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Dakar", "Hanoi", "Perth"]


def record(i: int, rng: random.Random) -> dict:
    family = i % 5
    history = []
    for t in range(rng.randint(0, 3)):
        history += [{"role": "user", "content": f"Earlier question {t}"},
                    {"role": "assistant", "content": f"Earlier answer {t}."}]
    if family == 0:
        city = rng.choice(CITIES)
        text, name, args = f"What's the weather forecast in {city} for delivery {i}?", "get_weather", {"city": city}
    elif family == 1:
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        text, name, args = f"Please add {a} and {b} for invoice {i}, the sum total.", "add", {"a": a, "b": b}
    elif family == 2:
        text, name, args = f"Where is my order A{i:06d}? Track shipment status.", "lookup_order", {"order_id": f"A{i:06d}"}
    elif family == 3:
        return {"messages": [{"role": "user", "content": f"Ticket {i}: the app crashes on login."}],
                "tools": TRIAGE, "task": "triage", "route": "llm", "model": "gpt-big",
                "tool_calls": [{"id": f"c{i}", "type": "function", "function": {
                    "name": "set_priority", "arguments": json.dumps({"level": i % 3})}}],
                "input_tokens": 60, "output_tokens": 8, "latency_ms": 400.0}
    else:
        return {"messages": [{"role": "user", "content": f"Summarise ticket {i} in one line."}],
                "task": "summarise", "route": "llm", "model": "gpt-big",
                "content": f"Ticket {i}: login crash, needs a fix.", "input_tokens": 40, "output_tokens": 12}
    return {"messages": [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": text}],
            "tools": SHARED, "route": "llm", "model": "gpt-big",
            "tool_calls": [{"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}],
            "input_tokens": 500, "output_tokens": 20, "latency_ms": 600.0}


def synthesise(path: str, calls: int) -> float:
    rng = random.Random(0)
    start = time.perf_counter()
    store = CaptureStore(path, redactor=None, queue_size=20_000, on_full="block", batch_size=2000)
    for i in range(calls):
        store.log(record(i, rng))
        if i % 200 == 0 and i:
            slm = store.log({**record(i, rng), "route": "slm", "confidence": 0.3,
                             "tool_calls": [{"id": "x", "type": "function",
                                             "function": {"name": "add", "arguments": '{"a": 0, "b": 0}'}}]})
            llm = store.log(record(i, rng))
            store.link_escalation(slm, llm, "low_confidence")
    store.flush()
    store.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--fake-cases", type=int, default=2000)
    parser.add_argument("--real-cases", type=int, default=4, help="0 skips the real model")
    parser.add_argument("--keep", help="Use/keep this database file instead of a temporary one.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or os.path.join(tmp, "bench.db")
        if not os.path.exists(path):
            secs = synthesise(path, args.calls)
            print(f"synthesised {args.calls} calls in {secs:.1f} s ({os.path.getsize(path) / 1e6:.0f} MB)")
        db = open_db(path)
        total = db["calls"].count

        start, cpu = time.perf_counter(), time.process_time()
        result = export_dataset(db, os.path.join(tmp, "openai"), format="openai", progress=False)
        secs, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"export openai: {result.train + result.validation} examples from {result.scanned} rows in "
              f"{secs:.2f} s wall, {cpu:.2f} s CPU ({result.scanned / secs:,.0f} rows/s)  target <= 10 s  "
              f"{'OK' if secs <= 10 else 'SLOW'}")

        start, cpu = time.perf_counter(), time.process_time()
        tasks = cluster_tasks(db)
        secs, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"cluster_tasks: {total} calls -> {len(tasks)} tasks in {secs:.2f} s wall, {cpu:.2f} s CPU  "
              f"target <= 30 s  "
              f"{'OK' if secs <= 30 else 'SLOW'}")
        for t in tasks:
            print(f"   {t.id}  {t.calls:>6}  {t.label[:80]}")

        start = time.perf_counter()
        cases = cases_from_db(db, limit=args.fake_cases // max(1, len(tasks)))
        load_secs = time.perf_counter() - start
        rt = FakeRuntime([{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "confidence": 0.9}],
                         cycle=True)
        start = time.perf_counter()
        evaluate(rt, cases)
        secs = time.perf_counter() - start
        print(f"eval on FakeRuntime: {len(cases)} cases (loaded in {load_secs:.2f} s) in {secs:.2f} s "
              f"({len(cases) / secs:,.0f} cases/s)")

        if args.real_cases:
            from slm_agents.runtimes.llamacpp import LlamaCppRuntime

            runtime = LlamaCppRuntime(max_tokens=48)
            runtime.complete([{"role": "user", "content": "hi"}], max_tokens=1)  # load the model first
            sample = cases_from_db(db, task_id="triage", limit=args.real_cases // 2) + \
                [c for c in cases if c.task.startswith("t-")][: args.real_cases - args.real_cases // 2]
            start = time.perf_counter()
            report = evaluate(runtime, sample, max_tokens=48)
            secs = time.perf_counter() - start
            print(f"eval on the default model: {len(sample)} cases in {secs:.2f} s ({len(sample) / secs:.2f} cases/s); "
                  + ", ".join(f"{k}: readiness {v.readiness:.2f}" for k, v in report.tasks.items()))
        db.conn.close()


if __name__ == "__main__":
    main()
