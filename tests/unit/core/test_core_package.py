"""The public surface of ``slm_agents`` (pinned, like httpx pins its ``__all__``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import slm_agents

PUBLIC = [
    "__version__",
    "SLMAgentsError",
    "ModelNotFound",
    "RuntimeUnavailable",
    "InvalidRequest",
    "ToolCallError",
    "GenerationError",
    "GenerationTimeout",
    "CaptureError",
    "Completion",
    "StreamChunk",
    "ToolCallDelta",
    "Usage",
    "Runtime",
    "BaseRuntime",
    "FakeRuntime",
    "LlamaCppRuntime",
    "OpenAICompatRuntime",
    "create_runtime",
    "ModelInfo",
    "default_model_path",
    "model_info",
    "ToolChoice",
    "normalize_tools",
    "normalize_tool_choice",
    "parse_tool_calls",
    "validate_tool_call",
    "EscalationPolicy",
    "DecisionCalibration",
    "hookimpl",
]


def test_all_is_pinned() -> None:
    assert slm_agents.__all__ == PUBLIC


def test_every_public_name_is_importable() -> None:
    for name in slm_agents.__all__:
        assert getattr(slm_agents, name) is not None, name
    namespace: dict = {}
    exec("from slm_agents import *", namespace)
    assert set(PUBLIC) - {"__version__"} <= set(namespace)


def test_exception_hierarchy() -> None:
    errors = [slm_agents.ModelNotFound, slm_agents.RuntimeUnavailable, slm_agents.InvalidRequest,
              slm_agents.ToolCallError, slm_agents.GenerationError, slm_agents.CaptureError]
    assert all(issubclass(e, slm_agents.SLMAgentsError) for e in errors)
    assert issubclass(slm_agents.GenerationTimeout, slm_agents.GenerationError)
    assert issubclass(slm_agents.GenerationTimeout, TimeoutError)
    assert issubclass(slm_agents.InvalidRequest, ValueError)


def test_missing_extra_names_the_install_command() -> None:
    from slm_agents.errors import missing_extra

    error = missing_extra("llama-cpp-python", "llamacpp")
    assert isinstance(error, slm_agents.RuntimeUnavailable)
    assert "pip install 'slm-agents[llamacpp]'" in str(error)


def test_unknown_attribute() -> None:
    try:
        slm_agents.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_light() -> None:
    code = (
        "import json, sys, slm_agents\n"
        "from slm_agents import FakeRuntime\n"
        "FakeRuntime(['x']).complete([{'role': 'user', 'content': 'hi'}])\n"
        "heavy = ('llama_cpp', 'langchain', 'langchain_core', 'llama_index', 'openai', 'numpy')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_lazy_runtime_names_resolve_to_the_classes() -> None:
    from slm_agents.runtimes.openai_compat import OpenAICompatRuntime

    assert slm_agents.OpenAICompatRuntime is OpenAICompatRuntime
    assert slm_agents.LlamaCppRuntime.__name__ == "LlamaCppRuntime"


@pytest.mark.parametrize(("face", "framework", "extra"), [
    ("langchain_slm", "langchain_core", "langchain"),
    ("llamaindex_slm", "llama_index", "llamaindex"),
])
def test_a_face_without_its_framework_names_the_extra(face: str, framework: str, extra: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{framework!r}] = None\n"
        f"sys.modules[{framework + '.core'!r}] = None\n"
        "try:\n"
        f"    import {face}\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert f"pip install 'slm-agents[{extra}]'" in out.stdout, out.stdout + out.stderr
