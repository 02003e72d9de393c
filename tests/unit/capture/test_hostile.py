"""Hostile input: huge, malformed, SQL-looking, deeply nested and unencodable values."""

from __future__ import annotations

import json

from slm_agents.capture import CaptureStore, read_call
from slm_agents.capture._utils import CYCLE_MARKER, DEPTH_MARKER

from .conftest import msg


def _row(store, cid):
    assert store.flush(30)
    return store.db["calls"].get(cid)


def test_ten_megabyte_message_is_cut_with_a_clear_marker(file_store):
    big = "A" * 10_000_000
    cid = file_store.log({"messages": msg(big), "content": big})
    row = _row(file_store, cid)
    assert set(json.loads(row["messages"])[0]["content"]) == {"$blob"}  # long text: stored once
    stored = read_call(file_store.db, cid)["messages"][0]["content"]
    assert stored.startswith("A" * 1000) and "truncated, 9000000 more characters not stored" in stored
    assert len(stored) < 1_100_000
    assert row["truncated"] == 2 and row["content"].endswith("more characters not stored>")


def test_ten_megabyte_message_stored_whole_when_asked(db_path):
    big = "B" * 10_000_000
    with CaptureStore(db_path, redactor=None, max_string_chars=None) as store:
        cid = store.log({"messages": msg(big)})
        assert store.flush(30)
        assert read_call(store.db, cid)["messages"][0]["content"] == big


def test_lone_surrogates_are_stored_safely(mem_store):
    bad = "ok \ud800 and \udfff end"
    cid = mem_store.log({"messages": msg(bad), "content": bad, "task": "t\udc80", "metadata": {"k\ud801": bad}})
    row = _row(mem_store, cid)
    assert json.loads(row["messages"])[0]["content"] == bad  # lossless in JSON columns
    assert row["content"] == "ok \ufffd and \ufffd end"  # replaced in text columns
    assert row["task"] == "t\ufffd"
    assert mem_store.stats.failed_writes == 0


def test_sql_looking_strings_are_just_text(file_store):
    evil = "'); DROP TABLE calls; --"
    cid = file_store.log({"messages": msg(evil), "task": evil, "run_id": "x' OR '1'='1", "content": evil})
    row = _row(file_store, cid)
    assert row["task"] == evil and row["content"] == evil
    assert "calls" in file_store.db.table_names()


def test_deeply_nested_tool_arguments_do_not_escape_as_recursion_error(mem_store):
    deep: dict = {}
    cursor = deep
    for _ in range(5000):
        cursor["x"] = {}
        cursor = cursor["x"]
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": deep}}
    cid = mem_store.log({"messages": msg(), "tool_calls": [call], "metadata": {"deep": deep}})
    tool = mem_store.log_tool({"call_id": "c1", "name": "f", "arguments": deep, "result": deep})
    row = _row(mem_store, cid)
    assert DEPTH_MARKER in row["tool_calls"] and row["truncated"] >= 1
    assert DEPTH_MARKER in mem_store.db["tool_executions"].get(tool)["arguments"]
    assert mem_store.stats.failed_writes == 0


def test_deeply_nested_json_string_arguments(mem_store):
    arguments = '{"a": ' * 5000 + "1" + "}" * 5000
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    cid = mem_store.log({"messages": msg(), "tool_calls": [call]})
    row = _row(mem_store, cid)
    assert mem_store.stats.failed_writes == 0
    assert row["tool_calls"] is not None


class Weird:
    def __repr__(self) -> str:
        return "<Weird thing>"


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_unencodable_objects_become_text(mem_store):
    cyclic: list = []
    cyclic.append(cyclic)
    cid = mem_store.log({
        "messages": [{"role": "user", "content": Weird()}],
        "params": {"stop": {"a", "b"}, "raw": b"\xff\x00", "nan": float("nan")},
        "metadata": {"obj": Weird(), "broken": Broken(), "cycle": cyclic, "tuple": (1, 2)},
        "latency_ms": "not a number", "input_tokens": object(),
    })
    row = _row(mem_store, cid)
    assert json.loads(row["messages"])[0]["content"] == "<Weird thing>"
    meta = json.loads(row["metadata"])
    assert meta["obj"] == "<Weird thing>" and meta["broken"] == "<unrepresentable Broken>"
    assert meta["cycle"] == [CYCLE_MARKER] and meta["tuple"] == [1, 2]
    params = json.loads(row["params"])
    assert sorted(params["stop"]) == ["a", "b"] and params["raw"].startswith("base64:") and params["nan"] == "nan"
    assert row["latency_ms"] is None and row["input_tokens"] is None


def test_pydantic_like_objects_are_dumped(mem_store):
    class Message:
        def model_dump(self):
            return {"role": "user", "content": "from a model_dump, mail a@b.io"}

    cid = mem_store.log({"messages": [Message()]})
    row = _row(mem_store, cid)
    assert json.loads(row["messages"]) == [{"role": "user", "content": "from a model_dump, mail <EMAIL_1>"}]
