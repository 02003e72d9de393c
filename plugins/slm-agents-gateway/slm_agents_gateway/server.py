"""Running the gateway: the ``slm-agents serve`` command and :func:`serve` (uvicorn underneath).

uvicorn handles SIGTERM and SIGINT gracefully: it stops accepting connections, lets the requests
in flight finish (up to ``shutdown_timeout`` seconds), then the app's lifespan closes the capture
store, which flushes it and logs its counts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._protocol import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENCY

if TYPE_CHECKING:
    from .app import Gateway

__all__ = ["serve", "serving", "serve_command", "is_loopback", "ENV_API_KEY", "ENV_LLM_API_KEY"]

logger = logging.getLogger("slm_agents_gateway")

#: Where ``slm-agents serve`` reads its own API key from when ``--api-key`` is not given.
ENV_API_KEY = "SLM_AGENTS_GATEWAY_API_KEY"
#: The default environment variable holding the upstream LLM's key (then ``OPENAI_API_KEY``).
ENV_LLM_API_KEY = "SLM_AGENTS_LLM_API_KEY"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1).

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(gateway: Gateway, *, host: str = "127.0.0.1", port: int = 8000, shutdown_timeout: float = 30.0,
          access_log: bool = False, log_level: str = "info") -> None:
    """Serve ``gateway`` with uvicorn until SIGTERM/SIGINT; returns after a graceful shutdown.

    Raises:
        click.UsageError: ``host`` is not a loopback address and the gateway has no API key.
    """
    import uvicorn

    if not is_loopback(host) and gateway._api_key is None:
        raise click.UsageError(
            f"binding to {host} exposes the gateway beyond this machine; pass --api-key KEY "
            f"(or set ${ENV_API_KEY}) so clients must send it, or bind to 127.0.0.1")
    if not logging.getLogger().handlers:  # the gateway's and the capture store's counts, beside uvicorn's lines
        logging.basicConfig(format="%(levelname)s:     %(message)s")
    for name in ("slm_agents_gateway", "slm_agents.capture"):
        logging.getLogger(name).setLevel(logging.INFO)
    # uvicorn annotates timeout_graceful_shutdown as int but waits with asyncio: seconds as a float work
    config = uvicorn.Config(gateway.app, host=host, port=port, lifespan="on", access_log=access_log,
                            log_level=log_level, server_header=False,
                            timeout_graceful_shutdown=shutdown_timeout)  # type: ignore[arg-type]
    uvicorn.Server(config).run()


@contextlib.contextmanager
def serving(gateway: Gateway, *, host: str = "127.0.0.1", port: int | None = None,
            startup_timeout: float = 60.0) -> Iterator[str]:
    """Serve ``gateway`` with uvicorn on a background thread for the block; yields its ``/v1`` base URL.

    For notebooks, scripts and tests; a service runs ``slm-agents serve``. Leaving the block
    shuts the server down gracefully (and, through the app's lifespan, closes the capture store
    when the gateway owns it).

    Example:
        >>> import urllib.request
        >>> from slm_agents import FakeRuntime
        >>> from slm_agents_gateway import Gateway
        >>> with serving(Gateway(FakeRuntime())) as base_url:
        ...     urllib.request.urlopen(base_url.replace("/v1", "/healthz")).status
        200
    """
    import uvicorn

    if not is_loopback(host) and gateway._api_key is None:
        raise click.UsageError(f"binding to {host} needs an API key on the Gateway (api_key=...)")
    if port is None:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    config = uvicorn.Config(gateway.app, host=host, port=port, lifespan="on", access_log=False,
                            log_level="warning", timeout_graceful_shutdown=30, server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"slm-agents-gateway:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the gateway did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(60)


def _slm_runtime(model_path: str | None, lora: str | None, base_url: str | None, model: str | None,
                 threads: int | None, n_ctx: int) -> Any:
    if base_url:
        if not model:
            raise click.UsageError("--base-url needs --model (the name that server serves the SLM under)")
        if lora:
            raise click.UsageError("--lora runs on the in-process model: drop --base-url (or load the adapter in that server)")
        from slm_agents.runtimes.openai_compat import OpenAICompatRuntime

        return OpenAICompatRuntime(model=model, base_url=base_url, api_key=os.environ.get("SLM_AGENTS_SLM_API_KEY"))
    from slm_agents.runtimes.llamacpp import LlamaCppRuntime

    options: dict[str, Any] = {"n_ctx": n_ctx}
    if threads:
        options["n_threads"] = threads
    if lora:
        options["lora_path"] = lora
    return LlamaCppRuntime(model_path, **options)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs --api-key.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--model-path", type=click.Path(dir_okay=False), help="The SLM's GGUF file (default: the packaged SmolLM2).")
@click.option("--lora", type=click.Path(dir_okay=False), help="A LoRA adapter (GGUF) for every SLM step (per-task adapters come from the policy).")
@click.option("--threads", type=click.IntRange(1), default=None, help="llama.cpp threads (default: all cores).")
@click.option("--n-ctx", type=click.IntRange(256), default=4096, show_default=True, help="The SLM's context length.")
@click.option("--base-url", help="Run the SLM on an OpenAI-compatible server instead of in-process llama.cpp.")
@click.option("--model", "model_name", help="The SLM's name on that server.")
@click.option("--llm-base-url", help="The upstream LLM (OpenAI-compatible) that bad SLM answers escalate to.")
@click.option("--llm-model", help="The upstream LLM's model name.")
@click.option("--llm-api-key-env", default=ENV_LLM_API_KEY, show_default=True,
              help="Environment variable holding the upstream's key (then OPENAI_API_KEY). Never logged or captured.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Escalation policy JSON (per-task thresholds, decisions, adapters); default $SLM_AGENTS_POLICY.")
@click.option("--db", type=click.Path(dir_okay=False), help="Capture file (default: $SLM_AGENTS_DB or ./slm_agents.db).")
@click.option("--no-capture", is_flag=True, help="Do not record the calls.")
@click.option("--shadow", is_flag=True, help="Run SLM and LLM on every step and answer with the LLM (for data).")
@click.option("--api-key", envvar=ENV_API_KEY, show_envvar=True, default=None,
              help="Clients must send 'Authorization: Bearer KEY'. Required when --host is not loopback.")
@click.option("--max-body-bytes", type=click.IntRange(1), default=DEFAULT_MAX_BODY_BYTES, show_default=True,
              help="Larger request bodies get 413.")
@click.option("--max-concurrency", type=click.IntRange(1), default=DEFAULT_MAX_CONCURRENCY, show_default=True,
              help="Chat requests in flight at once; more get 429.")
@click.option("--shutdown-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              help="Seconds in-flight requests get to finish after SIGTERM.")
@click.option("--access-log", is_flag=True, help="Log one line per request (method, path, status; never content).")
def serve_command(host: str, port: int, model_path: str | None, lora: str | None, threads: int | None, n_ctx: int,
                  base_url: str | None, model_name: str | None, llm_base_url: str | None, llm_model: str | None,
                  llm_api_key_env: str, policy_path: str | None, db: str | None, no_capture: bool, shadow: bool,
                  api_key: str | None, max_body_bytes: int, max_concurrency: int, shutdown_timeout: float,
                  access_log: bool) -> None:
    """Serve an OpenAI-compatible API: SLM first, escalation to --llm-base-url, every call captured.

    Point any OpenAI client at http://HOST:PORT/v1 (model "slm-agents", or "slm-agents/TASK"
    to name the task). Route and reason come back in x-slm-agents-* headers and the answer's
    slm_agents field.
    """
    from slm_agents.policy import EscalationPolicy

    from .app import Gateway

    if not is_loopback(host) and not api_key:
        raise click.UsageError(
            f"binding to {host} exposes the gateway beyond this machine; pass --api-key KEY "
            f"(or set ${ENV_API_KEY}) so clients must send it, or bind to 127.0.0.1")
    if bool(llm_base_url) != bool(llm_model):
        raise click.UsageError("--llm-base-url and --llm-model go together: the upstream's address and its model name")
    policy = EscalationPolicy.load(policy_path) if policy_path else EscalationPolicy.from_env()
    slm = _slm_runtime(model_path, lora, base_url, model_name, threads, n_ctx)
    llm = None
    if llm_base_url:
        from slm_agents.runtimes.openai_compat import OpenAICompatRuntime

        llm = OpenAICompatRuntime(model=llm_model or "", base_url=llm_base_url,
                                  api_key=os.environ.get(llm_api_key_env) or None)
    store = None
    if not no_capture:
        from slm_agents.capture import CaptureStore

        store = CaptureStore(db)
    gateway = Gateway(slm, llm=llm, policy=policy, store=store, api_key=api_key, max_body_bytes=max_body_bytes,
                      max_concurrency=max_concurrency, shadow=shadow)
    where = Path(store.path) if store is not None and store.path else None
    click.echo(f"slm-agents serve: SLM {getattr(slm, 'model_name', '?')}, "
               f"LLM {f'{llm.model_name} at {llm_base_url}' if llm is not None else 'none (answers stay on the SLM)'}, "
               f"capture {where or 'off'}, auth {'on' if api_key else 'off'}")
    click.echo(f"OpenAI base URL: http://{host if ':' not in host else f'[{host}]'}:{port}/v1")
    serve(gateway, host=host, port=port, shutdown_timeout=shutdown_timeout, access_log=access_log)
