"""LoRA training on one task's examples: the base weights from the runtime's own GGUF, peft, torch.

On a CPU without a GPU this runs on every core, in bf16 autocast where the CPU has bf16 units
(fp32 otherwise); on CUDA the same code uses the first GPU. The seed fixes initialisation and
batch order, so a run is reproducible on the same machine. A checkpoint (the peft adapter and the
optimizer state) is written after each epoch, and where ``max_steps`` stops one; ``resume=True``
continues from the last one, at the step it reached.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slm_agents.errors import InvalidRequest

from .data import IGNORE

__all__ = ["TrainConfig", "TrainResult", "load_base", "train", "bf16_supported", "DEFAULT_TARGETS"]

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    """Hyperparameters (every field is a ``slm-agents finetune`` flag)."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    targets: tuple[str, ...] = DEFAULT_TARGETS
    epochs: int = 1
    lr: float = 1e-3  # one epoch of ~200 examples is ~25 steps: 2e-4 left the loss at 0.3-0.5 (bench/finetune.py)
    batch_size: int = 8
    max_length: int = 1024
    micro_batch: int = 2  # examples per forward pass; the batch's gradients are accumulated (memory)
    # Recompute each layer's activations in the backward pass instead of keeping them: about a
    # third more time per step for a fraction of the memory (bench/finetune.py measures both).
    gradient_checkpointing: bool = True
    seed: int = 0
    max_steps: int | None = None
    precision: str = "auto"  # auto | bf16 | fp32

    def __post_init__(self) -> None:
        for name in ("rank", "epochs", "batch_size", "max_length", "micro_batch"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 < self.lr < float("inf") or not 0 < self.alpha < float("inf") or not 0 <= self.dropout < 1:
            raise InvalidRequest("--lr and --alpha must be positive finite numbers and --dropout in [0, 1)")  # NaN too
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidRequest("--max-steps must be at least 1")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise InvalidRequest("--precision is auto, bf16 or fp32")
        if not set(self.targets) <= set(DEFAULT_TARGETS):
            raise InvalidRequest(f"--targets must be among {', '.join(DEFAULT_TARGETS)}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["targets"] = list(self.targets)
        return out


@dataclass
class TrainResult:
    steps: int = 0
    epochs_done: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    precision: str = "fp32"
    device: str = "cpu"
    trainable_params: int = 0
    examples: int = 0


def bf16_supported() -> bool:
    """Whether bf16 autocast is fast here: a CUDA GPU with bf16, or a CPU with avx512_bf16/AMX."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _missing(e: ImportError) -> InvalidRequest:
    return InvalidRequest(
        f"fine-tuning needs torch, transformers, peft and gguf ({e.name or e} is missing). On a CPU-only machine: "
        "pip install torch==2.13.0 && pip install -e plugins/slm-agents-finetune (see its README for CUDA builds)"
    )


def load_base(model_path: Path, base_dir: str | None = None, *, progress: bool = True) -> Any:
    """The base model in fp32: from an HF directory (``--base``), else dequantized from the GGUF."""
    try:
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise _missing(e) from e
    import warnings

    hf_logging.set_verbosity_error()
    if not progress:
        hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module="peft")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    try:
        with contextlib.nullcontext() if progress else _gguf_bar_off():
            if base_dir:
                model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
            else:
                model = AutoModelForCausalLM.from_pretrained(
                    str(model_path.parent), gguf_file=model_path.name, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as e:
        where = base_dir or model_path
        raise InvalidRequest(f"could not load the base weights from {where}: {e}") from e
    return model


@contextlib.contextmanager
def _gguf_bar_off() -> Iterator[None]:
    """Switch off transformers' GGUF de-quantization bar. Its module iterates under a ``tqdm`` it
    imported with transformers, and tqdm reads ``TQDM_DISABLE`` when it is imported, so setting
    that here came too late: the name is wrapped with ``disable=True`` for the load instead."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # a transformers without GGUF loading has no such bar
        yield
        return
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _batches(encoded: list[tuple[list[int], list[int]]], size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(len(encoded)))
    rng.shuffle(order)
    return [order[i:i + size] for i in range(0, len(order), size)]


def _collate(encoded: list[tuple[list[int], list[int]]], idx: list[int], device: Any) -> dict[str, Any]:
    import torch

    width = max(len(encoded[i][0]) for i in idx)
    ids, labels, mask = [], [], []
    for i in idx:
        x, y = encoded[i]
        pad = width - len(x)
        ids.append(x + [0] * pad)
        labels.append(y + [IGNORE] * pad)
        mask.append([1] * len(x) + [0] * pad)
    return {"input_ids": torch.tensor(ids, device=device), "labels": torch.tensor(labels, device=device),
            "attention_mask": torch.tensor(mask, device=device)}


def _answer_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Summed cross-entropy on the answer tokens only, projecting just their hidden states to the vocabulary.

    The usual ``model(labels=...)`` computes logits for every position (batch x length x a 49k
    vocabulary: gigabytes on long tool prompts) and then ignores the prompt's; the answer is a
    tenth of the tokens, so this takes a tenth of the memory, with the same loss.
    """
    import torch.nn.functional as F

    inner = model.get_base_model()  # the LoRA layers are injected in place: its forward uses them
    hidden = inner.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = inner.lm_head(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, targets[keep], reduction="sum")


def _answer_tokens(example: tuple[list[int], list[int]]) -> int:
    return sum(1 for t in example[1][1:] if t != IGNORE)


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("epoch-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found and (found[-1] / "state.pt").is_file() else None


def train(
    base: Any,
    encoded: list[tuple[list[int], list[int]]],
    config: TrainConfig,
    ckpt_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[Any, TrainResult]:
    """Train a LoRA on ``encoded`` (``(input_ids, labels)`` pairs); return the peft model and a record.

    Raises:
        InvalidRequest: nothing to train on, or ``resume`` without a checkpoint.
        KeyboardInterrupt: passed on; the checkpoints of finished epochs stay in ``ckpt_dir``.
    """
    try:
        import torch
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        from tqdm.auto import tqdm
    except ImportError as e:
        raise _missing(e) from e
    if not encoded:
        raise InvalidRequest("no training example fits in --max-length tokens; raise --max-length")

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and bf16_supported())
    # peft annotates lora_alpha as int but only ever divides it by r: a float scale works as given
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,  # type: ignore[arg-type]
                      target_modules=list(config.targets), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(base, lora).to(device)
    if config.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)

    def schedule(s: int) -> float:  # warm-up, then linear decay to 0 at ``total``
        return min(1.0, (s + 1) / max(1, min(10, total // 10))) * max(0.0, 1 - s / max(1, total))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    result = TrainResult(precision="bf16" if use_bf16 else "fp32", device=str(device),
                         trainable_params=sum(p.numel() for p in params), examples=len(encoded))
    start_epoch = 0
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        last = _latest_checkpoint(ckpt_dir)
        if last is None:
            raise InvalidRequest(f"--resume: no finished epoch checkpoint in {ckpt_dir}; start without --resume")
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(last / "adapter_model.safetensors")))
        state = torch.load(last / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        for group in optimizer.param_groups:  # this run's schedule: a --max-steps run had decayed to 0
            group["lr"] = group["initial_lr"] * schedule(scheduler.last_epoch)
        start_epoch, result.steps, result.losses = state["epoch"], state["step"], state["losses"]
        result.epochs_done = start_epoch
    # Batches of the epoch to resume already trained (a run --max-steps stopped inside it).
    skip = max(0, result.steps - start_epoch * steps_per_epoch)
    rng = random.Random(config.seed)
    for _ in range(start_epoch):  # the same batch order as an uninterrupted run
        _batches(encoded, config.batch_size, rng)

    model.train()
    started = time.perf_counter()
    bar = tqdm(total=total, initial=result.steps, desc="finetune", unit="step", disable=not progress)
    try:
        for epoch in range(start_epoch, config.epochs):
            batches = _batches(encoded, config.batch_size, rng)
            ran = skip if epoch == start_epoch else 0
            for idx in batches[ran:]:
                if result.steps >= total:
                    break
                ran += 1
                # Micro-batches of similar length (little padding); the mean over the whole
                # batch's answer tokens is the same loss as one big forward pass, in a fraction
                # of the activation memory.
                idx = sorted(idx, key=lambda i: len(encoded[i][0]))
                n_tokens = max(1, sum(_answer_tokens(encoded[i]) for i in idx))
                value = 0.0
                for j in range(0, len(idx), config.micro_batch):
                    batch = _collate(encoded, idx[j:j + config.micro_batch], device)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        loss = _answer_loss(model, batch) / n_tokens
                    loss.backward()
                    value += float(loss.detach())
                    del loss, batch
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                result.steps += 1
                result.losses.append(round(value, 5))
                bar.set_postfix(loss=f"{value:.4f}", epoch=epoch + 1)
                bar.update(1)
                if on_step is not None:
                    on_step(result.steps, value)
            if ran == len(batches):
                result.epochs_done = epoch + 1
            # Also where --max-steps cut the epoch: the state says the step, --resume goes on from it.
            _save_checkpoint(model, optimizer, scheduler, ckpt_dir / f"epoch-{epoch + 1}", result, config)
            if result.steps >= total:
                break
    finally:
        bar.close()
        result.seconds = time.perf_counter() - started
    model.eval()
    return model, result


def _save_checkpoint(model: Any, optimizer: Any, scheduler: Any, where: Path, result: TrainResult,
                     config: TrainConfig) -> None:
    import torch

    tmp = where.with_name(where.name + ".tmp")
    model.save_pretrained(str(tmp))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": result.epochs_done,
                "step": result.steps, "losses": result.losses}, tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
    if where.exists():
        import shutil

        shutil.rmtree(where)
    os.replace(tmp, where)
