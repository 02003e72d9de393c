"""GrammarSampler under repeat/frequency/presence penalties, on the default model.

``llama_sampler_sample`` accepts the token it picks into the chain's penalty history. The
grammar sampler tries the chain's own pick first and, when the grammar rejects it, picks again
among the tokens the grammar allows; the rejected pick must not stay in the history.
"""

from __future__ import annotations

from collections.abc import Iterator

import llama_cpp
import pytest

from slm_agents.models import default_model_path
from slm_agents.runtimes._llama_decode import GrammarSampler, Sampling, build_sampler, carry_history

pytestmark = pytest.mark.integration

GREEDY = {"temperature": 0.0, "top_p": 1.0, "top_k": 40, "min_p": 0.0}


@pytest.fixture(scope="module")
def llm() -> Iterator[llama_cpp.Llama]:
    model = llama_cpp.Llama(str(default_model_path()), n_ctx=128, n_threads=1, verbose=False)
    model.eval(model.tokenize(b"The capital of France is"))
    yield model
    model.close()


def _greedy_pick(llm: llama_cpp.Llama, repeat_penalty: float) -> tuple[object, int]:
    chain = build_sampler(llm, Sampling({**GREEDY, "repeat_penalty": repeat_penalty}, 0), None)
    return chain, llama_cpp.llama_sampler_sample(chain.sampler, llm._ctx.ctx, -1)


def test_a_pick_the_grammar_rejects_stays_out_of_the_penalty_history(llm: llama_cpp.Llama) -> None:
    _, free = _greedy_pick(llm, 1.0)  # what the model says next, unconstrained
    forced = GrammarSampler(llm, Sampling({**GREEDY, "repeat_penalty": 50.0}, 0), 'root ::= "~"')
    try:
        token = forced.sample(llm._ctx)
        assert llm.detokenize([token]) == b"~"
        assert forced.fallbacks == 1  # the chain's own pick (free) was rejected
        # Only "~" is in the history, so free is not penalised: the chain picks it again from the
        # same logits. Before the fix free was in the history too, and a x50 penalty moved the pick.
        assert llama_cpp.llama_sampler_sample(forced.chain.sampler, llm._ctx.ctx, -1) == free
    finally:
        forced.close()


def test_a_pick_the_grammar_accepts_enters_the_history_once(llm: llama_cpp.Llama) -> None:
    _, free = _greedy_pick(llm, 1.0)
    text = llm.detokenize([free]).decode()
    allowed = GrammarSampler(llm, Sampling({**GREEDY, "repeat_penalty": 50.0}, 0), f'root ::= "{text}"')
    try:
        assert allowed.sample(llm._ctx) == free
        assert allowed.fallbacks == 0
        # free is in the history now: the penalised chain no longer picks it
        assert llama_cpp.llama_sampler_sample(allowed.chain.sampler, llm._ctx.ctx, -1) != free
    finally:
        allowed.close()


def test_the_free_text_sampler_carries_the_first_token(llm: llama_cpp.Llama) -> None:
    # After an "auto" step's first token the answer runs free of the grammar on a new chain; the
    # token already emitted must count in that chain's penalties, as it did in the one before.
    _, free = _greedy_pick(llm, 1.0)
    fresh = build_sampler(llm, Sampling({**GREEDY, "repeat_penalty": 50.0}, 0), None)
    carry_history(fresh, [free])
    assert llama_cpp.llama_sampler_sample(fresh.sampler, llm._ctx.ctx, -1) != free
    fresh.close()


def test_a_text_answer_hands_its_first_token_to_the_free_sampler(monkeypatch: pytest.MonkeyPatch, runtime) -> None:
    from slm_agents.runtimes import llamacpp

    carried: list[list[int]] = []
    real = llamacpp.carry_history
    monkeypatch.setattr(llamacpp, "carry_history", lambda sampler, tokens: (carried.append(list(tokens)),
                                                                           real(sampler, tokens)))
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    out = runtime.complete([{"role": "user", "content": "Say hello to me."}], tools, tool_choice="none",
                           max_tokens=4, repeat_penalty=1.3)
    assert out.content
    assert carried and len(carried[0]) == 1
