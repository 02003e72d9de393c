"""One loaded model serving many agent nodes: the prefix cache, concurrency, and raw llama-cpp-python.

Everything runs in one process on the default model (SmolLM2-135M-Instruct Q4_1), greedy, and
every figure is printed with its ratio to a baseline measured in the same run:

1. **TTFT p50, same prefix vs alternating.** An agent node's step is its system prompt + the demo
   tools + a question. "Same prefix": one node, a different question each step. "Alternating":
   3 or 8 nodes (each its own system prompt) take turns. Target: alternating <= 2x same prefix, up
   to 8 prefixes at the default capacity. Raw llama-cpp-python (``Llama.create_completion`` on the
   same prompt tokens, its single live prefix) is printed beside it.
2. **Throughput with 1, 2 and 4 concurrent agents** on one loaded model: threads, each an agent
   node taking steps (text answers), total generated tokens/s; the runtime decodes them in one
   batch (``slots``). Target: 4 agents >= 2x one agent. Beside it, the ceiling of the llama.cpp
   kernels on this machine: raw batched decoding of 1, 2 and 4 sequences (``llama_decode`` on
   one batch, no sampling), measured in the same run.
3. **Single-request latency vs raw llama-cpp-python**: the same prompt tokens, both generating
   exactly ``--max-tokens`` (an answer longer than that), ours resuming its slot's prompt (it
   evaluates the last 2 tokens again), raw (a ``Llama`` of its own on the same file) its live
   prefix; ratio of the medians. Target: <= 1.03.

Raw llama-cpp-python runs first, in a process of its own, and is gone before the runtime decodes
anything (see :class:`RawWorker`: two processes' or threads' llama.cpp workers halve each other).
4. ``--options``: the two llama.cpp mechanisms a prefix cache can use, at equal memory: restore
   a saved sequence state (what the runtime does) vs copy a sequence held in a multi-sequence
   context (``n_seq_max``, unified KV, ``llama_memory_seq_cp``); resume time, and decode speed of
   the working sequence while 8 prefixes are held.

Run:
    python bench/kv_cache.py                   # sections 1-3
    python bench/kv_cache.py --options         # and 4
    python bench/kv_cache.py --threads 1 --rounds 3
    python bench/kv_cache.py --requantize q4_0 # the same on a Q4_0 copy of the default model
                                               # (llama.cpp has batched CPU kernels for Q4_0)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from typing import Any

from slm_agents.demo import DEMO_TOOLS
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

QUESTIONS = [
    "What is the weather in Tokyo?", "Convert 3 kg to pounds.", "What is 12 times 7?",
    "Weather in Lima tomorrow?", "How many miles is 10 km?", "Search the docs for refunds.",
]
TEXT_QUESTIONS = [
    "Write two sentences about a lighthouse.", "Describe a storm at sea in two sentences.",
    "Say something kind about mornings.", "Explain what a harbour is, briefly.",
]


def node(i: int, question: str) -> list[dict[str, Any]]:
    """A step of agent node ``i``: its own system prompt (the part that differs between nodes)."""
    return [
        {"role": "system", "content": f"You are agent node {i} of a travel desk. Node {i} answers with one tool call."},
        {"role": "user", "content": question},
    ]


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


# --- 1. TTFT, same prefix vs alternating ---------------------------------------------------------
def ours_ttft(rt: LlamaCppRuntime, nodes: list[int], rounds: int) -> list[float]:
    """TTFT (ms) of each step after a warm-up round, nodes taking turns, questions rotating."""
    ttfts = []
    for r in range(rounds + 1):
        for k, i in enumerate(nodes):
            c = rt.complete(node(i, QUESTIONS[(r + k) % len(QUESTIONS)]), DEMO_TOOLS, "required", max_tokens=1)
            if r > 0:
                ttfts.append(c.ttft_ms or 0.0)
    return ttfts


class RawWorker:
    """Raw llama-cpp-python in a process of its own: a ``Llama`` on the same file with the
    runtime's context length and threads, as a user would run it.

    Not in this process: llama.cpp's OpenMP worker threads belong to the thread that calls it, so
    a second calling thread (this one, beside the runtime's decode thread) brings a second team of
    spinning workers, and on 2 cores each team then runs at about half speed (measured here:
    140 -> 56 tokens/s, for seconds after the other team last ran). Timings are taken in the child.
    """

    def __init__(self, rt: LlamaCppRuntime):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_raw_serve, args=(child, str(rt.model_path), rt.n_ctx, rt.llama.n_threads),
                                 daemon=True)
        self._proc.start()

    def __call__(self, *request: Any) -> Any:
        self._conn.send(request)
        kind, value = self._conn.recv()
        if kind == "error":
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        self._conn.send(("stop",))
        self._proc.join(30)


def _raw_serve(conn: Any, model_path: str, n_ctx: int, n_threads: int) -> None:
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    while True:
        request = conn.recv()
        try:
            if request[0] == "stop":
                return
            if request[0] == "ttft":  # ms to the first token of a completion of these prompt tokens
                start = time.perf_counter()
                for _ in llm.create_completion(request[1], max_tokens=1, temperature=0.0, stream=True):
                    break
                conn.send(("ok", (time.perf_counter() - start) * 1000))
            elif request[0] == "complete":  # (seconds, tokens generated)
                start = time.perf_counter()
                out = llm.create_completion(request[1], max_tokens=request[2], temperature=0.0, top_k=40,
                                            top_p=0.95, min_p=0.05, repeat_penalty=1.0)
                conn.send(("ok", (time.perf_counter() - start, out["usage"]["completion_tokens"])))
            elif request[0] == "ceiling":
                conn.send(("ok", kernel_ceiling(llm, request[1], request[2])))
        except Exception as e:  # sent back and raised in the parent
            conn.send(("error", repr(e)))


def raw_ttft(rt: LlamaCppRuntime, raw: RawWorker, nodes: list[int], rounds: int) -> list[float]:
    """The same steps through raw ``Llama.create_completion`` on our prompt tokens."""
    ttfts = []
    for r in range(rounds + 1):
        for k, i in enumerate(nodes):
            tokens = rt._tokenize(rt.render_prompt(node(i, QUESTIONS[(r + k) % len(QUESTIONS)]), DEMO_TOOLS))
            ms = raw("ttft", tokens)
            if r > 0:
                ttfts.append(ms)
    return ttfts


def section_ttft(rt: LlamaCppRuntime, raw: dict[str, Any], rounds: int) -> None:
    print("1. TTFT p50: an agent's nodes on one model (prompt "
          f"{rt.count_tokens(rt.render_prompt(node(0, QUESTIONS[0]), DEMO_TOOLS))} tokens)")
    rt.clear_prefix_cache()
    same = p50(ours_ttft(rt, [0] * 3, rounds))
    print(f"   same prefix                 {same:8.1f} ms  (baseline)")
    for n in (3, 8):
        rt.clear_prefix_cache()
        alt = p50(ours_ttft(rt, list(range(n)), rounds))
        print(f"   alternating among {n} prefixes {alt:8.1f} ms  ratio {alt / same:5.2f}  (target <= 2)")
    s = rt.stats()
    print(f"   cache: {s['cache_entries']} entries, {s['cache_bytes'] / 2**20:.1f} of "
          f"{s['cache_capacity_bytes'] / 2**20:.0f} MiB, {s['cache_evictions']} evictions")
    if raw.get("ttft_same"):
        raw_same, raw_alt = p50(raw["ttft_same"]), p50(raw["ttft_alt"])
        print(f"   raw llama-cpp-python: same prefix {raw_same:.1f} ms, alternating among 3 {raw_alt:.1f} ms "
              f"(ratio {raw_alt / raw_same:.1f}: one live prefix)")


# --- 2. throughput with concurrent agents --------------------------------------------------------
def agents_throughput(rt: LlamaCppRuntime, n_agents: int, steps: int, max_tokens: int) -> tuple[float, int]:
    """Total generated tokens/s of ``n_agents`` threads, each a node taking ``steps`` text steps."""
    produced = [0] * n_agents
    errors: list[BaseException] = []

    def agent(a: int) -> None:
        try:
            for s in range(steps):
                msgs = node(a, TEXT_QUESTIONS[(a + s) % len(TEXT_QUESTIONS)])
                produced[a] += rt.complete(msgs, max_tokens=max_tokens).usage.output_tokens
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=agent, args=(a,)) for a in range(n_agents)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(produced) / wall, sum(produced)


def kernel_ceiling(llm: Any, n_seqs: int, prompt: list[int], steps: int = 48) -> float:
    """Tokens/s of raw batched ``llama_decode`` on ``n_seqs`` sequences of one context (each after
    the same prompt, one token each per decode, no sampling): what the CPU kernels allow. Runs in
    the raw worker's process."""
    import llama_cpp
    from llama_cpp import _internals

    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 512 * n_seqs, 512, 512
    params.n_threads = params.n_threads_batch = llm.n_threads
    params.n_seq_max = n_seqs
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as the runtime's context
    ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    batch = _internals.LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)

    def decode(rows: list[tuple[int, list[int], int]]) -> None:
        b, i = batch.batch, 0
        for seq, tokens, pos in rows:
            for k, t in enumerate(tokens):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, pos + k, 1, k == len(tokens) - 1
                b.seq_id[i][0] = seq
                i += 1
        b.n_tokens = i
        ctx.decode(batch)

    try:
        for seq in range(n_seqs):
            decode([(seq, prompt, 0)])
        decode([(seq, [999], len(prompt)) for seq in range(n_seqs)])  # warm-up step
        start = time.perf_counter()
        for k in range(steps):
            decode([(seq, [1000 + k], len(prompt) + 1 + k) for seq in range(n_seqs)])
        return n_seqs * steps / (time.perf_counter() - start)
    finally:
        batch.close()
        ctx.close()


