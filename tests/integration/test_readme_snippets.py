"""Every Python snippet in the README runs as written, offline, on the default model, and shows what
the README says it shows."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)




def _runtime(out: str, _: Path) -> None:
    lines = out.splitlines()
    assert "'name': 'get_weather'" in lines[0]  # the forced call, decoded under the grammar
    assert 0.0 < float(lines[1]) <= 1.0  # its confidence
    assert lines[2].endswith("tool_calls")  # usage, latency, time to first token, finish reason
    assert "city" in json.loads(lines[-1])  # the json_schema answer parses and has the required key


def _capture(_: str, folder: Path) -> None:
    db = sqlite3.connect(folder / "run.db")
    routes = [r[0] for r in db.execute("SELECT route FROM calls ORDER BY id")]
    messages = db.execute("SELECT messages FROM calls").fetchone()[0]
    link = db.execute("SELECT reason FROM escalations").fetchall()
    label = db.execute("SELECT label, score FROM labels").fetchall()
    assert routes == ["slm", "llm"] and link == [("low_confidence",)] and label == [("good", 1.0)]
    assert "<EMAIL_1>" in messages and "bob@example.com" not in messages


def _langchain(out: str, _: Path) -> None:
    lines = out.splitlines()
    assert "'name': 'get_weather'" in lines[0]
    assert lines[-1] in ("slm", "llm")  # the route the agent's last step took


def _llamaindex(out: str, _: Path) -> None:
    assert out.strip().startswith("Sunny in ")  # the tool's result, returned directly


def _gateway(out: str, _: Path) -> None:
    assert "name='get_weather'" in out and out.strip().split()[-1] in ("slm", "llm")


def _plugin(out: str, _: Path) -> None:
    assert out == ""  # a hook implementation: defining it prints nothing


#: What each snippet shows, keyed by a line only that snippet has.
CHECKS: dict[str, Callable[[str, Path], None]] = {
    "rt = LlamaCppRuntime()": _runtime,
    'store = CaptureStore("run.db")': _capture,
    "slm = ChatSLM(max_tokens=64)": _langchain,
    "slm_agents_capture()": _llamaindex,
    "with serving(Gateway(": _gateway,
    "def register_runtimes(register):": _plugin,
}


def _check_for(code: str) -> Callable[[str, Path], None]:
    found = [check for marker, check in CHECKS.items() if marker in code]
    assert len(found) == 1, f"no single output check for this README snippet:\n{code[:300]}"
    return found[0]


def test_the_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 4


def test_every_snippet_has_an_output_check() -> None:
    for code in SNIPPETS:
        _check_for(code)


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs(code: str, tmp_path: Path) -> None:
    env = {**os.environ, "SLM_AGENTS_DB": str(tmp_path / "capture.db")}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{code}\n--- stdout\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    _check_for(code)(proc.stdout, tmp_path)
