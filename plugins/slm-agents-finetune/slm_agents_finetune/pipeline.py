"""One task from capture to a served adapter: data, training, export, evaluation, card, promotion.

:func:`finetune` is what ``slm-agents finetune`` runs; :func:`promote` what ``--promote`` and
``slm-agents promote`` run. Outputs in the output folder::

    adapter.gguf     the LoRA in llama.cpp's GGUF format (LlamaCppRuntime(lora_path=...), llama-server --lora)
    peft/            the peft adapter (vLLM --lora-modules, transformers)
    card.json        data counts, hyperparameters, loss curve, base vs tuned metrics, base model sha256
    card.md          the same, for people
    checkpoints/     one per finished epoch (``--resume`` continues from the last)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_agents.errors import InvalidRequest
from slm_agents.evaluate import EvalReport, evaluate
from slm_agents.models import resolve_model_path

from .data import TaskData, encode, load_task
from .gguf_lora import write_adapter
from .train import TrainConfig, TrainResult, load_base, train

__all__ = ["FinetuneResult", "finetune", "promote", "prepare_output", "sha256_of"]


@dataclass
class FinetuneResult:
    out_dir: Path
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter(self) -> Path:
        return self.out_dir / "adapter.gguf"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_output(out_dir: str | os.PathLike[str], *, force: bool, resume: bool) -> Path:
    """The output folder: refused when it holds files, unless ``force`` (emptied) or ``resume``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidRequest(f"{out} is a file; pass a folder for -o")
    if out.exists() and any(out.iterdir()):
        if resume:
            return out
        if not force:
            raise InvalidRequest(f"{out} exists and is not empty; pass --force to replace it, or --resume to continue")
        shutil.rmtree(out)
    elif resume:
        raise InvalidRequest(f"--resume: {out} holds no run to continue; start without --resume")
    if not out.parent.exists():
        raise InvalidRequest(f"the parent folder of {out} does not exist; create it first")
    out.mkdir(mode=0o700, exist_ok=True)
    return out


def _make_private(out: Path) -> None:
    """Files under ``out`` 0600, folders 0700: checkpoints/, peft/ and adapter.gguf are weights
    trained on captured data. (``out`` itself is made 0700 first, so nothing was ever readable by
    others; torch and peft write with the process umask, which a library must not change.)"""
    for path in out.rglob("*"):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


def _metrics(report: EvalReport) -> dict[str, Any]:
    tasks = list(report.tasks.values())
    if not tasks:
        return {}
    t = tasks[0]
    return {"n": t.n, "readiness": t.readiness, "tool_name_accuracy": t.tool_name_accuracy,
            "args_exact_match": t.args_exact_match, "schema_validity": t.schema_validity,
            "abstention_accuracy": t.abstention_accuracy, "latency_p50_ms": t.latency_p50_ms}


