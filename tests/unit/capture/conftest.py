"""Fixtures for the capture tests: in-memory and on-disk stores, a child-process runner."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlite_utils import Database

from slm_agents.capture import CaptureStore, Redactor

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def mem_store():
    store = CaptureStore(Database(memory=True), redactor=Redactor())
    yield store
    store.close()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "capture.db"


@pytest.fixture
def file_store(db_path):
    store = CaptureStore(db_path, redactor=Redactor(), flush_interval=0.01)
    yield store
    store.close()


def run_python(code: str, *args: str, timeout: float = 60, **popen) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (spawned, not forked) with the repo importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout, env=env, **popen,
    )


def msg(text: str = "hello") -> list[dict]:
    return [{"role": "user", "content": text}]
