"""Request validation, the queue-driven FakeRuntime, and the async twins BaseRuntime builds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import pytest

from slm_agents.errors import GenerationError, GenerationTimeout, InvalidRequest
from slm_agents.runtimes import SAMPLING_KEYS, BaseRuntime, FakeRuntime, Runtime
from slm_agents.runtimes.base import prepare_request
from slm_agents.toolcalls import ToolChoice
from slm_agents.types import Completion, StreamChunk, Usage

USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}]


# --- prepare_request ----------------------------------------------------------------------------
@pytest.mark.parametrize("messages", [[], None, "hi", {"role": "user", "content": "hi"}])
def test_prepare_request_needs_a_message_list(messages: Any) -> None:
    with pytest.raises(InvalidRequest, match="non-empty list"):
        prepare_request(messages, None, None, {})


@pytest.mark.parametrize("message", [{"role": "robot", "content": "x"}, {"content": "x"}, "user: hi", None])
def test_prepare_request_rejects_bad_roles(message: Any) -> None:
    with pytest.raises(InvalidRequest, match="message #1 must be a dict with role"):
        prepare_request([{"role": "user", "content": "ok"}, message], None, None, {})


def test_prepare_request_accepts_every_role() -> None:
    msgs = [{"role": r, "content": "x"} for r in ("system", "developer", "user", "assistant", "tool")]
    assert prepare_request(msgs, None, None, {}).messages == msgs


def test_unknown_sampling_key_names_the_supported_ones() -> None:
    with pytest.raises(InvalidRequest) as info:
        prepare_request(USER, None, None, {"temprature": 0.2, "max_token": 3})
    message = str(info.value)
    assert message.startswith("unknown option(s) max_token, temprature; supported: ")
    for key in SAMPLING_KEYS:
        assert key in message


def test_extra_keys_extend_the_supported_ones() -> None:
    req = prepare_request(USER, None, None, {"top_k": 3, "mirostat": 1}, extra_keys=frozenset({"mirostat"}))
    assert req.sampling == {"top_k": 3, "mirostat": 1}


def test_none_sampling_values_are_dropped_and_tools_normalised() -> None:
    req = prepare_request(USER, TOOLS, "add", {"temperature": None, "seed": 7})
    assert req.sampling == {"seed": 7}
    assert req.tools[0]["type"] == "function" and req.tools[0]["function"]["name"] == "add"
    assert req.choice == ToolChoice("required", "add")


@pytest.mark.parametrize(
    "fmt",
    ["json", {"type": "xml"}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": {"schema": "x"}}],
)
def test_bad_response_format(fmt: Any) -> None:
    with pytest.raises(InvalidRequest, match="response_format"):
        prepare_request(USER, None, None, {"response_format": fmt})


@pytest.mark.parametrize("fmt", [{"type": "text"}, {"type": "json_object"},
                                 {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}])
def test_good_response_formats(fmt: dict) -> None:
    assert prepare_request(USER, None, None, {"response_format": fmt}).sampling["response_format"] == fmt


@pytest.mark.parametrize("choice", ["required", "add", True])
def test_forced_call_excludes_json_format(choice: Any) -> None:
    with pytest.raises(InvalidRequest, match="exclude each other"):
        prepare_request(USER, TOOLS, choice, {"response_format": {"type": "json_object"}})
    # with auto, or a text format, it is fine
    prepare_request(USER, TOOLS, "auto", {"response_format": {"type": "json_object"}})
    prepare_request(USER, TOOLS, choice, {"response_format": {"type": "text"}})


# --- FakeRuntime --------------------------------------------------------------------------------
def test_fake_runtime_satisfies_the_protocol() -> None:
    rt = FakeRuntime()
    assert isinstance(rt, Runtime)
    assert rt.name == "fake" and rt.model_name == "fake-slm"
    assert FakeRuntime(model="m").model_name == "m"


def test_fake_text_response() -> None:
    c = FakeRuntime(["hello there"]).complete(USER)
    assert c.content == "hello there" and c.tool_calls == [] and c.finish_reason == "stop"
    assert c.usage == Usage(10, 5) and c.confidence is None and c.runtime == "fake" and c.model == "fake-slm"
    assert c.latency_ms >= 0 and c.ttft_ms is not None


def test_fake_completion_response_is_returned_as_is() -> None:
    done = Completion(message={"role": "assistant", "content": "x"}, finish_reason="length", ttft_ms=3.0)
    c = FakeRuntime([done]).complete(USER)
    assert c is done and c.finish_reason == "length" and c.ttft_ms == 3.0


def test_fake_exception_response_is_raised_and_request_recorded() -> None:
    rt = FakeRuntime([GenerationTimeout("slow")])
    with pytest.raises(GenerationTimeout, match="slow"):
        rt.complete(USER)
    assert len(rt.requests) == 1


def test_fake_dict_response_with_every_field() -> None:
    rt = FakeRuntime([{
        "content": "thinking",
        "tool_calls": [{"id": "c9", "name": "add", "arguments": {"a": 1}}, {"name": "add", "arguments": '{"a": 2}'}],
        "finish_reason": "tool_calls",
        "confidence": 0.42,
        "usage": (7, 3),
        "delay": 0.02,
    }])
    c = rt.complete(USER, TOOLS)
    assert c.content == "thinking"
    assert c.parsed_tool_calls()[0] == {"id": "c9", "name": "add", "arguments": {"a": 1}}
    assert c.parsed_tool_calls()[1]["arguments"] == {"a": 2}
    assert c.parsed_tool_calls()[1]["id"].startswith("call_")
    assert c.confidence == 0.42 and c.usage == Usage(7, 3) and c.finish_reason == "tool_calls"
    assert c.latency_ms >= 20


def test_fake_tool_calls_default_finish_and_confidence() -> None:
    c = FakeRuntime([{"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}]).complete(USER, TOOLS)
    assert c.finish_reason == "tool_calls" and c.confidence == 1.0 and c.content == ""


def test_fake_reports_invalid_tool_calls() -> None:
    rt = FakeRuntime([{"tool_calls": [
        {"id": "ok", "name": "add", "arguments": {"a": 1}},
        {"id": "bad_args", "name": "add", "arguments": {"a": "one"}},
        {"id": "unknown", "name": "sub", "arguments": {}},
        {"id": "not_json", "name": "add", "arguments": "{a: 1"},
    ]}])
    c = rt.complete(USER, TOOLS)
    assert [call["id"] for call in c.tool_calls] == ["ok"]
    assert [i["id"] for i in c.invalid_tool_calls] == ["bad_args", "unknown", "not_json"]
    errors = [i["error"] for i in c.invalid_tool_calls]
    assert errors[0] == "a: 'one' is not of type 'integer'"
    assert errors[1].startswith("unknown tool 'sub'")
    assert errors[2].startswith("arguments are not valid JSON")
    assert c.invalid_tool_calls[2]["arguments"] == "{a: 1"


def test_fake_only_invalid_calls_finish_stop() -> None:
    c = FakeRuntime([{"tool_calls": [{"name": "sub", "arguments": {}}]}]).complete(USER, TOOLS)
    assert c.tool_calls == [] and c.finish_reason == "stop" and len(c.invalid_tool_calls) == 1


def test_fake_exhaustion_says_how_to_fix() -> None:
    rt = FakeRuntime(["one"])
    rt.complete(USER)
    with pytest.raises(GenerationError, match="no responses left; queue more with push"):
        rt.complete(USER)


def test_fake_cycle_and_push() -> None:
    rt = FakeRuntime(["a", "b"], cycle=True)
    assert [rt.complete(USER).content for _ in range(5)] == ["a", "b", "a", "b", "a"]
    rt2 = FakeRuntime()
    rt2.push("x", "y")
    rt2.push("z")
    assert [rt2.complete(USER).content for _ in range(3)] == ["x", "y", "z"]
    with pytest.raises(GenerationError):
        FakeRuntime(cycle=True).complete(USER)  # cycling an empty queue is still exhausted


def test_fake_records_requests() -> None:
    rt = FakeRuntime(["a", "b"])
    rt.complete(USER, TOOLS, "add", temperature=0.3, seed=None)
    rt.complete([{"role": "user", "content": "again"}])
    assert len(rt.requests) == 2
    first = rt.requests[0]
    assert first["messages"] == USER and first["tool_choice"] == "add"
    assert first["tools"][0]["function"]["name"] == "add"
    assert first["sampling"] == {"temperature": 0.3}
    assert rt.requests[1]["tools"] == [] and rt.requests[1]["tool_choice"] is None


def test_fake_validates_requests_like_a_real_runtime() -> None:
    with pytest.raises(InvalidRequest):
        FakeRuntime(["a"]).complete(USER, TOOLS, "sub")
    with pytest.raises(InvalidRequest):
        FakeRuntime(["a"]).complete(USER, bogus=1)


def test_fake_stream_shape() -> None:
    rt = FakeRuntime([{"content": "one two three", "tool_calls": [{"id": "c1", "name": "add", "arguments": {"a": 1}}]}])
    chunks = list(rt.stream(USER, TOOLS))
    assert "".join(c.content for c in chunks) == "one two three"
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas[0].id == "c1" and deltas[0].name == "add"
    assert "".join(d.arguments for d in deltas) == '{"a": 1}'
    assert [c.completion is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].finish_reason == "tool_calls" == chunks[-1].completion.finish_reason  # type: ignore[union-attr]


# --- async twins --------------------------------------------------------------------------------
RESPONSES: list[Any] = [
    "plain words here",
    {"tool_calls": [{"id": "c1", "name": "add", "arguments": {"a": 1}}], "confidence": 0.5},
    {"content": "", "finish_reason": "length"},
]


def comparable(c: Completion) -> dict:
    return replace(c, latency_ms=0.0, ttft_ms=0.0).to_dict()


def chunk_view(chunks: list[StreamChunk]) -> list[tuple]:
    return [
        (c.content, [(d.index, d.id, d.name, d.arguments) for d in c.tool_calls], c.finish_reason,
         comparable(c.completion) if c.completion else None)
        for c in chunks
    ]


async def test_acomplete_equals_complete() -> None:
    sync_rt, async_rt = FakeRuntime(RESPONSES), FakeRuntime(RESPONSES)
    for _ in RESPONSES:
        expected = sync_rt.complete(USER, TOOLS)
        got = await async_rt.acomplete(USER, TOOLS)
        assert comparable(got) == comparable(expected)
    assert async_rt.requests == sync_rt.requests


async def test_astream_yields_the_same_chunks_as_stream() -> None:
    sync_rt, async_rt = FakeRuntime(RESPONSES), FakeRuntime(RESPONSES)
    for _ in RESPONSES:
        expected = list(sync_rt.stream(USER, TOOLS))
        got = [c async for c in async_rt.astream(USER, TOOLS)]
        assert chunk_view(got) == chunk_view(expected)


async def test_async_errors_propagate() -> None:
    with pytest.raises(GenerationTimeout):
        await FakeRuntime([GenerationTimeout("t")]).acomplete(USER)
    with pytest.raises(GenerationTimeout):
        async for _ in FakeRuntime([GenerationTimeout("t")]).astream(USER):
            pass
    with pytest.raises(InvalidRequest):
        await FakeRuntime(["x"]).acomplete([])


class SlowRuntime(BaseRuntime):
    """Streams up to 200 chunks, 5 ms apart; records how many it produced and whether it was closed."""

    name = "slow"

    def __init__(self) -> None:
        self.produced = 0
        self.closed = threading.Event()

    def stream(self, messages: Any, tools: Any = None, tool_choice: Any = None, **sampling: Any) -> Iterator[StreamChunk]:
        try:
            for i in range(200):
                self.produced += 1
                yield StreamChunk(content=str(i))
                time.sleep(0.005)
            yield StreamChunk(finish_reason="stop", completion=Completion(message={"role": "assistant", "content": ""}))
        finally:
            self.closed.set()


async def test_breaking_out_of_astream_stops_the_worker() -> None:
    rt = SlowRuntime()
    got = []
    async with aclosing(rt.astream(USER)) as chunks:
        async for chunk in chunks:
            got.append(chunk.content)
            if len(got) == 3:
                break
    # aclose() waited for the worker: the sync iterator was closed, long before its 200 chunks.
    assert rt.closed.is_set()
    assert got == ["0", "1", "2"]
    produced = rt.produced
    assert produced < 50
    await asyncio.sleep(0.05)
    assert rt.produced == produced  # nothing runs after the close


class EagerRuntime(BaseRuntime):
    """A stream() that validates before returning its generator, as LlamaCppRuntime's does."""

    def stream(self, messages: Any, tools: Any = None, tool_choice: Any = None, **sampling: Any) -> Iterator[StreamChunk]:
        prepare_request(messages, tools, tool_choice, sampling)
        return iter(FakeRuntime(["ok"]).stream(messages))


async def test_astream_raises_errors_raised_before_the_first_chunk() -> None:
    async def consume() -> list[StreamChunk]:
        return [c async for c in EagerRuntime().astream([])]

    with pytest.raises(InvalidRequest, match="non-empty list"):
        await asyncio.wait_for(consume(), timeout=5)  # used to hang: nothing reached the queue
    assert [c.content async for c in EagerRuntime().astream(USER)][0] == "ok"


def test_base_runtime_without_final_chunk_is_an_error() -> None:
    class Broken(BaseRuntime):
        def stream(self, *a: Any, **k: Any) -> Iterator[StreamChunk]:
            yield StreamChunk(content="x")

    with pytest.raises(RuntimeError, match="ended without a final chunk"):
        Broken().complete(USER)
    with pytest.raises(NotImplementedError):
        BaseRuntime().complete(USER)
