"""``slm-agents redact-check --labelled``: recall and hard negatives on a labelled set (issue 13)."""

from __future__ import annotations

import json
import re
import runpy

import pytest
from click.testing import CliRunner

from slm_agents.capture import Redactor
from slm_agents.capture.redact_check import SHIPPED_SET, check_labelled, load_labelled, mask
from slm_agents.cli import cli

from .conftest import REPO


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _figure(output: str, name: str) -> float:
    return float(re.search(rf"^{name} (\d\.\d+)", output, re.M).group(1))


GOOD = [
    {"id": "p1", "where": "message", "input": "mail ann@example.com", "pii": [{"kind": "EMAIL", "value": "ann@example.com"}]},
    {"id": "p2", "where": "tool_arguments", "input": {"name": "Jane Roe <jane@x.com>"},
     "pii": [{"kind": "EMAIL", "value": "jane@x.com"}]},
    {"id": "n1", "where": "message", "input": "Version 1.2.3 on 2024-03-15", "pii": []},
    {"id": "n2", "where": "tool_call", "input": {"id": "c1", "type": "function"}, "pii": []},
]


def test_the_shipped_set_meets_both_thresholds():
    result = CliRunner().invoke(cli, ["redact-check", "--labelled"])
    assert result.exit_code == 0, result.output
    assert _figure(result.output, "recall") >= 0.99
    assert _figure(result.output, "hard negatives kept") >= 0.98
    assert "recall per kind:" in result.output and re.search(r"^  JWT +1\.000", result.output, re.M)
    assert result.output.rstrip().endswith("PASS: recall >= 0.99, hard negatives kept >= 0.98")


def test_the_shipped_set_holds_the_issue_cases_and_is_rebuilt_by_its_script():
    items = load_labelled()
    assert len(items) >= 300 and sum(i.negative for i in items) >= 100
    wheres = {i.where for i in items}
    assert {"tool_arguments", "tool_result", "metadata", "params", "escalation", "label", "image_url"} <= wheres
    keyed = {k for i in items if i.where == "tool_arguments" and not i.negative for k in json.dumps(i.input).split('"')}
    assert {"name", "id", "type", "index", "role", "tool_call_id", "finish_reason"} <= keyed
    assert any(i.where == "params" and "Bearer" in json.dumps(i.input) for i in items)
    assert any(not i.negative and isinstance(i.input, str) and i.input.startswith("data:") for i in items)
    assert any(k == "JWT" and v.endswith(".") for i in items for k, v in i.pii)  # alg none: no signature
    script = runpy.run_path(str(REPO / "bench" / "data" / "make_redact_labelled.py"))
    assert script["render"](script["build"]()) == SHIPPED_SET.read_text(encoding="utf-8")


def test_the_figures_measure_the_redactor_not_the_harness():
    items = load_labelled()
    off = check_labelled(items, redactor=Redactor.off())
    assert off.recall is not None and off.recall < 0.1  # only credential headers in params are dropped
    assert off.negatives_kept == 1.0
    on = check_labelled(items, redactor=Redactor())
    assert on.recall is not None and on.recall > off.recall
    assert sum(t for _, t in on.per_kind.values()) == on.pii_values == len([p for i in items for p in i.pii])


def test_an_unredactable_item_lowers_recall_and_fails_with_the_value_masked(tmp_path):
    rows = [*GOOD, {"id": "p3", "where": "answer", "input": "signed by Margaret Hamilton",
                    "pii": [{"kind": "NAME", "value": "Margaret Hamilton"}]}]
    result = CliRunner().invoke(cli, ["redact-check", "--labelled", str(_write(tmp_path / "set.jsonl", rows))])
    assert result.exit_code == 1
    assert _figure(result.output, "recall") == pytest.approx(2 / 3, abs=1e-3)
    assert "missed: p3 (answer) NAME Ma…(17 chars)" in result.output
    assert "Margaret" not in result.output and "Hamilton" not in result.output
    assert re.search(r"^  NAME +0\.000 +\(0/1\)", result.output, re.M)
    assert "FAIL: recall 0.667 < 0.99" in result.output
    lowered = CliRunner().invoke(cli, ["redact-check", "--labelled", "--min-recall", "0.6",
                                       str(tmp_path / "set.jsonl")])
    assert lowered.exit_code == 0 and "PASS" in lowered.output


def test_a_redacted_hard_negative_lowers_the_negatives_figure(tmp_path):
    rows = [*GOOD, {"id": "n3", "where": "metadata", "input": {"build": "4.0.0.0"}, "pii": []}]
    result = CliRunner().invoke(cli, ["redact-check", "--labelled", str(_write(tmp_path / "set.jsonl", rows))])
    assert result.exit_code == 1
    assert _figure(result.output, "recall") == 1.0
    assert _figure(result.output, "hard negatives kept") == pytest.approx(2 / 3, abs=1e-3)
    assert "hard negative changed: n3 (metadata) now holds <IP_n>" in result.output
    assert "FAIL: hard negatives kept 0.667 < 0.98" in result.output


@pytest.mark.parametrize("labelled", [True, False])
def test_a_binary_file_is_one_error_line(tmp_path, labelled):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    args = ["redact-check", *(["--labelled"] if labelled else []), str(binary)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ") and str(binary) in result.output


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "line 2 is not JSON"),
    ('{"id": "x", "where": "nowhere", "input": "t"}', "line 2: 'where' must be one of"),
    ('{"id": "x", "where": "metadata", "input": "t"}', "the input of 'metadata' must be a JSON object"),
    ('{"id": "x", "where": "escalation", "input": {"reason": "t"}}', "['reason'] are columns of escalation"),
    ('{"id": "p1", "where": "message", "input": "t"}', "the id 'p1' is used twice"),
])
def test_a_bad_labelled_line_is_one_error_line_naming_it(tmp_path, line, message):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(GOOD[0]) + "\n" + line + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["redact-check", "--labelled", str(path)])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output


def test_the_labelled_set_can_come_from_standard_input_and_plain_mode_needs_a_file():
    text = "".join(json.dumps(r) + "\n" for r in GOOD)
    result = CliRunner().invoke(cli, ["redact-check", "--labelled", "-"], input=text)
    assert result.exit_code == 0 and "from standard input" in result.output and "PASS" in result.output
    missing = CliRunner().invoke(cli, ["redact-check"])
    assert missing.exit_code == 2 and "--labelled" in missing.output


def test_mask_keeps_two_characters_and_the_length():
    assert mask("jane@x.com") == "ja…(10 chars)"


def test_the_module_examples_run():
    import doctest

    from slm_agents.capture import redact_check

    result = doctest.testmod(redact_check, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0
