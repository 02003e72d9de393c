"""Typed errors from the real in-process runtime: a prompt past n_ctx is a ContextOverflow, and a
routed step escalates with reason ``context_overflow`` (issue 12 §3)."""

from __future__ import annotations

from slm_agents.errors import ContextOverflow, InvalidRequest
from slm_agents.policy import EscalationPolicy
from slm_agents.routing import run_routed
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

TOOLS = [{"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}]


def test_a_prompt_past_the_context_is_a_context_overflow_and_escalates_as_such() -> None:
    small = LlamaCppRuntime(n_ctx=256)
    long = [{"role": "user", "content": "word " * 400}]
    try:
        small.complete(long, TOOLS, max_tokens=4)
    except ContextOverflow as e:
        error = e
    else:
        raise AssertionError("a 400-word prompt fit a 256-token context")
    assert isinstance(error, InvalidRequest) and error.n_ctx == 256 and error.tokens is not None and error.tokens > 256
    out = run_routed(EscalationPolicy(), long, TOOLS, "auto",
                     slm=lambda: small.complete(long, TOOLS, max_tokens=4), llm=lambda: "LLM answer")
    assert (out.route, out.reason, out.result) == ("llm", "context_overflow", "LLM answer")
