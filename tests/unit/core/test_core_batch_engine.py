"""The batch engine's scheduling (slm_agents.runtimes._batch) on a fake llama.cpp backend.

The engine talks to llama.cpp only through its ``Backend`` protocol. The fake here records every
decode call and holds each sequence's tokens, and its samplers read the token their logits row
holds, so these tests check, without a model, which requests share a decode, how prompts are
cut in chunks, how slots and the prefix cache are reused, and how cancellations, failures,
adapters and closing are handled. The real model's batching is tested in
tests/integration/core/test_core_batching.py.

The fake "model": the token sampled after evaluated token ``t`` is ``GEN + t`` (``t + 1`` after a
sampled token). Request ``k``'s own prompt tokens are ``k * 1000 + i``, so every request has an
answer of its own and a request sampling another's row gets a wrong answer.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from slm_agents.errors import GenerationError, GenerationTimeout
from slm_agents.runtimes._batch import BatchEngine, Job
from slm_agents.runtimes._kv_cache import MIN_PREFIX_TOKENS, Adapter, CachedPrefix, PrefixCache

Row = tuple[int, list[int], int, bool]  # (seq, tokens, first position, logits for the last)
GEN = 1_000_000
BASE = (None, 1.0)
LORA = ("/models/run/adapter.gguf", 1.0)
WAIT = 10.0  # the longest a test waits for the driver; a healthy run takes milliseconds


class FakeBackend:
    """The engine's ``Backend``: records decode calls, holds each sequence's tokens."""

    def __init__(self, n_batch: int = 8, n_ctx: int = 512):
        self.n_ctx, self.n_batch = n_ctx, n_batch
        self.ctx = object()
        self.seqs: defaultdict[int, list[int]] = defaultdict(list)
        self.calls: list[list[Row]] = []  # every decode that succeeded, in order
        self.failed: list[list[Row]] = []
        self.logit_rows: dict[int, tuple[int, int]] = {}  # batch index -> (seq, token) of the last decode
        self.saved: list[int] = []
        self.restored: list[tuple[int, tuple[int, ...]]] = []
        self.refuse_restore = False
        self.adapter: Adapter = None
        self.adapters_asked: list[tuple[str | None, float]] = []
        self.raw = False
        self.fail: Callable[[list[Row]], bool] | None = None
        self.hook: Callable[[list[Row]], None] | None = None  # runs first in each decode, on the driver
        self.snapshots: list[dict[int, list[int]]] = []  # what the sequences held before each decode
        self.violations: list[str] = []

    def decode(self, rows: list[Row]) -> None:
        rows = [(seq, list(tokens), pos, logits) for seq, tokens, pos, logits in rows]
        if self.hook is not None:
            self.hook(rows)
        if self.fail is not None and self.fail(rows):
            self.failed.append(rows)
            raise RuntimeError("no KV cells left")
        self.snapshots.append({seq: list(held) for seq, held in self.seqs.items() if held})
        if sum(len(tokens) for _, tokens, _, _ in rows) > self.n_batch:
            self.violations.append(f"a batch larger than n_batch: {rows}")
        if len({seq for seq, _, _, _ in rows}) != len(rows):
            self.violations.append(f"two rows of one sequence: {rows}")
        self.logit_rows = {}
        index = 0
        for seq, tokens, pos, logits in rows:
            if not tokens or pos != len(self.seqs[seq]):
                self.violations.append(f"row {seq} at {pos} but the sequence holds {len(self.seqs[seq])}")
            self.seqs[seq].extend(tokens)
            index += len(tokens)
            if logits:
                self.logit_rows[index - 1] = (seq, tokens[-1])
        self.calls.append(rows)

    def seq_keep(self, seq: int, n: int) -> None:
        del self.seqs[seq][n:]

    def seq_len(self, seq: int) -> int:
        return len(self.seqs[seq])

    def save(self, seq: int) -> tuple[Any, int]:
        self.saved.append(seq)
        return tuple(self.seqs[seq]), 10 * len(self.seqs[seq])

    def restore(self, seq: int, entry: CachedPrefix) -> bool:
        self.seq_keep(seq, 0)
        if self.refuse_restore:
            return False
        self.seqs[seq] = list(entry.state)
        self.restored.append((seq, entry.tokens))
        return True

    def use_adapter(self, adapter: tuple[str | None, float]) -> Adapter:
        self.adapters_asked.append(adapter)
        path, scale = adapter
        if path == "missing.gguf":
            raise FileNotFoundError("missing.gguf")
        self.adapter = None if path is None else (path, scale)
        return self.adapter

    def active_adapter(self) -> Adapter:
        return self.adapter

    def raw_used(self) -> bool:
        used, self.raw = self.raw, False
        return used


class FakeSampler:
    """Samples from logits row ``idx``: ``GEN + t`` after prompt token ``t``, ``t + 1`` after a sampled one."""

    def __init__(self, backend: FakeBackend, fail_at: int | None = None):
        self.backend, self.fail_at = backend, fail_at
        self.seqs: list[int] = []  # the sequence of each row it sampled from

    def sample(self, ctx: Any, idx: int) -> int:
        assert ctx is self.backend.ctx
        seq, token = self.backend.logit_rows[idx]  # KeyError: a row without logits
        self.seqs.append(seq)
        if len(self.seqs) == self.fail_at:
            raise ValueError("the grammar rejected every token")
        return token + 1 if token >= GEN else GEN + token


@dataclass
class Slot:
    """What ``Job.sampler`` is: the holder of the current sampler (``SamplerSlot`` in the runtime)."""

    current: FakeSampler


def prompt(k: int, n: int, prefix: list[int] | tuple[int, ...] = ()) -> list[int]:
    return [*prefix, *(k * 1000 + i for i in range(n))]


def answer(tokens: list[int], new: int) -> list[int]:
    return [GEN + tokens[-1] + i for i in range(new)]


def owner(token: int) -> int:
    """The request ``k`` whose prompt or answer holds ``token``."""
    return (token - GEN if token >= GEN else token) // 1000


def make_job(backend: FakeBackend, tokens: list[int], new: int = 3, stable: int = 0,
             adapter: tuple[str | None, float] = BASE, fail_on_token: int | None = None,
             sampler_fails_at: int | None = None, on_sampled: Callable[[Job, int], None] | None = None) -> Job:
    """A request generating ``new`` tokens, streaming each one as a chunk."""
    out: list[int] = []

    def on_token(token: int, ctx: Any, idx: int) -> tuple[bool, list[Any]]:
        assert ctx is backend.ctx
        out.append(token)
        if len(out) == fail_on_token:
            raise RuntimeError("the stop-string check failed")
        if on_sampled is not None:
            on_sampled(job, len(out))
        return len(out) >= new, [token]

    job = Job(list(tokens), max_new=new, sampler=Slot(FakeSampler(backend, sampler_fails_at)), on_token=on_token,
              adapter=adapter, stable=stable)
    return job  # on_token reads it (a cancelling callback)


def collect(job: Job, wait: float = WAIT) -> list[int]:
    """The streamed tokens of ``job`` until it ends (raises its error)."""
    tokens: list[int] = []
    for chunks in job.results(deadline=time.perf_counter() + wait, timeout=wait):
        tokens.extend(chunks)
    return tokens


def prompt_chunks(calls: list[list[Row]], seq: int) -> list[tuple[int, int, bool]]:
    """``(first position, length, logits)`` of each prompt chunk decoded into ``seq``; each was
    decoded in a call of its own."""
    chunks = []
    for call in calls:
        for row_seq, tokens, pos, logits in call:
            if row_seq == seq and tokens[0] < GEN:
                assert len(call) == 1, f"a prompt chunk shared its decode: {call}"
                chunks.append((pos, len(tokens), logits))
    return chunks


def canonical(n: int, split: int, n_batch: int) -> list[tuple[int, int, bool]]:
    """The chunks every prompt of ``n`` tokens split at ``split`` is evaluated in."""
    chunks = []
    for lo, hi in ((0, split), (split, n)):
        chunks += [(s, min(n_batch, hi - s), min(s + n_batch, hi) == n) for s in range(lo, hi, n_batch)]
    return chunks


@pytest.fixture
def make_engine() -> Any:
    engines: list[BatchEngine] = []

    def make(slots: int = 4, capacity: int = 1_000_000, n_batch: int = 8) -> tuple[BatchEngine, FakeBackend]:
        backend = FakeBackend(n_batch=n_batch)
        engine = BatchEngine(backend, threading.Lock(), slots, PrefixCache(capacity))
        engines.append(engine)
        return engine, backend

    yield make
    for engine in engines:
        engine.close(timeout=WAIT)
        assert engine._thread is None or not engine._thread.is_alive()
        assert not engine.backend.violations  # type: ignore[attr-defined]


def submit_together(engine: BatchEngine, *jobs: Job) -> None:
    """Queue ``jobs`` while the driver waits for the lock: its first step sees them all."""
    with engine.lock:
        for job in jobs:
            engine.submit(job)


# --- batching ------------------------------------------------------------------------------------
def test_concurrent_requests_decode_together_each_sampling_its_own_row(make_engine: Any) -> None:
    engine, backend = make_engine(slots=4)
    p1, p2, p3 = prompt(1, 5), prompt(2, 6), prompt(3, 7)
    jobs = [make_job(backend, p, new=4) for p in (p1, p2, p3)]
    submit_together(engine, *jobs)
    assert [collect(j) for j in jobs] == [answer(p, 4) for p in (p1, p2, p3)]
    s1, s2, s3 = (j.slot.seq for j in jobs)  # type: ignore[union-attr]
    assert len({s1, s2, s3}) == 3
    a1, a2, a3 = (answer(p, 4) for p in (p1, p2, p3))
    # every step: one batch with the next token of each generating request (first come first),
    # then a chunk of the prompt of one starting request, in a decode of its own
    assert backend.calls == [
        [(s1, p1, 0, True)],
        [(s1, a1[:1], 5, True)],
        [(s2, p2, 0, True)],
        [(s1, a1[1:2], 6, True), (s2, a2[:1], 6, True)],
        [(s3, p3, 0, True)],
        [(s1, a1[2:3], 7, True), (s2, a2[1:2], 7, True), (s3, a3[:1], 7, True)],  # a1's last token is not evaluated
        [(s2, a2[2:3], 8, True), (s3, a3[1:2], 8, True)],
        [(s3, a3[2:3], 9, True)],
    ]
    for job in jobs:  # each sampled only rows of its own sequence
        assert job.sampler.current.seqs == [job.slot.seq] * 4  # type: ignore[union-attr]
    assert engine.busy() == 0


def test_stats_report_the_batched_decodes(make_engine: Any) -> None:
    engine, backend = make_engine(slots=3)
    assert engine.stats() == {"slots": 3, "slots_busy": 0, "batch_steps": 0, "batch_mean": None, "batch_peak": 0}
    jobs = [make_job(backend, prompt(k, 4), new=6) for k in (1, 2, 3)]
    submit_together(engine, *jobs)
    for job in jobs:
        collect(job)
    stats = engine.stats()
    rows = sum(len(call) for call in backend.calls)
    assert stats == {"slots": 3, "slots_busy": 0, "batch_steps": len(backend.calls),
                     "batch_mean": rows / len(backend.calls), "batch_peak": 3}
    assert 1 < stats["batch_mean"] < 3


def test_more_requests_than_slots_wait_and_all_complete(make_engine: Any) -> None:
    engine, backend = make_engine(slots=2)
    prompts = [prompt(k, 3 + k) for k in range(1, 8)]
    jobs = [make_job(backend, p, new=2 + k % 3) for k, p in enumerate(prompts)]
    submit_together(engine, *jobs)
    assert [collect(j) for j in jobs] == [answer(p, 2 + k % 3) for k, p in enumerate(prompts)]
    assert max(len(call) for call in backend.calls) == 2 == engine.stats()["batch_peak"]
    # admitted first come, first served: each request's prompt is decoded in submission order
    firsts = [owner(call[0][1][0]) for call in backend.calls if call[0][1][0] < GEN]
    assert list(dict.fromkeys(firsts)) == list(range(1, 8))


def test_a_decode_never_holds_more_than_n_batch_tokens(make_engine: Any) -> None:
    """More slots than n_batch: the generating requests are decoded n_batch at a time (llama.cpp
    aborts the process on a larger batch)."""
    engine, backend = make_engine(slots=5, n_batch=2)
    jobs = [make_job(backend, prompt(k, 3), new=8) for k in range(1, 6)]
    submit_together(engine, *jobs)
    assert [collect(j) for j in jobs] == [answer(j.tokens, 8) for j in jobs]
    assert max(sum(len(row[1]) for row in call) for call in backend.calls) == 2 == engine.stats()["batch_peak"]
    assert backend.violations == []


def test_threads_under_load_lose_no_request(make_engine: Any) -> None:
    """8 threads x 25 requests on 3 slots, some sharing a stable prefix: every answer right."""
    engine, backend = make_engine(slots=3, capacity=500)
    shared = prompt(900, 40)
    errors: list[BaseException] = []
    wrong: list[int] = []
    with_prefix_jobs: list[int] = []

    def agent(t: int) -> None:
        rng = random.Random(t)
        for i in range(25):
            k = 1 + t * 25 + i
            with_prefix = rng.random() < 0.5
            tokens = prompt(k, rng.randint(1, 12), shared if with_prefix else ())
            new = rng.randint(1, 6)
            if with_prefix:
                with_prefix_jobs.append(k)
            job = engine.submit(make_job(backend, tokens, new=new, stable=40 if with_prefix else 0))
            try:
                if collect(job) != answer(tokens, new):
                    wrong.append(k)
            except Exception as e:  # reported below
                errors.append(e)

    threads = [threading.Thread(target=agent, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == [] and wrong == []
    assert engine.busy() == 0 and engine.stats()["batch_peak"] <= 3
    cache = engine.cache
    assert cache.hits + cache.misses == len(with_prefix_jobs)
    # a miss evaluates the shared prefix from the start, a hit does not
    assert cache.misses == sum(1 for call in backend.calls for row in call if row[1][0] == shared[0] and row[2] == 0)
    assert cache.hits > 0


# --- prompts in canonical chunks -------------------------------------------------------------------
def test_split_is_the_stable_prefix_when_worth_keeping() -> None:
    def split(stable: int, n: int) -> int:
        return Job(list(range(n)), 1, None, lambda *a: (True, []), stable=stable).split

    assert MIN_PREFIX_TOKENS == 32
    assert split(40, 50) == 40 and split(32, 50) == 32
    assert split(31, 50) == 0  # too short to keep
    assert split(50, 50) == 0 and split(60, 50) == 0  # the whole prompt: nothing left to sample from
    assert split(0, 50) == 0


@pytest.mark.parametrize("stable", [0, 31, 40, 45, 50])
def test_a_prompt_is_cut_the_same_way_alone_and_among_other_requests(make_engine: Any, stable: int) -> None:
    tokens = prompt(1, 50)
    split = stable if MIN_PREFIX_TOKENS <= stable < 50 else 0
    expected = canonical(50, split, 8)
    assert all(n <= 8 for _, n, _ in expected) and [logits for *_, logits in expected].count(True) == 1

    engine, backend = make_engine(slots=3, capacity=0)
    alone = make_job(backend, tokens, new=2, stable=stable)
    submit_together(engine, alone)
    assert collect(alone) == answer(tokens, 2)
    assert prompt_chunks(backend.calls, alone.slot.seq) == expected  # type: ignore[union-attr]

    engine, backend = make_engine(slots=3, capacity=0)
    others = [make_job(backend, prompt(k, 5), new=30) for k in (2, 3)]
    job = make_job(backend, tokens, new=2, stable=stable)
    submit_together(engine, *others, job)
    assert collect(job) == answer(tokens, 2)
    assert [collect(o) for o in others] == [answer(prompt(k, 5), 30) for k in (2, 3)]
    seq = job.slot.seq  # type: ignore[union-attr]
    assert prompt_chunks(backend.calls, seq) == expected
    # the other requests generated between its chunks: they ran, its chunks did not change
    chunk_calls = [i for i, call in enumerate(backend.calls) if call[0][0] == seq and call[0][1][0] < GEN]
    between = backend.calls[chunk_calls[0]:chunk_calls[-1]]
    assert sum(1 for call in between if len(call) == 2 and all(row[1][0] >= GEN for row in call)) == len(expected) - 1


# --- the prefix cache and the slots' own tokens ----------------------------------------------------
def test_a_prefix_hit_resumes_at_the_split_from_the_slot_or_the_cache(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=1_000_000)
    cache = engine.cache
    P, Q = prompt(900, 40), prompt(800, 40)
    a = make_job(backend, prompt(1, 10, P), stable=40)
    assert collect(engine.submit(a)) == answer(a.tokens, 3)
    assert prompt_chunks(backend.calls, 0) == canonical(50, 40, 8)
    assert (cache.hits, cache.misses, cache.restores) == (0, 1, 0)
    assert backend.saved == [0] and cache.contains(None, P) and cache.get(None, P).state == tuple(P)  # type: ignore[union-attr]

    # the slot still holds P, evaluated as a first chunk: only the rest is evaluated
    done = len(backend.calls)
    b = make_job(backend, prompt(2, 13, P), stable=40)
    assert collect(engine.submit(b)) == answer(b.tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0) == canonical(53, 40, 8)[5:] == [(40, 8, False), (48, 5, True)]
    assert (cache.hits, cache.misses, cache.restores) == (1, 1, 0) and backend.saved == [0]

    # another prefix takes the slot (and is cached)...
    c = make_job(backend, prompt(3, 6, Q), stable=40)
    assert collect(engine.submit(c)) == answer(c.tokens, 3)
    assert (cache.hits, cache.misses, cache.restores) == (1, 2, 0) and len(cache) == 2

    # ...so P comes back from the cache, and again only the rest is evaluated
    done = len(backend.calls)
    d = make_job(backend, prompt(4, 9, P), stable=40)
    assert collect(engine.submit(d)) == answer(d.tokens, 3)
    assert backend.restored == [(0, tuple(P))]
    assert prompt_chunks(backend.calls[done:], 0) == canonical(49, 40, 8)[5:]
    assert (cache.hits, cache.misses, cache.restores) == (2, 2, 1) and backend.saved == [0, 0]
    assert cache.stats()["hit_rate"] == 0.5


def test_a_restored_prefix_is_the_last_to_be_evicted(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=800)  # two prefixes of 40 tokens (400 bytes each)
    P, Q, R = prompt(900, 40), prompt(800, 40), prompt(700, 40)
    for k, prefix in enumerate((P, Q, P, R, P), start=1):
        collect(engine.submit(make_job(backend, prompt(k, 5, prefix), stable=40)))
    cache = engine.cache
    assert [tokens for _, tokens in backend.restored] == [tuple(P), tuple(P)]  # R evicted Q, not P
    assert cache.contains(None, P) and cache.contains(None, R) and not cache.contains(None, Q)
    assert (cache.hits, cache.misses, cache.restores, cache.evictions) == (2, 3, 2, 1)


def test_a_request_takes_the_free_slot_holding_its_prefix(make_engine: Any) -> None:
    engine, backend = make_engine(slots=2, capacity=0)
    P, Q = prompt(900, 40), prompt(800, 40)
    a = make_job(backend, prompt(1, 10, P), stable=40)
    collect(engine.submit(a))
    c = make_job(backend, prompt(3, 10, Q), stable=40)
    collect(engine.submit(c))
    assert c.slot is not a.slot  # the idle slot, not the one holding P
    done = len(backend.calls)
    b = make_job(backend, prompt(2, 10, P), stable=40)
    assert collect(engine.submit(b)) == answer(b.tokens, 3)
    assert b.slot is a.slot and prompt_chunks(backend.calls[done:], a.slot.seq)[0] == (40, 8, False)  # type: ignore[union-attr]
    assert backend.saved == [] and backend.restored == []


def test_a_prefix_evaluated_in_other_chunks_is_not_resumed(make_engine: Any) -> None:
    """Same tokens, another split: the slot's cells came from other chunks, so all is evaluated again."""
    engine, backend = make_engine(slots=1, capacity=0)
    tokens = prompt(1, 50)
    collect(engine.submit(make_job(backend, tokens, stable=0)))
    done = len(backend.calls)
    again = make_job(backend, tokens, stable=40)
    assert collect(engine.submit(again)) == answer(tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0) == canonical(50, 40, 8)


