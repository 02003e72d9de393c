"""slm_agents.testing: the loopback-server helpers the core's and the plugins' integration tests share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slm_agents.testing import free_port, stop_process, wait_http


def test_wait_http_returns_once_a_server_answers_and_stop_process_ends_it(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "index.html").write_text("ok")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/index.html", proc, timeout=30)
        assert proc.poll() is None
    finally:
        stop_process(proc, timeout=10)
    assert proc.returncode is not None


def test_wait_http_says_when_the_process_exited_first_with_the_end_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "print('model file not found'); raise SystemExit(3)"],
                                stdout=out, stderr=subprocess.STDOUT)
    proc.wait(30)
    with pytest.raises(RuntimeError, match=r"exited early \(code 3\)[\s\S]*model file not found"):
        wait_http(f"http://127.0.0.1:{free_port()}/v1/models", proc, timeout=30, log=log)


def test_wait_http_gives_up_after_its_timeout() -> None:
    with pytest.raises(RuntimeError, match="did not answer within 0.5 s"):
        wait_http(f"http://127.0.0.1:{free_port()}/", timeout=0.5)
