"""Batched decoding on the real default model: concurrent requests decode together.

One loaded model with 4 slots serves threads that mix tool choices, streaming and plain text.
Every answer must be the one the same request gets alone (greedy), nothing may be lost or crash,
and a reader that leaves or times out must free its slot.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest
from core_it_data import SYSTEM, TOOLS

from slm_agents.errors import GenerationTimeout
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

THREADS = int(os.environ.get("SLM_AGENTS_TEST_THREADS", "1"))
QUESTIONS = ["Weather in Paris?", "Convert 10 km to miles.", "Hello there!", "Tell me a joke.",
             "What is the weather in Lima in f?", "How far is 3 mi in km?"]
CHOICES = ("required", "auto", "none", None)  # None: no tools bound
FOLLOW_UP = "Thanks! And in Rome?"  # a second turn: resumes from the first turn's evaluated prompt
REQUESTS = [(q, c) for q in [*QUESTIONS, FOLLOW_UP] for c in CHOICES]


def messages_for(question: str) -> list[dict[str, Any]]:
    if question != FOLLOW_UP:
        return [SYSTEM, {"role": "user", "content": question}]
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    return [SYSTEM, {"role": "user", "content": QUESTIONS[0]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and cloudy"},
            {"role": "assistant", "content": "It is 18 degrees and cloudy in Paris."},
            {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def rt() -> LlamaCppRuntime:
    # n_batch=384 makes its load key differ from the shared fixture's: these tests fill its slots
    return LlamaCppRuntime(n_threads=THREADS, n_batch=384, slots=4)


def ask(rt: LlamaCppRuntime, request: tuple[str, str | None], stream: bool) -> tuple[Any, ...]:
    question, choice = request
    messages = messages_for(question)
    tools = TOOLS if choice else None
    if stream:
        chunks = list(rt.stream(messages, tools, choice, max_tokens=40))
        text = "".join(c.content or "" for c in chunks[:-1])
        completion = chunks[-1].completion
        assert completion is not None
        if not completion.tool_calls:
            assert text == (completion.content or "")  # the stream carried the whole text
    else:
        completion = rt.complete(messages, tools, choice, max_tokens=40)
    calls = [(t["function"]["name"], t["function"]["arguments"]) for t in completion.tool_calls]
    return completion.content, tuple(calls), completion.finish_reason


def test_concurrent_requests_get_the_answers_they_get_alone(rt: LlamaCppRuntime, decodes: Any) -> None:
    """8 threads x 50 requests, mixed tool_choice and streaming: no crash, none lost, and every
    answer identical to the same request's answer alone."""
    alone = {r: ask(rt, r, stream=False) for r in REQUESTS}
    assert alone == {r: ask(rt, r, stream=False) for r in REQUESTS}  # alone is reproducible
    assert any(calls for _, calls, _ in alone.values()) and any(text for text, _, _ in alone.values())
    calls = decodes(rt)
    answers: list[tuple[tuple[str, str | None], tuple[Any, ...]]] = []
    errors: list[BaseException] = []

    def agent(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(50):
            request = rng.choice(REQUESTS)
            try:
                answers.append((request, ask(rt, request, stream=rng.random() < 0.5)))
            except BaseException as e:  # reported by the assertions below
                errors.append(e)

    threads = [threading.Thread(target=agent, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert not any(t.is_alive() for t in threads), "a request never finished"
    assert errors == []
    assert len(answers) == 8 * 50
    differ = [(r, got, alone[r]) for r, got in answers if got != alone[r]]
    assert differ == []
    widths = [len(rows) for rows in calls]
    assert max(widths) == 4 and sum(widths) / len(widths) > 1.5  # they really shared decodes
    assert rt.stats()["slots_busy"] == 0


def test_a_reader_that_leaves_frees_its_slot(rt: LlamaCppRuntime) -> None:
    messages = [{"role": "user", "content": "Count from one to fifty in words."}]
    streams = [rt.stream(messages, max_tokens=200) for _ in range(4)]
    for s in streams:
        next(s)  # all four slots are taken
    for s in streams:
        s.close()  # the readers leave mid-answer
    deadline = time.monotonic() + 60
    while rt.stats()["slots_busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rt.stats()["slots_busy"] == 0
    assert rt.complete(messages, max_tokens=4).usage.output_tokens == 4  # the model serves on


def test_a_timeout_ends_one_request_and_not_the_others(rt: LlamaCppRuntime) -> None:
    messages = [{"role": "user", "content": "Count from one to fifty in words."}]
    results: dict[str, Any] = {}

    alone = rt.complete(messages, max_tokens=40)

    def long_one() -> None:
        results["long"] = rt.complete(messages, max_tokens=40)

    worker = threading.Thread(target=long_one)
    worker.start()
    # an answer that runs to its 400 tokens (~2.6 s alone): the counting prompt's answer ends after 25
    # tokens, which a warm cache served within 0.3 s, so the timeout sometimes never came
    story = [{"role": "user", "content": "Write a long story about a dragon who learns to cook."}]
    with pytest.raises(GenerationTimeout):
        rt.complete(story, max_tokens=400, timeout=0.3)
    worker.join(timeout=120)
    assert results["long"].content == alone.content and results["long"].usage == alone.usage
    assert rt.stats()["slots_busy"] == 0


def test_async_requests_are_batched_too(rt: LlamaCppRuntime, decodes: Any) -> None:
    import asyncio

    requests = [(q, "required") for q in QUESTIONS[:4]]
    alone = [ask(rt, r, stream=False) for r in requests]

    async def main() -> list[Any]:
        tasks = [rt.acomplete([SYSTEM, {"role": "user", "content": q}], TOOLS, choice, max_tokens=40)
                 for q, choice in requests]
        return await asyncio.gather(*tasks)

    calls = decodes(rt)
    completions = asyncio.run(main())
    got = [(c.content, tuple((t["function"]["name"], t["function"]["arguments"]) for t in c.tool_calls),
            c.finish_reason) for c in completions]
    assert got == alone and any(calls for _, calls, _ in got)
    assert max(len(rows) for rows in calls) >= 2


def test_stats_count_kv_memory_per_slot(rt: LlamaCppRuntime) -> None:
    stats = rt.stats()
    assert stats["slots"] == 4
    assert stats["kv_bytes_per_slot"] == stats["n_ctx"] * stats["kv_bytes_per_token"]
    assert stats["kv_bytes"] == 4 * stats["kv_bytes_per_slot"]
    assert rt.n_ctx == stats["n_ctx"] == 4096  # each request still has the whole context


def test_cancelled_async_calls_free_their_slots(rt: LlamaCppRuntime) -> None:
    """A cancelled ``acomplete`` (a timeout, a cancelled graph node) and an ``astream`` left while
    it still waits for a slot stop at the next token, not at the end of their answers."""
    import asyncio

    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]

    async def main() -> float:
        began = time.monotonic()
        calls = [asyncio.create_task(rt.acomplete(messages, max_tokens=400)) for _ in range(4)]
        await asyncio.sleep(0.5)
        assert rt.stats()["slots_busy"] == 4  # all four slots are decoding
        waiting = rt.astream(messages, max_tokens=400)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(waiting.__anext__(), timeout=0.2)  # no slot for it: it waits
        # leaving it returned at once, not when a slot came free (four 400-token answers take seconds)
        assert time.monotonic() - began < 2.0
        start = time.monotonic()
        for call in calls:
            call.cancel()
        await waiting.aclose()
        await asyncio.gather(*calls, return_exceptions=True)
        while rt.stats()["slots_busy"] and time.monotonic() - start < 60:
            await asyncio.sleep(0.02)
        return time.monotonic() - start

    freed_in = asyncio.run(main())
    # four answers of 400 tokens take many seconds; cancelled, the slots are free within a few steps
    assert rt.stats()["slots_busy"] == 0 and freed_in < 2.0, freed_in
    assert rt.complete(messages, max_tokens=4).usage.output_tokens == 4


@pytest.mark.parametrize("slots", [0, -1, 2.5, "4"])
def test_a_bad_slots_value_is_a_clear_error(slots: Any) -> None:
    from slm_agents.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=r"slots=.*use 1 or more"):
        LlamaCppRuntime(slots=slots)