def section_throughput(rt: LlamaCppRuntime, raw: dict[str, Any], steps: int, max_tokens: int) -> None:
    print(f"2. Throughput, agents on one loaded model ({steps} steps each, up to {max_tokens} tokens, "
          f"{rt.stats()['slots']} slots)")
    for a in range(4):  # every node's prefix evaluated once, as in a running graph
        rt.complete(node(a, TEXT_QUESTIONS[0]), max_tokens=1)
    base = None
    ceilings = raw["ceilings"]
    for n in (1, 2, 4):
        before = rt.stats()
        tps, total = agents_throughput(rt, n, steps, max_tokens)
        after = rt.stats()
        base = base or tps
        mean = (after["batch_mean"] * after["batch_steps"] - (before["batch_mean"] or 0) * before["batch_steps"]) / max(
            1, after["batch_steps"] - before["batch_steps"])
        target = "  (target >= 2)" if n == 4 else ""
        print(f"   {n} agent{'s' if n > 1 else ' '}  {tps:7.1f} tokens/s ({total} tokens, {mean:.2f} requests per decode)"
              f"  ratio {tps / base:5.2f}{target}")
    print("   kernel ceiling, raw batched llama_decode: " + ", ".join(
        f"{n} seq {ceilings[n]:.0f} tokens/s (ratio {ceilings[n] / ceilings[1]:.2f})" for n in (1, 2, 4)))