def test_a_capacity_of_zero_caches_nothing_and_cuts_prompts_the_same(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=0)
    P, Q = prompt(900, 40), prompt(800, 40)
    for k, prefix in enumerate((P, Q, P), start=1):
        done = len(backend.calls)
        job = make_job(backend, prompt(k, 10, prefix), stable=40)
        assert collect(engine.submit(job)) == answer(job.tokens, 3)
        assert prompt_chunks(backend.calls[done:], 0) == canonical(50, 40, 8)  # P evaluated again, same chunks
    assert backend.saved == [] and backend.restored == [] and len(engine.cache) == 0
    assert engine.cache.stats()["hit_rate"] is None


def test_a_refused_restore_evaluates_the_whole_prompt(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1)
    P, Q = prompt(900, 40), prompt(800, 40)
    for k, prefix in enumerate((P, Q), start=1):
        collect(engine.submit(make_job(backend, prompt(k, 10, prefix), stable=40)))
    backend.refuse_restore = True
    done = len(backend.calls)
    job = make_job(backend, prompt(3, 10, P), stable=40)
    assert collect(engine.submit(job)) == answer(job.tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0) == canonical(50, 40, 8)
    cache = engine.cache
    assert (cache.hits, cache.misses, cache.restores) == (0, 3, 0) and backend.restored == []


