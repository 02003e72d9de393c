"""The exceptions slm-agents raises.

Every error derives from one root, so ``except SLMAgentsError`` catches them all::

    SLMAgentsError
    ├── ModelNotFound          a GGUF file or the default-model package is missing
    ├── RuntimeUnavailable     an optional dependency or a server cannot be reached
    ├── InvalidRequest         bad messages, tools, tool_choice or sampling options
    ├── ToolCallError          a tool call does not parse or does not match its schema
    ├── GenerationError        the model failed while generating (includes timeouts)
    │   ├── GenerationTimeout
    │   └── BadServerResponse  a server answered with something that is not a valid response
    └── CaptureError           the capture store cannot be opened or written

Each message says what to do next.
"""

from __future__ import annotations

__all__ = [
    "SLMAgentsError",
    "ModelNotFound",
    "RuntimeUnavailable",
    "InvalidRequest",
    "ToolCallError",
    "GenerationError",
    "GenerationTimeout",
    "BadServerResponse",
    "CaptureError",
    "missing_extra",
]


class SLMAgentsError(Exception):
    """Root of every exception raised by slm-agents."""


class ModelNotFound(SLMAgentsError):
    """A model file, or the package that ships the default model, is missing."""


class RuntimeUnavailable(SLMAgentsError):
    """A runtime cannot run: an optional extra is not installed or a server is unreachable."""


class InvalidRequest(SLMAgentsError, ValueError):
    """The request itself is malformed (messages, tools, tool_choice, sampling options)."""


class ToolCallError(SLMAgentsError, ValueError):
    """A tool call does not parse, names an unknown tool, or fails its tool's JSON schema.

    Attributes:
        tool_name: The tool the call named, if it named one.
        problems: Human-readable descriptions of each problem found.
    """

    def __init__(self, message: str, *, tool_name: str | None = None, problems: list[str] | None = None):
        super().__init__(message)
        self.tool_name = tool_name
        self.problems = list(problems or [])


class GenerationError(SLMAgentsError):
    """The model failed while generating."""


class GenerationTimeout(GenerationError, TimeoutError):
    """Generation did not finish within the configured timeout."""


class BadServerResponse(GenerationError):
    """A server's answer is not a valid chat completion (not JSON, missing fields, a garbage stream)."""


class CaptureError(SLMAgentsError):
    """The capture store cannot be opened, migrated or written."""


def missing_extra(package: str, extra: str) -> RuntimeUnavailable:
    """Build the error raised when an optional dependency is not installed.

    Args:
        package: The import name that failed.
        extra: The slm-agents extra that installs it.

    Returns:
        An error whose message names the exact install command.
    """
    return RuntimeUnavailable(
        f"{package} is not installed. Install it with: pip install 'slm-agents[{extra}]'"
    )
