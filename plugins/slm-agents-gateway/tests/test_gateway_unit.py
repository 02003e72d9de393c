"""The gateway on fakes, in process: Starlette's TestClient and httpx's ASGITransport."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlite_utils import Database
from starlette.testclient import TestClient

from slm_agents import FakeRuntime
from slm_agents.capture import CaptureStore
from slm_agents.cli import cli
from slm_agents.errors import GenerationError
from slm_agents.policy import EscalationPolicy
from slm_agents.runtimes._lora import current_task_adapter
from slm_agents_gateway import Gateway

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
USER = [{"role": "user", "content": "Weather in Paris?"}]
CALL = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}], "confidence": 0.9}
BAD_CALL = {"tool_calls": [{"name": "get_time", "arguments": {}}], "confidence": 0.9}


@pytest.fixture
def store() -> Iterator[CaptureStore]:
    s = CaptureStore(Database(memory=True), redactor=None)
    yield s
    s.close()


def rows(store: CaptureStore) -> list[dict[str, Any]]:
    assert store.flush(5)
    return list(store.db.query("select * from calls order by id"))


def chat(client: TestClient, **body: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": "slm-agents", "messages": USER, **body})


def sse_events(text: str) -> list[Any]:
    out: list[Any] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


# -- routing, headers, metadata, capture ------------------------------------------------------------
def test_gateway_slm_answers_a_tool_call_and_captures_one_row(store: CaptureStore) -> None:
    slm = FakeRuntime([CALL])
    with TestClient(Gateway(slm, llm=FakeRuntime(["unused"]), store=store, close_store=False).app) as client:
        r = chat(client, model="slm-agents/weather", tools=[WEATHER], tool_choice="required", max_completion_tokens=40)
    assert r.status_code == 200, r.text
    body = r.json()
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert body["choices"][0]["finish_reason"] == "tool_calls" and body["object"] == "chat.completion"
    assert body["model"] == "slm-agents/weather" and body["usage"]["total_tokens"] == 15
    assert r.headers["x-slm-agents-route"] == "slm" and "x-slm-agents-reason" not in r.headers
    assert r.headers["x-slm-agents-task"] == "weather" and r.headers["x-slm-agents-run-id"] == body["id"]
    assert body["slm_agents"]["route"] == "slm" and body["slm_agents"]["confidence"] == 0.9
    assert slm.requests[0]["sampling"] == {"max_tokens": 40}  # OpenAI's name mapped to the runtime's
    [row] = rows(store)
    assert (row["route"], row["task"], row["framework"], row["run_id"]) == ("slm", "weather", "gateway", body["id"])
    assert row["model_requested"] == "slm-agents/weather" and row["valid"] == 1
    assert store.get_call(row["id"])["tools"][0]["function"]["name"] == "get_weather"


def test_gateway_escalates_a_bad_tool_call_and_records_the_reason(store: CaptureStore) -> None:
    llm = FakeRuntime([CALL], model="big-llm")
    with TestClient(Gateway(FakeRuntime([BAD_CALL]), llm=llm, store=store, close_store=False).app) as client:
        r = chat(client, tools=[WEATHER])
    assert r.status_code == 200
    assert r.headers["x-slm-agents-route"] == "llm" and r.headers["x-slm-agents-reason"] == "unknown_tool"
    meta = r.json()["slm_agents"]
    assert meta["reason"] == "unknown_tool" and "get_time" in meta["detail"] and meta["model"] == "big-llm"
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    slm_row, llm_row = rows(store)
    assert (slm_row["route"], slm_row["escalation_reason"], slm_row["valid"]) == ("slm", "unknown_tool", 0)
    assert (llm_row["route"], llm_row["escalation_reason"], llm_row["model"]) == ("llm", "unknown_tool", "big-llm")
    [esc] = store.db.query("select * from escalations")
    assert (esc["slm_call_id"], esc["llm_call_id"], esc["reason"]) == (slm_row["id"], llm_row["id"], "unknown_tool")


def test_gateway_per_task_threshold_and_adapter_come_from_the_policy(store: CaptureStore) -> None:
    seen: list[str | None] = []

    class Recording(FakeRuntime):
        def complete(self, *args: Any, **kwargs: Any) -> Any:
            seen.append(current_task_adapter())
            return super().complete(*args, **kwargs)

    policy = EscalationPolicy(task_thresholds={"strict": 0.95}, task_adapters={"strict": "strict/adapter.gguf"})
    gw = Gateway(Recording([CALL, CALL]), llm=FakeRuntime([CALL]), policy=policy, store=store, close_store=False)
    with TestClient(gw.app) as client:
        loose = chat(client, model="slm-agents/loose", tools=[WEATHER])
        strict = client.post("/v1/chat/completions", headers={"x-slm-agents-task": "strict"},
                             json={"model": "gpt-4o", "messages": USER, "tools": [WEATHER]})
        models = client.get("/v1/models").json()
    assert loose.headers["x-slm-agents-route"] == "slm"
    assert strict.headers["x-slm-agents-route"] == "llm" and strict.headers["x-slm-agents-reason"] == "low_confidence"
    assert strict.headers["x-slm-agents-task"] == "strict"
    assert seen == [None, "strict/adapter.gguf"]
    assert [m["id"] for m in models["data"]] == ["slm-agents", "slm-agents/strict"]


def test_gateway_without_an_llm_keeps_the_slm_answer_and_reports_why() -> None:
    with TestClient(Gateway(FakeRuntime([BAD_CALL]), store=None).app) as client:
        r = chat(client, tools=[WEATHER])
    assert r.status_code == 200 and r.headers["x-slm-agents-route"] == "slm"
    assert r.headers["x-slm-agents-reason"] == "unknown_tool"


# -- streaming ----------------------------------------------------------------------------------------
def test_gateway_streams_an_slm_tool_call_as_openai_chunks(store: CaptureStore) -> None:
    with TestClient(Gateway(FakeRuntime([CALL]), store=store, close_store=False).app) as client:
        r = chat(client, tools=[WEATHER], stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-slm-agents-route"] == "slm"
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and chunks[0]["slm_agents"]["route"] == "slm"
    call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert call["index"] == 0 and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert len({c["id"] for c in chunks}) == 1
    assert [row["route"] for row in rows(store)] == ["slm"]


def test_gateway_streams_the_escalated_llm_answer(store: CaptureStore) -> None:
    llm = FakeRuntime(["The weather in Paris is sunny."], model="big-llm")
    with TestClient(Gateway(FakeRuntime([BAD_CALL]), llm=llm, store=store, close_store=False).app) as client:
        r = chat(client, tools=[WEATHER], stream=True)
    assert r.headers["x-slm-agents-route"] == "llm" and r.headers["x-slm-agents-reason"] == "unknown_tool"
    chunks = sse_events(r.text)[:-1]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "The weather in Paris is sunny."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["slm_agents"]["model"] == "big-llm"
    assert [(row["route"], row["escalation_reason"]) for row in rows(store)] == [("slm", "unknown_tool"), ("llm", "unknown_tool")]
    assert store.db["escalations"].count == 1


def test_gateway_upstream_failing_mid_stream_is_an_error_event_and_is_captured(store: CaptureStore) -> None:
    class Breaks(FakeRuntime):
        def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            for i, chunk in enumerate(super().stream(*args, **kwargs)):
                if i == 2:
                    raise GenerationError("connection reset")
                yield chunk

    with TestClient(Gateway(FakeRuntime([BAD_CALL]), llm=Breaks(["one two three four"]), store=store,
                            close_store=False).app) as client:
        r = chat(client, tools=[WEATHER], stream=True)
        again = chat(client, tools=[WEATHER])  # the gateway keeps serving (the fakes are now empty: 502)
    events = sse_events(r.text)
    assert events[-1]["error"]["type"] == "upstream_error" and "[DONE]" not in events
    assert again.status_code == 502 and again.json()["error"]["type"] == "upstream_error"
    captured = rows(store)
    assert captured[1]["route"] == "llm" and captured[1]["error_type"] == "GenerationError"


# -- failures -----------------------------------------------------------------------------------------
def test_gateway_slm_error_without_llm_is_500_in_openai_shape_and_captured(store: CaptureStore) -> None:
    with TestClient(Gateway(FakeRuntime([GenerationError("boom")]), store=store, close_store=False).app) as client:
        r = chat(client, tools=[WEATHER])
        health = client.get("/healthz")
    assert r.status_code == 500 and r.json()["error"]["code"] == "slm_failed"
    assert health.json() == {"status": "ok", "in_flight": 0}
    [row] = rows(store)
    assert row["error_type"] == "GenerationError" and row["route"] == "slm"


def test_gateway_upstream_error_is_502_and_the_slm_attempt_is_kept(store: CaptureStore) -> None:
    llm = FakeRuntime([ConnectionError("refused")])
    with TestClient(Gateway(FakeRuntime([BAD_CALL]), llm=llm, store=store, close_store=False).app) as client:
        r = chat(client, tools=[WEATHER])
        s = chat(client, tools=[WEATHER], stream=True)  # both fakes are empty now: the SLM fails, then the LLM
    assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
    assert r.headers["x-slm-agents-route"] == "llm" and r.headers["x-slm-agents-reason"] == "unknown_tool"
    assert s.status_code == 502  # an upstream that fails before its first chunk fails before any byte is sent
    first = rows(store)[:2]
    assert [(x["route"], x["escalation_reason"], x["error_type"]) for x in first] == [
        ("slm", "unknown_tool", None), ("llm", "unknown_tool", "ConnectionError")]
    assert store.db["escalations"].count == 0


# -- rejected requests: OpenAI's error shape, nothing captured ----------------------------------------
@pytest.mark.parametrize(("body", "param"), [
    (b"{not json", None),
    (b"[1, 2]", None),
    (json.dumps({"model": "slm-agents", "messages": USER, "temprature": 0.2}).encode(), "temprature"),
    (json.dumps({"model": "slm-agents", "messages": []}).encode(), "messages"),
    (json.dumps({"model": "slm-agents", "messages": [{"role": "wizard", "content": "x"}]}).encode(), "messages"),
    (json.dumps({"messages": USER}).encode(), "model"),
    (json.dumps({"model": "slm-agents", "messages": USER, "tools": [WEATHER], "tool_choice": "get_time"}).encode(),
     "tool_choice"),
    (json.dumps({"model": "slm-agents", "messages": USER, "temperature": "hot"}).encode(), "temperature"),
    (json.dumps({"model": "slm-agents", "messages": USER, "n": 2}).encode(), "n"),
    (json.dumps({"model": "slm-agents/bad task!", "messages": USER}).encode(), "model"),
])  # fmt: skip
def test_gateway_rejects_malformed_requests_with_400_and_captures_nothing(
    store: CaptureStore, body: bytes, param: str | None
) -> None:
    slm = FakeRuntime(["never"])
    with TestClient(Gateway(slm, store=store, close_store=False).app) as client:
        r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert error["param"] == param and error["message"]
    assert slm.requests == [] and store.stats.enqueued == 0


def test_gateway_api_key_gives_401_without_it(store: CaptureStore) -> None:
    gw = Gateway(FakeRuntime(["ok"]), store=store, close_store=False, api_key="s3cret")
    with TestClient(gw.app) as client:
        missing = chat(client)
        wrong = client.post("/v1/chat/completions", headers={"authorization": "Bearer nope"},
                            json={"model": "slm-agents", "messages": USER})
        models = client.get("/v1/models")
        right = client.post("/v1/chat/completions", headers={"authorization": "Bearer s3cret"},
                            json={"model": "slm-agents", "messages": USER})
        health = client.get("/healthz")
    for r in (missing, wrong, models):
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert "s3cret" not in r.text
    assert right.status_code == 200 and health.status_code == 200
    assert "s3cret" not in repr(gw)
    assert len(rows(store)) == 1


def test_gateway_request_too_large_is_413(store: CaptureStore) -> None:
    gw = Gateway(FakeRuntime(["ok"]), store=store, close_store=False, max_body_bytes=2_000)
    big = [{"role": "user", "content": "x" * 3_000}]
    with TestClient(gw.app) as client:
        declared = client.post("/v1/chat/completions", json={"model": "slm-agents", "messages": big})

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            payload = json.dumps({"model": "slm-agents", "messages": big}).encode()
            for i in range(0, len(payload), 500):
                yield payload[i:i + 500]

        streamed = client.post("/v1/chat/completions", content=chunks())
        small = chat(client)
    for r in (declared, streamed):
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 200
    assert len(rows(store)) == 1


async def test_gateway_over_the_concurrency_limit_is_429(store: CaptureStore) -> None:
    slm = FakeRuntime([{"content": "slow", "delay": 0.5}, "fast"])
    gw = Gateway(slm, store=store, close_store=False, max_concurrency=1)
    transport = httpx.ASGITransport(app=gw.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        body = {"model": "slm-agents", "messages": USER}
        first = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.1)
        second = await client.post("/v1/chat/completions", json=body)
        done = await first
        third = await client.post("/v1/chat/completions", json=body)
    assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
    assert second.headers["retry-after"] == "1"
    assert done.status_code == 200 and third.status_code == 200 and third.json()["choices"][0]["message"]["content"] == "fast"
    assert gw.in_flight == 0 and gw.rejected[429] == 1
    assert len(rows(store)) == 2


async def test_gateway_streams_release_their_slot_async(store: CaptureStore) -> None:
    gw = Gateway(FakeRuntime(["a b c"], cycle=True), store=store, close_store=False, max_concurrency=1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw") as client:
        for _ in range(3):
            async with client.stream("POST", "/v1/chat/completions",
                                     json={"model": "slm-agents", "messages": USER, "stream": True}) as r:
                text = "".join([part async for part in r.aiter_text()])
            assert r.status_code == 200 and text.endswith("data: [DONE]\n\n")
    assert gw.in_flight == 0 and len(rows(store)) == 3


def test_gateway_unknown_paths_and_methods_answer_in_openai_shape() -> None:
    with TestClient(Gateway(FakeRuntime()).app) as client:
        missing = client.get("/v1/embeddings")
        wrong = client.get("/v1/chat/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_gateway_shutdown_closes_the_store_and_logs_counts(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    store = CaptureStore(tmp_path / "gw.db", redactor=None)
    with caplog.at_level(logging.INFO, logger="slm_agents_gateway"), \
            TestClient(Gateway(FakeRuntime(["hi", "there"]), store=store).app) as client:
        chat(client)
        chat(client)
    assert store.closed
    text = caplog.text
    assert "answered 2 (slm 2)" in text and "2 written, 0 dropped, 0 failed, 0 not written" in text
    assert Database(tmp_path / "gw.db")["calls"].count == 2


# -- the command --------------------------------------------------------------------------------------
def test_gateway_serve_refuses_a_public_bind_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLM_AGENTS_GATEWAY_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--no-capture"])
    assert result.exit_code == 2 and "--api-key" in result.output
    half = CliRunner().invoke(cli, ["serve", "--llm-base-url", "http://127.0.0.1:1/v1", "--no-capture"])
    assert half.exit_code == 2 and "--llm-model" in half.output


# -- hostile input never crashes the gateway ----------------------------------------------------------
def _json_values() -> Any:
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=8)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["role", "content", "type", "function", "name", "parameters", "tool_calls", "x"]),
        inner, max_size=4), max_leaves=12)


def test_gateway_fuzzed_bodies_are_answered_never_crash() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from slm_agents_gateway._protocol import KNOWN_FIELDS

    gw = Gateway(FakeRuntime(["ok"], cycle=True), store=None)
    keys = st.sampled_from(sorted(KNOWN_FIELDS) + ["bogus"])
    body = st.dictionaries(keys, _json_values(), max_size=6).map(lambda d: {"messages": USER, "model": "m", **d})

    with TestClient(gw.app, raise_server_exceptions=False) as client:

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(body)
        def one(payload: dict[str, Any]) -> None:
            r = client.post("/v1/chat/completions", content=json.dumps(payload))
            assert r.status_code in (200, 400), (payload, r.text)
            if r.status_code == 400:
                assert r.json()["error"]["type"] == "invalid_request_error"

        one()
    assert gw.failed == 0 and gw.in_flight == 0
