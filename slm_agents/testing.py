"""Helpers for tests of the core, its faces and plugins: a real OpenAI-compatible server on loopback.

Integration tests point runtimes, faces and the gateway at llama-cpp-python's own
``python -m llama_cpp.server`` running the default model: a real HTTP server speaking the
OpenAI protocol, with nothing downloaded and nothing leaving 127.0.0.1. :func:`llama_server`
starts one on a free port, waits until it answers, and stops it when the block ends; pytest
fixtures wrap it (``tests/integration/conftest.py``; the gateway plugin's client tests). A plugin's
tests keep such fixtures in their test modules, not in a ``conftest.py``: CI collects every
plugin in one pytest session with ``--doctest-modules``, where two ``conftest`` modules outside
packages clash (``import file mismatch``).
It needs ``pip install 'slm-agents[server]'``.

Example:
    >>> port = free_port()
    >>> 1024 <= port <= 65535
    True
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LlamaServer", "free_port", "llama_server", "model_threads", "stop_process", "wait_http"]


@dataclass(frozen=True)
class LlamaServer:
    """A running llama_cpp.server: ``base_url`` ends in /v1, ``model`` is its served name."""

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_threads() -> int:
    """llama.cpp threads for the real model: ``$SLM_AGENTS_TEST_THREADS``, else every core."""
    return int(os.environ.get("SLM_AGENTS_TEST_THREADS", "0")) or (os.cpu_count() or 1)


def wait_http(url: str, process: subprocess.Popen[bytes] | None = None, *, timeout: float = 120.0,
              log: Path | None = None) -> None:
    """Wait until ``url`` answers 200.

    Raises:
        RuntimeError: ``process`` exited first, or ``timeout`` seconds passed (with the end of ``log``).
    """
    deadline = time.monotonic() + timeout
    while True:
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited early (code {process.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g} s:\n{tail}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM ``process`` and wait for it; SIGKILL it if it has not exited after ``timeout`` s."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def llama_server(
    log_dir: str | os.PathLike[str],
    *,
    model_path: str | os.PathLike[str] | None = None,
    alias: str = "smollm2",
    n_ctx: int = 2048,
    n_threads: int | None = None,
    chat_format: str = "chatml-function-calling",
    timeout: float = 120.0,
) -> Iterator[LlamaServer]:
    """Run ``python -m llama_cpp.server`` on 127.0.0.1 for the duration of the block.

    Args:
        log_dir: Where its output goes (``server.log``), quoted when it fails to start.
        model_path: A GGUF file; None for the default model.
        alias: The model name it serves.
        n_ctx: Context length.
        n_threads: llama.cpp threads; None for :func:`model_threads`.
        chat_format: Its chat handler (function calling on by default).
        timeout: Seconds to wait for it to answer ``/v1/models``.

    Yields:
        The running server; it is stopped (SIGTERM, then SIGKILL) when the block exits.
    """
    if model_path is None:
        from .models import default_model_path

        model_path = default_model_path()
    port = free_port()
    log = Path(log_dir) / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads or model_threads()),
        "--chat_format", chat_format,
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", process, timeout=timeout, log=log)
        yield LlamaServer(base_url=f"http://127.0.0.1:{port}/v1", model=alias, process=process, log=log)
    finally:
        stop_process(process)
