"""slm-agents for LangChain and LangGraph: local small models as chat models, SLM-first routing.

* :class:`ChatSLM` runs a local quantized model (llama.cpp GGUF, or any OpenAI-compatible
  server) as a LangChain chat model, with grammar-constrained tool calls and structured output.
* :class:`ChatSLMRouter` is a drop-in chat model that tries the SLM first and escalates a step to
  your LLM when the SLM's answer fails the :class:`~slm_agents.policy.EscalationPolicy`.

Importing this package never imports ``llama_cpp``; models load on first use.

Example:
    >>> from langchain_slm import ChatSLM, ChatSLMRouter
    >>> from slm_agents import FakeRuntime
    >>> ChatSLM(runtime=FakeRuntime(["hello"])).invoke("hi").content
    'hello'
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as _e:  # say which extra to install
    from slm_agents.errors import missing_extra as _missing_extra

    raise ImportError(str(_missing_extra("langchain-core", "langchain"))) from _e

from slm_agents.policy import EscalationPolicy

from .chat_models import ChatSLM
from .router import ChatSLMRouter

__all__ = [
    "ChatSLM",
    "ChatSLMRouter",
    "EscalationPolicy",
    "SLMCaptureHandler",
    "SLMRoutingMiddleware",
    "CaptureMiddleware",
    "create_slm_agent",
    "escalation_node",
    "route_after_slm",
]

# Capture, middleware and graph pieces import langgraph/langchain.agents: loaded on first use.
_LAZY = {
    "SLMCaptureHandler": ".callbacks",
    "SLMRoutingMiddleware": ".middleware",
    "CaptureMiddleware": ".middleware",
    "create_slm_agent": ".graph",
    "escalation_node": ".graph",
    "route_after_slm": ".graph",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
