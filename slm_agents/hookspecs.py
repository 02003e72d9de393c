"""Plugin hooks (pluggy), found through the ``slm_agents`` entry-point group.

A plugin is one module with decorated functions::

    from slm_agents import hookimpl

    @hookimpl
    def register_runtimes(register):
        register("myengine", MyEngineRuntime)

and one line in its ``pyproject.toml``::

    [project.entry-points.slm_agents]
    myengine = "slm_agents_myengine"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["hookspec", "hookimpl", "Hookspecs"]

hookspec = pluggy.HookspecMarker("slm_agents")
hookimpl = pluggy.HookimplMarker("slm_agents")


class Hookspecs:
    @hookspec
    def register_runtimes(self, register: Callable[[str, Callable[..., Any]], None]) -> None:
        """Register runtimes: call ``register(name, factory)`` for each.

        ``factory(**kwargs)`` must return an object that satisfies
        :class:`slm_agents.runtimes.Runtime`.
        """

    @hookspec
    def register_redactors(self, register: Callable[[str, Callable[[str], Any]], None]) -> None:
        """Register PII redactors: call ``register(name, redactor)`` for each.

        A redactor is a compiled regex or a callable ``text -> iterable of (start, end)`` spans;
        the name becomes its placeholder (``<NAME>``).
        """

    @hookspec
    def register_commands(self, cli: Any) -> None:
        """Add subcommands to the ``slm-agents`` command: ``cli`` is its ``click.Group``.

        Import heavy dependencies inside the command functions, so ``slm-agents --help`` stays fast
        and works without them::

            @hookimpl
            def register_commands(cli):
                @cli.command()
                def hello():
                    click.echo("hi")
        """
