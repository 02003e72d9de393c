"""The ``slm-agents`` command."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from . import __version__
from .errors import SLMAgentsError

__all__ = ["cli"]


class _Group(click.Group):
    """Shows SLMAgentsError messages (which say how to fix the problem) without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SLMAgentsError as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="slm-agents")
def cli() -> None:
    """Run agent steps on local small language models, capture every call, and measure."""


@cli.command()
@click.option("--model-path", type=click.Path(dir_okay=False), help="A GGUF file (default: the packaged SmolLM2).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
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
@click.option("--base-url", help="Use an OpenAI-compatible server instead of in-process llama.cpp.")
@click.option("--model", "model_name", help="Model name on that server.")
@click.option("-q", "--question", "questions", multiple=True, help="Ask this instead of the built-in questions.")
@click.option("--db", type=click.Path(dir_okay=False), help="Capture file (default: $SLM_AGENTS_DB or ./slm_agents.db).")
@click.option("--no-capture", is_flag=True, help="Do not record the calls.")
def demo(
    model_path: str | None,
    base_url: str | None,
    model_name: str | None,
    questions: tuple[str, ...],
    db: str | None,
    no_capture: bool,
) -> None:
    """A tool-calling conversation on the default local model, printing each call."""
    from .demo import run_demo

    if base_url:
        from .runtimes.openai_compat import OpenAICompatRuntime

        runtime: Any = OpenAICompatRuntime(model=model_name or "default", base_url=base_url)
    else:
        from .runtimes.llamacpp import LlamaCppRuntime

        runtime = LlamaCppRuntime(model_path)
    click.echo(f"slm-agents demo on {runtime.model_name} ({runtime.name})")
    store = None
    on_call = None
    if not no_capture:
        from .capture import CaptureStore

        store = CaptureStore(db)

        def on_call(completion: Any, **fields: Any) -> str:
            return store.log_completion(completion, framework="core", route="slm", **fields)

    results = run_demo(
        runtime, list(questions) or None, echo=click.echo, on_call=on_call, on_tool=store.log_tool if store else None
    )
    called = sum(1 for r in results if r["tool_calls"])
    click.echo(f"\n{called}/{len(results)} questions answered through a tool call.")
    if store is not None:
        store.close()
        click.echo(f"Captured {store.stats.written} calls into {store.path}; see them with: slm-agents stats")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(cli())


from .cli_capture import register as _register_capture  # noqa: E402
from .cli_loop import register as _register_loop  # noqa: E402

_register_capture(cli)
_register_loop(cli)
