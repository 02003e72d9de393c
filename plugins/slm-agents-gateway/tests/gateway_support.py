"""Helpers for the gateway's tests (a uniquely named module, importable from every test file here)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_threads() -> int:
    """llama.cpp threads for the real model: ``$SLM_AGENTS_TEST_THREADS`` or every core."""
    return int(os.environ.get("SLM_AGENTS_TEST_THREADS", "0")) or (os.cpu_count() or 1)


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 120.0,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited early:\n{log.read_text()[-2000:] if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")
        time.sleep(0.1)


@contextlib.contextmanager
def running_gateway(gateway: Any) -> Iterator[str]:
    """Serve ``gateway`` on a free loopback port (the public ``serving``); yields its /v1 base URL."""
    from slm_agents_gateway import serving

    with serving(gateway) as base:
        yield base