def test_a_direct_llama_user_invalidates_what_the_idle_slots_lost(make_engine: Any) -> None:
    engine, backend = make_engine(slots=2, capacity=0)
    P, Q = prompt(900, 40), prompt(800, 40)
    a, c = make_job(backend, prompt(1, 10, P), stable=40), make_job(backend, prompt(3, 10, Q), stable=40)
    submit_together(engine, a, c)
    collect(a), collect(c)
    seq_p, seq_q = a.slot.seq, c.slot.seq  # type: ignore[union-attr]
    with engine.lock:  # what Llama.eval does: writes sequence 0, cuts the others past its length
        backend.raw = True
        backend.seqs[0] = list(range(5, 65))  # longer than what slot 0 held
        backend.seqs[1] = backend.seqs[1][:20]
    done = len(backend.calls)
    b, d = make_job(backend, prompt(2, 10, P), stable=40), make_job(backend, prompt(4, 10, Q), stable=40)
    submit_together(engine, b, d)
    assert (collect(b), collect(d)) == (answer(b.tokens, 3), answer(d.tokens, 3))
    for job in (b, d):  # neither prefix survived: both evaluated from the start
        assert prompt_chunks(backend.calls[done:], job.slot.seq) == canonical(50, 40, 8)  # type: ignore[union-attr]
    assert not backend.violations  # each started from an empty sequence: the stale cells were dropped
    assert {seq_p, seq_q} == {0, 1}


