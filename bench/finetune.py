"""Fine-tune the default model on one task's captured calls and measure it, in one run.

Captures N steps of the support-desk development workload (a scripted teacher, task ``support``,
about a quarter of them answers after a tool result) into a temporary capture file, runs
``slm-agents finetune`` on them (its own validation split is replayed at the end), then replays
a separate held-out set, worded differently and with other values, through the base model and
the tuned adapter. Prints:

* training seconds per example and in all, and the peak RSS of the process;
* base -> tuned on the held-out set: readiness (exact answer), tool-name accuracy, exact arguments,
  and text answers where text is due;
* the memory the adapter adds to the loaded base model (RSS before and after loading it).

Targets (2 cores, default model): 200 examples in <= 15 min, peak RSS <= 4 GB, tuned readiness
>= 0.60 and >= +0.40 over the base on held-out phrasings.

Usage: python bench/finetune.py [--examples 200] [--heldout 60] [--epochs 1] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from slm_agents.capture import CaptureStore
from slm_agents.dataset import open_db
from slm_agents.evaluate import evaluate
from slm_agents_finetune.pipeline import finetune
from slm_agents_finetune.support_desk import capture, eval_cases
from slm_agents_finetune.train import TrainConfig


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def metrics(report: Any) -> dict[str, Any]:
    t = next(iter(report.tasks.values()))
    return {"readiness": t.readiness, "tool name": t.tool_name_accuracy, "arguments exact": t.args_exact_match,
            "text when due": t.abstention_accuracy}


def fmt(value: float | None) -> str:
    return "   -" if value is None else f"{value:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--heldout", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--micro-batch", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--no-gradient-checkpointing", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "capture.db"
        store = CaptureStore(db_path, redactor=None)
        capture(store, args.examples, seed=args.seed)
        store.close()
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, max_steps=args.max_steps, seed=args.seed,
                             micro_batch=args.micro_batch, lr=args.lr,
                             gradient_checkpointing=not args.no_gradient_checkpointing)
        started = time.perf_counter()
        result = finetune(open_db(db_path), "support", Path(tmp) / "run", config=config, min_examples=20,
                          progress=True)
        wall = time.perf_counter() - started
        card = result.card
        train = card["training"]
        print(f"\ntrained on {card['data']['train']} examples: {train['steps']} steps in {train['seconds']:.0f} s "
              f"({train['seconds'] / max(1, card['data']['train'] * args.epochs):.2f} s/example, {train['precision']}); "
              f"whole command {wall / 60:.1f} min (target <= 15); peak RSS {peak_mb():.0f} MB (target <= 4096)")

        from slm_agents.runtimes.llamacpp import LlamaCppRuntime

        cases = eval_cases(args.heldout, seed=args.seed + 1)
        base_rt = LlamaCppRuntime(slots=1)  # the model finetune replayed on (one call at a time)
        base = metrics(evaluate(base_rt, cases, max_tokens=160))
        before = rss_mb()  # the base model loaded and warm
        tuned_rt = LlamaCppRuntime(slots=1, lora_path=result.adapter)  # the same loaded base, plus the adapter
        tuned = metrics(evaluate(tuned_rt, cases, max_tokens=160))
        print(f"adapter memory on the loaded base: {rss_mb() - before:+.0f} MB RSS "
              f"(adapter file {result.adapter.stat().st_size / 1e6:.1f} MB)")
        print(f"held-out phrasings ({len(cases)} steps)   base -> tuned")
        for key in base:
            b, t = base[key], tuned[key]
            print(f"  {key:<18} {fmt(b)} -> {fmt(t)}")
        gain = tuned["readiness"] - base["readiness"]
        print(f"tuned readiness {tuned['readiness']:.2f} (target >= 0.60), gain {gain:+.2f} (target >= +0.40)")


if __name__ == "__main__":
    main()
