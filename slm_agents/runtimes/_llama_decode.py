"""The token loop over a llama.cpp context: prefix reuse, sampler chains, and grammar switching.

llama-cpp-python's ``Llama.generate`` builds one sampler chain per call. Tool calling with
``tool_choice="auto"`` wants two: the first token is sampled under the tool-call grammar (which
also admits plain text), and once the answer is plain text the grammar is dropped, so free text
decodes at full speed (a grammar over the whole vocabulary costs ~40% of decode speed here).
This module owns that loop. It touches a few of llama-cpp-python's internals (``_ctx``,
``_internals.LlamaSampler``, ``input_ids``/``n_tokens``), which is why the extra pins
``llama-cpp-python<0.4``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["Sampling", "SamplerSlot", "build_sampler", "decode"]

_GREEDY_EPS = 1e-6


class Sampling:
    """Sampler settings for one call."""

    __slots__ = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "frequency_penalty",
                 "presence_penalty", "seed")

    def __init__(self, opts: dict[str, Any], default_seed: int):
        self.temperature = float(opts["temperature"])
        self.top_p = float(opts["top_p"])
        self.top_k = int(opts["top_k"])
        self.min_p = float(opts["min_p"])
        self.repeat_penalty = float(opts["repeat_penalty"])
        self.frequency_penalty = float(opts.get("frequency_penalty") or 0.0)
        self.presence_penalty = float(opts.get("presence_penalty") or 0.0)
        seed = opts.get("seed")
        self.seed = int(seed) if seed is not None else default_seed


def build_sampler(llm: Any, s: Sampling, grammar: str | None) -> Any:
    """A llama.cpp sampler chain: penalties, optional grammar, then greedy or top-k/p/min-p/temp."""
    from llama_cpp import LlamaGrammar
    from llama_cpp._internals import LlamaSampler

    chain = LlamaSampler()
    if s.repeat_penalty != 1.0 or s.frequency_penalty or s.presence_penalty:
        chain.add_penalties(
            n_vocab=llm.n_vocab(),
            penalty_last_n=64,
            penalty_repeat=s.repeat_penalty,
            penalty_freq=s.frequency_penalty,
            penalty_present=s.presence_penalty,
        )
    if grammar is not None:
        chain.add_grammar(llm._model, LlamaGrammar.from_string(grammar, verbose=False))
    if s.temperature <= _GREEDY_EPS:
        chain.add_greedy()
    else:
        chain.add_top_k(s.top_k)
        chain.add_top_p(s.top_p, 1)
        chain.add_min_p(s.min_p, 1)
        chain.add_temp(s.temperature)
        chain.add_dist(s.seed & 0xFFFFFFFF)
    return chain


def _reuse_prefix(llm: Any, tokens: list[int]) -> int:
    """Keep the longest cached prefix of ``tokens`` in the KV cache; return its length."""
    cached = llm.n_tokens
    limit = min(cached, len(tokens) - 1)  # at least one token is evaluated, for fresh logits
    same = 0
    ids = llm.input_ids
    while same < limit and ids[same] == tokens[same]:
        same += 1
    if same > 0 and llm._ctx.kv_cache_seq_rm(-1, same, -1):
        llm.n_tokens = same
    else:
        llm.reset()
    return llm.n_tokens


class SamplerSlot:
    """Holds the sampler chain in use; the caller may swap ``current`` between tokens."""

    __slots__ = ("current",)

    def __init__(self, sampler: Any):
        self.current = sampler


def decode(llm: Any, tokens: list[int], slot: SamplerSlot) -> Iterator[int]:
    """Evaluate ``tokens`` (reusing the cached prefix), then yield sampled tokens until closed.

    Each token is sampled with ``slot.current``; the caller may swap it between tokens (as when a
    grammar admitted plain text and the answer turned out to be text). The last yielded token is
    not evaluated, so the KV cache always matches ``llm.input_ids[:llm.n_tokens]``.
    """
    _reuse_prefix(llm, tokens)
    llm.eval(tokens[llm.n_tokens :])
    ctx = llm._ctx
    while True:
        token = slot.current.sample(ctx, -1)
        yield token
        llm.eval([token])
