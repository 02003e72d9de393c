"""The README's two set-up commands stay true: CI runs the test one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme.split("## ", 1)[0]  # the part above the first section
    blocks = re.findall(r"```bash\n(.*?)```", head, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_has_exactly_two_setup_commands_near_the_top() -> None:
    commands = _setup_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("slm-agents demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _setup_commands()[1] in ci.splitlines()


def test_every_cli_command_is_in_the_readme() -> None:
    from slm_agents.cli import cli

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in cli.commands if f"slm-agents {name}" not in readme]
    assert not missing, f"document these commands in the README: {missing}"
