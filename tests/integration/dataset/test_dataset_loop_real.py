"""The loop on real captured calls: the default model answers, the store records, then tasks/export/eval."""

from __future__ import annotations

import json

from click.testing import CliRunner

from slm_agents.capture import CaptureStore
from slm_agents.cli import cli
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_capture_then_tasks_export_eval(tmp_path) -> None:
    db_path = tmp_path / "capture.db"
    runtime = LlamaCppRuntime(max_tokens=48)
    store = CaptureStore(db_path)
    for city in ("Paris", "Rome", "Oslo"):
        messages = [{"role": "user", "content": f"What's the weather in {city}?"}]
        completion = runtime.complete(messages, TOOLS, tool_choice="get_weather", max_tokens=48)
        # the default model plays the teacher here: its answers are recorded as LLM calls
        store.log_completion(completion, messages=messages, tools=TOOLS, tool_choice="get_weather",
                             route="llm", task="weather", framework="core")
    assert store.flush(30)
    store.close()

    runner = CliRunner()
    tasks = json.loads(runner.invoke(cli, ["tasks", "--db", str(db_path), "--json"]).output)
    assert [(t["policy_key"], t["calls"], t["top_tools"]) for t in tasks] == [("weather", 3, ["get_weather"])]

    out = runner.invoke(cli, ["export", "--db", str(db_path), "-o", str(tmp_path / "ds"), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["train"] + result["validation"] == 3
    example = json.loads((tmp_path / "ds" / "train.jsonl").read_text().splitlines()[0])
    call = example["messages"][-1]["tool_calls"][0]["function"]
    assert call["name"] == "get_weather" and "city" in json.loads(call["arguments"])

    out = runner.invoke(cli, ["eval", "--db", str(db_path), "--task", "weather", "--max-tokens", "48", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)["tasks"]["weather"]
    assert report["n"] == 3
    assert report["tool_name_accuracy"] == 1.0 and report["schema_validity"] == 1.0  # forced, grammar-decoded
    assert report["tokens_per_s"] > 0
