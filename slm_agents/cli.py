"""The ``slm-agents`` command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .cli_capture import FiniteFloat, one_line_errors, safe_text
from .errors import SLMAgentsError

__all__ = ["cli"]


class _Group(click.Group):
    """Shows SLMAgentsError messages (which say how to fix the problem) without a traceback.

    Every error line is printed through :func:`safe_text`: messages quote captured values (task
    names, ids), whose terminal escape codes are shown, never obeyed.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SLMAgentsError as e:
            raise click.ClickException(safe_text(str(e))) from e
        except click.ClickException as e:
            if type(e) is not click.ClickException or safe_text(e.message) == e.message:
                raise  # usage errors quote values with repr(): escapes already shown
            raise click.ClickException(safe_text(e.message)) from e


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="slm-agents")
def cli() -> None:
    """Run agent steps on local small language models, capture every call, and measure."""


@cli.command()
@click.option("--model-path", type=click.Path(dir_okay=False), help="A GGUF file (default: the packaged SmolLM2).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@one_line_errors
def models(model_path: str | None, as_json: bool) -> None:
    """Show the default model (or a GGUF file): path, size, quantization, context, tool support."""
    from .models import model_info

    info = model_info(model_path)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
        return
    rows = [
        ("model", info.name),
        ("path", str(info.path)),
        ("size", f"{info.size_bytes / 1e6:.1f} MB"),
        ("architecture", info.architecture),
        ("quantization", info.quantization),
        ("context length", str(info.context_length)),
        ("chat template", "yes" if info.chat_template else "no (ChatML is used)"),
        ("template renders tools", "yes" if info.supports_tools else "no (tools go into the system prompt)"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")


@cli.command()
@click.option("--model-path", type=click.Path(dir_okay=False), help="A GGUF file (default: the packaged SmolLM2).")
@click.option("--base-url", help="Run the SLM parts on an OpenAI-compatible server instead of in-process llama.cpp.")
@click.option("--model", "model_name", help="Model name on that server.")
@click.option("-q", "--question", "questions", multiple=True, help="Ask this instead of the built-in questions.")
@click.option("--db", type=click.Path(dir_okay=False), help="Capture file (default: $SLM_AGENTS_DB or ./slm_agents.db).")
@click.option("--no-capture", is_flag=True, help="Do not record the calls.")
@click.option("--max-fixes", type=int, default=2, show_default=True, help="Most query-fixer attempts per question.")
@click.option("--threads", type=int, default=None,
              help="llama.cpp threads (default: every core, or 1 when the machine is already busy).")
@click.option("--lora", "lora_path", type=click.Path(dir_okay=False), default=None,
              help="Run the SLM parts with this LoRA adapter (adapter.gguf from slm-agents finetune).")
@one_line_errors
def demo(
    model_path: str | None,
    base_url: str | None,
    model_name: str | None,
    questions: tuple[str, ...],
    db: str | None,
    no_capture: bool,
    max_fixes: int,
    threads: int | None,
    lora_path: str | None,
) -> None:
    """The Query Writer agent (NVIDIA's SLM paper) on a shipped SQLite database, every call captured.

    A table extractor, a re-ranker, a query writer and a query fixer run on the SLM; a researcher
    runs on the LLM when OPENAI_API_KEY or OPENAI_BASE_URL is set (model: $SLM_AGENTS_LLM_MODEL).
    Ends with stats, tasks and an export of what was captured. See docs/demo.md.
    """
    import time

    from .demo import llm_from_env, run_demo, show_loop, slm_runtimes

    started = time.perf_counter()
    if base_url and lora_path:
        raise click.UsageError("--lora runs on the in-process model: drop --base-url (or load the adapter in that server)")
    store = None
    if not no_capture:  # opened first: a bad --db is one error line before any model loads
        from .capture import CaptureStore

        store = CaptureStore(db)
    try:
        if base_url:
            from .runtimes.openai_compat import OpenAICompatRuntime

            slm: Any = OpenAICompatRuntime(model=model_name or "default", base_url=base_url)
            slm_name = f"{slm.model_name} ({slm.name})"
        else:
            slm = slm_runtimes(model_path, n_threads=threads, lora_path=lora_path)
            first = next(iter(slm.values()))
            n = first.llama.n_threads if hasattr(first.llama, "n_threads") else "?"
            slm_name = f"{first.model_name} ({first.name}, one context per part, {n} thread(s))"
        click.echo(f"slm-agents demo: the Query Writer agent, SLM parts on {slm_name}")
        run_demo(slm, llm_from_env(), list(questions) or None, store=store, echo=click.echo, max_fixes=max_fixes)
    finally:
        if store is not None:
            store.close()
    if store is not None and store.path is not None:  # a file store always has its path
        click.echo(f"\nCaptured {store.stats.written} records into {store.path}.")
        show_loop(store.path, echo=click.echo)
        click.echo(f"\nNext: slm-agents report --db {store.path} -o report.html")
    click.echo(f"demo finished in {time.perf_counter() - started:.0f} s")


@cli.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None, envvar="SLM_AGENTS_DB",
              help="Capture database (default: $SLM_AGENTS_DB or ./slm_agents.db).")
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write.")
@click.option("--price-llm-input", "llm_input", type=FiniteFloat(0.0), default=None, envvar="SLM_AGENTS_PRICE_LLM_INPUT",
              show_envvar=True, help="USD per million tokens (default 2.50).")
@click.option("--price-llm-output", "llm_output", type=FiniteFloat(0.0), default=None, envvar="SLM_AGENTS_PRICE_LLM_OUTPUT",
              show_envvar=True, help="USD per million tokens (default 10.00).")
@click.option("--price-slm-input", "slm_input", type=FiniteFloat(0.0), default=None, envvar="SLM_AGENTS_PRICE_SLM_INPUT",
              show_envvar=True, help="USD per million tokens (default 0).")
@click.option("--price-slm-output", "slm_output", type=FiniteFloat(0.0), default=None, envvar="SLM_AGENTS_PRICE_SLM_OUTPUT",
              show_envvar=True, help="USD per million tokens (default 0).")
@click.option("--eval", "eval_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Results of 'slm-agents eval --json': show each task's replay readiness beside its outcome readiness.")
def report(db_path: str | None, output: str, eval_path: str | None, **prices: float | None) -> None:
    """Write a self-contained HTML report of a capture file: routes over time, tasks, latency, escalations, cost.

    Each task shows its outcome readiness (SLM calls accepted and not followed by a tool error or
    negative feedback) and, with --eval, its replay readiness. Charts are inline SVG (matplotlib,
    the `loop` extra); the page loads nothing from the network.
    """
    from .capture import Prices
    from .cli_capture import one_line_errors, open_capture_file
    from .report import write_report

    @one_line_errors
    def run() -> Any:
        from .dataset.export import write_private

        out = Path(output)
        if not out.absolute().parent.is_dir():
            raise click.ClickException(f"the folder {out.absolute().parent} does not exist; create it first")
        db = open_capture_file(db_path)
        replay = None
        if eval_path is not None:
            from .evaluate import load_replay_readiness

            replay = load_replay_readiness(eval_path)
        mask = os.umask(0o077)  # created 0600
        try:
            html = Path(write_report(db, output, prices=Prices.from_env(**prices), replay=replay))
        finally:
            os.umask(mask)
        write_private(html, html.read_text(encoding="utf-8"))  # mode 0600: captured data is sensitive
        return html

    click.echo(f"Wrote {run()}")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(cli())


from .cli_capture import register as _register_capture  # noqa: E402
from .cli_loop import register as _register_loop  # noqa: E402

_register_capture(cli)
_register_loop(cli)


def _register_plugin_commands() -> None:
    """Let installed plugins (``slm_agents`` entry points) add their commands, e.g. ``finetune``."""
    from .plugins import get_plugin_manager

    get_plugin_manager().hook.register_commands(cli=cli)


_register_plugin_commands()
