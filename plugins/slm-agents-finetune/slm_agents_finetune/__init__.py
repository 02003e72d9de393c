"""slm-agents-finetune: ``slm-agents finetune`` trains a LoRA adapter for one task on its captured calls.

A plugin of slm-agents (entry point group ``slm_agents``): it adds the ``finetune`` and
``promote`` commands through the core's ``register_commands`` hook. torch, transformers, peft and
gguf are imported only when a command runs.

Example:
    >>> from slm_agents.cli import cli
    >>> "finetune" in cli.commands and "promote" in cli.commands
    True
"""

from __future__ import annotations

from typing import Any

from slm_agents import hookimpl

__all__ = ["register_commands"]


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``finetune`` and ``promote`` to the ``slm-agents`` command."""
    from .cli import finetune_command, promote_command

    cli.add_command(finetune_command)
    cli.add_command(promote_command)
