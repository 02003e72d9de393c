"""Samplers for one request: sampler chains, grammar sampling, and the slot a request swaps them in.

llama-cpp-python's ``Llama.generate`` builds one sampler chain per call. Tool calling with
``tool_choice="auto"`` wants two: the first token is sampled under the tool-call grammar (which
also admits plain text), and once the answer is plain text the grammar is dropped, so free text
decodes at full speed (a grammar over the whole vocabulary costs ~40% of decode speed here).
This module builds those samplers (``_batch`` runs the token loop). It uses a few of
llama-cpp-python's internals (``_internals.LlamaSampler``, the context's ``ctx``), which is why the
extra pins ``llama-cpp-python<0.4``.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

__all__ = ["Sampling", "SamplerSlot", "GrammarSampler", "build_sampler", "carry_history"]

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


def _has_penalties(s: Sampling) -> bool:
    """The chain keeps a history of the tokens it accepts (repeat, frequency or presence penalty)."""
    return s.repeat_penalty != 1.0 or bool(s.frequency_penalty) or bool(s.presence_penalty)


def _chain(llm: Any, s: Sampling) -> Any:
    """A llama.cpp sampler chain without a grammar: penalties, then greedy or top-k/p/min-p/temp."""
    from llama_cpp._internals import LlamaSampler

    chain = LlamaSampler()
    if _has_penalties(s):
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
        self._penalties = _has_penalties(s)
        self.fallbacks = 0

    def _accepts(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._one_arr.size, self._one_arr.selected, self._one_arr.sorted = 1, -1, False
        self._lib.llama_sampler_apply(self.grammar, ctypes.byref(self._one_arr))
        return self._one[0].logit != float("-inf")

    def sample(self, ctx: Any, idx: int = -1) -> int:
        lib = self._lib
        if self._penalties:
            return self._sample_with_history(ctx, idx)
        token = lib.llama_sampler_sample(self.chain.sampler, ctx.ctx, idx)
        if not self._accepts(token):
            self.fallbacks += 1
            token = self._apply_all(ctx, idx, grammar=True)
            lib.llama_sampler_accept(self.chain.sampler, token)
        lib.llama_sampler_accept(self.grammar, token)
        return int(token)

    def _apply_all(self, ctx: Any, idx: int, *, grammar: bool) -> int:
        """Every candidate through the grammar (when asked) and the chain; the token chosen,
        which nothing has accepted yet."""
        import numpy as np

        lib = self._lib
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx.ctx, idx), shape=(self._n_vocab,))
        self._all_np["logit"] = logits
        self._all_np["p"] = 0.0
        arr = self._all_arr
        arr.size, arr.selected, arr.sorted = self._n_vocab, -1, False
        if grammar:
            lib.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        lib.llama_sampler_apply(self.chain.sampler, ctypes.byref(arr))
        return int(self._all[arr.selected].id)

    def _sample_with_history(self, ctx: Any, idx: int) -> int:
        """:meth:`sample` for a chain with penalties, which keep the tokens it accepts.

        ``llama_sampler_sample`` accepts the token it picks, so a first pick the grammar then
        rejects would stay in the penalty history beside the token that replaced it. The chain is
        applied without accepting instead, and only the token returned is accepted.
        """
        lib = self._lib
        token = self._apply_all(ctx, idx, grammar=False)
        if not self._accepts(token):
            self.fallbacks += 1
            token = self._apply_all(ctx, idx, grammar=True)
        lib.llama_sampler_accept(self.chain.sampler, token)
        lib.llama_sampler_accept(self.grammar, token)
        return token

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


def carry_history(sampler: Any, tokens: list[int]) -> None:
    """Accept ``tokens`` (those already emitted) into a fresh ``sampler``, so that its penalties
    count them as the sampler it replaces did."""
    import llama_cpp

    chain = sampler.chain if isinstance(sampler, GrammarSampler) else sampler
    for token in tokens:
        llama_cpp.llama_sampler_accept(chain.sampler, token)


class SamplerSlot:
    """Holds the sampler chain in use; the caller may swap ``current`` between tokens."""

    __slots__ = ("current",)

    def __init__(self, sampler: Any):
        self.current = sampler
