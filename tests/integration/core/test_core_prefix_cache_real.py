"""The prefix cache on the real default model: an agent's nodes with different system prompts.

These tests run on their own loaded model (``n_batch=256`` makes its load key differ from the
shared fixture's), since they change its cache capacity and clear it. It has one slot, so every
switch between nodes goes through the cache (with more slots, each node keeps its prefix in a
slot of its own; ``test_core_batching.py`` tests those).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_it_data import TOOLS

from slm_agents.errors import InvalidRequest
from slm_agents.runtimes._kv_cache import DEFAULT_PREFIX_CACHE_BYTES
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

THREADS = int(os.environ.get("SLM_AGENTS_TEST_THREADS", "1"))
QUESTION = "What is the weather in Paris?"


def node(i: int, question: str = QUESTION) -> list[dict[str, Any]]:
    """A step of agent node ``i``: its own system prompt, the shared tools."""
    return [
        {"role": "system", "content": f"You are node {i} of a travel agent. Answer node {i}'s questions with a tool."},
        {"role": "user", "content": question},
    ]


@pytest.fixture(scope="module")
def rt() -> Iterator[LlamaCppRuntime]:
    runtime = LlamaCppRuntime(n_threads=THREADS, n_batch=256, slots=1)
    yield runtime
    LlamaCppRuntime(n_threads=THREADS, n_batch=256, slots=1, prefix_cache_bytes=DEFAULT_PREFIX_CACHE_BYTES)


@pytest.fixture()
def cold(rt: LlamaCppRuntime) -> LlamaCppRuntime:
    """The runtime at the default capacity with nothing evaluated yet."""
    LlamaCppRuntime(n_threads=THREADS, n_batch=256, slots=1, prefix_cache_bytes=DEFAULT_PREFIX_CACHE_BYTES)
    rt.clear_prefix_cache()
    return rt


def counts(rt: LlamaCppRuntime) -> dict[str, int]:
    """The cache's counters (cumulative over the module's tests)."""
    s = rt.stats()
    return {k: s[k] for k in ("cache_hits", "cache_misses", "cache_restores", "cache_evictions")}


def grew(before: dict[str, int], rt: LlamaCppRuntime) -> dict[str, int]:
    """How much each counter grew since ``before``."""
    return {k: v - before[k] for k, v in counts(rt).items()}


def answer(rt: LlamaCppRuntime, i: int, **kw: Any) -> Any:
    c = rt.complete(node(i), TOOLS, "required", max_tokens=48, **kw)
    return [call["function"] for call in c.tool_calls], c.finish_reason


def test_alternating_nodes_resume_their_prefix_from_the_cache(cold: LlamaCppRuntime, decodes: Any) -> None:
    rt = cold
    before = counts(rt)
    first = [answer(rt, i) for i in range(3)]
    assert rt.stats()["cache_entries"] == 3
    assert grew(before, rt) == {"cache_hits": 0, "cache_misses": 3, "cache_restores": 0, "cache_evictions": 0}
    prompt = rt.count_tokens(rt.render_prompt(node(0), TOOLS))
    calls = decodes(rt)
    again = [answer(rt, i) for i in range(3)]
    assert again == first  # greedy: resuming from a restored prefix changes nothing
    prompt_parts = [len(tokens) for rows in calls for _, tokens, _, _ in rows if len(tokens) > 1]
    assert len(prompt_parts) == 3 and max(prompt_parts) < prompt // 10, (prompt_parts, prompt)
    assert grew(before, rt) == {"cache_hits": 3, "cache_misses": 3, "cache_restores": 3, "cache_evictions": 0}
    assert rt.stats()["cache_entries"] == 3 and 0 < rt.stats()["hit_rate"] < 1


def test_answers_are_the_same_with_the_cache_off(cold: LlamaCppRuntime) -> None:
    with_cache = [answer(cold, i) for i in (0, 1, 0)]
    off = LlamaCppRuntime(n_threads=THREADS, n_batch=256, slots=1, prefix_cache_bytes=0)
    assert off.llama is cold.llama  # the cache belongs to the shared model: capacity 0 turns it off
    before = counts(off)
    assert [answer(off, i) for i in (0, 1, 0)] == with_cache
    after = off.stats()
    assert after["cache_capacity_bytes"] == 0 and after["cache_entries"] == 0 and after["cache_bytes"] == 0
    assert grew(before, off)["cache_restores"] == 0 and grew(before, off)["cache_misses"] == 0


def test_a_full_cache_evicts_and_never_fails_a_request(cold: LlamaCppRuntime) -> None:
    answer(cold, 0)
    one = cold.stats()["cache_bytes"]
    assert one > 0
    before = counts(cold)
    small = LlamaCppRuntime(n_threads=THREADS, n_batch=256, slots=1, prefix_cache_bytes=one + one // 2)  # room for one
    results = [answer(small, i) for i in (1, 2, 3, 1)]
    assert all(calls for calls, _ in results)  # every request answered with a call
    assert results[3] == results[0]  # node 1 again, after its entry was evicted: evaluated again, same answer
    stats = small.stats()
    assert stats["cache_entries"] == 1 and stats["cache_bytes"] <= stats["cache_capacity_bytes"]
    assert grew(before, small)["cache_evictions"] >= 3
    tiny = LlamaCppRuntime(n_threads=THREADS, n_batch=256, slots=1, prefix_cache_bytes=one // 2)  # no prefix fits
    assert answer(tiny, 2) == results[1]
    assert tiny.stats()["cache_entries"] == 0


def test_a_prompt_longer_than_the_context_raises_the_clear_error(cold: LlamaCppRuntime) -> None:
    long = node(0, "weather " * (cold.n_ctx + 10))
    with pytest.raises(InvalidRequest, match="raise n_ctx="):
        cold.complete(long, TOOLS, "required", max_tokens=8)
    assert answer(cold, 0)[0]  # and the runtime still answers


def test_stats_report_model_kv_and_cache_memory(cold: LlamaCppRuntime) -> None:
    answer(cold, 0)
    stats = cold.stats()
    size = cold.model_path.stat().st_size
    assert 0.8 * size < stats["model_bytes"] <= size
    assert stats["kv_bytes_per_slot"] == stats["n_ctx"] * stats["kv_bytes_per_token"]
    assert stats["slots"] == 1 and stats["kv_bytes"] == stats["kv_bytes_per_slot"]
    # SmolLM2-135M: 30 layers x (3 KV heads x 64) x K and V x f16
    assert stats["kv_bytes_per_token"] == 30 * 3 * 64 * 2 * 2
    # what each cached prefix really holds, as llama.cpp saved it: its tokens' KV plus a small header;
    # cache_bytes is their sum
    entries = list(cold._loaded.cache._entries.values())
    assert len(entries) == stats["cache_entries"] >= 1
    for entry in entries:
        kv = len(entry.tokens) * stats["kv_bytes_per_token"]
        assert kv <= entry.nbytes < 1.01 * kv, (entry.nbytes, kv)
    assert stats["cache_bytes"] == sum(entry.nbytes for entry in entries)


def write_tiny_adapter(path: Path) -> Path:
    """A valid rank-1 LoRA adapter on layer 0's query projection of the default model."""
    gguf = pytest.importorskip("gguf", reason="writing a test adapter needs the gguf package")
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 1.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.full((1, 576), 0.05, np.float16))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.full((576, 1), 0.05, np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_prefix_is_only_resumed_under_the_adapter_it_was_evaluated_with(cold: LlamaCppRuntime,
                                                                            tmp_path: Path) -> None:
    adapter = write_tiny_adapter(tmp_path / "adapter.gguf")
    before = counts(cold)
    base = answer(cold, 0)
    assert grew(before, cold)["cache_misses"] == 1
    cold.complete(node(0), TOOLS, "required", max_tokens=8, lora_path=adapter)
    assert cold.active_adapter == (str(adapter.resolve()), 1.0)
    # the base's entry for this very prefix was not used: the adapter's prefix was evaluated and kept apart
    assert grew(before, cold) == {"cache_hits": 0, "cache_misses": 2, "cache_restores": 0, "cache_evictions": 0}
    assert cold.stats()["cache_entries"] == 2
    assert {key[0] for key in cold._loaded.cache._entries} == {None, (str(adapter.resolve()), 1.0)}
    assert answer(cold, 0) == base  # back on the base weights: its own entry, restored
    assert grew(before, cold)["cache_restores"] == 1 and grew(before, cold)["cache_hits"] == 1
