"""CI type-checks the core and both faces with mypy, before the README's test command, and every xfail is
strict with a reason (issue 12 §6)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_mypy_before_the_readme_test_command() -> None:
    lines = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines() if line.strip()]
    mypy = [i for i, line in enumerate(lines) if line.rstrip().endswith(".venv/bin/mypy")]
    assert mypy, "no mypy step in .ci/run"
    assert mypy[-1] < len(lines) - 1 and lines[-1].endswith(".venv/bin/python -m pytest")


def test_mypy_is_configured_for_the_core_and_both_faces_and_installed_by_the_test_extra() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if tomllib is None:
        assert '"mypy>=' in text and 'files = ["slm_agents", "langchain_slm", "llamaindex_slm"]' in text
        return
    data = tomllib.loads(text)
    assert any(dep.startswith("mypy") for dep in data["project"]["optional-dependencies"]["test"])
    assert data["tool"]["mypy"]["files"] == ["slm_agents", "langchain_slm", "llamaindex_slm"]
    # only third-party modules without type information are let through, never our own packages
    for override in data["tool"]["mypy"].get("overrides", []):
        assert not any(m.split(".")[0] in ("slm_agents", "langchain_slm", "llamaindex_slm")
                       for m in override["module"])


def test_every_xfail_is_strict_and_says_why() -> None:
    import re

    data = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "xfail_strict = true" in data  # an xfail that starts passing fails the run
    runtime_xfail = "pytest." + "xfail("  # spelled apart so this file does not match itself
    for path in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"mark\.xfail\(([^)]*)\)", text, re.DOTALL):
            args = match.group(1)
            assert "reason=" in args and "strict=False" not in args, f"{path}: xfail without a reason, or not strict"
        assert runtime_xfail not in text, f"{path}: xfail at run time cannot be strict; mark the test instead"


def test_ci_type_checks_both_plugins_before_the_readme_test_command() -> None:
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    plugin_mypy = [i for i, line in enumerate(lines)
                   if ".venv/bin/mypy plugins/slm-agents-finetune/slm_agents_finetune "
                      "plugins/slm-agents-gateway/slm_agents_gateway" in line]
    assert plugin_mypy and plugin_mypy[-1] < len(lines) - 1
