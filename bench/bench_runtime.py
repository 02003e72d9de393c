"""LlamaCppRuntime against raw llama-cpp-python on the same GGUF file.

Prints four ratios, each of medians against a baseline measured in the same run:

* wrapper overhead: median latency of ``LlamaCppRuntime.complete`` / ``Llama.create_chat_completion``
  on the same prompt and max_tokens, both from a cold KV cache (target <= 1.03);
* decode speed: generated tokens/s after the first token, the runtime / raw llama-cpp-python
  (target >= 0.97);
* prefix reuse: time to first token of a second step that repeats the system prompt and tools /
  that of a cold first step (target <= 0.25);
* forced tool call: tokens/s of a grammar-constrained call, the runtime (grammar checked only on
  the sampled token) / raw ``Llama.create_completion`` with the same prompt and grammar.

Raw llama-cpp-python runs first, in a process of its own (a ``Llama`` on the same file, with the
runtime's context length, threads and batch size), and that process is gone before the runtime
decodes anything: llama.cpp's worker threads belong to the thread that calls it, so raw calls from
this process (or a live second one) beside the runtime's decode thread bring a second team of
spinning workers, and on 2 cores each runs at about half speed. Timings are taken in the child.

Usage: python bench/bench_runtime.py [--runs 7] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from slm_agents.demo import DEMO_TOOLS
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."},
]
SAMPLING = {"temperature": 0.0, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0}
TOOL_MESSAGES = [{"role": "system", "content": "You are a helpful assistant. Use the tools to answer."},
                 {"role": "user", "content": "Convert 5 km to miles."}]


def raw_measurements(model_path: str, n_ctx: int, n_threads: int, n_batch: int, runs: int, max_tokens: int,
                     tool_prompt: str, tool_grammar: str) -> dict[str, list[Any]]:
    """Every raw llama-cpp-python figure, measured in the child process this runs in."""
    from llama_cpp import Llama, LlamaGrammar

    llm: Any = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, verbose=False)

    def cold() -> None:  # nothing evaluated, nothing in the KV cache
        llm.reset()
        llm._ctx.kv_cache_clear()

    def complete(n: int) -> tuple[float, int]:
        cold()
        start = time.perf_counter()
        out = llm.create_chat_completion(PROMPT, max_tokens=n, **SAMPLING)
        return time.perf_counter() - start, out["usage"]["completion_tokens"]

    def streamed() -> tuple[float, float, int]:  # (latency, ttft, tokens), streamed to time the first token
        cold()
        start = time.perf_counter()
        ttft, n = None, 0
        for chunk in llm.create_chat_completion(PROMPT, max_tokens=max_tokens, stream=True, **SAMPLING):
            if chunk["choices"][0]["delta"].get("content"):
                ttft = ttft or time.perf_counter() - start
                n += 1
        total = time.perf_counter() - start
        return total, ttft or total, n

    def forced_call() -> float:  # tokens/s after the first token
        grammar = LlamaGrammar.from_string(tool_grammar, verbose=False)
        first, n = 0.0, 0
        for _chunk in llm.create_completion(tool_prompt, max_tokens=64, temperature=0.0, grammar=grammar, stream=True):
            n += 1
            first = first or time.perf_counter()
        return (n - 1) / (time.perf_counter() - first)

    complete(8)  # warm-up
    return {"complete": [complete(max_tokens) for _ in range(runs)],
            "streamed": [streamed() for _ in range(runs)],
            "forced": [forced_call() for _ in range(runs)]}


def raw_phase(rt: LlamaCppRuntime, runs: int, max_tokens: int) -> dict[str, list[Any]]:
    """Run :func:`raw_measurements` in a spawned process and wait until it has exited."""
    from slm_agents.toolcalls import normalize_tool_choice, normalize_tools, tool_call_grammar

    tools = normalize_tools(DEMO_TOOLS)
    grammar = tool_call_grammar(tools, normalize_tool_choice("required", tools), parallel=False)
    assert grammar is not None  # a required call always has one
    llm = rt.llama
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        raw = child.submit(raw_measurements, str(rt.model_path), rt.n_ctx, llm.n_threads, llm.n_batch, runs, max_tokens,
                           rt.render_prompt(TOOL_MESSAGES, tools, "required"), grammar).result()
    time.sleep(1.0)  # its threads are gone before ours start
    return raw


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
    print(f"model: {rt.model_name}  threads: {rt.llama.n_threads}")
    raw = raw_phase(rt, args.runs, args.max_tokens)
    ours_complete(rt, 8)  # warm-up

    # 1. wrapper overhead (non-streaming, cold cache)
    ours = [ours_complete(rt, args.max_tokens) for _ in range(args.runs)]
    ours_t, raw_t = [t for t, _, _ in ours], [t for t, _ in raw["complete"]]
    toks = {(n_ours, n_raw) for (_, _, n_ours), (_, n_raw) in zip(ours, raw["complete"], strict=True)}
    ratio = statistics.median(ours_t) / statistics.median(raw_t)
    print(f"wrapper overhead: ours {statistics.median(ours_t) * 1000:.1f} ms, raw {statistics.median(raw_t) * 1000:.1f} ms "
          f"-> latency ratio {ratio:.3f} (target <= 1.03); tokens (ours, raw): {sorted(toks)}")

    # 2. decode speed (tokens/s after the first token)
    ours_tps = [(n - 1) / (total - ttft) for total, ttft, n in (ours_complete(rt, args.max_tokens) for _ in range(args.runs))]
    raw_tps = [(n - 1) / (total - ttft) for total, ttft, n in raw["streamed"]]
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
        cold.append(c1.ttft_ms or 0.0)
        warm.append(c2.ttft_ms or 0.0)
    ratio = statistics.median(warm) / statistics.median(cold)
    print(f"prefix reuse: cold ttft {statistics.median(cold):.0f} ms, second step {statistics.median(warm):.0f} ms "
          f"-> ratio {ratio:.3f} (target <= 0.25); prompt {c1.usage.input_tokens} tokens")

    # 4. grammar-constrained decoding
    forced = []
    for _ in range(args.runs):
        c = rt.complete(TOOL_MESSAGES, DEMO_TOOLS, "required", max_tokens=64)
        forced.append((c.usage.output_tokens - 1) / ((c.latency_ms - (c.ttft_ms or 0.0)) / 1000))
    ratio = statistics.median(forced) / statistics.median(raw["forced"])
    print(f"forced tool call: ours {statistics.median(forced):.1f} tok/s, raw with grammar "
          f"{statistics.median(raw['forced']):.1f} tok/s -> ratio {ratio:.2f}; call: {c.tool_calls[0]['function']}")


if __name__ == "__main__":
    main()
