"""slm-agents plugin: ``slm-agents serve``, an OpenAI-compatible gateway over the core.

Agents built on any framework (the ``openai`` SDK, CrewAI, AutoGen, LangChain's ``ChatOpenAI``,
LlamaIndex's ``OpenAILike``, other languages) get SLM-first routing, grammar-checked tool calls,
escalation to an upstream LLM and capture by changing one base URL. The command is added through
the core's ``register_commands`` hook; Starlette and uvicorn are imported when it runs.

Example:
    >>> from slm_agents.cli import cli
    >>> "serve" in cli.commands
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slm_agents import hookimpl

if TYPE_CHECKING:
    from .app import Gateway, create_app
    from .server import serve, serving

__all__ = ["Gateway", "create_app", "serve", "serving", "register_commands"]


def __getattr__(name: str) -> Any:  # Starlette is imported only when the gateway is used
    if name in ("Gateway", "create_app"):
        from . import app

        return getattr(app, name)
    if name in ("serve", "serving"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``serve`` to the ``slm-agents`` command."""
    from .server import serve_command

    cli.add_command(serve_command)
