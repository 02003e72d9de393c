"""The exceptions slm-agents raises.

Every error derives from one root, so ``except SLMAgentsError`` catches them all::

    SLMAgentsError
    ├── ModelNotFound          a GGUF file or the default-model package is missing
    ├── RuntimeUnavailable     an optional dependency or a server cannot be reached
    ├── InvalidRequest         bad messages, tools, tool_choice or sampling options
    │   └── ContextOverflow    the prompt does not fit the model's context window
    ├── ToolCallError          a tool call does not parse or does not match its schema
    ├── GenerationError        the model failed while generating (includes timeouts)
    │   ├── GenerationTimeout
    │   └── MalformedOutput    the output cannot be read as an answer
    │       └── BadServerResponse  a server answered with something that is not a valid response
    └── CaptureError           the capture store cannot be opened or written

Each message says what to do next. Code that reacts to an error (the escalation policy's
reasons, retries) matches these classes, never the message text:
:meth:`slm_agents.policy.EscalationPolicy.check` maps :class:`GenerationTimeout` to
``"timeout"``, :class:`ContextOverflow` to ``"context_overflow"``, :class:`MalformedOutput` to
``"malformed"`` and any other exception to ``"error"``.

Example:
    >>> err = ContextOverflow("the prompt takes 9000 tokens", tokens=9000, n_ctx=4096)
    >>> isinstance(err, InvalidRequest), (err.tokens, err.n_ctx)
    (True, (9000, 4096))
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
    "ContextOverflow",
    "MalformedOutput",
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


class ContextOverflow(InvalidRequest):
    """The prompt does not fit the model's context window (the LLM, with a larger one, may take it).

    Attributes:
        tokens: Tokens the prompt takes, when known.
        n_ctx: Tokens the context holds, when known.
    """

    def __init__(self, message: str, *, tokens: int | None = None, n_ctx: int | None = None):
        super().__init__(message)
        self.tokens = tokens
        self.n_ctx = n_ctx


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


class MalformedOutput(GenerationError):
    """The model's output cannot be read as the answer asked for (garbage, cut-off JSON, no message)."""


class BadServerResponse(MalformedOutput):
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
