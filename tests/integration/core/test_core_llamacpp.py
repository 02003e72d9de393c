"""LlamaCppRuntime on the real default model (SmolLM2-135M Q4_1), greedy unless said otherwise.

Tests binding tools come first and share one prompt prefix (see core_it_data); tests without
tools follow; tests that load other model instances come last.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import jsonschema
import pytest
from core_it_data import TOOLS, ask

from slm_agents.errors import GenerationTimeout, InvalidRequest
from slm_agents.policy import EscalationPolicy
from slm_agents.runtimes.llamacpp import LlamaCppRuntime, loaded_models
from slm_agents.toolcalls import normalize_tools, validate_tool_call
from slm_agents.types import Completion, StreamChunk

NORM = normalize_tools(TOOLS)
WEATHER_Q = "What is the weather in Paris?"


def assert_valid_calls(c: Completion, name: str | None = None) -> None:
    assert c.tool_calls, f"no tool call: {c.to_dict()}"
    assert c.invalid_tool_calls == []
    assert c.finish_reason == "tool_calls"
    assert c.content == ""
    for call in c.tool_calls:
        fn = call["function"]
        assert validate_tool_call(fn["name"], fn["arguments"], NORM) == []
        if name is not None:
            assert fn["name"] == name
    assert c.confidence is not None and 0.0 < c.confidence <= 1.0


# --- tool_choice in every form ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tool_choice", "name"),
    [
        ("required", None),
        ("any", None),
        (True, None),
        ("convert_units", "convert_units"),
        ({"type": "function", "function": {"name": "get_weather"}}, "get_weather"),
        ({"name": "convert_units"}, "convert_units"),
    ],
)
def test_forced_tool_choice_always_gives_a_valid_call(runtime: LlamaCppRuntime, tool_choice: Any, name: str | None) -> None:
    c = runtime.complete(ask(WEATHER_Q), TOOLS, tool_choice, max_tokens=64)
    assert_valid_calls(c, name)
    assert len(c.tool_calls) == 1  # parallel_tool_calls defaults to off
    assert c.usage.input_tokens > 0 and c.usage.output_tokens > 0


def test_auto_gives_text_or_valid_calls(runtime: LlamaCppRuntime) -> None:
    c = runtime.complete(ask(WEATHER_Q), TOOLS, "auto", max_tokens=128)
    assert c.invalid_tool_calls == []
    assert c.decision in ("call", "answer") and c.p_call is not None
    assert (c.decision == "call") == bool(c.tool_calls)
    if c.tool_calls:
        assert_valid_calls(c)
    else:
        assert c.content.strip() and "<tool_call>" not in c.content


def test_tool_choice_none_never_calls(runtime: LlamaCppRuntime) -> None:
    c = runtime.complete(ask("Convert 5 km to miles with the convert_units tool."), TOOLS, "none", max_tokens=32)
    assert c.tool_calls == [] and c.invalid_tool_calls == [] and "tool_calls" not in c.message
    assert c.content.strip() and "<tool_call>" not in c.content
    assert c.confidence is None and c.finish_reason in ("stop", "length")


def test_streamed_tool_call_matches_the_final_call(runtime: LlamaCppRuntime) -> None:
    chunks = list(runtime.stream(ask(WEATHER_Q), TOOLS, "get_weather", max_tokens=64))
    final = chunks[-1]
    assert final.completion is not None and all(c.completion is None for c in chunks[:-1])
    c = final.completion
    assert_valid_calls(c, "get_weather")
    assert final.finish_reason == "tool_calls"
    deltas = [d for ch in chunks for d in ch.tool_calls]
    assert [(d.index, d.id, d.name) for d in deltas if d.name] == [(0, c.tool_calls[0]["id"], "get_weather")]
    assert "".join(d.arguments for d in deltas) == c.tool_calls[0]["function"]["arguments"]
    assert "".join(ch.content for ch in chunks) == ""
    assert c.usage.output_tokens > 0 and c.ttft_ms is not None and 0 < c.ttft_ms <= c.latency_ms


def test_truncated_tool_call_is_reported_not_raised(runtime: LlamaCppRuntime) -> None:
    c = runtime.complete(ask(WEATHER_Q), TOOLS, "required", max_tokens=8)
    assert c.finish_reason == "length"
    assert c.usage.output_tokens == 8
    assert c.tool_calls == []
    assert len(c.invalid_tool_calls) == 1 and "not valid JSON" in c.invalid_tool_calls[0]["error"]
    assert EscalationPolicy().check(c, TOOLS, "required").reason == "truncated"


def test_parallel_tool_calls(runtime: LlamaCppRuntime) -> None:
    q = "Get the weather for Paris. Then get the weather for Tokyo."
    c = runtime.complete(ask(q), TOOLS, "get_weather", parallel_tool_calls=True, max_tokens=96)
    assert_valid_calls(c, "get_weather")
    assert len(c.tool_calls) > 1
    assert len({call["id"] for call in c.tool_calls}) == len(c.tool_calls)
    single = runtime.complete(ask(q), TOOLS, "get_weather", parallel_tool_calls=False, max_tokens=96)
    assert len(single.tool_calls) == 1


def test_prefix_is_reused_from_the_kv_cache(runtime: LlamaCppRuntime, decodes: Any) -> None:
    runtime.complete(ask("Weather in Rome?"), TOOLS, "get_weather", max_tokens=40)
    calls = decodes(runtime)
    msgs = ask("Weather in Madrid, please?")
    c = runtime.complete(msgs, TOOLS, "get_weather", max_tokens=40)
    assert_valid_calls(c, "get_weather")
    prompt_tokens = runtime.count_tokens(runtime.render_prompt(msgs, TOOLS))
    assert c.usage.input_tokens == prompt_tokens
    evaluated = [len(tokens) for rows in calls for _, tokens, _, _ in rows]
    # the first decode is the uncached part of the prompt, then one token at a time
    assert 0 < evaluated[0] < prompt_tokens // 4, (evaluated[0], prompt_tokens)
    assert set(evaluated[1:]) <= {1}


async def test_async_twins_match_sync_with_tools(runtime: LlamaCppRuntime) -> None:
    msgs = ask("Convert 10 km to miles.")
    sync = runtime.complete(msgs, TOOLS, "required", max_tokens=64)
    got = await runtime.acomplete(msgs, TOOLS, "required", max_tokens=64)
    assert got.parsed_tool_calls()[0]["arguments"] == sync.parsed_tool_calls()[0]["arguments"]
    assert got.parsed_tool_calls()[0]["name"] == sync.parsed_tool_calls()[0]["name"]
    chunks = [c async for c in runtime.astream(msgs, TOOLS, "required", max_tokens=64)]
    final = chunks[-1].completion
    assert final is not None
    assert final.tool_calls[0]["function"] == sync.tool_calls[0]["function"]
    assert "".join(d.arguments for c in chunks for d in c.tool_calls) == sync.tool_calls[0]["function"]["arguments"]


def test_two_threads_share_the_model_safely(runtime: LlamaCppRuntime) -> None:
    jobs = [("Weather in Berlin?", "get_weather"), ("Convert 3 km to miles.", "convert_units")]

    def view(c: Completion) -> tuple:
        return [t["function"] for t in c.tool_calls], [i["arguments"] for i in c.invalid_tool_calls], c.finish_reason

    expected = [view(runtime.complete(ask(q), TOOLS, name, max_tokens=64)) for q, name in jobs]
    results: dict[int, Completion] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = runtime.complete(ask(jobs[i][0]), TOOLS, jobs[i][1], max_tokens=64)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert errors == [] and sorted(results) == [0, 1]
    # decoded together, each gets exactly what it gets alone
    assert [view(results[i]) for i in range(2)] == expected
    assert [results[i].tool_calls[0]["function"]["name"] for i in range(2)] == ["get_weather", "convert_units"]


def test_timeout_raises_and_leaves_the_runtime_usable(runtime: LlamaCppRuntime) -> None:
    with pytest.raises(GenerationTimeout, match="timeout"):
        runtime.complete(ask(WEATHER_Q), TOOLS, "required", timeout=1e-6, max_tokens=64)
    c = runtime.complete(ask(WEATHER_Q), TOOLS, "required", max_tokens=64)
    assert_valid_calls(c)


# --- tools bound, then a history without them (these leave a different prefix cached) -----------
def test_history_with_a_tool_result_is_in_the_prompt_and_answered(runtime: LlamaCppRuntime) -> None:
    msgs = [
        *ask(WEATHER_Q),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_w1", "content": "18 degrees and cloudy"},
    ]
    prompt = runtime.render_prompt(msgs, TOOLS)
    assert '{"name": "get_weather", "content": "18 degrees and cloudy"}' in prompt
    assert prompt.index('"city": "Paris"') < prompt.index("18 degrees and cloudy")
    c = runtime.complete(msgs, TOOLS, "none", max_tokens=40)
    assert c.content.strip() and c.tool_calls == [] and "<tool_call>" not in c.content
    # without tools bound, a history with tool turns still answers in plain text
    c2 = runtime.complete(msgs, max_tokens=40)
    assert c2.content.strip() and "<tool_call>" not in c2.content and c2.tool_calls == []


async def test_astream_errors_and_early_exit_release_the_model(runtime: LlamaCppRuntime) -> None:
    with pytest.raises(InvalidRequest):
        await asyncio.wait_for(_drain(runtime.astream([])), timeout=30)
    stream = runtime.astream(ask("Tell me about Paris."), max_tokens=64)
    async for _ in stream:
        break
    await stream.aclose()
    assert runtime.lock.acquire(timeout=30), "the worker kept the model locked"
    runtime.lock.release()


async def _drain(stream: Any) -> list[StreamChunk]:
    return [c async for c in stream]


# --- no tools -----------------------------------------------------------------------------------
STORY = [{"role": "user", "content": "Count from one to ten in words, separated by commas."}]


def test_streamed_text_matches_the_final_content(runtime: LlamaCppRuntime) -> None:
    chunks = list(runtime.stream(STORY, max_tokens=24))
    final = chunks[-1]
    assert final.completion is not None
    c = final.completion
    assert "".join(ch.content for ch in chunks) == c.content != ""
    assert all(ch.tool_calls == [] for ch in chunks)
    assert c.usage.input_tokens > 0 and c.usage.output_tokens > 0
    assert c.ttft_ms is not None and c.ttft_ms <= c.latency_ms
    assert c.runtime == "llamacpp" and c.model.endswith(".gguf") and c.confidence is None


def test_max_tokens_gives_length(runtime: LlamaCppRuntime) -> None:
    c = runtime.complete(STORY, max_tokens=5)
    assert c.finish_reason == "length" and c.usage.output_tokens == 5


def test_stop_sequences_cut_the_text(runtime: LlamaCppRuntime) -> None:
    full = runtime.complete(STORY, max_tokens=16).content
    stop = full.strip()[len(full.strip()) // 2 :][:2]  # any piece of the greedy answer
    expected = full[: full.index(stop)]
    assert len(expected) < len(full)
    cut = runtime.complete(STORY, max_tokens=16, stop=[stop, "zzz-never"])
    assert cut.content == expected
    assert cut.finish_reason == "stop"
    single = runtime.complete(STORY, max_tokens=16, stop=stop)  # a single string works too
    assert single.content == expected
    streamed = "".join(ch.content for ch in runtime.stream(STORY, max_tokens=16, stop=[stop]))
    assert streamed == expected  # no piece of the stop sequence leaks into the stream


def test_seeded_sampling_is_reproducible(runtime: LlamaCppRuntime) -> None:
    def sample(seed: int) -> str:
        return runtime.complete(STORY, temperature=1.2, seed=seed, max_tokens=16).content

    first = sample(123)
    assert sample(123) == first
    assert any(sample(s) != first for s in (1, 2, 3))


async def test_async_twins_match_sync_text(runtime: LlamaCppRuntime) -> None:
    sync = runtime.complete(STORY, max_tokens=16)
    assert (await runtime.acomplete(STORY, max_tokens=16)).content == sync.content
    chunks = [c async for c in runtime.astream(STORY, max_tokens=16)]
    assert "".join(c.content for c in chunks) == sync.content
    assert chunks[-1].completion is not None and chunks[-1].completion.content == sync.content


def test_json_object_output(runtime: LlamaCppRuntime) -> None:
    msgs = [{"role": "user", "content": "Describe Paris as a JSON object with a name and a country."}]
    c = runtime.complete(msgs, response_format={"type": "json_object"}, max_tokens=64)
    assert c.finish_reason == "stop", c.content
    assert isinstance(json.loads(c.content), dict)


def test_json_schema_output(runtime: LlamaCppRuntime) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 24}, "country": {"type": "string", "maxLength": 24},
                       "big": {"type": "boolean"}, "rank": {"enum": [1, 2, 3]}},
        "required": ["city", "country", "big", "rank"],
        "additionalProperties": False,
    }
    msgs = [{"role": "user", "content": "Describe Paris."}]
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}}
    c = runtime.complete(msgs, response_format=fmt, max_tokens=64)
    assert c.finish_reason == "stop", c.content
    jsonschema.validate(json.loads(c.content), schema)


def test_json_format_with_tools_needs_tool_choice_none(runtime: LlamaCppRuntime) -> None:
    with pytest.raises(InvalidRequest, match="tool_choice='none'"):
        runtime.complete(ask(WEATHER_Q), TOOLS, "auto", response_format={"type": "json_object"})
    # ...and with tool_choice="none" the JSON format is enforced (it used to be ignored)
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"],
              "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    c = runtime.complete(ask(WEATHER_Q), TOOLS, "none", response_format=fmt, max_tokens=32)
    jsonschema.validate(json.loads(c.content), schema)
    assert c.tool_calls == []


def test_grammar_limits_cap_an_unbounded_array_the_model_would_fill(runtime: LlamaCppRuntime) -> None:
    schema = {"type": "object", "properties": {"primes": {"type": "array", "items": {"type": "integer"}}},
              "required": ["primes"], "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    msgs = [{"role": "user", "content": "List the first twenty prime numbers."}]
    capped = LlamaCppRuntime(n_threads=runtime._loaded.llm.n_threads, grammar_limits={"max_items": 3})
    c = capped.complete(msgs, response_format=fmt, max_tokens=96)
    assert c.finish_reason == "stop" and 1 <= len(json.loads(c.content)["primes"]) <= 3, c.content


# --- model instances ----------------------------------------------------------------------------
def test_runtimes_share_one_loaded_model(runtime: LlamaCppRuntime) -> None:
    first, second = LlamaCppRuntime(), LlamaCppRuntime()
    assert first.llama is second.llama and first.lock is second.lock
    before = len(loaded_models())
    other = LlamaCppRuntime(temperature=0.5, max_tokens=10)  # sampling defaults are not load options
    assert other.llama is first.llama
    assert len(loaded_models()) == before
    assert other.info.quantization == "Q4_1" and other.n_ctx == 4096
    # load options are part of the key: the fixture's runtime (its own n_threads) may differ
    assert LlamaCppRuntime(n_threads=runtime._loaded.llm.n_threads).llama is runtime.llama


def test_prompt_longer_than_the_context_is_rejected() -> None:
    small = LlamaCppRuntime(n_ctx=256)
    assert small.n_ctx == 256
    assert LlamaCppRuntime(n_ctx=256).llama is small.llama
    long = [{"role": "user", "content": "word " * 400}]
    with pytest.raises(InvalidRequest, match="raise n_ctx="):
        small.complete(long, max_tokens=4)
    assert small.complete([{"role": "user", "content": "Hi"}], max_tokens=3).usage.output_tokens > 0
