"""The tasks / export / eval / calibrate commands through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from slm_agents import cli_loop
from slm_agents.cli import cli
from slm_agents.policy import EscalationPolicy
from slm_agents.runtimes.fake import FakeRuntime

DOCS = Path(__file__).resolve().parents[3] / "docs" / "loop.md"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fake(monkeypatch) -> FakeRuntime:
    """Every replay answers get_weather(Paris) with confidence 0.9."""
    rt = FakeRuntime([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}], "confidence": 0.9}],
                     cycle=True)
    monkeypatch.setattr(cli_loop, "make_runtime", lambda *a: rt)
    return rt


def test_register_on_any_group() -> None:
    group = click.Group()
    cli_loop.register(group)
    assert set(group.commands) == {"tasks", "export", "eval", "calibrate"}
    assert {"tasks", "export", "eval", "calibrate"} <= set(cli.commands)


def test_tasks(runner, db_path) -> None:
    out = runner.invoke(cli, ["tasks", "--db", str(db_path)])
    assert out.exit_code == 0, out.output
    assert "triage" in out.output and "router" in out.output and "on LLM" in out.output
    data = json.loads(runner.invoke(cli, ["tasks", "--db", str(db_path), "--json", "--recluster"]).output)
    assert {t["policy_key"] for t in data} >= {"triage", "router", "triage-tools"}
    assert sum(t["calls"] for t in data) == 53


def test_tasks_env_db_and_missing_db(runner, db_path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLM_AGENTS_DB", str(db_path))
    assert "triage" in runner.invoke(cli, ["tasks"]).output
    out = runner.invoke(cli, ["tasks", "--db", str(tmp_path / "none.db")])
    assert out.exit_code == 1 and "no capture database" in out.output and "--db" in out.output


def test_export(runner, db_path, tmp_path) -> None:
    out_dir = tmp_path / "ds"
    out = runner.invoke(cli, ["export", "--db", str(db_path), "--format", "openai", "-o", str(out_dir),
                              "--val-fraction", "0.2", "--seed", "1"])
    assert out.exit_code == 0, out.output
    assert "train" in out.output and (out_dir / "README.md").exists()
    lines = (out_dir / "train.jsonl").read_text().splitlines()
    assert all(json.loads(line)["messages"][-1]["role"] == "assistant" for line in lines)
    res = json.loads(runner.invoke(cli, ["export", "--db", str(db_path), "--format", "trl", "-o", str(out_dir),
                                         "--task", "triage", "--json", "--force"]).output)
    assert res["train"] + res["validation"] == 4
    res = json.loads(runner.invoke(cli, ["export", "--db", str(db_path), "--format", "preference", "-o",
                                         str(tmp_path / "pref"), "--json", "--val-fraction", "0"]).output)
    assert res["train"] == 4
    bad = runner.invoke(cli, ["export", "--db", str(db_path), "-o", str(out_dir), "--task", "nope", "--force"])
    assert bad.exit_code == 1 and "slm-agents tasks" in bad.output


def test_eval_from_db(runner, db_path, fake) -> None:
    out = runner.invoke(cli, ["eval", "--db", str(db_path), "--task", "router", "--limit", "5"])
    assert out.exit_code == 0, out.output
    assert "router" in out.output and "recommendation" in out.output
    assert len(fake.requests) == 5
    data = json.loads(runner.invoke(cli, ["eval", "--db", str(db_path), "--task", "router", "--json"]).output)
    router = data["tasks"]["router"]
    assert router["n"] == 10 and router["tool_name_accuracy"] == 1.0 and router["args_exact_match"] == 0.1


def test_eval_cases_file(runner, tmp_path, fake) -> None:
    cases = tmp_path / "cases.jsonl"
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    rows = [{"messages": [{"role": "user", "content": "weather Paris"}], "tools": tools,
             "expected": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"messages": [{"role": "user", "content": "hi"}], "tools": tools, "expected": []}]
    cases.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = json.loads(runner.invoke(cli, ["eval", "--cases", str(cases), "--json"]).output)
    report = data["tasks"]["cases"]
    assert report["n"] == 2 and report["args_exact_match"] == 1.0 and report["abstention_accuracy"] == 0.0


def test_eval_without_cases_says_what_to_do(runner, tmp_path, fake) -> None:
    from slm_agents.capture import CaptureStore

    CaptureStore(tmp_path / "empty.db").close()
    out = runner.invoke(cli, ["eval", "--db", str(tmp_path / "empty.db")])
    assert out.exit_code == 1 and "--cases" in out.output


def test_calibrate_replay_writes_policy(runner, db_path, tmp_path, fake) -> None:
    path = tmp_path / "policy.json"
    out = runner.invoke(cli, ["calibrate", "--db", str(db_path), "--task", "router", "-o", str(path)])
    assert out.exit_code == 0, out.output
    # every replay answers Paris at 0.9: 1 right out of 10, no threshold can meet 2% wrong
    assert "keep on LLM" in out.output
    assert EscalationPolicy.load(path).task_thresholds == {}


def test_calibrate_shadow_default_path_and_env(runner, db_path, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(cli, ["calibrate", "--db", str(db_path), "--from", "shadow", "--max-wrong", "0"])
    assert out.exit_code == 0, out.output
    assert "slm_agents_policy.json" in out.output
    monkeypatch.setenv("SLM_AGENTS_POLICY", str(tmp_path / "slm_agents_policy.json"))
    assert EscalationPolicy.from_env().threshold_for("router") == 0.9
    data = json.loads(runner.invoke(cli, ["calibrate", "--db", str(db_path), "--from", "shadow", "--json",
                                          "--max-wrong", "0.5"]).output)
    assert data["policy"].endswith("slm_agents_policy.json")  # $SLM_AGENTS_POLICY is the default target
    assert data["tasks"]["router"]["recommendation"] == "move"


def test_every_command_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, command in cli_loop.__dict__.items():
        if name.endswith("_command"):
            assert f"slm-agents {command.name}" in text, f"{command.name} is not in docs/loop.md"
            for param in command.params:
                for opt in param.opts:
                    if opt.startswith("--") and opt not in ("--json",):
                        assert opt in text, f"{command.name} {opt} is not in docs/loop.md"


def test_export_preference_refuses_filters_it_would_ignore(runner, db_path, tmp_path) -> None:
    out = runner.invoke(cli, ["export", "--db", str(db_path), "--format", "preference", "-o", str(tmp_path / "p"),
                              "--exclude-label", "bad", "--since", "2999-01-01"])
    assert out.exit_code == 2, out.output
    assert "--since" in out.output and "--exclude-label" in out.output
    assert not (tmp_path / "p").exists()


def test_calibrate_decision_writes_task_decisions(runner, tmp_path, monkeypatch) -> None:
    """--decision scores each case's call-or-answer decision and writes a threshold and margin per task."""

    class Scoring:
        def score_decision(self, messages, tools):
            return {"p_call": 0.8 if "weather" in messages[-1]["content"] else 0.2}

    monkeypatch.setattr(cli_loop, "make_runtime", lambda *a, **k: Scoring())
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    lines = [{"messages": [{"role": "user", "content": f"weather in {c}?"}], "tools": [tool],
              "expected": [{"name": "get_weather", "arguments": {"city": c}}], "task": "w"} for c in "ABCD"]
    lines += [{"messages": [{"role": "user", "content": f"hello {i}"}], "tools": [tool], "expected": [], "task": "w"}
              for i in range(4)]
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(x) + "\n" for x in lines))
    policy = tmp_path / "policy.json"
    out = runner.invoke(cli, ["calibrate", "--decision", "--cases", str(cases), "-o", str(policy), "--json"])
    assert out.exit_code == 0, out.output
    written = json.loads(policy.read_text())["task_decisions"]["w"]
    assert 0.2 < written["threshold"] <= 0.8 and written["margin"] >= 0.05
    bad = runner.invoke(cli, ["calibrate", "--decision", "--cases", str(cases), "--base-url", "http://127.0.0.1:9/v1"])
    assert bad.exit_code != 0 and "--base-url" in bad.output
