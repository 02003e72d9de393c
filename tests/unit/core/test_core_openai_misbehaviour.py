"""Issue 13, section 4: a misbehaving OpenAI-compatible server gives typed errors and a bounded wait.

A real loopback HTTP server (127.0.0.1, stopped by the fixture) plays each misbehaviour.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slm_agents.errors import GenerationError, GenerationTimeout, SLMAgentsError
from slm_agents.evaluate import EvalCase, evaluate
from slm_agents.runtimes.openai_compat import OpenAICompatRuntime

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
USER = [{"role": "user", "content": "weather in Oslo?"}]


def _completion(tool_calls: list | None = None, content: str | None = None) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


BODIES = {
    "nonjson": (b"<html>502 bad gateway, but status 200</html>", "application/json"),
    "nonjson_text": (b"<html>oops</html>", "text/html"),
    "args_object": (json.dumps(_completion([{"id": "c1", "type": "function", "function": {
        "name": "get_weather", "arguments": {"city": "Oslo"}}}])).encode(), "application/json"),
    "no_function": (json.dumps(_completion([{"id": "c1", "type": "function"}])).encode(), "application/json"),
    "no_choices_list": (json.dumps({"choices": "nope"}).encode(), "application/json"),
    "garbage_stream": (b"data: {this is not json\n\ndata: \x00\xff\n\n", "text/event-stream"),
    "ok": (json.dumps(_completion(content="sunny")).encode(), "application/json"),
}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "drip":
            body = json.dumps(_completion(content="x" * 200)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                if self.server.stopping.is_set():  # type: ignore[attr-defined]
                    return
                try:
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
            return
        body, ctype = BODIES[mode]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.mode = "ok"  # type: ignore[attr-defined]
    httpd.stopping = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.stopping.set()  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _runtime(server, **kw) -> OpenAICompatRuntime:
    return OpenAICompatRuntime("m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", **kw)


@pytest.mark.parametrize("mode", ["nonjson", "nonjson_text", "no_function", "no_choices_list"])
def test_malformed_responses_raise_typed_errors(server, mode):
    server.mode = mode
    rt = _runtime(server, max_retries=0)
    with pytest.raises(GenerationError) as info:
        rt.complete(USER, TOOLS)
    assert "127.0.0.1" in str(info.value)
    with pytest.raises(GenerationError):
        asyncio.run(rt.acomplete(USER, TOOLS))


def test_tool_call_arguments_sent_as_an_object_are_accepted_as_json(server):
    server.mode = "args_object"
    completion = _runtime(server).complete(USER, TOOLS)
    assert completion.message["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}


def test_a_garbage_stream_raises_a_typed_error(server):
    server.mode = "garbage_stream"
    rt = _runtime(server, max_retries=0)
    with pytest.raises(GenerationError):
        list(rt.stream(USER, TOOLS))

    async def consume() -> None:
        async for _ in rt.astream(USER, TOOLS):
            pass

    with pytest.raises(GenerationError):
        asyncio.run(consume())


def test_timeout_bounds_the_whole_request_against_a_dripping_server(server):
    server.mode = "drip"
    rt = _runtime(server, timeout=2, max_retries=2)
    start = time.monotonic()
    with pytest.raises(GenerationTimeout):
        rt.complete(USER)
    assert time.monotonic() - start < 4.0
    start = time.monotonic()
    with pytest.raises(GenerationTimeout):
        asyncio.run(rt.acomplete(USER))
    assert time.monotonic() - start < 4.0
    start = time.monotonic()
    with pytest.raises(GenerationTimeout):
        list(rt.stream(USER))
    assert time.monotonic() - start < 4.0


def test_eval_records_a_misbehaving_server_as_a_failed_case_and_goes_on(server):
    server.mode = "nonjson"
    cases = [EvalCase(messages=USER, tools=TOOLS, expected=[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
                      id=str(i)) for i in range(3)]
    report = evaluate(_runtime(server, max_retries=0), cases)
    assert len(report.results) == 3
    assert all(not r.correct and r.error for r in report.results)


def test_a_good_server_still_works(server):
    completion = _runtime(server).complete(USER)
    assert completion.message["content"] == "sunny" and completion.usage.input_tokens == 3
    assert isinstance(GenerationError("x"), SLMAgentsError)
