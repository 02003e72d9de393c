"""Shared fixtures for the LlamaIndex face's unit tests (fakes only: no model, no network)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("llama_index.core", reason="needs the llamaindex extra: pip install 'slm-agents[llamaindex]'")

from llama_index.core.tools import FunctionTool  # noqa: E402
from sqlite_utils import Database

from slm_agents.capture import CaptureStore


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"sunny in {city}"


@pytest.fixture
def add_tool() -> FunctionTool:
    return FunctionTool.from_defaults(add)


@pytest.fixture
def weather_tool() -> FunctionTool:
    return FunctionTool.from_defaults(get_weather)


@pytest.fixture
def store() -> Iterator[CaptureStore]:
    s = CaptureStore(Database(memory=True), redactor=None)
    yield s
    s.close()


@pytest.fixture
def capture(store: CaptureStore) -> Iterator[object]:
    from llamaindex_slm import slm_agents_capture

    handler = slm_agents_capture(store=store)
    yield handler
    handler.remove()


@pytest.fixture
def captured(store: CaptureStore, capture: object):
    """Returns a function that waits for the writes and returns every stored call, oldest first."""

    def read() -> list[dict]:
        assert capture.flush()  # type: ignore[attr-defined]
        if "calls" not in store.db.table_names():
            return []
        return [store.get_call(r["id"]) for r in store.db.query("select id from calls order by id")]

    return read