def test_forget_drops_what_the_idle_slots_hold(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=0)
    P = prompt(900, 40)
    collect(engine.submit(make_job(backend, prompt(1, 10, P), stable=40)))
    with engine.lock:
        engine.forget()
    assert backend.seqs[0] == []
    done = len(backend.calls)
    collect(engine.submit(make_job(backend, prompt(2, 10, P), stable=40)))
    assert prompt_chunks(backend.calls[done:], 0) == canonical(50, 40, 8)


# --- leaving, failures, timeouts -------------------------------------------------------------------
def test_a_cancelled_request_ends_and_frees_its_slot(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1)

    def leave_after_three(job: Job, n: int) -> None:
        if n == 3:
            job.cancel()  # what the runtime does when the reader goes away

    long = make_job(backend, prompt(1, 4), new=1000, on_sampled=leave_after_three)
    waiting = make_job(backend, prompt(2, 4), new=3)
    skipped = make_job(backend, prompt(3, 4), new=3)
    skipped.cancel()  # cancelled before it got a slot
    last = make_job(backend, prompt(4, 4), new=3)
    submit_together(engine, long, waiting, skipped, last)
    assert collect(long) == answer(long.tokens, 3)  # the stream ends, without an error
    assert collect(waiting) == answer(waiting.tokens, 3) and collect(skipped) == []
    assert collect(last) == answer(last.tokens, 3)
    rows = [row for call in backend.calls for row in call]
    assert sum(owner(row[1][0]) == 1 for row in rows) == 3  # its prompt and 2 tokens: nothing after
    assert not any(owner(row[1][0]) == 3 for row in rows)
    assert waiting.slot is long.slot and engine.busy() == 0


