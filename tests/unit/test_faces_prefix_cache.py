"""Both faces take ``prefix_cache_bytes`` with the same name and default and hand it to the local
runtime (a recording stand-in for LlamaCppRuntime, so no model is loaded)."""

from __future__ import annotations

from typing import Any

import pytest

import slm_agents.runtimes.llamacpp as llamacpp


class RecordingRuntime:
    """Stands in for LlamaCppRuntime: keeps the arguments a face builds it with."""

    built: list[dict[str, Any]] = []

    def __init__(self, model_path: Any = None, **kwargs: Any) -> None:
        RecordingRuntime.built.append(kwargs)


def chat_slm(**kw: Any) -> Any:
    from langchain_slm import ChatSLM

    return ChatSLM(**kw).client


def llamaindex_slm(**kw: Any) -> Any:
    from llamaindex_slm import SLM

    return SLM(**kw).runtime


@pytest.mark.parametrize("build", [chat_slm, llamaindex_slm], ids=["ChatSLM", "SLM"])
@pytest.mark.parametrize("value", [None, 0, 64 * 1024 * 1024])
def test_prefix_cache_bytes_reaches_the_local_runtime(monkeypatch: pytest.MonkeyPatch, build: Any,
                                                       value: int | None) -> None:
    monkeypatch.setattr(llamacpp, "LlamaCppRuntime", RecordingRuntime)
    RecordingRuntime.built.clear()
    kw = {} if value is None else {"prefix_cache_bytes": value}
    assert isinstance(build(**kw), RecordingRuntime)
    # None may be left out (the runtime's own default is None: keep the loaded model's capacity)
    assert RecordingRuntime.built[-1].get("prefix_cache_bytes") == value


def test_both_faces_default_to_the_loaded_models_capacity() -> None:
    from langchain_slm import ChatSLM
    from llamaindex_slm import SLM

    assert ChatSLM.model_fields["prefix_cache_bytes"].default is None
    assert SLM.model_fields["prefix_cache_bytes"].default is None


@pytest.mark.parametrize("build", [chat_slm, llamaindex_slm], ids=["ChatSLM", "SLM"])
@pytest.mark.parametrize("value", [None, 1, 8])
def test_slots_reach_the_local_runtime(monkeypatch: pytest.MonkeyPatch, build: Any, value: int | None) -> None:
    monkeypatch.setattr(llamacpp, "LlamaCppRuntime", RecordingRuntime)
    RecordingRuntime.built.clear()
    kw = {} if value is None else {"slots": value}
    assert isinstance(build(**kw), RecordingRuntime)
    # None is left out: the runtime's own default applies
    assert RecordingRuntime.built[-1].get("slots") == value
