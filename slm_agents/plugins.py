"""The plugin manager: built-in hooks plus every ``slm_agents`` entry point installed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pluggy

from . import hookspecs
from .errors import InvalidRequest

__all__ = ["get_plugin_manager", "runtime_factories", "create_runtime"]

_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (created on first use)."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager("slm_agents")
            pm.add_hookspecs(hookspecs.Hookspecs)
            from .runtimes import _builtin

            pm.register(_builtin, name="slm_agents.builtin_runtimes")
            pm.load_setuptools_entrypoints("slm_agents")
            _pm = pm
        return _pm


def runtime_factories() -> dict[str, Callable[..., Any]]:
    """Every registered runtime factory by name (``llamacpp``, ``openai``, plugins' own)."""
    found: dict[str, Callable[..., Any]] = {}

    def register(name: str, factory: Callable[..., Any]) -> None:
        found[name] = factory

    get_plugin_manager().hook.register_runtimes(register=register)
    return found


def create_runtime(name: str, **kwargs: Any) -> Any:
    """Build a runtime by registered name.

    Example:
        >>> rt = create_runtime("fake", responses=["hi"])
        >>> rt.complete([{"role": "user", "content": "hello"}]).content
        'hi'
    """
    factories = runtime_factories()
    if name not in factories:
        raise InvalidRequest(
            f"no runtime named {name!r}; installed: {', '.join(sorted(factories))}. "
            "Install a plugin that registers it, or pass a runtime object."
        )
    return factories[name](**kwargs)
