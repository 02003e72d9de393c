"""The gateway on a real uvicorn server on 127.0.0.1 with real clients, on fast fake runtimes.

The openai SDK sees 401, 413 and 429 as its own error classes; a bounded load (8 clients x 50
requests, half of them streaming, some escalated) loses nothing: answered requests == captured
steps; SIGTERM lets a request in flight finish and closes the capture store with its counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_support import free_port, running_gateway, wait_http
from sqlite_utils import Database

from slm_agents import BaseRuntime, FakeRuntime
from slm_agents.capture import CaptureStore
from slm_agents.runtimes.base import prepare_request
from slm_agents.types import Completion, StreamChunk, ToolCallDelta, Usage
from slm_agents_gateway import Gateway

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


class ScriptedRuntime(BaseRuntime):
    """Thread-safe and deterministic: calls ``get_weather`` for the city in the last user message;
    with ``faulty``, a message containing "escalate" gets a call to a tool that is not bound."""

    name = "scripted"

    def __init__(self, model: str = "scripted-slm", *, faulty: bool = False) -> None:
        self.model = model
        self.faulty = faulty

    @property
    def model_name(self) -> str:
        return self.model

    def stream(self, messages: list[dict[str, Any]], tools: list[dict] | None = None, tool_choice: Any = None,
               **sampling: Any) -> Iterator[StreamChunk]:
        req = prepare_request(messages, tools, tool_choice, sampling)
        text = str(messages[-1].get("content") or "")
        name = "get_time" if self.faulty and "escalate" in text else "get_weather"
        call = {"id": f"call_{abs(hash(text)) % 10**12}", "type": "function",
                "function": {"name": name, "arguments": json.dumps({"city": text.split()[-1]})}}
        bad = name != "get_weather" and bool(req.tools)
        message = {"role": "assistant", "content": None, **({} if bad else {"tool_calls": [call]})}
        invalid = [{"id": call["id"], "name": name, "arguments": call["function"]["arguments"],
                    "error": f"unknown tool {name!r}"}] if bad else []
        completion = Completion(message=message, finish_reason="tool_calls", usage=Usage(20, 8), confidence=0.9,
                                model=self.model, runtime=self.name, invalid_tool_calls=invalid)
        if not bad:
            yield StreamChunk(tool_calls=[ToolCallDelta(0, call["id"], name)])
            yield StreamChunk(tool_calls=[ToolCallDelta(0, arguments=call["function"]["arguments"])])
        yield StreamChunk(finish_reason="tool_calls", completion=completion)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CaptureStore]:
    s = CaptureStore(tmp_path / "gateway.db")
    yield s
    s.close()


def test_gateway_openai_sdk_sees_401_413_429_as_its_errors(store: CaptureStore) -> None:
    slm = FakeRuntime([{"content": "slow", "delay": 1.0}, "ok"])
    gw = Gateway(slm, store=store, close_store=False, api_key="k-123", max_body_bytes=4_000, max_concurrency=1)
    with running_gateway(gw) as base:
        wrong = openai.OpenAI(base_url=base, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as e401:
            wrong.chat.completions.create(model="slm-agents", messages=[{"role": "user", "content": "hi"}])
        assert e401.value.status_code == 401 and e401.value.body["code"] == "invalid_api_key"
        client = openai.OpenAI(base_url=base, api_key="k-123", max_retries=0)
        with pytest.raises(openai.APIStatusError) as e413:
            client.chat.completions.create(model="slm-agents", messages=[{"role": "user", "content": "x" * 5_000}])
        assert e413.value.status_code == 413 and e413.value.body["code"] == "request_too_large"
        slow = threading.Thread(target=lambda: client.chat.completions.create(
            model="slm-agents", messages=[{"role": "user", "content": "slow one"}]))
        slow.start()
        deadline = time.monotonic() + 5
        while gw.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as e429:
            client.chat.completions.create(model="slm-agents", messages=[{"role": "user", "content": "hi"}])
        assert e429.value.status_code == 429 and e429.value.body["type"] == "rate_limit_error"
        slow.join(10)
        ok = client.chat.completions.create(model="slm-agents", messages=[{"role": "user", "content": "hi"}])
        assert ok.choices[0].message.content == "ok"
    assert store.flush(5)
    assert [r["content"] for r in store.db.query("select content from calls order by id")] == ["slow", "ok"]


def test_gateway_bounded_load_loses_nothing(store: CaptureStore) -> None:
    clients, per_client = 8, 50
    llm = ScriptedRuntime(model="scripted-llm")
    gw = Gateway(ScriptedRuntime(faulty=True), llm=llm, store=store, close_store=False, max_concurrency=clients)
    answered: list[tuple[str, str, str]] = []
    errors: list[BaseException] = []

    async def one_client(index: int, base: str) -> None:
        client = openai.AsyncOpenAI(base_url=base, api_key="unused", max_retries=0, timeout=60)
        async with client:
            for i in range(per_client):
                city = f"city{index}x{i}"
                text = f"escalate weather in {city}" if i % 5 == 0 else f"weather in {city}"
                kwargs: dict[str, Any] = {"model": f"slm-agents/load{index % 2}", "tools": [WEATHER],
                                          "messages": [{"role": "user", "content": text}]}
                if i % 2:
                    stream = await client.chat.completions.create(**kwargs, stream=True)
                    cid, args, name = "", "", ""
                    async for chunk in stream:
                        cid = chunk.id
                        for d in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                            name += d.function.name or "" if d.function else ""
                            args += d.function.arguments or "" if d.function else ""
                else:
                    r = await client.chat.completions.create(**kwargs)
                    cid, name, args = r.id, r.choices[0].message.tool_calls[0].function.name, \
                        r.choices[0].message.tool_calls[0].function.arguments
                assert name == "get_weather" and json.loads(args) == {"city": city}
                answered.append((cid, city, "stream" if i % 2 else "plain"))

    async def main(base: str) -> None:
        results = await asyncio.gather(*(one_client(k, base) for k in range(clients)), return_exceptions=True)
        errors.extend(r for r in results if isinstance(r, BaseException))

    with running_gateway(gw) as base:
        assert base.startswith("http://127.0.0.1:")
        asyncio.run(main(base))
    assert not errors, errors[:3]
    assert len(answered) == clients * per_client and len({a[0] for a in answered}) == len(answered)
    assert store.flush(30)
    steps = {r["run_id"] for r in store.db.query("select distinct run_id from calls")}
    assert steps == {a[0] for a in answered}  # every answered request captured, nothing else
    escalated = clients * per_client // 5
    assert store.db["calls"].count == len(answered) + escalated  # an escalation is the SLM attempt + the LLM answer
    assert store.db["escalations"].count == escalated
    assert gw.in_flight == 0 and sum(gw.answered.values()) == len(answered) and gw.failed == 0


SERVER = textwrap.dedent("""
    import sys
    from slm_agents import FakeRuntime
    from slm_agents.capture import CaptureStore
    from slm_agents_gateway import Gateway, serve
    slm = FakeRuntime([{"content": "finished after SIGTERM", "delay": 2.0}])
    serve(Gateway(slm, store=CaptureStore(sys.argv[2])), port=int(sys.argv[1]))
""")


def test_gateway_sigterm_finishes_in_flight_requests_and_closes_the_store(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "sigterm.db"
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(db)], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60, log=log)
        result: dict[str, Any] = {}

        def ask() -> None:
            result["r"] = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                                     json={"model": "slm-agents", "messages": [{"role": "user", "content": "hi"}]})

        t = threading.Thread(target=ask)
        t.start()
        time.sleep(0.7)  # the request is in flight (the fake answers after 2 s)
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        # uvicorn shuts down gracefully, then re-raises the signal (the exit a supervisor expects)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    r = result["r"]
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "finished after SIGTERM"
    text = log.read_text()
    assert "answered 1 (slm 1)" in text and "1 written, 0 dropped, 0 failed, 0 not written" in text, text[-2000:]
    assert Database(db)["calls"].count == 1
