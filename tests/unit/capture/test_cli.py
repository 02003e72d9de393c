"""The capture commands, run through a click group built the way cli.py wires them."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from slm_agents.capture import CaptureStore
from slm_agents.cli_capture import register

from .conftest import REPO, msg


@pytest.fixture
def cli():
    group = click.Group("slm-agents")
    register(group)
    return group


@pytest.fixture
def populated(tmp_path):
    path = tmp_path / "a.db"
    with CaptureStore(path, redactor=None) as store:
        ids = {}
        for i in range(6):
            ids[f"slm{i}"] = store.log({"messages": msg(f"q{i}"), "route": "slm", "task": "lookup", "model": "smol",
                                        "latency_ms": 10.0 * (i + 1), "input_tokens": 1000, "output_tokens": 100})
        ids["llm"] = store.log({"messages": msg("hard"), "route": "llm", "task": "lookup", "model": "gpt",
                                "latency_ms": 900.0, "input_tokens": 1000, "output_tokens": 100,
                                "escalation_reason": "low_confidence"})
        store.link_escalation(ids["slm0"], ids["llm"], "low_confidence")
    return path, ids


def test_every_command_is_documented(cli):
    docs = (REPO / "docs" / "capture.md").read_text()
    for name in cli.commands:
        assert f"slm-agents {name}" in docs, f"command {name!r} is not in docs/capture.md"


def test_stats_json_counts_and_savings(cli, populated):
    path, _ = populated
    result = CliRunner().invoke(cli, ["stats", "--db", str(path), "--json", "--price-llm-input", "2",
                                      "--price-llm-output", "10", "--price-slm-input", "0.5"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["calls"] == 7
    routes = {r["route"]: r for r in data["by_route"]}
    assert routes["slm"]["calls"] == 6 and routes["llm"]["calls"] == 1
    assert routes["slm"]["p50_ms"] == 30.0 and routes["slm"]["p95_ms"] == 60.0
    assert data["escalations"] == [{"reason": "low_confidence", "count": 1}]
    cost = data["cost"]
    assert cost["slm_calls_kept"] == 5  # the escalated attempt saved nothing
    # 5 kept calls at LLM prices (2/M in, 10/M out) minus 6 SLM calls' input at 0.5/M
    assert cost["saved"] == pytest.approx(5 * (1000 * 2 + 100 * 10) / 1e6 - 6 * 1000 * 0.5 / 1e6)


def test_stats_text_and_price_from_env(cli, populated):
    path, _ = populated
    result = CliRunner().invoke(cli, ["stats", "--db", str(path)], env={"SLM_AGENTS_PRICE_LLM_INPUT": "3"})
    assert result.exit_code == 0, result.output
    assert "by route:" in result.output and "low_confidence" in result.output
    assert "LLM 3.0/10.0" in result.output


def test_calls_list_filters_and_show(cli, populated):
    path, ids = populated
    runner = CliRunner()
    listed = runner.invoke(cli, ["calls", "--db", str(path), "--route", "llm", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.output)] == [ids["llm"]]
    table = runner.invoke(cli, ["calls", "--db", str(path), "--limit", "2"])
    assert table.exit_code == 0 and len(table.output.strip().splitlines()) == 4  # header, rule, 2 rows
    shown = runner.invoke(cli, ["calls", "show", ids["llm"], "--db", str(path)])
    assert shown.exit_code == 0, shown.output
    call = json.loads(shown.output)
    assert call["messages"][0]["content"] == "hard" and call["escalations"][0]["slm_call_id"] == ids["slm0"]
    alias = runner.invoke(cli, ["call", ids["llm"], "--db", str(path)])
    assert json.loads(alias.output)["id"] == ids["llm"]
    missing = runner.invoke(cli, ["call", "nope", "--db", str(path)])
    assert missing.exit_code != 0 and "no call with id" in missing.output


def test_missing_database_says_what_to_do(cli, tmp_path):
    result = CliRunner().invoke(cli, ["stats", "--db", str(tmp_path / "none.db")])
    assert result.exit_code != 0 and "pass --db PATH" in result.output


def test_merge_deduplicates_rows_and_blobs(cli, populated, tmp_path):
    a, ids = populated
    b = tmp_path / "b.db"
    system = {"role": "system", "content": "shared system prompt " * 100}
    with CaptureStore(b, redactor=None) as store:
        store.log({"id": ids["llm"], "messages": msg("duplicate id")})  # same id as in a.db
        store.log({"messages": [system, *msg("other worker")], "route": "slm"})
    with CaptureStore(a, redactor=None) as store:
        store.log({"messages": [system, *msg("first worker")], "route": "slm"})
    out = tmp_path / "out.db"
    result = CliRunner().invoke(cli, ["merge", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    db = Database(out)
    assert db["calls"].count == 9  # 8 from a, 2 from b, one id shared
    assert db["calls"].get(ids["llm"])["route"] == "llm"  # first file wins
    assert db["blobs"].count == 1 and db["escalations"].count == 1
    again = CliRunner().invoke(cli, ["merge", str(a), str(b), "-o", str(out)])
    assert again.exit_code == 0 and Database(out)["calls"].count == 9


def test_redact_check_prints_redacted_text_and_a_summary(cli, tmp_path):
    f = tmp_path / "sample.txt"
    f.write_text("Mail ann@example.com or ann@example.com, card 4111 1111 1111 1111.\n")
    result = CliRunner().invoke(cli, ["redact-check", str(f)])
    assert result.exit_code == 0
    assert result.stdout == "Mail <EMAIL_1> or <EMAIL_1>, card <CARD_1>.\n"
    assert "3 redaction(s)" in result.stderr and "EMAIL: 2" in result.stderr and "CARD: 1" in result.stderr
