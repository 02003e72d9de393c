"""A fixture capture file written through the real CaptureStore: SLM, LLM, escalations, hostile text."""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_agents.capture import CaptureStore

HOSTILE = '<script>alert("x")</script><img src=http://evil.example/x.png onerror=alert(1)> $\\frac{1}{0}$ & "q"'


def msgs(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def populate(store: CaptureStore) -> None:
    picks = []
    for i in range(6):
        picks.append(store.log({
            "messages": msgs(f"pick {i}"), "route": "slm", "task": "table_extractor", "model": "smollm2",
            "latency_ms": 120.0 + i * 10, "input_tokens": 200, "output_tokens": 20,
            "tool_calls": [{"id": f"pick-{i}", "type": "function", "function": {"name": "select_table",
                                                                                "arguments": "{}"}}],
            "ts": f"2025-05-01T10:0{i}:00.000Z"}))
    # outcomes: one pick's tool call failed (linked by the tool call's id), one was marked failed after
    store.log_tool({"call_id": "pick-0", "name": "select_table", "error": "no such table: clients"})
    store.label(picks[1], "failed")
    store.label(picks[2], "verified")
    for i in range(3):
        slm = store.log({"messages": msgs(f"sql {i}"), "route": "slm", "task": "query_writer", "model": "smollm2",
                         "latency_ms": 300.0, "input_tokens": 250, "output_tokens": 40, "escalation_reason": "truncated",
                         "finish_reason": "length", "ts": f"2025-05-01T10:1{i}:00.000Z"})
        llm = store.log({"messages": msgs(f"sql {i}"), "route": "llm", "task": "query_writer", "model": "gpt-big",
                         "latency_ms": 2400.0 + i, "input_tokens": 250, "output_tokens": 30,
                         "escalation_reason": "truncated", "ts": f"2025-05-01T10:1{i}:01.000Z"})
        store.link_escalation(slm, llm, "truncated")
    store.log({"messages": msgs("plan"), "route": "slm", "task": "researcher", "model": "smollm2",
               "latency_ms": 900.0, "input_tokens": 300, "output_tokens": 80, "escalation_reason": "route:llm_tasks",
               "ts": "2025-05-01T10:20:00.000Z"})
    store.log({"messages": msgs(HOSTILE), "route": "slm", "task": HOSTILE, "model": HOSTILE,
               "latency_ms": 50.0, "input_tokens": 10, "output_tokens": 1, "escalation_reason": HOSTILE,
               "ts": "2025-05-01T10:21:00.000Z"})


@pytest.fixture
def capture_file(tmp_path: Path) -> Path:
    path = tmp_path / "capture.db"
    store = CaptureStore(path, redactor=None)
    populate(store)
    store.close()
    return path
