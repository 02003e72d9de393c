"""LlamaCppRuntime against raw llama-cpp-python, on the same model object, in one process.

Prints three ratios, each against a baseline measured in the same run:

* wrapper overhead: median latency of ``LlamaCppRuntime.complete`` / ``Llama.create_chat_completion``
  on the same prompt and max_tokens, both from a cold KV cache (target <= 1.03);
* prefix reuse: time to first token of a second step that repeats the system prompt and tools /
  that of a cold first step (target <= 0.25);
* decode speed: generated tokens/s of the runtime / raw llama-cpp-python (target >= 0.97);
* forced tool call: tokens/s of a grammar-constrained call, the runtime (grammar checked only on
  the sampled token) / raw ``Llama.create_completion`` with the same prompt and grammar.

Usage: python bench/bench_runtime.py [--runs 7] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import statistics
import time

from slm_agents.demo import DEMO_TOOLS
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."},
]


def raw_run(rt: LlamaCppRuntime, max_tokens: int) -> tuple[float, float, int]:
    """(latency s, ttft s, tokens) of Llama.create_chat_completion, streamed to time the first token."""
    llm = rt.llama
    with rt.lock:
        llm.reset()
        start = time.perf_counter()
        ttft = None
        n = 0
        for chunk in llm.create_chat_completion(
            PROMPT, max_tokens=max_tokens, temperature=0.0, top_k=40, top_p=0.95, min_p=0.05,
            repeat_penalty=1.0, stream=True,
        ):
            delta = chunk["choices"][0]["delta"]
            if delta.get("content"):
                if ttft is None:
                    ttft = time.perf_counter() - start
                n += 1
        total = time.perf_counter() - start
    return total, ttft or total, n


def raw_complete(rt: LlamaCppRuntime, max_tokens: int) -> tuple[float, int]:
    llm = rt.llama
    with rt.lock:
        llm.reset()
        start = time.perf_counter()
        out = llm.create_chat_completion(
            PROMPT, max_tokens=max_tokens, temperature=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0
        )
        total = time.perf_counter() - start
    return total, out["usage"]["completion_tokens"]


def ours_complete(rt: LlamaCppRuntime, max_tokens: int) -> tuple[float, float, int]:
    rt.clear_prefix_cache()  # cold, as the raw run: nothing live in the context, nothing cached
    start = time.perf_counter()
    c = rt.complete(PROMPT, max_tokens=max_tokens)
    total = time.perf_counter() - start
    return total, (c.ttft_ms or 0) / 1000, c.usage.output_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()

    rt = LlamaCppRuntime(temperature=0.0, repeat_penalty=1.0)
    print(f"model: {rt.model_name}  threads: {rt.llama.n_threads if hasattr(rt.llama, 'n_threads') else '?'}")
    ours_complete(rt, 8)
    raw_complete(rt, 8)  # warm both paths

    # 1. wrapper overhead (non-streaming, cold cache), interleaved runs
    ours_t, raw_t, toks = [], [], set()
    for _ in range(args.runs):
        t, _, n_ours = ours_complete(rt, args.max_tokens)
        ours_t.append(t)
        t, n_raw = raw_complete(rt, args.max_tokens)
        raw_t.append(t)
        toks.add((n_ours, n_raw))
    ratio = statistics.median(ours_t) / statistics.median(raw_t)
    print(f"wrapper overhead: ours {statistics.median(ours_t) * 1000:.1f} ms, raw {statistics.median(raw_t) * 1000:.1f} ms "
          f"-> latency ratio {ratio:.3f} (target <= 1.03); tokens (ours, raw): {sorted(toks)}")

    # 2. decode speed (tokens/s after the first token), interleaved
    ours_tps, raw_tps = [], []
    for _ in range(args.runs):
        total, ttft, n = ours_complete(rt, args.max_tokens)
        ours_tps.append((n - 1) / (total - ttft))
        total, ttft, n = raw_run(rt, args.max_tokens)
        raw_tps.append((n - 1) / (total - ttft))
    ratio = statistics.median(ours_tps) / statistics.median(raw_tps)
    print(f"decode speed: ours {statistics.median(ours_tps):.1f} tok/s, raw {statistics.median(raw_tps):.1f} tok/s "
          f"-> ratio {ratio:.3f} (target >= 0.97)")

    # 3. prefix reuse: same system prompt + tools, different question
    cold, warm = [], []
    questions = ["What is the weather in Tokyo?", "What is 12 times 7?", "Convert 3 kg to lb."]
    for i in range(args.runs):
        rt.clear_prefix_cache()
        msgs = [{"role": "system", "content": "You are a helpful assistant. Use the tools to answer."}]
        c1 = rt.complete(msgs + [{"role": "user", "content": questions[i % 3]}], DEMO_TOOLS, "required", max_tokens=48)
        c2 = rt.complete(msgs + [{"role": "user", "content": questions[(i + 1) % 3]}], DEMO_TOOLS, "required", max_tokens=48)
        cold.append(c1.ttft_ms)
        warm.append(c2.ttft_ms)
    ratio = statistics.median(warm) / statistics.median(cold)
    print(f"prefix reuse: cold ttft {statistics.median(cold):.0f} ms, second step {statistics.median(warm):.0f} ms "
          f"-> ratio {ratio:.3f} (target <= 0.25); prompt {c1.usage.input_tokens} tokens")

    # 4. grammar-constrained decoding
    tool_call_speed(rt, args.runs)


def tool_call_speed(rt: LlamaCppRuntime, runs: int) -> None:
    from llama_cpp import LlamaGrammar

    from slm_agents.toolcalls import normalize_tool_choice, normalize_tools, tool_call_grammar

    msgs = [{"role": "system", "content": "You are a helpful assistant. Use the tools to answer."},
            {"role": "user", "content": "Convert 5 km to miles."}]
    tools = normalize_tools(DEMO_TOOLS)
    choice = normalize_tool_choice("required", tools)
    prompt = rt.render_prompt(msgs, tools, "required")
    grammar = LlamaGrammar.from_string(tool_call_grammar(tools, choice, parallel=False), verbose=False)
    ours, raw = [], []
    for _ in range(runs):
        c = rt.complete(msgs, tools, "required", max_tokens=64)
        ours.append((c.usage.output_tokens - 1) / ((c.latency_ms - c.ttft_ms) / 1000))
        with rt.lock:
            llm = rt.llama
            first = None
            n = 0
            for _chunk in llm.create_completion(prompt, max_tokens=64, temperature=0.0, grammar=grammar, stream=True):
                n += 1
                if first is None:
                    first = time.perf_counter()
            end = time.perf_counter()
        raw.append((n - 1) / (end - first))
    ratio = statistics.median(ours) / statistics.median(raw)
    print(f"forced tool call: ours {statistics.median(ours):.1f} tok/s, raw with grammar {statistics.median(raw):.1f} tok/s "
          f"-> ratio {ratio:.2f}; call: {c.tool_calls[0]['function']}")


if __name__ == "__main__":
    main()
