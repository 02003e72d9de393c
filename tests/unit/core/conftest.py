"""Fixtures for the core unit tests: the default model's vocabulary (no weights) and grammar checks.

Loading the GGUF with ``vocab_only=True`` takes ~0.1 s and lets llama.cpp's own GBNF parser judge
every grammar the core builds. Acceptance of a candidate string is checked without ever calling
``llama_sampler_accept`` on a token the grammar rejects (that aborts the process): each token is
first offered to ``llama_sampler_apply``, which only masks rejected tokens to -inf.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def vocab_llama() -> Iterator[Any]:
    llama_cpp = pytest.importorskip("llama_cpp", reason="grammar checks need llama-cpp-python")
    from slm_agents.models import default_model_path

    llm = llama_cpp.Llama(str(default_model_path()), vocab_only=True, verbose=False)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def grammar_parses(vocab_llama: Any) -> Callable[[str], bool]:
    """True when llama.cpp's GBNF parser accepts the grammar (the sampler is non-NULL)."""
    import llama_cpp

    def check(grammar: str) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab_llama._model.vocab, grammar.encode(), b"root")
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    return check


@pytest.fixture(scope="session")
def grammar_accepts(vocab_llama: Any) -> Callable[[str, str], bool]:
    """True when the grammar admits exactly ``text`` (every token, then end-of-generation)."""
    import llama_cpp

    def allowed(sampler: Any, token: int) -> bool:
        data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
        array = llama_cpp.llama_token_data_array(data, 1, -1, False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        return data[0].logit != float("-inf")

    def check(grammar: str, text: str) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab_llama._model.vocab, grammar.encode(), b"root")
        assert sampler, f"llama.cpp rejected the grammar:\n{grammar}"
        try:
            for token in vocab_llama.tokenize(text.encode("utf-8"), add_bos=False, special=False):
                if not allowed(sampler, token):
                    return False
                llama_cpp.llama_sampler_accept(sampler, token)  # safe: the grammar allows it
            return allowed(sampler, vocab_llama.token_eos())
        finally:
            llama_cpp.llama_sampler_free(sampler)

    return check


@pytest.fixture(scope="session")
def smollm2_template_source(vocab_llama: Any) -> str:
    return vocab_llama.metadata["tokenizer.chat_template"]
