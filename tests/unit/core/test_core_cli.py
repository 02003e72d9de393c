"""The ``slm-agents`` command (slm_agents.cli)."""

from __future__ import annotations

import json

from click.testing import CliRunner

import slm_agents
from slm_agents.cli import cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"slm-agents, version {slm_agents.__version__}"


def test_models_table() -> None:
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    # stdout only: llama.cpp may log a warning on stderr while reading the vocabulary
    rows = dict(line.split("  ", 1) for line in result.stdout.splitlines())
    assert rows["quantization"].strip() == "Q4_1"
    assert rows["context length"].strip() == "8192"
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in rows["path"]
    assert "no (tools go into the system prompt)" in result.output


def test_models_json() -> None:
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout is pure JSON (pipeable to jq)
    assert data["quantization"] == "Q4_1" and data["context_length"] == 8192
    assert data["supports_tools"] is False and data["has_chat_template"] is True
    assert data["path"].endswith(".gguf") and data["size_bytes"] > 50_000_000


def test_errors_are_clean_messages_without_traceback() -> None:
    result = CliRunner().invoke(cli, ["models", "--model-path", "/nonexistent.gguf"])
    assert result.exit_code == 1
    assert "Error: No GGUF file at '/nonexistent.gguf'" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_every_command_is_documented() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name, command in cli.commands.items():
        assert command.help, f"command {name!r} has no help"
        assert name in result.output
