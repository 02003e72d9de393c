"""``slm-agents tasks`` shows outcome readiness (and replay readiness from eval results), never
"not escalated" as readiness (issue 12 §5)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from slm_agents.capture import CaptureStore
from slm_agents.cli import cli


def _capture(path: Path) -> None:
    with CaptureStore(path, redactor=None) as store:
        for i in range(4):
            cid = store.log({"messages": [{"role": "user", "content": f"sql {i}"}], "route": "slm",
                             "task": "query_writer",
                             "tool_calls": [{"id": f"t{i}", "type": "function",
                                             "function": {"name": "run_sql", "arguments": "{}"}}]})
            if i == 0:
                store.log_tool({"call_id": "t0", "name": "run_sql", "error": "no such column: nme"})
            if i == 1:
                store.feedback(cid, good=False)
        store.log({"messages": [{"role": "user", "content": "plan"}], "route": "llm", "task": "researcher"})


def test_tasks_shows_outcome_and_replay_readiness(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    _capture(db)
    results = tmp_path / "eval.json"
    results.write_text(json.dumps({"tasks": {"query_writer": {"readiness": 0.8}}}))
    runner = CliRunner()
    table = runner.invoke(cli, ["tasks", "--db", str(db), "--eval", str(results)])
    assert table.exit_code == 0, table.output
    header, _, *rows = table.output.splitlines()
    assert "outcome ready" in header and "replay ready" in header and header.count("ready") == 2
    writer = next(r for r in rows if "query_writer" in r).split()
    assert writer[2:6] == ["4", "0%", "50%", "80%"]  # calls, on LLM, outcome ready (2 of 4), replay ready
    researcher = next(r for r in rows if "researcher" in r).split()
    assert researcher[2:6] == ["1", "100%", "-", "-"]  # no SLM calls: no outcome readiness at all
    data = json.loads(runner.invoke(cli, ["tasks", "--db", str(db), "--json", "--eval", str(results)]).output)
    by_name = {t["name"]: t for t in data}
    outcome = by_name["query_writer"]["outcome"]
    assert (outcome["slm_calls"], outcome["tool_errors"], outcome["negative_feedback"], outcome["readiness"]) == (
        4, 1, 1, 0.5)
    assert by_name["query_writer"]["replay_readiness"] == 0.8
    assert by_name["researcher"]["outcome"]["readiness"] is None and by_name["researcher"]["replay_readiness"] is None
