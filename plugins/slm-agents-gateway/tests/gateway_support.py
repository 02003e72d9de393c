"""Helpers for the gateway's tests (a uniquely named module, importable from every test file here).

Ports, waiting for HTTP and thread counts come from :mod:`slm_agents.testing`, shared with the core.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from slm_agents.testing import free_port, model_threads, wait_http

__all__ = ["free_port", "model_threads", "running_gateway", "wait_http"]


@contextlib.contextmanager
def running_gateway(gateway: Any) -> Iterator[str]:
    """Serve ``gateway`` on a free loopback port (the public ``serving``); yields its /v1 base URL."""
    from slm_agents_gateway import serving

    with serving(gateway) as base:
        yield base