# --- 3. single-request latency vs raw ------------------------------------------------------------
LONG_ANSWER = "Write a long story about a lighthouse keeper and a storm."


def latency_tokens(rt: LlamaCppRuntime) -> list[int]:
    return rt._tokenize(rt.render_prompt(node(0, LONG_ANSWER)))


def section_latency(rt: LlamaCppRuntime, raw: dict[str, Any], runs: int, max_tokens: int) -> None:
    """Both generate exactly ``max_tokens`` (the answer is longer), so they do the same work."""
    msgs = node(0, LONG_ANSWER)
    ours = []
    for r in range(runs + 1):
        start = time.perf_counter()
        c = rt.complete(msgs, max_tokens=max_tokens)
        if r:  # the first run is a warm-up: then both resume their live prefix
            ours.append(time.perf_counter() - start)
        if c.usage.output_tokens != raw["latency_tokens"]:
            raise SystemExit(f"{c.usage.output_tokens} vs {raw['latency_tokens']} tokens: not the same work; "
                             "raise the answer's length or lower --max-tokens")
    ratio = p50(ours) / p50(raw["latency"])
    print(f"3. Single request vs raw llama-cpp-python ({c.usage.output_tokens} tokens, {runs} runs each)")
    print(f"   ours {p50(ours) * 1000:.1f} ms, raw {p50(raw['latency']) * 1000:.1f} ms  ratio of p50s {ratio:.3f}"
          "  (target <= 1.03)")


