"""Shared fixture of the core integration tests: one LlamaCppRuntime on the default model.

Tests that bind tools use the same system prompt and tools (``core_it_data``), in file order, so
the evaluated prefix (system prompt + tool listing) stays in the KV cache from one test to the next.

The runtime decodes on one thread unless ``SLM_AGENTS_TEST_THREADS`` says otherwise: llama.cpp's
worker threads spin at every graph barrier, and on a machine whose cores are shared with other
test runs two threads were 3-10x slower than one.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from slm_agents.runtimes.llamacpp import LlamaCppRuntime


@pytest.fixture(scope="session")
def runtime() -> LlamaCppRuntime:
    return LlamaCppRuntime(n_threads=int(os.environ.get("SLM_AGENTS_TEST_THREADS", "1")))


Rows = list[tuple[int, list[int], int, bool]]


@pytest.fixture()
def decodes(monkeypatch: pytest.MonkeyPatch) -> Callable[[LlamaCppRuntime], list[Rows]]:
    """``decodes(rt)``: from now on, the rows ``(sequence, tokens, first position, logits)`` of
    each llama.cpp decode the runtime's loaded model runs, one list per decode."""

    def watch(rt: LlamaCppRuntime) -> list[Rows]:
        calls: list[Rows] = []
        backend = rt._loaded.batch.backend
        original = backend.decode

        def spy(rows: Rows) -> None:
            calls.append([(seq, list(tokens), pos, logits) for seq, tokens, pos, logits in rows])
            original(rows)

        monkeypatch.setattr(backend, "decode", spy)
        return calls

    return watch
