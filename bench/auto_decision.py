"""The call-or-answer decision of ``tool_choice="auto"`` on the default model, on the development set.

Prints, on ``bench/data/decision_dev.jsonl`` (a development set written for this project:
requests that need a call over ~30 tool families, requests that need none, and turns right after
a tool result):

* balanced decision accuracy (mean of: calls when a call is needed, answers when none is);
  with ``--fit``, also the grouped cross-validated figure (folds by tool family, so a family's
  requests are never both fitted and scored), which is the honest one;
* auto-mode exact-call accuracy next to forced-mode (``tool_choice="required"``) accuracy on the
  requests that need a call;
* the time to first token that the decision adds: the median TTFT of ``auto_decision="calibrated"``
  over that of plain generation (``auto_decision="model"``), both from a cold KV cache on the same
  prompts in the same run (target <= 1.10).

``--fit`` fits a calibration for the model on the whole set and prints it (paste it into
``slm_agents/decision.py``'s ``_SHIPPED`` for a default model); ``--compare-formats`` measures how
well the model's own start-of-call probability separates the classes with our prompt format
against a SmolLM2-style function-calling prompt.

Usage: python bench/auto_decision.py [--cases F] [--limit N] [--fit] [--threads 2] [--max-tokens 160]

``--cases bench/data/auto_decision_dev.jsonl`` scores the second development set (386 turns,
written separately and never fitted on), which is the honest check of the shipped calibration.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from slm_agents.decision import FEATURES, DecisionCalibration, balanced_accuracy, fit_calibration
from slm_agents.evaluate import compare_calls
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

DEV = Path(__file__).parent / "data" / "decision_dev.jsonl"


def load(path: Path, limit: int | None) -> list[dict[str, Any]]:
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit:
        random.Random(0).shuffle(cases)
        cases = cases[:limit]
    return cases


def progress(i: int, n: int, what: str) -> None:
    if sys.stderr.isatty():
        print(f"\r  {what} {i}/{n}", end="" if i < n else "\n", file=sys.stderr, flush=True)


def score_all(rt: LlamaCppRuntime, cases: list[dict[str, Any]]) -> list[dict[str, float]]:
    out = []
    for i, case in enumerate(cases, 1):
        out.append(rt.score_decision(case["messages"], case["tools"])["features"])
        progress(i, len(cases), "scored")
    return out


def grouped_cv(rows: list[tuple[dict[str, float], bool]], groups: list[str], features: tuple[str, ...],
               folds: int = 5) -> float:
    names = sorted(set(groups))
    random.Random(1).shuffle(names)
    fold_of = {g: i % folds for i, g in enumerate(names)}
    pairs: list[tuple[bool, bool]] = []
    for k in range(folds):
        train = [r for r, g in zip(rows, groups, strict=True) if fold_of[g] != k]
        test = [r for r, g in zip(rows, groups, strict=True) if fold_of[g] == k]
        if not test or len({y for _, y in train}) < 2:
            continue
        cal = fit_calibration(train, features=features, l2=0.01)
        pairs += [(y, cal.p_call(f) >= cal.threshold) for f, y in test]
    return balanced_accuracy(pairs)


def fit(rt: LlamaCppRuntime, cases: list[dict[str, Any]]) -> DecisionCalibration:
    """Fit with and without the model's own signal; keep the one that cross-validates better."""
    feats = score_all(rt, cases)
    rows = [(f, bool(c["expected"])) for f, c in zip(feats, cases, strict=True)]
    groups = [c.get("group") or c["id"] for c in cases]
    choices = {"with the model's signal": FEATURES, "request signals only": tuple(f for f in FEATURES if f != "model")}
    scores = {label: grouped_cv(rows, groups, fs) for label, fs in choices.items()}
    for label, score in scores.items():
        print(f"balanced decision accuracy, grouped 5-fold CV (families held out), {label}: {score:.3f}")
    best = max(scores, key=lambda k: scores[k])
    cal = fit_calibration(rows, model=rt.model_name, fitted_on=f"{DEV.name} ({len(rows)} cases)",
                          features=choices[best], l2=0.01)
    in_sample = balanced_accuracy((y, cal.p_call(f) >= cal.threshold) for f, y in rows)
    generic = DecisionCalibration.generic()
    gen_acc = balanced_accuracy((y, generic.p_call(f) >= generic.threshold) for f, y in rows)
    print(f"kept: {best}; in-sample {in_sample:.3f}; the generic hand-set calibration: {gen_acc:.3f}")
    print("calibration:", json.dumps(cal.to_dict()))
    return cal


