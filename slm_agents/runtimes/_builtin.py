"""The built-in runtimes, registered through the same hook a plugin uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl


def _llamacpp(**kwargs: Any) -> Any:
    from .llamacpp import LlamaCppRuntime

    return LlamaCppRuntime(**kwargs)


def _openai(**kwargs: Any) -> Any:
    from .openai_compat import OpenAICompatRuntime

    return OpenAICompatRuntime(**kwargs)


def _fake(**kwargs: Any) -> Any:
    from .fake import FakeRuntime

    return FakeRuntime(**kwargs)


@hookimpl
def register_runtimes(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("llamacpp", _llamacpp)
    register("openai", _openai)
    register("fake", _fake)
