"""Where a model runs: in-process llama.cpp (GGUF) or any OpenAI-compatible server.

Every runtime satisfies :class:`Runtime`. Heavy dependencies load only when a runtime is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import SAMPLING_KEYS, BaseRuntime, Runtime
from .fake import FakeRuntime

if TYPE_CHECKING:
    from .llamacpp import LlamaCppRuntime
    from .openai_compat import OpenAICompatRuntime

__all__ = ["Runtime", "BaseRuntime", "SAMPLING_KEYS", "FakeRuntime", "LlamaCppRuntime", "OpenAICompatRuntime"]


def __getattr__(name: str) -> Any:
    if name == "LlamaCppRuntime":
        from .llamacpp import LlamaCppRuntime

        return LlamaCppRuntime
    if name == "OpenAICompatRuntime":
        from .openai_compat import OpenAICompatRuntime

        return OpenAICompatRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