def test_a_reader_that_leaves_mid_stream_frees_the_slot(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1)
    long = make_job(backend, prompt(1, 4), new=100_000)
    stream = engine.submit(long).results(deadline=time.perf_counter() + WAIT)
    first = next(stream)
    long.cancel()
    assert first == answer(long.tokens, 1) and len(list(stream)) < 100_000
    after = make_job(backend, prompt(2, 4))
    assert collect(engine.submit(after)) == answer(after.tokens, 3)


def test_an_error_in_one_request_fails_it_alone(make_engine: Any) -> None:
    engine, backend = make_engine(slots=2)
    bad_hook = make_job(backend, prompt(1, 4), new=5, fail_on_token=2)
    bad_sampler = make_job(backend, prompt(2, 4), new=5, sampler_fails_at=3)
    good = [make_job(backend, prompt(k, 4), new=5) for k in (3, 4)]
    submit_together(engine, bad_hook, bad_sampler, *good)
    with pytest.raises(RuntimeError, match="stop-string"):
        collect(bad_hook)
    with pytest.raises(ValueError, match="grammar"):
        collect(bad_sampler)
    assert [collect(g) for g in good] == [answer(g.tokens, 5) for g in good]
    assert engine.busy() == 0


def test_a_failed_decode_fails_the_requests_it_held(make_engine: Any) -> None:
    engine, backend = make_engine(slots=3)
    fails = iter([True])
    # the first batch of two generating requests fails, once
    backend.fail = lambda rows: len(rows) == 2 and next(fails, False)
    a, b = make_job(backend, prompt(1, 4), new=5), make_job(backend, prompt(2, 4), new=5)
    submit_together(engine, a, b)
    for job in (a, b):
        with pytest.raises(GenerationError, match="llama.cpp failed to decode: no KV cells left"):
            collect(job)
    assert len(backend.failed) == 1 and {row[0] for row in backend.failed[0]} == {a.slot.seq, b.slot.seq}  # type: ignore[union-attr]

    # a failed prompt chunk fails that request alone; the one generating beside it goes on
    backend.fail = lambda rows: any(3005 in row[1] for row in rows)
    c, d = make_job(backend, prompt(4, 3), new=6), make_job(backend, prompt(3, 12), new=2)
    submit_together(engine, c, d)
    with pytest.raises(GenerationError, match="failed to decode"):
        collect(d)
    assert collect(c) == answer(c.tokens, 6)
    e = make_job(backend, prompt(5, 4), new=3)  # the engine serves on
    assert collect(engine.submit(e)) == answer(e.tokens, 3)


