"""The prefix cache's bookkeeping (slm_agents.runtimes._kv_cache) and the prompt part it keys on.

The cache keeps evaluated prompt prefixes (system prompt + tools) of one loaded model; these tests
use opaque byte strings as the saved state. The real model's save and restore are tested in
tests/integration/core/test_core_prefix_cache_real.py.
"""

from __future__ import annotations

import pytest

from slm_agents.runtimes._kv_cache import PrefixCache, common_prefix_len
from slm_agents.runtimes._prompt import ChatTemplate
from slm_agents.toolcalls import ToolChoice, normalize_tools

LORA = ("/models/run/adapter.gguf", 1.0)


def test_common_prefix_len() -> None:
    assert common_prefix_len([1, 2, 3], [1, 2, 3, 4]) == 3
    assert common_prefix_len([1, 2, 3], [1, 9, 3]) == 1
    assert common_prefix_len([], [1]) == 0
    assert common_prefix_len((1, 2, 3, 4), [1, 2, 3, 4], limit=2) == 2


def test_get_finds_only_the_exact_prefix() -> None:
    """Every prompt is evaluated in the same chunks (its stable prefix, then the rest), so an entry
    is only ever resumed as a whole: a lookup is exact, never the longest shared prefix."""
    cache = PrefixCache(1000)
    cache.put(None, [1, 2, 3], b"a", 10)
    cache.put(None, [1, 2, 7, 8, 9], b"b", 10)
    entry = cache.get(None, [1, 2, 7, 8, 9])
    assert entry is not None and entry.state == b"b" and entry.tokens == (1, 2, 7, 8, 9) and entry.nbytes == 10
    entry = cache.get(None, (1, 2, 3))  # a tuple of the tokens finds it too
    assert entry is not None and entry.state == b"a"
    assert cache.get(None, [1, 2]) is None  # a shorter prefix of an entry
    assert cache.get(None, [1, 2, 3, 4]) is None  # a longer prompt sharing an entry
    assert cache.get(None, [1, 2, 7, 8, 0]) is None
    assert cache.get(None, []) is None


def test_an_entry_is_only_found_under_the_adapter_it_was_evaluated_with() -> None:
    cache = PrefixCache(1000)
    cache.put(None, [1, 2, 3], b"base", 10)
    assert cache.get(LORA, [1, 2, 3]) is None and not cache.contains(LORA, [1, 2, 3])
    assert cache.get(("/models/run/adapter.gguf", 0.5), [1, 2, 3]) is None  # the scale counts too
    cache.put(LORA, [1, 2, 3], b"tuned", 10)
    assert len(cache) == 2 and cache.contains(LORA, [1, 2, 3]) and cache.contains(None, (1, 2, 3))
    entry = cache.get(LORA, [1, 2, 3])
    assert entry is not None and entry.state == b"tuned" and entry.adapter == LORA
    entry = cache.get(None, [1, 2, 3])
    assert entry is not None and entry.state == b"base" and entry.adapter is None


def test_bytes_are_bounded_and_the_least_recently_used_go_first() -> None:
    cache = PrefixCache(30)
    for i in range(3):
        assert cache.put(None, [i] * 4, f"s{i}".encode(), 10)
    assert cache.bytes == 30 and len(cache) == 3
    first = cache.get(None, [0] * 4)
    assert first is not None
    cache.touch(first)  # entry 0 is now the most recently used; entry 1 goes next
    assert cache.put(None, [3] * 4, b"s3", 10)
    assert cache.bytes == 30 and cache.evictions == 1
    assert not cache.contains(None, [1] * 4)
    assert all(cache.contains(None, [i] * 4) for i in (0, 2, 3))
    assert cache.put(None, [4] * 4, b"big", 25)  # makes room for a large entry by evicting several
    assert cache.bytes == 25 and len(cache) == 1 and cache.evictions == 4


def test_an_entry_larger_than_the_capacity_is_not_kept() -> None:
    cache = PrefixCache(30)
    cache.put(None, [1], b"x", 10)
    assert not cache.put(None, [2], b"too big", 31)
    assert len(cache) == 1 and cache.bytes == 10  # nothing was evicted for it


