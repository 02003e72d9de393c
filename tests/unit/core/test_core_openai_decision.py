"""OpenAICompatRuntime makes the calibrated call-or-answer decision of ``tool_choice="auto"`` itself.

A loopback HTTP server (127.0.0.1, stopped by the fixture) records each request body and answers
as a server honouring ``tool_choice`` would: a call when one is required, text otherwise.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from slm_agents.decision import DecisionCalibration, calibration_for, decide
from slm_agents.errors import InvalidRequest
from slm_agents.runtimes.openai_compat import OpenAICompatRuntime

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What's the weather in Oslo right now?"}]
AFTER_TOOL = [
    *ASK,
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "4 degrees, light rain"},
]
SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    choice = body.get("tool_choice")
    if choice == "required" or isinstance(choice, dict):
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [{
            "id": "c9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": "It is 4 degrees in Oslo."}, "stop"
    return {"id": "x", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def _stream_body(done: dict[str, Any]) -> bytes:
    message, finish = done["choices"][0]["message"], done["choices"][0]["finish_reason"]
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": 0, **message["tool_calls"][0]}]
    events = [{"id": "x", "object": "chat.completion.chunk", "created": 1, "model": done["model"],
               "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
              {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": done["model"],
               "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}]
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        done = _answer(body)
        payload, ctype = (_stream_body(done), "text/event-stream") if body.get("stream") else \
            (json.dumps(done).encode(), "application/json")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Any:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def runtime(server: Any, model: str = SMOL, **kw: Any) -> OpenAICompatRuntime:
    return OpenAICompatRuntime(model, base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", max_retries=0,
                               timeout=10, **kw)


def test_the_default_is_calibrated_for_a_model_with_a_shipped_calibration_else_the_server_decides() -> None:
    assert OpenAICompatRuntime(SMOL).auto_decision == "calibrated"
    assert OpenAICompatRuntime("gpt-4o-mini").auto_decision == "server"
    own = DecisionCalibration(weights={"overlap": 1.0}, bias=-0.5)
    assert OpenAICompatRuntime("gpt-4o-mini", decision_calibration=own).auto_decision == "calibrated"
    with pytest.raises(InvalidRequest, match="'calibrated' or 'server'"):
        OpenAICompatRuntime(SMOL, auto_decision="model")


def test_a_request_a_tool_performs_is_sent_as_required_and_the_decision_is_reported(server: Any) -> None:
    c = runtime(server).complete(ASK, TOOLS, "auto")
    assert server.bodies[-1]["tool_choice"] == "required"
    assert c.decision == "call" and c.tool_calls[0]["function"]["name"] == "get_weather"
    expected = decide(ASK, TOOLS, calibration_for(SMOL))
    assert c.p_call == pytest.approx(expected.p_call) and c.p_call >= c.decision_threshold
    assert c.decision_confidence == pytest.approx(c.p_call)


def test_a_turn_after_the_tool_result_is_sent_as_none_and_answers(server: Any) -> None:
    c = runtime(server).complete(AFTER_TOOL, TOOLS, "auto")
    assert server.bodies[-1]["tool_choice"] == "none"
    assert c.decision == "answer" and c.content == "It is 4 degrees in Oslo." and not c.tool_calls
    assert c.decision_confidence == pytest.approx(1 - c.p_call) and c.decision_confidence > 0.5


def test_the_threshold_is_a_runtime_and_a_per_call_option_and_never_sent(server: Any) -> None:
    strict = runtime(server, decision_threshold=0.999)
    assert strict.complete(ASK, TOOLS, "auto").decision == "answer"
    c = strict.complete(ASK, TOOLS, "auto", decision_threshold=0.01)
    assert c.decision == "call" and c.decision_threshold == 0.01
    assert all("decision_threshold" not in b and "decision_threshold" not in b.get("extra_body", {})
               for b in server.bodies)


def test_explicit_choices_and_the_server_mode_are_passed_through_undecided(server: Any) -> None:
    rt = runtime(server)
    assert rt.complete(ASK, TOOLS, "none").decision is None and server.bodies[-1]["tool_choice"] == "none"
    assert rt.complete(ASK, TOOLS, "get_weather").decision is None
    assert rt.complete(ASK).decision is None and "tool_choice" not in server.bodies[-1]
    c = runtime(server, auto_decision="server").complete(ASK, TOOLS, "auto")
    assert server.bodies[-1]["tool_choice"] == "auto" and c.decision is None


def test_streaming_and_async_decide_alike(server: Any) -> None:
    rt = runtime(server)
    last = list(rt.stream(ASK, TOOLS, "auto"))[-1].completion
    assert last is not None and last.decision == "call" and last.tool_calls
    assert server.bodies[-1]["tool_choice"] == "required"

    async def both() -> tuple[Any, Any]:
        done = await rt.acomplete(AFTER_TOOL, TOOLS, "auto")
        chunks = [c async for c in rt.astream(AFTER_TOOL, TOOLS, "auto")]
        return done, chunks[-1].completion

    done, streamed = asyncio.run(both())
    assert done.decision == streamed.decision == "answer"
    assert [b["tool_choice"] for b in server.bodies[-2:]] == ["none", "none"]
