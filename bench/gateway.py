"""Gateway overhead: one tool-calling step through ``slm-agents serve`` vs the same runtime in-process.

The gateway runs in its own process on 127.0.0.1 (uvicorn, as ``slm-agents serve`` runs it) with
capture on; the client is one keep-alive ``httpx.Client``. The in-process baseline calls the same
kind of runtime's ``complete`` directly, in this process, in the same run. With a FakeRuntime the
model costs ~nothing, so the difference is what the gateway adds: HTTP on loopback, JSON in and
out, request validation, the policy's routing and tool-call check, and the capture enqueue.
``--real`` repeats it on the default model (SmolLM2-135M, greedy, grammar-forced call), where
the gateway's share is lost in generation.

Run:
    python bench/gateway.py                    # fake runtime, 2000 requests, plain and streaming
    python bench/gateway.py --n 500 --real 20  # and 20 real-model steps

Prints p50/p99 per request in ms and the added latency; target: <= 2 ms p50 added.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MESSAGES = [{"role": "system", "content": "You are a weather assistant."},
            {"role": "user", "content": "What is the weather in Paris?"}]
CALL = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}], "confidence": 0.9}


def runtime(real: bool) -> Any:
    if real:
        from slm_agents import LlamaCppRuntime

        return LlamaCppRuntime(n_threads=int(os.environ.get("SLM_AGENTS_TEST_THREADS", "0")) or None)
    from slm_agents import FakeRuntime

    return FakeRuntime([CALL], cycle=True)


def run_server(port: int, real: bool, db: str) -> None:
    """The gateway process: what ``slm-agents serve`` builds, with the bench's runtime."""
    from slm_agents.capture import CaptureStore
    from slm_agents.policy import EscalationPolicy
    from slm_agents_gateway import Gateway, serve

    gateway = Gateway(runtime(real), policy=EscalationPolicy(), store=CaptureStore(db))
    serve(gateway, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the gateway process exited early")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the gateway did not start in 120 s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(n: int, real: bool, max_tokens: int) -> dict[str, list[float]]:
    import httpx

    rt = runtime(real)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), *(["--real-server"] if real else []),
                                 "--db", db])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(base, proc)
            body = {"model": "slm-agents/weather", "messages": MESSAGES, "tools": TOOLS, "tool_choice": "required",
                    "max_tokens": max_tokens}
            payload = json.dumps(body).encode()
            headers = {"content-type": "application/json"}
            out: dict[str, list[float]] = {"in-process": [], "gateway": [], "gateway (stream)": []}
            with httpx.Client(base_url=base, timeout=120) as client:

                def direct() -> None:
                    c = rt.complete(MESSAGES, TOOLS, "required", max_tokens=max_tokens)
                    assert c.tool_calls

                def plain() -> None:
                    r = client.post("/v1/chat/completions", content=payload, headers=headers)
                    assert r.status_code == 200 and r.json()["choices"][0]["message"]["tool_calls"]

                def streamed() -> None:
                    with client.stream("POST", "/v1/chat/completions", headers=headers,
                                       content=json.dumps({**body, "stream": True}).encode()) as r:
                        text = b"".join(r.iter_bytes())
                    assert r.status_code == 200 and text.endswith(b"data: [DONE]\n\n")

                sides = [("in-process", direct), ("gateway", plain), ("gateway (stream)", streamed)]
                for _, fn in sides:  # warm up (model load, connection, caches)
                    for _ in range(3 if real else 50):
                        fn()
                block = max(1, n // 20)
                done = 0
                while done < n:  # interleaved blocks: drift in machine load hits every side alike
                    k = min(block, n - done)
                    for name, fn in sides:
                        for _ in range(k):
                            start = time.perf_counter()
                            fn()
                            out[name].append((time.perf_counter() - start) * 1000)
                    done += k
            return out
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def report(title: str, out: dict[str, list[float]], judge: bool = True) -> None:
    base50, base99 = pct(out["in-process"], 0.5), pct(out["in-process"], 0.99)
    print(f"\n{title}: {len(out['in-process'])} requests per side")
    print(f"  {'side':<18} {'p50 ms':>9} {'p99 ms':>9} {'added p50':>10} {'added p99':>10}")
    for name, values in out.items():
        p50, p99 = pct(values, 0.5), pct(values, 0.99)
        added = "" if name == "in-process" else f"{p50 - base50:>+10.3f} {p99 - base99:>+10.3f}"
        print(f"  {name:<18} {p50:>9.3f} {p99:>9.3f} {added}")
    added50 = statistics.median(out["gateway"]) - statistics.median(out["in-process"])
    ratio = statistics.median(out["gateway"]) / statistics.median(out["in-process"])
    if judge:
        print(f"  gateway added p50: {added50:.3f} ms (target <= 2 ms): {'OK' if added50 <= 2.0 else 'OVER'}")
    else:  # generation dominates; the added milliseconds are within run-to-run noise
        print(f"  gateway added p50: {added50:.3f} ms; gateway / in-process p50 = {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="requests per side with the fake runtime")
    parser.add_argument("--real", type=int, default=0, help="requests per side on the default model (0: skip)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--real-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.serve, args.real_server, args.db)
        return
    report("FakeRuntime (the gateway's own cost)", measure(args.n, False, 64))
    if args.real:
        report("default model (SmolLM2-135M, forced tool call)", measure(args.real, True, 48), judge=False)


if __name__ == "__main__":
    main()
