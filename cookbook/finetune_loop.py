"""The whole loop on the default model, offline: capture -> finetune -> eval base vs tuned -> serve.

1. A support-desk agent whose teacher is scripted (no API key) answers customer requests; every
   step is captured (task ``support``), about a quarter of them answers after a tool result.
2. ``finetune`` (plugin ``slm-agents-finetune``) trains a LoRA adapter on those calls on the CPU,
   with the runtime's own prompt renderer, and writes ``adapter.gguf`` for llama.cpp.
3. Held-out requests, worded differently, are replayed through the base model and the tuned one.
4. ``promote`` maps the task to the adapter in a policy file; a router step of task ``support``
   then runs with the adapter on the one loaded base model.

By default it is a short run (two training steps) so it finishes in a few minutes
(``SLM_AGENTS_COOKBOOK_QUICK=1``: smaller still, for smoke tests); for
the real thing (about 10 minutes on 2 cores): ``python cookbook/finetune_loop.py --examples 200 --full``.
Needs: pip install torch==2.13.0 && pip install -e plugins/slm-agents-finetune
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from slm_agents import EscalationPolicy
from slm_agents.capture import CaptureStore
from slm_agents.dataset import open_db
from slm_agents.evaluate import evaluate
from slm_agents.routing import run_routed
from slm_agents.runtimes.llamacpp import LlamaCppRuntime
from slm_agents_finetune.pipeline import finetune, promote
from slm_agents_finetune.support_desk import TOOLS, capture, eval_cases
from slm_agents_finetune.train import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser(description="capture -> finetune -> eval -> serve, offline")
    ap.add_argument("--examples", type=int, default=40, help="Captured teacher steps.")
    ap.add_argument("--full", action="store_true", help="Train a whole epoch instead of a few steps.")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="slm-finetune-"))
    store = CaptureStore(work / "capture.db", redactor=None)
    capture(store, args.examples, seed=0)
    store.close()
    print(f"1. captured {args.examples} teacher steps of task 'support' into {work / 'capture.db'}")

    quick = bool(os.environ.get("SLM_AGENTS_COOKBOOK_QUICK")) and not args.full  # the smallest run (smoke tests)
    config = TrainConfig(batch_size=8 if args.full else 2 if quick else 4, max_steps=None if args.full else 2,
                         lr=1e-3)
    result = finetune(open_db(work / "capture.db"), "support", work / "run", config=config, min_examples=10,
                      progress=False, evaluate_after=False)
    print(f"2. trained {result.card['training']['steps']} steps in {result.card['training']['seconds']:.0f} s: "
          f"{result.adapter}")

    cases = eval_cases(6 if quick else 12, seed=1)
    base = evaluate(LlamaCppRuntime(), cases, max_tokens=128).tasks["support"]
    tuned_rt = LlamaCppRuntime(lora_path=result.adapter)
    tuned = evaluate(tuned_rt, cases, max_tokens=128).tasks["support"]
    print(f"3. held-out readiness: base {base.readiness:.2f} -> tuned {tuned.readiness:.2f} "
          f"(tool names {base.tool_name_accuracy or 0:.2f} -> {tuned.tool_name_accuracy or 0:.2f})")

    policy_path = work / "policy.json"
    done, message = promote(result.out_dir, policy_path, force=True)  # a short run may not win; show serving anyway
    policy = EscalationPolicy.load(policy_path)
    rt = LlamaCppRuntime()
    case = cases[0]
    routed = run_routed(policy, case.messages, TOOLS, "auto", task="support",
                        slm=lambda: rt.complete(case.messages, TOOLS, "auto", max_tokens=128), llm=None)
    answer = routed.result.tool_calls or routed.result.content
    print(f"4. {message}\n   router step of task 'support' ran on {routed.slm.model if routed.slm else '?'}: {answer}")


if __name__ == "__main__":
    main()
