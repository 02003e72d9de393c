"""Issue 13, section 5: hostile and odd input to the CLI gives clear one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from slm_agents import cli_loop
from slm_agents.capture import CaptureStore
from slm_agents.cli import cli
from slm_agents.dataset.calibrate import Calibration, write_thresholds

ESC = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"
CSI = "\x9b31m"


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:"), result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45", "'; DROP TABLE calls; --", "9999999999"])
def test_since_and_until_are_validated(db_path, tmp_path, value):
    for option in ("--since", "--until"):
        result = CliRunner().invoke(cli, ["export", "--db", str(db_path), "-o", str(tmp_path / "x"), option, value])
        _one_line_error(result, option)


@pytest.mark.parametrize(("since", "until"), [("2025-05-02", "2025-05-01"), ("2025-05-01", "2025-05-01"),
                                              ("2025-05-01T12:00:00", "2025-05-01T09:00")])
def test_an_until_not_after_since_is_an_error_not_an_empty_export(db_path, tmp_path, since, until):
    # before: 0 rows exported, exit 0, as if nothing had been captured in the range
    result = CliRunner().invoke(cli, ["export", "--db", str(db_path), "-o", str(tmp_path / "x"),
                                      "--since", since, "--until", until])
    _one_line_error(result, "must be later than since")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("option", ["--price-llm-input", "--price-slm-output"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_nan_and_infinite_figures_are_refused(db_path, option, value):
    result = CliRunner().invoke(cli, ["stats", "--db", str(db_path), option, value])
    _one_line_error(result, option)


@pytest.mark.parametrize("args", [["--val-fraction", "nan"], ["--val-fraction", "inf"]])
def test_nan_fraction_is_refused(db_path, tmp_path, args):
    result = CliRunner().invoke(cli, ["export", "--db", str(db_path), "-o", str(tmp_path / "x"), *args])
    _one_line_error(result, args[0])


def test_nan_max_wrong_is_refused(db_path, tmp_path):
    result = CliRunner().invoke(cli, ["calibrate", "--db", str(db_path), "--from", "shadow", "--max-wrong", "nan",
                                      "-o", str(tmp_path / "p.json")])
    _one_line_error(result, "--max-wrong")


def test_terminal_escape_codes_in_captured_text_are_neutralised(tmp_path):
    path = tmp_path / "esc.db"
    with CaptureStore(path, redactor=None) as store:
        cid = store.log({"messages": [{"role": "user", "content": f"hi {ESC}{CSI}"}], "route": "llm",
                         "task": f"t{ESC}", "model": f"m{CSI}", "content": f"answer {ESC}{CSI}\u202egnp.exe"})
    runner = CliRunner()
    for args in (["calls", "--db", str(path)], ["call", cid, "--db", str(path)], ["stats", "--db", str(path)],
                 ["tasks", "--db", str(path)]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        for bad in ("\x1b", "\x9b", "\x07", "\u202e"):
            assert bad not in result.output, (args, bad, result.output)


def test_a_binary_cases_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cli_loop, "make_runtime", lambda *a: None)
    cases = tmp_path / "cases.jsonl"
    cases.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 50)
    result = CliRunner().invoke(cli, ["eval", "--cases", str(cases)])
    _one_line_error(result, "cases.jsonl")


def test_calibrate_keeps_policy_keys_it_does_not_know(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"threshold": 0.5, "team_owner": "ml-platform", "x_future": {"a": 1}}))
    write_thresholds([Calibration("calc", "replay", 10, 0.9, 0, 0.7, 0.8, 0.0, 0.02, "move")], path)
    data = json.loads(path.read_text())
    assert data["team_owner"] == "ml-platform" and data["x_future"] == {"a": 1}
    assert data["task_thresholds"] == {"calc": 0.7}
