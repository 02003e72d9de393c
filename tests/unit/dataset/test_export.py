"""Export formats, the stratified split, leakage and the dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_agents.dataset import export_dataset, find_leakage, request_hash, stratified_split
from slm_agents.errors import InvalidRequest


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_openai_format(db, tmp_path) -> None:
    result = export_dataset(db, tmp_path / "out", format="openai", val_fraction=0.25, seed=3)
    train, val = _lines(result.files["train"]), _lines(result.files["validation"])
    assert len(train) == result.train and len(val) == result.validation
    assert result.train + result.validation == 39 and result.validation > 0
    for example in train + val:
        messages = example["messages"]
        assert messages[-1]["role"] == "assistant"
        assert all(m["role"] in ("system", "user", "assistant", "tool") for m in messages)
        for call in messages[-1].get("tool_calls", []):
            assert isinstance(call["function"]["arguments"], str)
            json.loads(call["function"]["arguments"])
            assert call["type"] == "function" and call["id"]
        if "tools" in example:
            assert all(t["type"] == "function" and "name" in t["function"] for t in example["tools"])
            assert example["parallel_tool_calls"] is False
        else:
            assert messages[-1]["content"]  # the labelled text answers
    assert result.dropped == {"duplicate": 1}


def test_trl_format_has_object_arguments(db, tmp_path) -> None:
    result = export_dataset(db, tmp_path, format="trl", val_fraction=0.0)
    examples = _lines(result.files["train"])
    assert result.validation == 0 and len(examples) == 39
    calls = [c for e in examples for c in e["messages"][-1].get("tool_calls", [])]
    assert calls and all(isinstance(c["function"]["arguments"], dict) for c in calls)
    assert {"messages", "tools"} >= set(examples[0])


def test_preference_pairs(db, tmp_path) -> None:
    result = export_dataset(db, tmp_path, format="preference", val_fraction=0.0)
    pairs = _lines(result.files["train"])
    # the escalation + the 3 shadow pairs where the SLM disagreed; 7 agreeing shadow pairs left out
    assert len(pairs) == 4 and result.dropped == {"identical": 7}
    for pair in pairs:
        assert set(pair) == {"prompt", "chosen", "rejected", "tools"}
        assert pair["prompt"][-1]["role"] == "user"
        assert pair["chosen"][0]["role"] == pair["rejected"][0]["role"] == "assistant"
        assert pair["chosen"][0]["tool_calls"] != pair["rejected"][0]["tool_calls"]
    escalation = next(p for p in pairs if "Nice" in p["prompt"][-1]["content"])
    assert escalation["chosen"][0]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert escalation["rejected"][0]["tool_calls"][0]["function"]["name"] == "add"


def test_task_filter(db, tmp_path) -> None:
    result = export_dataset(db, tmp_path, task_id="triage", val_fraction=0.5)
    assert result.train + result.validation == 4
    assert result.tasks == {next(iter(result.tasks)): 4}
    pref = export_dataset(db, tmp_path / "p", format="preference", task_id="router", val_fraction=0.0)
    assert pref.train == 3


def test_split_is_stratified_deterministic_and_leak_free(db, tmp_path) -> None:
    a = export_dataset(db, tmp_path / "a", val_fraction=0.25, seed=7, dedupe=False)
    b = export_dataset(db, tmp_path / "b", val_fraction=0.25, seed=7, dedupe=False)
    assert a.files["validation"].read_text() == b.files["validation"].read_text()
    assert a.train + a.validation == 40  # the duplicate is kept...
    train, val = _lines(a.files["train"]), _lines(a.files["validation"])

    def key(example):  # ...but lands in the same split as its twin
        return request_hash(example["messages"][:-1], json.dumps(example.get("tools")))

    assert find_leakage(map(key, train), map(key, val)) == set()
    val_tools = [e["messages"][-1].get("tool_calls", [{}])[0].get("function", {}).get("name") for e in val]
    assert val_tools.count("get_weather") >= 3 and val_tools.count("add") >= 3
    c = export_dataset(db, tmp_path / "c", val_fraction=0.25, seed=8, dedupe=False)
    assert c.files["validation"].read_text() != a.files["validation"].read_text()


def test_stratified_split_unit() -> None:
    items = [(f"w{i}", "w") for i in range(20)] + [(f"a{i}", "a") for i in range(10)] + [("solo", "s")]
    val = stratified_split(items, 0.1, seed=0)
    assert sum(v.startswith("w") for v in val) == 2 and sum(v.startswith("a") for v in val) == 1
    assert "solo" not in val
    assert stratified_split(items, 0.1, seed=0) == val
    with pytest.raises(InvalidRequest):
        stratified_split(items, 1.0)


def test_card_and_errors(db, tmp_path) -> None:
    result = export_dataset(db, tmp_path, format="openai")
    card = result.files["card"].read_text()
    assert "| train | " in card and "## Tasks" in card and "## Redaction" in card and "`get_weather`" in card
    assert "triage" in card
    with pytest.raises(InvalidRequest, match="unknown format"):
        export_dataset(db, tmp_path, format="csv")


def test_redaction_summary(tmp_path) -> None:
    from slm_agents.capture import CaptureStore, Redactor
    from slm_agents.dataset import open_db

    store = CaptureStore(tmp_path / "r.db", redactor=Redactor.default())
    store.log({"messages": [{"role": "user", "content": "mail a@b.io or c@d.io"}], "route": "llm", "content": "ok"})
    store.flush(10)
    store.close()
    db = open_db(tmp_path / "r.db")
    result = export_dataset(db, tmp_path / "out")
    assert result.redactions == 2 and result.rows_with_redactions == 1
    assert "Spans replaced in the exported calls: 2" in result.files["card"].read_text()
    assert "a@b.io" not in result.files["train"].read_text() + result.files["validation"].read_text()


def test_progress_reporting(db, tmp_path, capsys) -> None:
    seen = []
    result = export_dataset(db, tmp_path, progress=True, on_progress=lambda done, total: seen.append((done, total)))
    assert result.train + result.validation == 39
    assert "export openai" in capsys.readouterr().err  # the tqdm bar, forced on
    assert seen == [(39, 40)]  # every 1,000 rows (none here) and at the end; 40 candidates before dedupe
