"""The ``slm-agents finetune`` and ``slm-agents promote`` commands (usage: docs/finetune.md)."""

from __future__ import annotations

import json
import os
import sys

import click

from slm_agents.cli_capture import one_line_errors

__all__ = ["finetune_command", "promote_command"]


def _policy_path(path: str | None) -> str:
    from slm_agents.dataset import DEFAULT_POLICY_PATH

    return path or os.environ.get("SLM_AGENTS_POLICY") or DEFAULT_POLICY_PATH


@click.command("finetune")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None, envvar="SLM_AGENTS_DB",
              help="Capture database (default: $SLM_AGENTS_DB or ./slm_agents.db).")
@click.option("--task", required=True, help="The task to train: a t-… id or a name from 'slm-agents tasks'.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: adapter.gguf, peft/, card.json, card.md, checkpoints/.")
@click.option("--model-path", type=click.Path(dir_okay=False), default=None,
              help="The GGUF the runtime serves (default: the packaged SmolLM2); the base weights come from it.")
@click.option("--base", "base_dir", type=click.Path(file_okay=False), default=None,
              help="Train on the weights of this Hugging Face model folder instead (same architecture and vocabulary).")
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("--rank", type=int, default=16, show_default=True, help="LoRA rank.")
@click.option("--alpha", type=float, default=32.0, show_default=True, help="LoRA alpha (scale = alpha / rank).")
@click.option("--dropout", type=float, default=0.05, show_default=True, help="LoRA dropout.")
@click.option("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", show_default=True,
              help="Comma-separated projections to adapt.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate (AdamW, linear decay).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--micro-batch", type=int, default=2, show_default=True,
              help="Examples per forward pass (gradients accumulated to --batch-size): lower it to save memory.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=True, show_default=True,
              help="Recompute activations in the backward pass: less than half the memory, about a quarter slower.")
@click.option("--max-length", type=int, default=1024, show_default=True, help="Longest example, in tokens.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
              help="auto: bf16 autocast where the CPU or GPU has bf16 units, else fp32.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes initialisation, split and batch order.")
@click.option("--val-fraction", type=float, default=0.15, show_default=True, help="Held-out share, per stratum.")
@click.option("--min-examples", type=int, default=20, show_default=True, help="Refuse tasks with fewer calls.")
@click.option("--resume", is_flag=True, help="Continue from the last epoch checkpoint in the output folder.")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty output folder.")
@click.option("--no-eval", is_flag=True, help="Skip replaying the validation split through base and tuned model.")
@click.option("--promote", "do_promote", is_flag=True,
              help="Map the task to the adapter in the policy file when it beats the base on validation.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy file for --promote (default: $SLM_AGENTS_POLICY or ./slm_agents_policy.json).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the training card as JSON.")
@one_line_errors
def finetune_command(db_path: str | None, task: str, out_dir: str, model_path: str | None, base_dir: str | None,
                     epochs: int, rank: int, alpha: float, dropout: float, targets: str, lr: float, batch_size: int,
                     micro_batch: int, gradient_checkpointing: bool, max_length: int, max_steps: int | None,
                     precision: str, seed: int, val_fraction: float,
                     min_examples: int, resume: bool, force: bool, no_eval: bool, do_promote: bool,
                     policy_path: str | None, progress: bool | None, as_json: bool) -> None:
    """Train a LoRA adapter for one task on its captured calls and write it as a llama.cpp GGUF adapter.

    Training text is exactly what the runtime sends at inference (its own prompt renderer), the
    loss covers the answer's tokens only, and at the end the validation split is replayed through
    the base and the tuned model. Serve the result with LlamaCppRuntime(lora_path=DIR/adapter.gguf),
    or --promote it so every router runs the task with it.
    """
    try:
        from slm_agents.cli_capture import open_capture_file

        from .pipeline import finetune, promote
        from .train import TrainConfig
    except ImportError as e:  # pragma: no cover - the plugin's own dependencies
        raise click.ClickException(
            f"{e.name} is missing: pip install torch==2.13.0 && pip install -e plugins/slm-agents-finetune") from e
    echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    try:
        config = TrainConfig(rank=rank, alpha=alpha, dropout=dropout,
                             targets=tuple(t.strip() for t in targets.split(",") if t.strip()), epochs=epochs, lr=lr,
                             batch_size=batch_size, max_length=max_length, seed=seed, max_steps=max_steps,
                             precision=precision, micro_batch=micro_batch,
                             gradient_checkpointing=gradient_checkpointing)
        db = open_capture_file(db_path, write=True)  # missing, not SQLite, newer schema: one line
        result = finetune(db, task, out_dir, model_path=model_path, base_dir=base_dir, config=config,
                          val_fraction=val_fraction, min_examples=min_examples, force=force, resume=resume,
                          evaluate_after=not no_eval,
                          progress=sys.stderr.isatty() if progress is None else progress, echo=echo)
        message = None
        if do_promote:
            _, message = promote(result.out_dir, _policy_path(policy_path))
    except KeyboardInterrupt:
        raise click.ClickException(
            f"interrupted: no adapter was written; finished epochs are in {out_dir}/checkpoints "
            "(continue with --resume)") from None
    if as_json:
        click.echo(json.dumps(result.card, indent=2))
    else:
        click.echo(f"card: {result.out_dir / 'card.md'}")
    if message:
        echo(message)


@click.command("promote")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy file to update (default: $SLM_AGENTS_POLICY or ./slm_agents_policy.json).")
@click.option("--force", is_flag=True, help="Promote even when the tuned model did not beat the base.")
@one_line_errors
def promote_command(run_dir: str, policy_path: str | None, force: bool) -> None:
    """Map a finetune run's task to its adapter in the policy file, if it beat the base on validation.

    Routers (LangChain, LangGraph, LlamaIndex, the gateway) then run that task's SLM steps with the
    adapter on the one loaded base model.
    """
    from .pipeline import promote

    done, message = promote(run_dir, _policy_path(policy_path), force=force)
    click.echo(message)
    if not done:
        sys.exit(1)


