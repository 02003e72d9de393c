"""The token loop over a llama.cpp context: prefix reuse (live and cached), sampler chains, grammar switching.

llama-cpp-python's ``Llama.generate`` builds one sampler chain per call. Tool calling with
``tool_choice="auto"`` wants two: the first token is sampled under the tool-call grammar (which
also admits plain text), and once the answer is plain text the grammar is dropped, so free text
decodes at full speed (a grammar over the whole vocabulary costs ~40% of decode speed here).
This module owns that loop. It touches a few of llama-cpp-python's internals (``_ctx``,
``_internals.LlamaSampler``, ``input_ids``/``n_tokens``), which is why the extra pins
``llama-cpp-python<0.4``.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Generator
from typing import Any

from ._kv_cache import CachedPrefix, PrefixCache, common_prefix_len

__all__ = ["Sampling", "SamplerSlot", "GrammarSampler", "build_sampler", "decode", "evaluate_prompt",
           "save_state", "restore_state", "MIN_PREFIX_TOKENS"]

_GREEDY_EPS = 1e-6
MIN_PREFIX_TOKENS = 32  # shorter stable prefixes are cheaper to evaluate again than to keep


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


def _chain(llm: Any, s: Sampling) -> Any:
    """A llama.cpp sampler chain without a grammar: penalties, then greedy or top-k/p/min-p/temp."""
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
    if s.temperature <= _GREEDY_EPS:
        chain.add_greedy()
    else:
        chain.add_top_k(s.top_k)
        chain.add_top_p(s.top_p, 1)
        chain.add_min_p(s.min_p, 1)
        chain.add_temp(s.temperature)
        chain.add_dist(s.seed & 0xFFFFFFFF)
    return chain


class GrammarSampler:
    """Samples under a GBNF grammar, checking the grammar only when it must.

    Applying a grammar to every candidate of a 49k-token vocabulary costs several milliseconds a
    token. Like llama.cpp's own common sampler, this samples without the grammar first and asks
    the grammar about that one token; only when the grammar rejects it are all candidates
    filtered and the token sampled again. The result is a token the grammar accepts, every time.
    """

    def __init__(self, llm: Any, s: Sampling, grammar: str):
        import llama_cpp
        import numpy as np

        from ..errors import InvalidRequest

        self._lib = llama_cpp
        self.chain = _chain(llm, s)
        self.grammar = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode("utf-8"), b"root")
        if not self.grammar:
            raise InvalidRequest("llama.cpp could not parse the grammar built from the schemas; simplify the schema")
        n_vocab = llm.n_vocab()
        # Any: llama_cpp annotates the fields with their ctypes types, but they take Python numbers
        self._one: Any = (llama_cpp.llama_token_data * 1)()
        self._one_arr = llama_cpp.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)
        self._all = (llama_cpp.llama_token_data * n_vocab)()
        self._all_np = np.ctypeslib.as_array(self._all)
        self._all_np["id"] = np.arange(n_vocab, dtype=np.int32)
        self._all_arr = llama_cpp.llama_token_data_array(data=self._all, size=n_vocab, selected=-1, sorted=False)
        self._n_vocab = n_vocab
        self.fallbacks = 0

    def _accepts(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._one_arr.size, self._one_arr.selected, self._one_arr.sorted = 1, -1, False
        self._lib.llama_sampler_apply(self.grammar, ctypes.byref(self._one_arr))
        return self._one[0].logit != float("-inf")

    def sample(self, ctx: Any, idx: int = -1) -> int:
        lib = self._lib
        token = lib.llama_sampler_sample(self.chain.sampler, ctx.ctx, idx)
        if not self._accepts(token):
            import numpy as np

            self.fallbacks += 1
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx.ctx, idx), shape=(self._n_vocab,))
            self._all_np["logit"] = logits
            self._all_np["p"] = 0.0
            arr = self._all_arr
            arr.size, arr.selected, arr.sorted = self._n_vocab, -1, False
            lib.llama_sampler_apply(self.grammar, ctypes.byref(arr))
            lib.llama_sampler_apply(self.chain.sampler, ctypes.byref(arr))
            token = self._all[arr.selected].id
            lib.llama_sampler_accept(self.chain.sampler, token)
        lib.llama_sampler_accept(self.grammar, token)
        return int(token)

    def close(self) -> None:
        if self.grammar:
            self._lib.llama_sampler_free(self.grammar)
            self.grammar = None
        self.chain.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter teardown
            self.close()


def build_sampler(llm: Any, s: Sampling, grammar: str | None) -> Any:
    """The sampler for one call: a plain chain, or a :class:`GrammarSampler` under ``grammar``."""
    if grammar is None:
        return _chain(llm, s)
    return GrammarSampler(llm, s, grammar)


def _live_prefix(llm: Any, tokens: list[int], limit: int) -> int:
    """How many leading ``tokens`` the context already holds (at most ``limit``)."""
    return common_prefix_len(llm.input_ids[: llm.n_tokens], tokens, limit)


def _keep_live(llm: Any, n: int) -> None:
    """Keep the first ``n`` evaluated tokens of sequence 0 and drop the rest."""
    if n > 0 and llm._ctx.kv_cache_seq_rm(0, n, -1):
        llm.n_tokens = n
    else:
        llm._ctx.kv_cache_seq_rm(0, -1, -1)
        llm.reset()


def save_state(llm: Any) -> tuple[Any, int]:
    """A copy of the context's sequence 0 (its KV cells): ``(buffer, bytes)``."""
    import llama_cpp

    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
    return buf, int(written)