def test_a_deadline_raises_generation_timeout_and_cancels(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1)
    late = make_job(backend, prompt(1, 4))
    with engine.lock:  # the model is busy
        engine.submit(late)
        with pytest.raises(GenerationTimeout, match="0.05s timeout"):
            list(late.results(deadline=time.perf_counter() + 0.05, timeout=0.05))
    assert late.cancelled
    after = make_job(backend, prompt(2, 4))
    assert collect(engine.submit(after)) == answer(after.tokens, 3)
    assert collect(late) == []  # it was dropped, never decoded
    assert all(owner(row[1][0]) == 2 for call in backend.calls for row in call)


def test_close_fails_queued_and_running_requests(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1)
    queued = [make_job(backend, prompt(k, 4)) for k in (1, 2)]
    with engine.lock:
        for job in queued:
            engine.submit(job)
        engine.close(timeout=0)  # returns at once: the driver waits for the lock
    for job in queued:
        with pytest.raises(GenerationError, match="closed"):
            collect(job)
    assert backend.calls == []
    with pytest.raises(GenerationError, match="closed"):
        engine.submit(make_job(backend, prompt(3, 4)))

    engine, backend = make_engine(slots=1)
    inside, release = threading.Event(), threading.Event()

    def block(rows: list[Row]) -> None:
        inside.set()
        assert release.wait(WAIT)

    backend.hook = block
    running, waiting = make_job(backend, prompt(1, 4)), make_job(backend, prompt(2, 4))
    submit_together(engine, running, waiting)
    assert inside.wait(WAIT)
    engine.close(timeout=0)  # while a decode is in progress
    release.set()
    for job in (running, waiting):
        with pytest.raises(GenerationError, match="closed"):
            collect(job)
    engine._thread.join(WAIT)  # type: ignore[union-attr]
    assert not engine._thread.is_alive()  # type: ignore[union-attr]