def finetune(
    db: Any,
    task: str,
    out_dir: str | os.PathLike[str],
    *,
    model_path: str | os.PathLike[str] | None = None,
    base_dir: str | None = None,
    config: TrainConfig | None = None,
    val_fraction: float = 0.15,
    min_examples: int = 20,
    force: bool = False,
    resume: bool = False,
    evaluate_after: bool = True,
    max_eval_tokens: int = 160,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    runtime_kwargs: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Train, export and evaluate a LoRA adapter for ``task``. See the module docstring."""
    from slm_agents.runtimes.llamacpp import LlamaCppRuntime

    config = config or TrainConfig()
    gguf_path = resolve_model_path(model_path)
    data: TaskData = load_task(db, task, val_fraction=val_fraction, seed=config.seed, min_examples=min_examples)
    out = prepare_output(out_dir, force=force, resume=resume)
    runtime_kwargs = {"slots": 1, **(runtime_kwargs or {})}  # it replays one call at a time: one slot's KV
    runtime = LlamaCppRuntime(gguf_path, **runtime_kwargs)
    encoded = [e for e in (encode(runtime, ex, config.max_length) for ex in data.train) if e is not None]
    counts = data.counts()
    counts["too_long"] = len(data.train) - len(encoded)
    if not encoded:
        raise InvalidRequest(f"none of the {len(data.train)} training examples fits in --max-length "
                             f"{config.max_length} tokens; raise --max-length")
    echo(f"task {task!r}: {counts['train']} train / {counts['validation']} validation examples "
         f"({counts['train_kinds']}); base {gguf_path.name}")

    started = time.perf_counter()
    base = load_base(gguf_path, base_dir, progress=progress)
    model_type = str(getattr(base.config, "model_type", ""))
    base_config = base.config.to_dict()
    echo(f"loaded the base weights ({model_type}, {sum(p.numel() for p in base.parameters()) / 1e6:.1f}M "
         f"parameters) in {time.perf_counter() - started:.0f} s")
    try:
        model, record = train(base, encoded, config, out / "checkpoints", resume=resume, progress=progress)

        from peft import get_peft_model_state_dict

        peft_dir = out / "peft"
        model.save_pretrained(str(peft_dir))
        n_tensors = write_adapter(get_peft_model_state_dict(model), base_config, model_type, config.alpha,
                                  out / "adapter.gguf")
    finally:  # what was written, even by a run that failed part-way
        _make_private(out)
    del model, base
    echo(f"wrote {out / 'adapter.gguf'} ({n_tensors} adapted tensors, "
         f"{(out / 'adapter.gguf').stat().st_size / 1e6:.1f} MB) and {peft_dir}/")

    metrics: dict[str, Any] = {}
    if evaluate_after and data.validation:
        metrics = compare(gguf_path, out / "adapter.gguf", data, max_tokens=max_eval_tokens, echo=echo,
                          runtime_kwargs=runtime_kwargs)
    card = _card(task, gguf_path, counts, config, record, metrics, n_tensors)
    _write_card(out, card)
    return FinetuneResult(out, card)


def compare(gguf_path: Path, adapter: Path, data: TaskData, *, max_tokens: int = 160,
            echo: Callable[[str], None] = print, runtime_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replay the validation split through the base and the tuned model; print them side by side."""
    from slm_agents.runtimes.llamacpp import LlamaCppRuntime

    cases = [e.case(data.task) for e in data.validation]
    runtime_kwargs = {"slots": 1, **(runtime_kwargs or {})}  # one call at a time: one slot's KV
    base_rt = LlamaCppRuntime(gguf_path, **runtime_kwargs)
    tuned_rt = LlamaCppRuntime(gguf_path, lora_path=adapter, **runtime_kwargs)
    base = _metrics(evaluate(base_rt, cases, max_tokens=max_tokens))
    tuned = _metrics(evaluate(tuned_rt, cases, max_tokens=max_tokens))
    echo(f"validation ({len(cases)} held-out calls)   base -> tuned")
    for key, label in (("readiness", "readiness"), ("tool_name_accuracy", "tool name"),
                       ("args_exact_match", "arguments exact"), ("abstention_accuracy", "answers in text when due")):
        b, t = base.get(key), tuned.get(key)
        if b is None and t is None:
            continue
        echo(f"  {label:<26} {_pct(b)} -> {_pct(t)}")
    return {"base": base, "tuned": tuned}


def _pct(value: Any) -> str:
    return "   -" if value is None else f"{value * 100:4.0f}%"


def _card(task: str, gguf_path: Path, counts: dict[str, Any], config: TrainConfig, record: TrainResult,
          metrics: dict[str, Any], n_tensors: int) -> dict[str, Any]:
    return {
        "task": task,
        "base_model": {"file": gguf_path.name, "sha256": sha256_of(gguf_path)},
        "data": counts,
        "hyperparameters": config.to_dict(),
        "training": {"steps": record.steps, "epochs": record.epochs_done, "seconds": round(record.seconds, 1),
                     "seconds_per_example": round(record.seconds / max(1, record.steps * config.batch_size), 3),
                     "precision": record.precision, "device": record.device,
                     "trainable_params": record.trainable_params, "loss_curve": record.losses},
        "adapter": {"file": "adapter.gguf", "format": "llama.cpp GGUF LoRA", "tensors": n_tensors,
                    "peft_dir": "peft"},
        "validation": metrics,
        "beats_base": _beats(metrics),
    }


def _beats(metrics: dict[str, Any]) -> bool | None:
    base, tuned = metrics.get("base") or {}, metrics.get("tuned") or {}
    if base.get("readiness") is None or tuned.get("readiness") is None:
        return None
    return bool(tuned["readiness"] > base["readiness"])


def _write_card(out: Path, card: dict[str, Any]) -> None:
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.chmod(out / "card.json", 0o600)
    v = card["validation"]
    lines = [
        f"# LoRA adapter for task `{card['task']}`", "",
        f"Base model: `{card['base_model']['file']}` (sha256 `{card['base_model']['sha256'][:16]}…`).", "",
        "## Data", "",
        f"{card['data']['train']} training and {card['data']['validation']} validation calls "
        f"(train: {card['data']['train_kinds']}; validation: {card['data']['validation_kinds']}).", "",
        "## Training", "",
        "| setting | value |", "| --- | --- |",
        *[f"| {k} | {v2} |" for k, v2 in card["hyperparameters"].items()],
        f"| steps | {card['training']['steps']} |", f"| seconds | {card['training']['seconds']} |",
        f"| precision | {card['training']['precision']} on {card['training']['device']} |", "",
        "Loss: " + ", ".join(f"{x:.3f}" for x in card["training"]["loss_curve"][:: max(1, len(card['training']['loss_curve']) // 20)]),
        "", "## Validation (replayed held-out calls)", "",
    ]
    if v:
        lines += ["| metric | base | tuned |", "| --- | --- | --- |"]
        for key in ("readiness", "tool_name_accuracy", "args_exact_match", "abstention_accuracy"):
            lines.append(f"| {key} | {_pct(v['base'].get(key)).strip()} | {_pct(v['tuned'].get(key)).strip()} |")
        lines += ["", "The tuned adapter " + ("beats" if card["beats_base"] else "does not beat") + " the base model."]
    else:
        lines.append("Not evaluated.")
    (out / "card.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(out / "card.md", 0o600)


def promote(card_dir: str | os.PathLike[str], policy_path: str | os.PathLike[str], *,
            force: bool = False) -> tuple[bool, str]:
    """Map the card's task to its adapter in the policy file, when the tuned model beat the base.

    Returns:
        ``(promoted, message)``; the message says why not when it was not.
    """
    from slm_agents.policy import EscalationPolicy

    out = Path(card_dir)
    try:
        card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidRequest(f"no readable card.json in {out}: {e}; pass the folder slm-agents finetune wrote") from e
    metrics = card.get("validation") or {}
    if not metrics and not force:
        return False, "the adapter was not evaluated (no validation split); evaluate it or pass --force"
    if not card.get("beats_base") and not force:
        b = (metrics.get("base") or {}).get("readiness")
        t = (metrics.get("tuned") or {}).get("readiness")
        return False, (f"not promoted: the tuned model's validation readiness {_pct(t).strip()} does not beat the "
                       f"base's {_pct(b).strip()}; capture more examples or train longer (--force promotes anyway)")
    path = Path(policy_path)
    policy = EscalationPolicy.load(path) if path.exists() else EscalationPolicy()
    policy.task_adapters[card["task"]] = str((out / "adapter.gguf").resolve())
    policy.save(path)
    return True, f"promoted: task {card['task']!r} now runs with {out / 'adapter.gguf'} (policy {path})"