def test_a_capacity_of_zero_disables_the_cache() -> None:
    cache = PrefixCache(0)
    assert not cache.enabled
    assert not cache.put(None, [1, 2], b"x", 1)
    assert len(cache) == 0 and cache.get(None, [1, 2]) is None and not cache.contains(None, [1, 2])
    with pytest.raises(ValueError, match="0"):
        PrefixCache(-1)


def test_shrinking_the_capacity_evicts_and_putting_a_key_again_replaces_it() -> None:
    cache = PrefixCache(100)
    cache.put(None, [1], b"a", 40)
    cache.put(None, [2], b"b", 40)
    cache.put(None, [2], b"b2", 30)  # same key: replaced, not counted twice
    assert cache.bytes == 70 and len(cache) == 2
    cache.capacity_bytes = 50
    assert cache.bytes == 30 and len(cache) == 1 and cache.contains(None, [2])
    cache.capacity_bytes = 0
    assert cache.bytes == 0 and len(cache) == 0


def test_stats_count_hits_misses_and_bytes() -> None:
    cache = PrefixCache(100)
    assert cache.stats()["hit_rate"] is None
    cache.put(None, [1], b"a", 40)
    cache.hits, cache.misses, cache.restores = 3, 1, 2
    stats = cache.stats()
    assert stats == {
        "cache_capacity_bytes": 100, "cache_bytes": 40, "cache_entries": 1, "cache_hits": 3, "cache_misses": 1,
        "cache_restores": 2, "cache_evictions": 0, "hit_rate": 0.75,
    }
    cache.clear()
    assert cache.stats()["cache_bytes"] == 0 and cache.stats()["cache_hits"] == 3


# --- the prompt part the cache keys on: system prompt + tools, byte-stable across steps ----------
TOOLS = normalize_tools([
    {"name": "search_orders", "description": "Find a customer's orders",
     "parameters": {"type": "object", "properties": {"customer_id": {"type": "integer"}}, "required": ["customer_id"]}},
    {"name": "refund", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}},
])
SYSTEM = {"role": "system", "content": "You are the support desk's order agent. Be brief."}
CALL = {"id": "call_7", "type": "function", "function": {"name": "search_orders", "arguments": '{"customer_id": 42}'}}
NATIVE = (
    "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %}{{ t | tojson }}{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def agent_steps() -> list[tuple[list[dict], ToolChoice]]:
    """The steps of one agent: a first question, a follow-up after a tool result, other tool_choice."""
    first: list[dict] = [SYSTEM, {"role": "user", "content": "Orders of customer 42?"}]
    after_result: list[dict] = [*first, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                    {"role": "tool", "tool_call_id": "call_7", "content": '{"orders": ["A1"]}'},
                    {"role": "user", "content": "Refund A1."}]
    other: list[dict] = [SYSTEM, {"role": "user", "content": "Totally different question, in another step."}]
    return [(first, ToolChoice("auto")), (after_result, ToolChoice("required")), (other, ToolChoice("none")),
            (first, ToolChoice("required", "refund"))]


@pytest.mark.parametrize("kind", ["smollm2", "native"])
def test_system_prompt_and_tools_render_byte_stable_across_steps(kind: str, smollm2_template_source: str) -> None:
    source = smollm2_template_source if kind == "smollm2" else NATIVE
    template = ChatTemplate(source, "<|im_start|>", "<|im_end|>")
    prompts = [template.render(msgs, TOOLS, choice) for msgs, choice in agent_steps()]
    shared = prompts[0][: common_prefix_len(prompts[0], prompts[1])]
    for p in prompts[2:]:
        shared = shared[: common_prefix_len(shared, p)]
    # the same bytes, every step: the system prompt and every tool's definition, then the conversation
    assert SYSTEM["content"] in shared
    for tool in TOOLS:
        assert tool["function"]["name"] in shared
        assert str(tool["function"].get("description", tool["function"]["name"])) in shared
    assert "customer_id" in shared and "order_id" in shared  # the parameters schemas too
    assert "customer 42" not in shared
    assert shared.count("<|im_start|>") >= 1 and shared.endswith(("<|im_start|>", "<|im_start|>user\n"))
