"""The store's public behaviour: logging, records, blobs, counters, policies and failures."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time

import pytest
from sqlite_utils import Database

from slm_agents.capture import CaptureStore, get_default_store, read_call, set_default_store
from slm_agents.errors import CaptureError, InvalidRequest
from slm_agents.types import Completion, Usage

from .conftest import msg

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_log_returns_id_and_row_has_every_field(mem_store):
    cid = mem_store.log({
        "messages": msg("weather in Oslo?"), "run_id": "r1", "parent_run_id": "p1", "thread_id": "t1",
        "framework": "langgraph", "task": "weather", "runtime": "llamacpp", "model_requested": "smol",
        "model": "smol-q4", "route": "slm", "tools": TOOLS, "tool_choice": "auto", "params": {"temperature": 0},
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}],
        "finish_reason": "tool_calls", "valid": True, "confidence": 0.9, "latency_ms": 12.5, "ttft_ms": 3,
        "input_tokens": 40, "output_tokens": 9, "tags": ["a"], "metadata": {"k": 1}, "surprise": "x",
    })
    assert mem_store.flush()
    row = mem_store.db["calls"].get(cid)
    assert row["task"] == "weather" and row["route"] == "slm" and row["valid"] == 1
    assert row["ts"].endswith("Z") and row["ts"][:2] == "20"
    assert json.loads(row["tool_names"]) == ["get_weather"]
    assert json.loads(row["metadata"]) == {"k": 1, "surprise": "x"}  # unknown keys land in metadata
    full = read_call(mem_store.db, cid)
    assert full["tools"] == TOOLS
    assert full["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}'
    assert full["valid"] is True


def test_log_requires_messages_and_a_mapping(mem_store):
    with pytest.raises(InvalidRequest):
        mem_store.log({"content": "no messages"})
    with pytest.raises(InvalidRequest):
        mem_store.log(["not", "a", "dict"])  # type: ignore[arg-type]


def test_caller_supplied_id_and_ts_are_kept(mem_store):
    cid = mem_store.log({"id": "my-id", "ts": "2024-05-01T00:00:00Z", "messages": msg()})
    assert cid == "my-id"
    mem_store.flush()
    assert mem_store.db["calls"].get("my-id")["ts"] == "2024-05-01T00:00:00Z"


def test_log_completion_tool_escalation_and_label(mem_store):
    completion = Completion(
        message={"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        finish_reason="tool_calls", usage=Usage(input_tokens=30, output_tokens=7), latency_ms=40.0,
        confidence=0.4, model="smol", runtime="fake",
        invalid_tool_calls=[{"id": "c2", "name": "nope", "arguments": "{", "error": "bad json"}],
    )
    slm = mem_store.log_completion(completion, messages=msg(), tools=TOOLS, route="slm", task="weather")
    llm = mem_store.log({"messages": msg(), "route": "llm", "escalation_reason": "invalid_tool_call"})
    esc = mem_store.link_escalation(slm, llm, "invalid_tool_call", threshold=0.5)
    tool = mem_store.log_tool({"call_id": "c1", "model_call_id": llm, "name": "get_weather",
                               "arguments": '{"city": "Oslo"}', "result": {"temp": 3}, "latency_ms": 2})
    failed_tool = mem_store.log_tool({"call_id": "c3", "name": "get_weather", "arguments": {},
                                      "error": TimeoutError("too slow")})
    label = mem_store.label(slm, "bad", score=0.0, note="wrong tool", reviewer="ann")
    assert mem_store.flush()
    row = mem_store.db["calls"].get(slm)
    assert (row["input_tokens"], row["output_tokens"], row["valid"], row["model"]) == (30, 7, 0, "smol")
    assert json.loads(row["metadata"])["invalid_tool_calls"][0]["name"] == "nope"
    e = mem_store.db["escalations"].get(esc)
    assert (e["slm_call_id"], e["llm_call_id"], e["reason"]) == (slm, llm, "invalid_tool_call")
    assert json.loads(e["metadata"]) == {"threshold": 0.5}
    t = mem_store.db["tool_executions"].get(tool)
    assert json.loads(t["arguments"]) == {"city": "Oslo"} and json.loads(t["result"]) == {"temp": 3}
    f = mem_store.db["tool_executions"].get(failed_tool)
    assert (f["error_type"], f["error_message"], f["result"]) == ("TimeoutError", "too slow", None)
    lab = mem_store.db["labels"].get(label)
    assert (lab["target_id"], lab["label"], lab["score"], json.loads(lab["extra"])) == (slm, "bad", 0.0, {"reviewer": "ann"})
    full = read_call(mem_store.db, llm)
    assert [x["id"] for x in full["escalations"]] == [esc]
    assert [x["id"] for x in full["tool_executions"]] == [tool]


def test_long_texts_and_tools_are_stored_once_as_blobs(mem_store):
    system = {"role": "system", "content": "You are a careful agent. " * 100}
    ids = [mem_store.log({"messages": [system, *msg(f"q{i}")], "tools": TOOLS}) for i in range(5)]
    mem_store.flush()
    assert mem_store.db["blobs"].count == 2  # one system prompt, one tools list
    stored = json.loads(mem_store.db["calls"].get(ids[0])["messages"])
    assert set(stored[0]["content"]) == {"$blob"}
    assert read_call(mem_store.db, ids[3])["messages"][0] == system


def test_stats_counters_add_up(mem_store):
    for _ in range(7):
        mem_store.log({"messages": msg()})
    mem_store.flush()
    s = mem_store.stats
    assert (s.enqueued, s.written, s.dropped, s.failed_writes, s.queued) == (7, 7, 0, 0, 0)
    assert mem_store.written == 7 and mem_store.db["calls"].count == 7


def test_full_queue_drops_newest_and_counts(db_path):
    gate = threading.Event()
    store = CaptureStore(db_path, redactor=None, queue_size=5, batch_size=1,
                         on_connect=lambda conn: gate.wait(10))  # the writer is stuck opening
    try:
        started = time.perf_counter()
        ids = [store.log({"messages": msg(str(i))}) for i in range(40)]
        assert time.perf_counter() - started < 2.0  # log() did not wait for the stuck writer
        assert len(set(ids)) == 40
        before = store.stats
        assert before.dropped > 0 and before.enqueued + before.dropped == 40  # counted while stuck
        gate.set()
        assert store.flush(10)
        s = store.stats
        assert s.enqueued + s.dropped == 40
        assert store.db["calls"].count == s.written == s.enqueued
    finally:
        gate.set()
        store.close()


def test_block_policy_waits_instead_of_dropping(db_path):
    with CaptureStore(db_path, redactor=None, queue_size=2, batch_size=1, on_full="block") as store:
        for i in range(50):
            store.log({"messages": msg(str(i))})
        assert store.flush(10)
        assert store.stats.dropped == 0 and store.db["calls"].count == 50


def test_write_failures_are_counted_never_raised(db_path, caplog):
    # a real "disk full": the writer's connection may not grow the file past its current size
    def tiny_disk(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    secret = "my-secret-prompt-text"
    with caplog.at_level(logging.WARNING, logger="slm_agents.capture"):
        store = CaptureStore(db_path, redactor=None, on_connect=tiny_disk)
        for i in range(300):
            store.log({"messages": msg(f"{secret} {'x' * 2000} {i}")})
        assert store.flush(20)
        s = store.stats
        store.close()
    assert s.failed_writes > 0 and s.written + s.failed_writes == 300
    assert "not stored" in caplog.text
    assert secret not in caplog.text  # never prompt content in the log


def test_read_only_database_does_not_break_the_agent(db_path):
    store = CaptureStore(db_path, redactor=None, on_connect=lambda c: c.execute("PRAGMA query_only = 1"))
    try:
        ids = [store.log({"messages": msg()}) for _ in range(10)]
        assert len(ids) == 10
        assert store.flush(20)
        assert store.stats.failed_writes == 10 and store.stats.written == 0
    finally:
        store.close()


def test_unopenable_path_raises_a_capture_error_that_says_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CaptureError, match="Check the path is writable"):
        CaptureStore(blocker / "sub" / "x.db")


def test_after_close_logging_is_dropped_not_raised(db_path):
    store = CaptureStore(db_path, redactor=None)
    store.log({"messages": msg()})
    store.close()
    store.close()  # idempotent
    store.log({"messages": msg()})
    assert store.stats.dropped == 1
    assert Database(db_path)["calls"].count == 1  # close flushed what was queued


def test_env_and_default_store(tmp_path, monkeypatch):
    path = tmp_path / "env.db"
    monkeypatch.setenv("SLM_AGENTS_DB", str(path))
    store = get_default_store(redactor=None)
    try:
        assert store is get_default_store()
        assert store.path == path
        store.log({"messages": msg()})
        assert store.flush(10)
        assert Database(path)["calls"].count == 1
    finally:
        store.close()
        set_default_store(None)
    assert get_default_store() is not store  # a closed default is replaced
    get_default_store().close()
    set_default_store(None)


def test_shared_memory_database_uses_the_background_thread():
    db = Database(memory_name="capture_shared_test")
    with CaptureStore(db, redactor=None) as store:
        assert not store._inline
        store.log({"messages": msg()})
        assert store.flush(10)
        assert db["calls"].count == 1


async def test_async_flush_and_close(db_path):
    store = CaptureStore(db_path, redactor=None)
    store.log({"messages": msg()})
    assert await store.aflush(10)
    await store.aclose()
    assert Database(db_path)["calls"].count == 1
    await asyncio.sleep(0)