def raw_phase(rt: LlamaCppRuntime, args: Any) -> dict[str, Any]:
    """Everything raw llama-cpp-python measures, in its own process, before the runtime decodes
    anything (so no two processes' llama.cpp threads compete: see :class:`RawWorker`)."""
    raw = RawWorker(rt)
    out: dict[str, Any] = {}
    try:
        if args.raw_rounds:
            out["ttft_same"] = raw_ttft(rt, raw, [0] * 3, args.raw_rounds)
            out["ttft_alt"] = raw_ttft(rt, raw, [0, 1, 2], args.raw_rounds)
        prompt = rt._tokenize(rt.render_prompt(node(0, TEXT_QUESTIONS[0])))
        out["ceilings"] = {n: raw("ceiling", n, prompt) for n in (1, 2, 4)}
        times = [raw("complete", latency_tokens(rt), args.max_tokens) for _ in range(args.runs + 1)]
        out["latency"] = [t for t, _ in times[1:]]
        out["latency_tokens"] = times[-1][1]
    finally:
        raw.close()
    time.sleep(1.0)  # its threads are gone before ours start
    return out


# --- 4. the two mechanisms -------------------------------------------------------------------------
def section_options(rt: LlamaCppRuntime, n_prefixes: int = 8, decode_tokens: int = 48) -> None:
    import llama_cpp
    from llama_cpp import _internals

    prefixes = [rt._tokenize(rt.render_prompt(node(i, QUESTIONS[0]), DEMO_TOOLS)) for i in range(n_prefixes)]
    per_token = rt.stats()["kv_bytes_per_token"]
    held = sum(len(p) for p in prefixes) * per_token
    print(f"4. Prefix-cache mechanisms at equal memory ({n_prefixes} prefixes of {len(prefixes[0])} tokens, "
          f"{held / 2**20:.1f} MiB)")
    llm = rt.llama

    def decode_speed(step: Any) -> float:
        start = time.perf_counter()
        for k in range(decode_tokens):
            step(k)
        return decode_tokens / (time.perf_counter() - start)

    backend = rt._loaded.batch.backend  # the runtime's calls on its own context, sequence 1
    with rt.lock:
        # A. state save/restore (the runtime's): a slot holds only the working sequence
        from slm_agents.runtimes._kv_cache import CachedPrefix

        entries = []
        for p in prefixes:
            backend.seq_keep(1, 0)
            backend.decode([(1, p, 0, True)])
            state, nbytes = backend.save(1)
            entries.append(CachedPrefix(None, tuple(p), state, nbytes))
        times = []
        for k in range(20):
            start = time.perf_counter()
            backend.restore(1, entries[k % n_prefixes])
            times.append((time.perf_counter() - start) * 1000)
        restore_ms = p50(times)
        n_last = len(entries[19 % n_prefixes].tokens)
        speed_a = decode_speed(lambda k: backend.decode([(1, [1000 + k], n_last + k, True)]))
        backend.seq_keep(1, 0)
        rt._loaded.batch.forget()  # the engine's slots no longer hold what it thinks
    # B. sequences in one context: n_seq_max = 1 + prefixes, unified KV, n_ctx grown by the held tokens
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = rt.n_ctx + sum(len(p) for p in prefixes)
    params.n_batch = params.n_ubatch = 512
    params.n_threads = params.n_threads_batch = rt.llama.n_threads
    params.n_seq_max = n_prefixes + 1
    params.kv_unified = True
    ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    batch = _internals.LlamaBatch(n_tokens=512, embd=0, n_seq_max=n_prefixes + 1, verbose=False)
    mem = llama_cpp.llama_get_memory(ctx.ctx)

    def evaluate(tokens: list[int], seq: int, pos: int) -> None:
        b = batch.batch
        for i in range(0, len(tokens), 512):
            part = tokens[i:i + 512]
            b.n_tokens = len(part)
            for j, t in enumerate(part):
                b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = t, pos + i + j, 1, False
                b.seq_id[j][0] = seq
            b.logits[len(part) - 1] = True
            ctx.decode(batch)

    with rt.lock:
        for i, p in enumerate(prefixes):
            evaluate(p, i + 1, 0)
        times = []
        for k in range(20):
            llama_cpp.llama_memory_seq_rm(mem, 0, -1, -1)
            start = time.perf_counter()
            llama_cpp.llama_memory_seq_cp(mem, 1 + k % n_prefixes, 0, -1, -1)
            times.append((time.perf_counter() - start) * 1000)
        copy_ms = p50(times)
        n0 = len(prefixes[0])
        speed_b = decode_speed(lambda k: evaluate([1000 + k], 0, n0 + k))
    ctx.close()
    batch.close()
    print(f"   A. state save/restore: resume {restore_ms:.3f} ms, decode {speed_a:.1f} tokens/s; "
          f"holds {sum(e.nbytes for e in entries) / 2**20:.1f} MiB, allocated as entries arrive")
    print(f"   B. sequences + seq_cp: resume {copy_ms:.3f} ms, decode {speed_b:.1f} tokens/s "
          f"(ratio to A {speed_b / speed_a:.2f}); KV cells allocated up front")


