"""Every cookbook recipe runs offline on the default model and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = sorted((Path(__file__).resolve().parents[2] / "cookbook").glob("*.py"))


def test_there_are_recipes() -> None:
    assert RECIPES, "cookbook/ has no recipes"


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs(recipe: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SLM_AGENTS_DB": str(tmp_path / "capture.db"), "PYTHONUNBUFFERED": "1",
           "SLM_AGENTS_COOKBOOK_QUICK": "1"}  # recipes that train keep it to a smoke-sized run
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    proc = subprocess.run(
        [sys.executable, str(recipe)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{recipe.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{recipe.name} printed nothing"
