"""slm-agents for LlamaIndex: local small models as LlamaIndex LLMs, SLM-first routing, capture.

* :class:`SLM` — a ``FunctionCallingLLM`` run by a local quantized model (the packaged
  SmolLM2-135M-Instruct by default, any GGUF, or any OpenAI-compatible server); works in
  ``FunctionAgent``, ``AgentWorkflow`` and ``ReActAgent``.
* :class:`RouterLLM` — the SLM first, any LlamaIndex LLM when the SLM's answer fails the
  :class:`~slm_agents.policy.EscalationPolicy`; route and reason on every response.
* :func:`slm_agents_capture` — one line that records every LlamaIndex LLM call into the
  slm-agents capture store, through ``llama_index.core.instrumentation``.

Importing this package does not import llama.cpp; the model loads on first use.

Example:
    >>> from llama_index.core.llms import ChatMessage
    >>> from slm_agents import FakeRuntime
    >>> SLM(runtime=FakeRuntime(["ok"])).chat([ChatMessage(role="user", content="hi")]).message.content
    'ok'
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as _e:  # say which extra to install
    from slm_agents.errors import missing_extra as _missing_extra

    raise ImportError(str(_missing_extra("llama-index-core", "llamaindex"))) from _e

from ._spans import current_task
from .capture import SLMAgentsCaptureHandler, slm_agents_capture
from .llm import SLM
from .router import RouterLLM

__all__ = ["SLM", "RouterLLM", "slm_agents_capture", "SLMAgentsCaptureHandler", "current_task"]