def requantized(kind: str, folder: str) -> str:
    """A copy of the default model requantized to ``kind`` (made here from the packaged file with
    llama.cpp's own quantizer: nothing is downloaded)."""
    import ctypes

    import llama_cpp

    from slm_agents.models import resolve_model_path

    ftypes = {"q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}
    out = f"{folder}/default-{kind}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.nthread = ftypes[kind], True, 2
    if llama_cpp.llama_model_quantize(str(resolve_model_path(None)).encode(), out.encode(), ctypes.byref(params)):
        raise SystemExit(f"llama.cpp could not requantize the default model to {kind}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: every core)")
    ap.add_argument("--slots", type=int, default=None, help="requests decoded together (default: the runtime's)")
    ap.add_argument("--model", default=None, help="a GGUF file (default: the packaged default model)")
    ap.add_argument("--requantize", choices=["q4_0", "q8_0"], help="run on a copy of the default model in this type")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds of TTFT steps per case")
    ap.add_argument("--raw-rounds", type=int, default=2, help="rounds of the raw llama-cpp-python TTFT (0: skip)")
    ap.add_argument("--steps", type=int, default=3, help="steps per agent in the throughput section")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--runs", type=int, default=7, help="interleaved runs of the latency section")
    ap.add_argument("--options", action="store_true", help="also compare the two llama.cpp mechanisms")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        model = requantized(args.requantize, folder) if args.requantize else args.model
        extra = {"slots": args.slots} if args.slots else {}
        rt = LlamaCppRuntime(model, n_threads=args.threads, temperature=0.0, repeat_penalty=1.0, **extra)
        s = rt.stats()
        print(f"model {rt.model_name}: {s['model_bytes'] / 2**20:.0f} MiB weights, KV {s['kv_bytes_per_token']} "
              f"B/token ({s['kv_bytes_per_slot'] / 2**20:.0f} MiB per {s['n_ctx']}-token slot, {s['slots']} slots), "
              f"prefix cache {s['cache_capacity_bytes'] / 2**20:.0f} MiB; threads {rt.llama.n_threads}")
        raw = raw_phase(rt, args)
        section_ttft(rt, raw, args.rounds)
        section_throughput(rt, raw, args.steps, args.max_tokens)
        section_latency(rt, raw, args.runs, args.max_tokens)
        if args.options:
            section_options(rt)
        s = rt.stats()
        print(f"stats: hit rate {s['hit_rate']:.2f} ({s['cache_hits']} hits, {s['cache_restores']} from the cache, "
              f"{s['cache_misses']} misses)")


if __name__ == "__main__":
    main()
