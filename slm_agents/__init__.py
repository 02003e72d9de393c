"""slm-agents: run the routine tool-calling steps of agents on local quantized small models.

The framework-neutral core. The LangChain/LangGraph face is ``langchain_slm``, the LlamaIndex
face ``llamaindex_slm``; both translate to the OpenAI-format dicts used here.

Example:
    >>> from slm_agents import FakeRuntime
    >>> FakeRuntime(responses=["hello"]).complete([{"role": "user", "content": "hi"}]).content
    'hello'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .decision import DecisionCalibration
from .errors import (
    CaptureError,
    GenerationError,
    GenerationTimeout,
    InvalidRequest,
    ModelNotFound,
    RuntimeUnavailable,
    SLMAgentsError,
    ToolCallError,
)
from .hookspecs import hookimpl
from .models import ModelInfo, default_model_path, model_info
from .plugins import create_runtime
from .policy import EscalationPolicy
from .runtimes import BaseRuntime, FakeRuntime, Runtime
from .toolcalls import (
    ToolChoice,
    normalize_tool_choice,
    normalize_tools,
    parse_tool_calls,
    validate_tool_call,
)
from .types import Completion, StreamChunk, ToolCallDelta, Usage

if TYPE_CHECKING:
    from .runtimes.llamacpp import LlamaCppRuntime
    from .runtimes.openai_compat import OpenAICompatRuntime

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # errors
    "SLMAgentsError",
    "ModelNotFound",
    "RuntimeUnavailable",
    "InvalidRequest",
    "ToolCallError",
    "GenerationError",
    "GenerationTimeout",
    "CaptureError",
    # values
    "Completion",
    "StreamChunk",
    "ToolCallDelta",
    "Usage",
    # runtimes
    "Runtime",
    "BaseRuntime",
    "FakeRuntime",
    "LlamaCppRuntime",
    "OpenAICompatRuntime",
    "create_runtime",
    # models
    "ModelInfo",
    "default_model_path",
    "model_info",
    # tool calls
    "ToolChoice",
    "normalize_tools",
    "normalize_tool_choice",
    "parse_tool_calls",
    "validate_tool_call",
    # escalation and the call-or-answer decision
    "EscalationPolicy",
    "DecisionCalibration",
    # plugins
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    if name in ("LlamaCppRuntime", "OpenAICompatRuntime"):
        from . import runtimes

        return getattr(runtimes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
