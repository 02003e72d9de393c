"""Fixture capture databases for the dataset tests, written through the real CaptureStore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slm_agents.capture import CaptureStore

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ADD = {"type": "function", "function": {"name": "add", "description": "Add two integers",
       "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                      "required": ["a", "b"]}}}
TOOLS = [WEATHER, ADD]
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Dakar", "Hanoi", "Perth", "Bern", "Riga"]


def call(name: str, args: dict[str, Any], cid: str = "call_1") -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": text}]


def populate(store: CaptureStore) -> dict[str, Any]:
    """Two unlabelled prompt families on the same tools, a labelled task, failures, duplicates,
    an escalation pair and shadow pairs. Returns the ids worth asserting on."""
    ids: dict[str, Any] = {"weather": [], "math": []}
    for i, city in enumerate(CITIES):
        ids["weather"].append(store.log({
            "messages": user(f"What is the weather forecast in {city} today? Is it raining or sunny there?"),
            "tools": TOOLS, "route": "llm", "model": "gpt-big", "tool_calls": [call("get_weather", {"city": city})],
            "finish_reason": "tool_calls", "input_tokens": 120, "output_tokens": 15, "latency_ms": 300.0,
            "ts": f"2025-05-0{1 + i % 3}T10:00:{i:02d}Z"}))
    for i in range(12):
        ids["math"].append(store.log({
            "messages": user(f"Please add the integers {i} plus {i + 7} and compute the sum total number."),
            "tools": TOOLS, "route": "llm", "model": "gpt-big", "tool_calls": [call("add", {"a": i, "b": i + 7})],
            "finish_reason": "tool_calls", "input_tokens": 110, "output_tokens": 12, "latency_ms": 250.0,
            "ts": f"2025-05-0{1 + i % 3}T11:00:{i:02d}Z"}))
    # the same request again, whitespace and call id differing: a duplicate
    ids["duplicate"] = store.log({
        "messages": user("What is the weather forecast in  Paris today?\nIs it raining or sunny there?"),
        "tools": TOOLS, "route": "llm", "model": "gpt-big",
        "tool_calls": [call("get_weather", {"city": "Paris"}, "call_zz")], "ts": "2025-05-04T00:00:00Z"})
    ids["errored"] = store.log({"messages": user("add 1 and 2"), "tools": TOOLS, "route": "llm",
                                "error_type": "APIError", "error_message": "boom"})
    ids["cancelled"] = store.log({"messages": user("add 3 and 4"), "tools": TOOLS, "route": "llm",
                                  "content": "partial", "finish_reason": "cancelled"})
    # a labelled task, with a text answer among the tool calls
    ids["labelled"] = []
    for i in range(4):
        ids["labelled"].append(store.log({
            "messages": [{"role": "user", "content": f"triage ticket number {i}"}], "task": "triage",
            "route": "llm", "model": "gpt-big", "content": f"priority {i % 2}", "input_tokens": 50,
            "output_tokens": 5}))
    # an escalation: the SLM called the wrong tool, the LLM answered
    slm = store.log({"messages": user("weather in Nice?"), "tools": TOOLS, "route": "slm", "task": "triage-tools",
                     "tool_calls": [call("add", {"a": 1, "b": 2})], "confidence": 0.3, "valid": True})
    llm = store.log({"messages": user("weather in Nice?"), "tools": TOOLS, "route": "llm", "task": "triage-tools",
                     "tool_calls": [call("get_weather", {"city": "Nice"})], "escalation_reason": "low_confidence"})
    store.link_escalation(slm, llm, "low_confidence")
    ids["escalation"] = (slm, llm)
    # shadow pairs on the labelled task "router": confident ones agree, unconfident ones do not
    ids["shadow"] = []
    for i in range(10):
        city = CITIES[i]
        right = i < 7
        s = store.log({"messages": user(f"router weather {city}"), "tools": TOOLS, "route": "shadow",
                       "task": "router", "confidence": 0.9 if right else 0.4, "valid": True,
                       "tool_calls": [call("get_weather", {"city": city if right else "Nowhere"})]})
        l_ = store.log({"messages": user(f"router weather {city}"), "tools": TOOLS, "route": "llm",
                        "task": "router", "tool_calls": [call("get_weather", {"city": city})]})
        store.link_escalation(s, l_, "shadow")
        ids["shadow"].append((s, l_))
    store.label(ids["math"][0], "bad")
    store.label(ids["weather"][0], "gold")
    return ids


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "capture.db"
    store = CaptureStore(path, redactor=None)
    populate(store)
    assert store.flush(10)
    store.close()
    return path


@pytest.fixture
def db(db_path: Path) -> Any:
    from slm_agents.dataset import open_db

    database = open_db(db_path)
    yield database
    database.conn.close()
