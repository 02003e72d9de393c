"""OpenAICompatRuntime against a real loopback server (llama_cpp.server with the default model)."""

from __future__ import annotations

import time

import openai
import pytest
from core_it_data import TOOLS, ask

from slm_agents.errors import GenerationError, GenerationTimeout, RuntimeUnavailable
from slm_agents.runtimes.openai_compat import OpenAICompatRuntime
from slm_agents.toolcalls import normalize_tools, validate_tool_call

NORM = normalize_tools(TOOLS)
HELLO = [{"role": "user", "content": "Say hello in five words."}]


def test_unreachable_server_is_runtime_unavailable_quickly() -> None:
    rt = OpenAICompatRuntime("m", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    start = time.perf_counter()
    with pytest.raises(RuntimeUnavailable, match="cannot reach http://127.0.0.1:9/v1"):
        rt.complete(HELLO)
    with pytest.raises(RuntimeUnavailable):
        list(rt.stream(HELLO))
    assert time.perf_counter() - start < 10


async def test_unreachable_server_async() -> None:
    rt = OpenAICompatRuntime("m", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    with pytest.raises(RuntimeUnavailable):
        await rt.acomplete(HELLO)
    with pytest.raises(RuntimeUnavailable):
        async for _ in rt.astream(HELLO):
            pass


@pytest.fixture(scope="module")
def server_rt(llama_server) -> OpenAICompatRuntime:  # noqa: ANN001 - fixture from tests/integration/conftest.py
    return OpenAICompatRuntime(llama_server.model, base_url=llama_server.base_url, max_retries=0, timeout=120)


def test_text_completion(server_rt: OpenAICompatRuntime) -> None:
    c = server_rt.complete(HELLO, max_tokens=16, temperature=0)
    assert c.content.strip() and c.tool_calls == []
    assert c.usage.input_tokens > 0 and c.usage.output_tokens > 0
    assert c.latency_ms > 0 and c.runtime == "openai" and c.model
    assert c.finish_reason in ("stop", "length")


def test_streaming(server_rt: OpenAICompatRuntime) -> None:
    chunks = list(server_rt.stream(HELLO, max_tokens=16, temperature=0))
    final = chunks[-1].completion
    assert final is not None and all(ch.completion is None for ch in chunks[:-1])
    assert "".join(ch.content for ch in chunks) == final.content != ""
    assert final.ttft_ms is not None and final.ttft_ms <= final.latency_ms
    # llama_cpp.server (0.3.x) sends no usage in streams, even with stream_options.include_usage:
    # the completion then reports zeros rather than inventing counts. Servers that send it give both.
    u = final.usage
    assert (u.input_tokens, u.output_tokens) == (0, 0) or (u.input_tokens > 0 and u.output_tokens > 0)


def test_named_tool_choice(server_rt: OpenAICompatRuntime) -> None:
    c = server_rt.complete(ask("What is the weather in Paris?"), TOOLS, "get_weather", max_tokens=64, temperature=0)
    calls = c.tool_calls + [{"function": {"name": i["name"], "arguments": i["arguments"]}} for i in c.invalid_tool_calls]
    assert len(calls) >= 1, c.to_dict()
    for call in c.tool_calls:  # whatever passes our validation really is valid...
        assert call["function"]["name"] == "get_weather"
        assert validate_tool_call("get_weather", call["function"]["arguments"], NORM) == []
    for bad in c.invalid_tool_calls:  # ...and whatever does not is reported with the reason
        assert bad["error"]
    if c.tool_calls:
        assert c.finish_reason == "tool_calls"


def test_required_tool_choice_valid_or_a_clean_error(server_rt: OpenAICompatRuntime) -> None:
    """llama_cpp.server's chatml-function-calling answers tool_choice="required" with HTTP 500."""
    try:
        c = server_rt.complete(ask("What is the weather in Paris?"), TOOLS, "required", max_tokens=64, temperature=0)
    except GenerationError as e:
        assert "failed: Error code: 500" in str(e) and isinstance(e.__cause__, openai.InternalServerError)
        return
    for call in c.tool_calls:
        assert validate_tool_call(call["function"]["name"], call["function"]["arguments"], NORM) == []


def test_named_tool_choice_streaming(server_rt: OpenAICompatRuntime) -> None:
    chunks = list(server_rt.stream(ask("What is the weather in Paris?"), TOOLS, "get_weather", max_tokens=64,
                                   temperature=0))
    c = chunks[-1].completion
    assert c is not None
    deltas = [d for ch in chunks for d in ch.tool_calls]
    for call in c.tool_calls:
        assert call["function"]["name"] == "get_weather"
        assert validate_tool_call("get_weather", call["function"]["arguments"], NORM) == []
        mine = [d for d in deltas if d.index == c.tool_calls.index(call)]
        assert "".join(d.arguments for d in mine) == call["function"]["arguments"]
    assert c.tool_calls or c.invalid_tool_calls, c.to_dict()


async def test_async_complete_and_stream(server_rt: OpenAICompatRuntime) -> None:
    sync = server_rt.complete(HELLO, max_tokens=12, temperature=0)
    c = await server_rt.acomplete(HELLO, max_tokens=12, temperature=0)
    assert c.content == sync.content and c.usage.output_tokens > 0
    chunks = [ch async for ch in server_rt.astream(HELLO, max_tokens=12, temperature=0)]
    assert chunks[-1].completion is not None
    assert "".join(ch.content for ch in chunks) == chunks[-1].completion.content == sync.content


def test_tiny_timeout(llama_server) -> None:  # noqa: ANN001
    rt = OpenAICompatRuntime(llama_server.model, base_url=llama_server.base_url, max_retries=0, timeout=0.001)
    with pytest.raises(GenerationTimeout, match="did not answer within 0.001s"):
        rt.complete(HELLO, max_tokens=8)