# --- adapters --------------------------------------------------------------------------------------
def test_requests_under_another_adapter_wait_then_switch_it(make_engine: Any) -> None:
    engine, backend = make_engine(slots=4)
    a1 = make_job(backend, prompt(1, 4), new=4)
    b = make_job(backend, prompt(2, 4), new=3, adapter=LORA)
    a2 = make_job(backend, prompt(3, 4), new=3)  # base again, but behind b: first come, first served
    submit_together(engine, a1, b, a2)
    assert [collect(j) for j in (a1, b, a2)] == [answer(j.tokens, n) for j, n in ((a1, 4), (b, 3), (a2, 3))]
    assert backend.adapters_asked == [BASE, LORA, BASE]
    owners = [{owner(row[1][0]) for row in call} for call in backend.calls]
    assert all(len(o) == 1 for o in owners)  # no decode mixes two requests of other adapters
    order = [o.pop() for o in owners]
    assert order == sorted(order)  # all of a1, then all of b, then all of a2
    # at each switch the slots' tokens (evaluated under the other weights) were dropped
    first_b, first_a2 = order.index(2), order.index(3)
    assert backend.snapshots[first_b] == {} and backend.snapshots[first_a2] == {}
    assert backend.snapshots[first_b - 1] != {}


def test_the_cache_keeps_prefixes_per_adapter(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1)
    P = prompt(900, 40)
    for k, adapter in enumerate((BASE, LORA, BASE, LORA), start=1):
        collect(engine.submit(make_job(backend, prompt(k, 5, P), stable=40, adapter=adapter)))
    cache = engine.cache
    assert len(cache) == 2 and cache.contains(None, P) and cache.contains(LORA, P)
    assert (cache.hits, cache.misses, cache.restores) == (2, 2, 2)


def test_a_bad_adapter_fails_its_request_alone(make_engine: Any) -> None:
    engine, backend = make_engine(slots=2)
    a = make_job(backend, prompt(1, 4))
    bad = make_job(backend, prompt(2, 4), adapter=("missing.gguf", 1.0))
    c = make_job(backend, prompt(3, 4))
    submit_together(engine, a, bad, c)
    assert collect(a) == answer(a.tokens, 3)
    with pytest.raises(FileNotFoundError):
        collect(bad)
    assert collect(c) == answer(c.tokens, 3)
    assert backend.adapters_asked == [BASE, ("missing.gguf", 1.0)]  # the base weights stayed on
    assert not any(owner(row[1][0]) == 2 for call in backend.calls for row in call)


def test_slots_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slots"):
        BatchEngine(FakeBackend(), threading.Lock(), 0, PrefixCache(0))
