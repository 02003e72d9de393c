"""Agent middleware for ``langchain.agents.create_agent`` (LangChain 1.x).

* :class:`SLMRoutingMiddleware` answers each model step with a local SLM when the
  :class:`~slm_agents.policy.EscalationPolicy` accepts its answer, else with the agent's model.
* :class:`CaptureMiddleware` logs every model request/response and tool execution.

Example:
    >>> from langchain_slm.middleware import CaptureMiddleware, SLMRoutingMiddleware
    >>> sorted(m.__name__ for m in (CaptureMiddleware, SLMRoutingMiddleware))
    ['CaptureMiddleware', 'SLMRoutingMiddleware']
"""

from __future__ import annotations

from .capture import CaptureMiddleware
from .routing import SLMRoutingMiddleware

__all__ = ["SLMRoutingMiddleware", "CaptureMiddleware"]