def restore_state(llm: Any, entry: CachedPrefix) -> bool:
    """Put a cached prefix back into the context as sequence 0; False if llama.cpp refused."""
    import llama_cpp

    llm._ctx.kv_cache_seq_rm(0, -1, -1)
    llm.reset()
    if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, entry.state, entry.nbytes, 0) != entry.nbytes:
        llm._ctx.kv_cache_seq_rm(0, -1, -1)
        return False
    n = len(entry.tokens)
    llm.input_ids[:n] = entry.tokens
    llm.n_tokens = n
    return True


def _resume(llm: Any, tokens: list[int], cache: PrefixCache | None, adapter: Any) -> bool:
    """Bring the context to the longest evaluated prefix of ``tokens`` it can get: what it holds
    now, or a cached entry that shares more. True when a cached entry was restored."""
    limit = len(tokens) - 1  # at least one token is evaluated, for fresh logits
    live = _live_prefix(llm, tokens, limit)
    if cache is not None and cache.enabled:
        entry, shared = cache.best(adapter, tokens, limit)
        if entry is not None and shared > live:
            if restore_state(llm, entry):
                cache.touch(entry)
                _keep_live(llm, shared)
                return True
            live = 0  # the failed restore emptied the context
    _keep_live(llm, live)
    return False


def evaluate_prompt(
    llm: Any, tokens: list[int], cache: PrefixCache | None = None, adapter: Any = None, stable: int = 0
) -> None:
    """Evaluate ``tokens`` into the context, resuming from the longest prefix already evaluated.

    ``stable`` is the length of the part that repeats across an agent's steps (system prompt and
    tools). When it had to be evaluated here, its state is saved in ``cache`` under ``adapter``
    before the rest of the prompt is evaluated.
    """
    restored = _resume(llm, tokens, cache, adapter)
    if cache is None or not cache.enabled or stable < MIN_PREFIX_TOKENS or stable >= len(tokens):
        llm.eval(tokens[llm.n_tokens :])
        return
    if llm.n_tokens >= stable:
        cache.hits += 1
        cache.restores += restored
    else:
        cache.misses += 1
        llm.eval(tokens[llm.n_tokens : stable])
        if not cache.contains(adapter, tokens[:stable]):
            state, nbytes = save_state(llm)
            cache.put(adapter, tokens[:stable], state, nbytes)
    llm.eval(tokens[llm.n_tokens :])


class SamplerSlot:
    """Holds the sampler chain in use; the caller may swap ``current`` between tokens."""

    __slots__ = ("current",)

    def __init__(self, sampler: Any):
        self.current = sampler


def decode(
    llm: Any, tokens: list[int], slot: SamplerSlot, cache: PrefixCache | None = None, adapter: Any = None,
    stable: int = 0,
) -> Generator[int, None, None]:
    """Evaluate ``tokens`` (see :func:`evaluate_prompt`), then yield sampled tokens until closed.

    Each token is sampled with ``slot.current``; the caller may swap it between tokens (as when a
    grammar admitted plain text and the answer turned out to be text). The last yielded token is
    not evaluated, so the KV cache always matches ``llm.input_ids[:llm.n_tokens]``.
    """
    evaluate_prompt(llm, tokens, cache, adapter, stable)
    ctx = llm._ctx
    while True:
        token = slot.current.sample(ctx, -1)
        yield token
        llm.eval([token])
