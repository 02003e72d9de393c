"""Fixtures for the gateway's tests: a real upstream "LLM" on 127.0.0.1.

The upstream is llama-cpp-python's own ``python -m llama_cpp.server`` with the default model, on
a free loopback port, stopped at the end (as tests/integration/conftest.py runs it for the core).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from gateway_support import free_port, model_threads, wait_http


@dataclass(frozen=True)
class Upstream:
    """A running llama_cpp.server: ``base_url`` ends in /v1, ``model`` is its served name."""

    base_url: str
    model: str


@pytest.fixture(scope="session")
def upstream_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """llama_cpp.server with the default model on 127.0.0.1 (function calling on): the gateway's "LLM"."""
    from slm_agents.models import default_model_path

    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(default_model_path()),
        "--model_alias", "smollm2",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--n_threads", str(model_threads()),
        "--chat_format", "chatml-function-calling",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc, log=log)
        yield Upstream(base_url=f"http://127.0.0.1:{port}/v1", model="smollm2")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
