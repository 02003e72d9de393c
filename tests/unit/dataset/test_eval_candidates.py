"""`slm-agents eval` with several candidates: side by side, the smallest that can take the task."""

from __future__ import annotations

import json

from click.testing import CliRunner

from slm_agents import cli_loop
from slm_agents.cli import cli
from slm_agents.evaluate import Candidate, EvalReport, TaskReport, recommend_candidate
from slm_agents.runtimes.fake import FakeRuntime

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def _cases(tmp_path):
    path = tmp_path / "cases.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"weather in Paris {i}"}], "tools": TOOLS,
             "expected": [{"name": "get_weather", "arguments": {"city": "Paris"}}]} for i in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_eval_compares_candidates_and_recommends_the_smallest_that_fits(tmp_path, monkeypatch) -> None:
    right = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}], "confidence": 0.9}
    wrong = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}], "confidence": 0.9}
    small, big, lora = tmp_path / "small.gguf", tmp_path / "big.gguf", tmp_path / "run" / "adapter.gguf"
    small.write_bytes(b"x" * 1000)
    big.write_bytes(b"x" * 5000)
    lora.parent.mkdir()
    lora.write_bytes(b"x" * 10)
    seen = []

    def make(model_path, base_url, model_name, lora_path=None):
        seen.append((model_path, lora_path))
        good = model_path == str(big) or lora_path is not None
        return FakeRuntime([right if good else wrong], cycle=True)

    monkeypatch.setattr(cli_loop, "make_runtime", make)
    out = CliRunner().invoke(cli, ["eval", "--cases", str(_cases(tmp_path)), "--model-path", str(small),
                                   "--model-path", str(big), "--lora", str(lora)])
    assert out.exit_code == 0, out.output
    assert seen == [(str(small), None), (str(big), None), (str(small), str(lora))]
    assert "small.gguf+run/adapter.gguf" in out.output and "big.gguf" in out.output
    assert "cases: use small.gguf+run/adapter.gguf" in out.output  # 1010 bytes beats 5000

    data = json.loads(CliRunner().invoke(cli, ["eval", "--cases", str(_cases(tmp_path)), "--model-path", str(small),
                                               "--lora", str(lora), "--json"]).output)
    assert data["recommended"] == {"cases": "small.gguf+run/adapter.gguf"}
    assert data["reports"]["small.gguf"]["tasks"]["cases"]["readiness"] == 0.0


def test_no_candidate_fits_keeps_the_task_on_the_llm(tmp_path, monkeypatch) -> None:
    wrong = {"tool_calls": [{"name": "other", "arguments": {}}], "confidence": 0.1}
    monkeypatch.setattr(cli_loop, "make_runtime", lambda *a: FakeRuntime([wrong], cycle=True))
    lora = tmp_path / "adapter.gguf"
    lora.write_bytes(b"x")
    out = CliRunner().invoke(cli, ["eval", "--cases", str(_cases(tmp_path)), "--lora", str(lora)])
    assert out.exit_code == 0, out.output
    assert "cases: keep on LLM" in out.output


def test_lora_with_base_url_is_refused(tmp_path) -> None:
    out = CliRunner().invoke(cli, ["eval", "--cases", str(_cases(tmp_path)), "--base-url", "http://127.0.0.1:9",
                                   "--lora", "a.gguf"])
    assert out.exit_code != 0 and "--base-url" in out.output


def test_recommend_candidate_prefers_size_then_readiness() -> None:
    def report(readiness: float, rec: str) -> EvalReport:
        t = TaskReport("t", 10, None, None, None, None, readiness, 0.0, 0.0, 0.0, None, 1.0, rec)
        return EvalReport({"t": t}, [], 0.02)

    cands = [Candidate("a", None, None, 100), Candidate("b", None, None, 100), Candidate("c", None, None, 50)]
    reports = {"a": report(0.95, "move"), "b": report(0.99, "move"), "c": report(0.2, "keep on LLM")}
    assert recommend_candidate(reports, cands, "t").label == "b"
    reports["c"] = report(0.7, "move with threshold")
    assert recommend_candidate(reports, cands, "t").label == "c"