def compare_formats(rt: LlamaCppRuntime, cases: list[dict[str, Any]]) -> None:
    """Balanced accuracy of the model's own start-of-call log-odds alone, per prompt format."""
    from slm_agents.decision import fit_calibration as fit_one

    def smol_system(tools: list[dict[str, Any]]) -> str:
        listing = json.dumps([t["function"] for t in tools], ensure_ascii=False)
        return ("You are an expert at composing function calls. Given a question and functions, call the "
                "ones that achieve it; when none fits, say so instead.\n\n"
                f"You have access to these tools:\n<tools>{listing}</tools>\n\n"
                'Write calls as <tool_call>[{"name": "func", "arguments": {"arg": "value"}}]</tool_call>.')

    singles = [c for c in cases if c["messages"][-1]["role"] == "user"]
    for label, make in (("ours (tools in the system prompt, Hermes <tool_call>)", None),
                        ("SmolLM2-style function-calling prompt", smol_system)):
        rows = []
        for case in singles:
            msgs = case["messages"]
            if make is not None:
                msgs = [{"role": "system", "content": make(case["tools"])},
                        *[m for m in msgs if m["role"] != "system"]]
                model = rt.score_decision(msgs, [{"type": "function", "function": {"name": "x"}}])
            else:
                model = rt.score_decision(msgs, case["tools"])
            rows.append(({"model": model["features"]["model"]}, bool(case["expected"])))
        cal = fit_one(rows, features=("model",))
        acc = balanced_accuracy((y, cal.p_call(f) >= cal.threshold) for f, y in rows)
        print(f"  model signal alone, {label}: balanced accuracy {acc:.3f} (n={len(rows)})")


def ttft(rt: LlamaCppRuntime, case: dict[str, Any], max_tokens: int) -> float:
    rt.clear_prefix_cache()  # cold: both arms evaluate the whole prompt (nothing live, nothing cached)
    for chunk in rt.stream(case["messages"], case["tools"], "auto", max_tokens=max_tokens):
        if chunk.completion is not None:
            return float(chunk.completion.ttft_ms or chunk.completion.latency_ms)
    raise RuntimeError("the stream ended without a completion")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=Path, default=DEV)
    ap.add_argument("--limit", type=int, default=None, help="Evaluate this many cases (a fixed random sample).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--fit", action="store_true", help="Fit a calibration on the set and print it.")
    ap.add_argument("--compare-formats", action="store_true")
    ap.add_argument("--ttft-cases", type=int, default=20)
    ap.add_argument("--check-auto", type=int, default=20,
                    help="Replay this many call decisions in auto mode too and check they equal the forced call.")
    args = ap.parse_args()

    cases = load(args.cases, args.limit)
    rt = LlamaCppRuntime(n_threads=args.threads)
    plain = LlamaCppRuntime(n_threads=args.threads, auto_decision="model")
    print(f"{len(cases)} cases from {args.cases.name}: "
          f"{sum(bool(c['expected']) for c in cases)} need a call; model {rt.model_name}, {args.threads} thread(s)")
    if args.compare_formats:
        compare_formats(rt, cases)
    if args.fit:
        rt.decision_calibration = fit(rt, cases)
    print(f"calibration in use: {rt.decision_calibration.model} ({rt.decision_calibration.fitted_on})")

    # An "auto" step that decides to call decodes under the forced-call grammar on the same prompt,
    # so with greedy decoding its call is the forced one: the first --check-auto call decisions are
    # replayed in auto mode too and must match; after that the forced answer stands for both arms.
    # A step that decides to answer has no call, so it is never an exact call.
    decisions: list[tuple[bool, bool]] = []
    auto_exact = forced_exact = n_call = checked = 0
    for i, case in enumerate(cases, 1):
        want = bool(case["expected"])
        calls = bool(rt.score_decision(case["messages"], case["tools"])["calls"])
        decisions.append((want, calls))
        if want:
            n_call += 1
            f = rt.complete(case["messages"], case["tools"], "required", max_tokens=args.max_tokens)
            exact = compare_calls(case["expected"], f.tool_calls)
            forced_exact += exact
            if calls and checked < args.check_auto:
                checked += 1
                a = rt.complete(case["messages"], case["tools"], "auto", max_tokens=args.max_tokens)
                if a.decision != "call" or [c["function"] for c in a.tool_calls] != \
                        [c["function"] for c in f.tool_calls]:
                    raise SystemExit(f"case {case.get('id')}: the auto call differs from the forced one")
            auto_exact += exact if calls else 0
        progress(i, len(cases), "replayed")
    print(f"auto calls checked against forced ones: {checked} identical")
    by_kind: dict[str, list[bool]] = {}
    for case, (want, got) in zip(cases, decisions, strict=True):
        by_kind.setdefault(case.get("category", "?"), []).append(want == got)
    print(f"balanced decision accuracy: {balanced_accuracy(decisions):.3f} (target >= 0.85)")
    print("  right per category: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in sorted(by_kind.items())))
    if n_call:
        a, f = auto_exact / n_call, forced_exact / n_call
        print(f"exact calls on the {n_call} requests that need one: auto {a:.3f}, forced {f:.3f}, "
              f"gap {f - a:+.3f} (target <= 0.05)")

    sample = [c for c in cases if c["messages"][-1]["role"] == "user"][: args.ttft_cases]
    base_ms, dec_ms = [], []
    for case in sample:  # interleaved, so drift on a shared machine hits both arms alike
        base_ms.append(ttft(plain, case, 8))
        dec_ms.append(ttft(rt, case, 8))
    b, d = statistics.median(base_ms), statistics.median(dec_ms)
    print(f"TTFT p50, cold prompt: plain generation {b:.1f} ms, with the decision step {d:.1f} ms, "
          f"ratio {d / b:.3f} (target <= 1.10)")
    t0 = time.perf_counter()
    for case in sample:
        rt.score_decision(case["messages"], case["tools"])
    print(f"  (score_decision, warm prefix: {(time.perf_counter() - t0) * 1000 / max(len(sample), 1):.1f} ms/case)")


if __name__ == "__main__":
    main()
