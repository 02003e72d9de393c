"""Benchmark what SLMCaptureHandler costs an agent loop: the same LangGraph run with capture on and off.

Run:  python bench/bench_capture_overhead.py [--runs 300] [--real-runs 3] [--no-redaction]

Two loops, each a ``create_agent`` ReAct agent with three tools, a ~1.5 kB system prompt and a
growing conversation (one tool step, then the answer: two model calls and one tool execution
per run):

1. ``fake``: ChatSLM on the core FakeRuntime (no model time at all), so what is measured is
   LangGraph + LangChain + the handler: the worst case for the relative overhead.
2. ``real``: ChatSLM on the packaged SmolLM2-135M (forced first tool call, small max_tokens).

Runs are interleaved (off/on, then on/off, ...) so drift and other load on the machine hit both
sides alike; the medians and their ratio are printed. Capture writes to a temporary SQLite file
through the default store settings (redaction on, background writer thread).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import wrap_model_call
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool

from langchain_slm import ChatSLM, SLMCaptureHandler
from slm_agents.capture import CaptureStore
from slm_agents.runtimes.fake import FakeRuntime

SYSTEM = ("You are a support agent for ACME. Use the tools to look up orders, refund payments and "
          "escalate to a human when the customer asks. Be concise. " * 12)


@tool
def lookup_order(order_number: int) -> str:
    """Look up the status of an order by its number."""
    return f"Order {order_number}: shipped on Monday."


@tool
def refund_payment(order_number: int, amount: float) -> str:
    """Refund a payment."""
    return "refunded"


@tool
def escalate_to_human(reason: str) -> str:
    """Hand the conversation to a human."""
    return "escalated"


TOOLS = [lookup_order, refund_payment, escalate_to_human]


@wrap_model_call
def force_first_tool(request, handler):  # type: ignore[no-untyped-def]
    used_tool = any(isinstance(m, ToolMessage) for m in request.messages)
    return handler(request.override(tool_choice="none" if used_tool else "lookup_order"))


def fake_agent() -> Any:
    runtime = FakeRuntime([
        {"tool_calls": [{"name": "lookup_order", "arguments": {"order_number": 17}}], "confidence": 0.9,
         "usage": (420, 12)},
        {"content": "Order 17 shipped on Monday.", "usage": (460, 9)},
    ], cycle=True)
    return create_agent(ChatSLM(runtime=runtime), TOOLS, system_prompt=SYSTEM)


def real_agent() -> Any:
    model = ChatSLM(max_tokens=24, temperature=0.0)
    return create_agent(model, TOOLS, system_prompt=SYSTEM, middleware=[force_first_tool])


def one_run(agent: Any, handler: SLMCaptureHandler | None, i: int) -> float:
    config: dict[str, Any] = {"configurable": {"thread_id": f"bench-{i}"}}
    if handler is not None:
        config["callbacks"] = [handler]
    start = time.perf_counter()
    agent.invoke({"messages": [("user", f"Customer {i}: where is order 17? Mail me at u{i}@example.com")]}, config)
    return time.perf_counter() - start


def compare(name: str, agent: Any, handler: SLMCaptureHandler, runs: int, warmup: int) -> None:
    for i in range(warmup):
        one_run(agent, None, i)
        one_run(agent, handler, i)
    off: list[float] = []
    on: list[float] = []
    for i in range(runs):
        pair = [(off, None), (on, handler)]
        for bucket, h in pair if i % 2 == 0 else reversed(pair):
            bucket.append(one_run(agent, h, i))
    handler.flush(60)
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"{name}: {runs} interleaved runs each (2 model calls + 1 tool per run)")
    print(f"  capture off  median {m_off * 1000:9.3f} ms   (p10 {_pct(off, 10) * 1000:.3f}, p90 {_pct(off, 90) * 1000:.3f})")
    print(f"  capture on   median {m_on * 1000:9.3f} ms   (p10 {_pct(on, 10) * 1000:.3f}, p90 {_pct(on, 90) * 1000:.3f})")
    print(f"  ratio on/off {m_on / m_off:.4f}  ({(m_on / m_off - 1) * 100:+.2f} %, {(m_on - m_off) * 1e6:+.0f} us per run)")
    print(f"  store: {handler.store.stats.as_dict()}  handler failures: {handler.failures}")


def _pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="interleaved pairs on the fake runtime")
    parser.add_argument("--real-runs", type=int, default=3, help="interleaved pairs on the real model (0: skip)")
    parser.add_argument("--no-redaction", action="store_true", help="store without PII redaction")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = CaptureStore(Path(tmp) / "bench.db", redactor=None if args.no_redaction else "default")
        handler = SLMCaptureHandler(store)
        compare("fake runtime (LangGraph + handler only)", fake_agent(), handler, args.runs, warmup=20)
        if args.real_runs:
            compare("SmolLM2-135M (real model)", real_agent(), handler, args.real_runs, warmup=1)
        store.close()


if __name__ == "__main__":
    main()
