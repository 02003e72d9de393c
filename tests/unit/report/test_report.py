"""``slm-agents report``: sections, numbers from ``stats``, self-contained HTML, escaped user data."""

from __future__ import annotations

import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from slm_agents.capture import CaptureStore, Prices, stats
from slm_agents.cli import cli
from slm_agents.report import SECTIONS, render_report, report_data, write_report

from .conftest import HOSTILE


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):  # noqa: ANN001
        self.text.append(data)


def parse(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    return parser


def test_report_has_every_section_and_one_chart_each(capture_file: Path, tmp_path: Path) -> None:
    out = write_report(capture_file, tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    doc = parse(page)
    headings = [t for t in doc.text if t in SECTIONS]
    assert headings == list(SECTIONS)
    charts = [a for tag, a in doc.tags if tag == "svg" and "chart" in (a.get("class") or "")]
    assert [c["aria-label"] for c in charts] == list(SECTIONS)


def test_report_is_self_contained(capture_file: Path, tmp_path: Path) -> None:
    page = write_report(capture_file, tmp_path / "r.html").read_text(encoding="utf-8")
    for tag, attrs in parse(page).tags:
        for name in ("src", "href", "xlink:href", "action", "data"):
            value = attrs.get(name) or ""
            assert not re.match(r"\s*(https?:)?//", value), (tag, name, value)
            assert not value.startswith(("http", "file:")), (tag, name, value)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page
    assert not re.search(r"url\(\s*['\"]?(?!#)", page)  # only local references: url(#clip-path-id)
    assert "default-src 'none'" in page  # and the page forbids loading anything anyway


def test_captured_text_is_escaped_everywhere(capture_file: Path, tmp_path: Path) -> None:
    page = write_report(capture_file, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page
    assert not re.search(r"<img\b", page)
    doc = parse(page)
    assert not any(tag in ("script", "img", "iframe") for tag, _ in doc.tags)
    assert any(HOSTILE[:20] in t for t in doc.text)  # shown as text in the tables
    assert "&lt;script&gt;" in page  # in the HTML tables and in the SVG charts' text


def test_numbers_come_from_stats(capture_file: Path, tmp_path: Path) -> None:
    prices = Prices(llm_input=3.0, llm_output=15.0)
    db = Database(str(capture_file))
    summary = stats(db, prices)
    page = write_report(capture_file, tmp_path / "r.html", prices=prices).read_text(encoding="utf-8")
    assert f"saved <b>${summary['cost']['saved']:.4f}</b>" in page
    assert f"${summary['cost']['cost_if_all_llm']:.4f}" in page
    assert f"<b>{summary['calls']}</b>model calls" in page
    data = report_data(db, prices)
    tasks = {t["task"]: t for t in data["tasks"]}
    # kept (not escalated) is 6 of 6, but one tool error and one "failed" label make outcome readiness 4/6
    assert tasks["table_extractor"]["slm_kept"] == 6
    assert (tasks["table_extractor"]["tool_errors"], tasks["table_extractor"]["negative_feedback"]) == (1, 1)
    assert tasks["table_extractor"]["outcome_readiness"] == pytest.approx(4 / 6)
    assert tasks["query_writer"]["slm_needed_llm"] == 3 and tasks["query_writer"]["llm"] == 3
    assert tasks["query_writer"]["outcome_readiness"] == 0.0
    assert tasks["researcher"]["slm_needed_llm"] == 1 and tasks["researcher"]["outcome_readiness"] == 0.0
    assert all(t["replay_readiness"] is None for t in data["tasks"])  # no eval results given
    assert not any(key == "readiness" for t in data["tasks"] for key in t)  # "not escalated" is not readiness
    assert sum(t["calls"] for t in data["tasks"]) == summary["calls"] == 14
    # stats and the task breakdown agree on what "kept" means (no escalation reason, no link, no error)
    assert summary["cost"]["slm_calls_kept"] == sum(t["slm_kept"] for t in data["tasks"]) == 6
    assert {"reason": "truncated", "kind": "escalated", "count": 3} in data["reasons"]  # pairs counted once
    assert {"reason": "route:llm_tasks", "kind": "needed", "count": 1} in data["reasons"]
    assert sum(r["count"] for r in data["reasons"]) == 5
    assert sorted(data["latencies"]) == ["llm", "slm"] and len(data["latencies"]["llm"]) == 3


def test_readiness_note_says_where_it_comes_from(capture_file: Path, tmp_path: Path) -> None:
    page = write_report(capture_file, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<b>Outcome readiness</b>" in page and "kept is not ready" in page
    assert "pass <code>--eval FILE</code>" in page
    assert "<td class=\"n\">67%</td><td class=\"n\">-</td>" in page  # table_extractor: outcome, no replay
    assert "outcome readiness 67%" in page  # on the tasks chart too


def test_replay_readiness_from_eval_results_stands_beside_outcome_readiness(capture_file: Path,
                                                                           tmp_path: Path) -> None:
    import json

    results = tmp_path / "eval.json"
    results.write_text(json.dumps({"max_wrong_rate": 0.02, "results": [], "tasks": {
        "table_extractor": {"readiness": 0.9}, "query_writer": {"readiness": 0.25}}}))
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", "--db", str(capture_file), "-o", str(out), "--eval", str(results)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<td class=\"n\">67%</td><td class=\"n\">90%</td>" in page
    assert "<td class=\"n\">0%</td><td class=\"n\">25%</td>" in page
    assert "pass <code>--eval FILE</code>" not in page
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    failed = CliRunner().invoke(cli, ["report", "--db", str(capture_file), "-o", str(out), "--eval", str(bad)])
    assert failed.exit_code != 0 and "slm-agents eval --json" in failed.output


def test_empty_capture_file_renders(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    CaptureStore(path).close()
    page = write_report(path, tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count('class="chart"') == len(SECTIONS)
    assert "No calls captured yet." in page


def test_report_opens_the_capture_file_read_only(capture_file: Path, tmp_path: Path) -> None:
    before = capture_file.read_bytes()
    capture_file.chmod(0o400)
    try:
        write_report(capture_file, tmp_path / "r.html")
    finally:
        capture_file.chmod(0o600)
    assert sqlite3.connect(capture_file).execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 14
    assert capture_file.read_bytes() == before


def test_render_is_deterministic_apart_from_the_generation_time(capture_file: Path) -> None:
    db = Database(str(capture_file))
    strip = re.compile(r"generated [^<]*")
    assert strip.sub("", render_report(db)) == strip.sub("", render_report(db))


def test_cli_report_command(capture_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(cli, ["report", "--db", str(capture_file), "-o", str(out),
                                      "--price-llm-input", "5", "--price-llm-output", "20"])
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.output and out.exists()
    assert "LLM\n5.0 in / 20.0 out" in out.read_text(encoding="utf-8")


def test_cli_report_without_a_capture_file_says_how_to_make_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "--db", str(tmp_path / "missing.db"), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "slm-agents demo" in result.output


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from slm_agents.errors import RuntimeUnavailable
    from slm_agents.report import _pyplot

    real = builtins.__import__

    def fake(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(RuntimeUnavailable, match=r"slm-agents\[loop\]"):
        _pyplot()
