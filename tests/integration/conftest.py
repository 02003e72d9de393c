"""Fixtures for integration tests: the real default model and a real OpenAI-compatible server.

Every test here is marked ``integration``. The server is llama-cpp-python's own
(``python -m llama_cpp.server``), started on 127.0.0.1 on a free port and stopped at the end by
:func:`slm_agents.testing.llama_server` (the gateway plugin's tests use the same helper).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from slm_agents.models import default_model_path
from slm_agents.testing import LlamaServer
from slm_agents.testing import llama_server as run_llama_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def llama_server(default_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama_cpp.server with the default model on 127.0.0.1, function calling enabled."""
    with run_llama_server(tmp_path_factory.mktemp("llama-server"), model_path=default_gguf) as server:
        yield server
