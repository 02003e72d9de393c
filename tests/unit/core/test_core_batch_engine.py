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

The resume rule checked here (see ``MIN_CHUNK`` in _batch.py): a request resumes from the tokens a
slot holds as evaluated in prompt chunks of ``MIN_CHUNK`` or more (never from generated tokens),
leaving at least ``MIN_CHUNK`` tokens to evaluate; short of its split (the stable prefix) it
restores the prefix cache's entry, and one token short of the split it backs off to
``split - MIN_CHUNK``. A prompt is evaluated up to the split, then the rest, ``n_batch`` tokens at
most a chunk and never a chunk of one token.
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
from slm_agents.runtimes._batch import MIN_CHUNK, BatchEngine, Job
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
        self.take_snapshots = True  # off for long runs (the copies grow with the sequences)
        self.violations: list[str] = []
        self.whole_only = False
        self.keep_part_on_failure = False  # a failed decode leaves its rows' tokens in the KV cache

    def decode(self, rows: list[Row]) -> None:
        rows = [(seq, list(tokens), pos, logits) for seq, tokens, pos, logits in rows]
        if self.hook is not None:
            self.hook(rows)
        if self.fail is not None and self.fail(rows):
            self.failed.append(rows)
            if self.keep_part_on_failure:
                for seq, tokens, _, _ in rows:
                    self.seqs[seq].extend(tokens)
            raise RuntimeError("no KV cells left")
        if self.take_snapshots:
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

    def seq_keep(self, seq: int, n: int) -> bool:
        if self.whole_only and n:  # a recurrent model: a sequence cannot be cut, only dropped
            self.seqs[seq].clear()
            return False
        del self.seqs[seq][n:]
        return True

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
             sampler_fails_at: int | None = None, on_sampled: Callable[[Job, int], object] | None = None) -> Job:
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

    job = Job(list(tokens), sampler=Slot(FakeSampler(backend, sampler_fails_at)), on_token=on_token,
              adapter=adapter, stable=stable)
    return job  # on_token reads it (a cancelling callback)


def collect(job: Job, wait: float = WAIT) -> list[int]:
    """The streamed tokens of ``job`` until it ends (raises its error)."""
    tokens: list[int] = []
    for chunks in job.results(deadline=time.perf_counter() + wait, timeout=wait):
        tokens.extend(chunks)
    return tokens


def prompt_chunks(calls: list[list[Row]], seq: int, n: int) -> list[tuple[int, int, bool]]:
    """``(first position, length, logits)`` of each chunk of the ``n``-token prompt decoded into
    ``seq`` (rows below position ``n``; generated tokens come after); each was decoded in a call
    of its own."""
    found = []
    for call in calls:
        for row_seq, tokens, pos, logits in call:
            if row_seq == seq and pos < n:
                assert len(call) == 1, f"a prompt chunk shared its decode: {call}"
                found.append((pos, len(tokens), logits))
    return found


def chunks(n: int, split: int, n_batch: int, start: int = 0) -> list[tuple[int, int, bool]]:
    """The chunks a prompt of ``n`` tokens resumed at ``start`` is evaluated in: up to the split
    (0: no split), then the rest, ``n_batch`` tokens at a time; a part that would end on a chunk
    of one token takes ``MIN_CHUNK - 1`` from the chunk before it."""
    found = []
    for lo, hi in ((start, max(start, split)), (max(start, split), n)):
        whole, rest = divmod(hi - lo, n_batch)
        sizes = [n_batch] * whole + ([rest] if rest else [])
        if 0 < rest < MIN_CHUNK and whole:
            sizes[-2:] = [n_batch - (MIN_CHUNK - rest), MIN_CHUNK]
        for size in sizes:
            found.append((lo, size, lo + size == n))
            lo += size
    return found


def split_of(n: int, stable: int) -> int:
    """``Job.split`` written out: the stable prefix when worth keeping and at least ``MIN_CHUNK``
    tokens are left after it."""
    return stable if MIN_PREFIX_TOKENS <= stable <= n - MIN_CHUNK else 0


def common(a: list[int], b: list[int]) -> int:
    same = 0
    while same < min(len(a), len(b)) and a[same] == b[same]:
        same += 1
    return same


def record_prompt_chunks(engine: BatchEngine, backend: FakeBackend) -> dict[Job, list[tuple[int, int, bool]]]:
    """Each request's prompt chunks, recorded as they are decoded (on the driver thread, where the
    slot's request is known); for tests with concurrent traffic."""
    found: defaultdict[Job, list[tuple[int, int, bool]]] = defaultdict(list)

    def hook(rows: list[Row]) -> None:
        for seq, tokens, pos, logits in rows:
            job = engine.slots[seq].job
            assert job is not None
            if pos < len(job.tokens):
                assert len(rows) == 1, f"a prompt chunk shared its decode: {rows}"
                found[job].append((pos, len(tokens), logits))

    backend.hook = hook
    return found


def assert_prompt_cut(found: list[tuple[int, int, bool]], n: int, n_batch: int, start: int) -> None:
    """What every prompt's chunks are, stated without the rule's arithmetic: they follow each other
    from ``start`` to ``n``, each of ``MIN_CHUNK`` (a one-token prompt: 1) to ``n_batch`` tokens,
    the last alone asking for logits."""
    assert found, "no prompt chunk decoded"
    assert found[0][0] == start and sum(size for _, size, _ in found) == n - start
    assert all(pos + size == nxt for (pos, size, _), (nxt, _, _) in zip(found, found[1:], strict=False))
    assert all(min(MIN_CHUNK, n) <= size <= n_batch for _, size, _ in found), found
    assert [logits for *_, logits in found] == [False] * (len(found) - 1) + [True]


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


class Beside:
    """Requests generating in the first ``count`` slots all along (0: none), one token per step
    beside each request :meth:`ask` runs, waiting (on the driver) between requests."""

    def __init__(self, engine: BatchEngine, backend: FakeBackend, count: int):
        self.engine, self.backend = engine, backend
        self.asking = threading.Event()  # set while a request runs
        self.runners = [make_job(backend, prompt(k, 3), new=10**9, on_sampled=lambda job, n: self.asking.wait(WAIT))
                        for k in range(998, 998 - count, -1)]
        submit_together(engine, *self.runners)

    def ask(self, tokens: list[int], new: int, stable: int) -> Job:
        """Run one request to its end (checking its answer) while the runners generate."""
        job = make_job(self.backend, tokens, new=new, stable=stable,
                       on_sampled=lambda job, said: self.asking.clear() if said == new else None)
        self.asking.set()
        assert collect(self.engine.submit(job)) == answer(tokens, new)
        return job

    def stop(self) -> list[list[int]]:
        """End the runners; returns what each said."""
        for runner in self.runners:
            runner.cancel()
        self.asking.set()
        return [collect(runner) for runner in self.runners]


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
    # each request: one prompt chunk, then 5 single-token rows (its 6th token is not evaluated)
    assert rows == 3 * (1 + 5) and len(backend.calls) < rows  # rows were shared between decodes


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
    """8 threads x 25 requests on 3 slots, some sharing a stable prefix: every answer right, every
    prompt resumed and cut by the rule."""
    engine, backend = make_engine(slots=3, capacity=500)
    found = record_prompt_chunks(engine, backend)
    shared = prompt(900, 40)
    errors: list[BaseException] = []
    wrong: list[int] = []
    jobs: list[Job] = []

    def agent(t: int) -> None:
        rng = random.Random(t)
        for i in range(25):
            k = 1 + t * 25 + i
            with_prefix = rng.random() < 0.5
            tokens = prompt(k, rng.randint(1, 12), shared if with_prefix else ())
            new = rng.randint(1, 6)
            job = engine.submit(make_job(backend, tokens, new=new, stable=40 if with_prefix else 0))
            jobs.append(job)
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
    assert errors == [] and wrong == [] and len(jobs) == 200
    assert engine.busy() == 0 and engine.stats()["batch_peak"] <= 3
    starts: dict[Job, int] = {}
    for job in jobs:
        n = len(job.tokens)
        starts[job] = found[job][0][0]
        assert_prompt_cut(found[job], n, 8, starts[job])
        assert found[job] == chunks(n, job.split, 8, starts[job])
        if job.tokens[0] != shared[0]:
            assert starts[job] == 0  # its own tokens: nothing to resume
        elif n == 41:  # a tail of one token: no split (nothing left after it), resumed up to n - 2
            assert job.split == 0 and starts[job] in (0, 39)
        else:  # a hit resumes at the split (from a slot or the cache: the tails differ), a miss at 0
            assert job.split == 40 and starts[job] in (0, 40)
    split_jobs = [job for job in jobs if job.split]
    cache = engine.cache
    assert 0 < cache.hits == sum(starts[job] == 40 for job in split_jobs)
    assert 0 < cache.misses == sum(starts[job] == 0 for job in split_jobs)
    assert cache.restores == len(backend.restored) <= cache.hits
    assert cache.contains(None, shared) and len(cache) == 1


# --- prompts in chunks ------------------------------------------------------------------------------
def test_split_is_the_stable_prefix_when_worth_keeping() -> None:
    def split(stable: int, n: int) -> int:
        return Job(list(range(n)), None, lambda *a: (True, []), stable=stable).split

    assert MIN_PREFIX_TOKENS == 32 and MIN_CHUNK == 2
    assert split(40, 50) == 40 and split(32, 50) == 32 and split(48, 50) == 48
    assert split(31, 50) == 0  # too short to keep
    assert split(49, 50) == 0  # one token left after it: a one-token chunk
    assert split(50, 50) == 0 and split(60, 50) == 0  # the whole prompt: nothing left to sample from
    assert split(0, 50) == 0
    assert all(split(stable, n) == split_of(n, stable) for n in range(30, 60) for stable in range(0, 62))


@pytest.mark.parametrize(("stable", "expected"), [
    (0, [(0, 8, False), (8, 8, False), (16, 8, False), (24, 8, False), (32, 8, False), (40, 8, False),
         (48, 2, True)]),
    (31, [(0, 8, False), (8, 8, False), (16, 8, False), (24, 8, False), (32, 8, False), (40, 8, False),
          (48, 2, True)]),
    (40, [(0, 8, False), (8, 8, False), (16, 8, False), (24, 8, False), (32, 8, False), (40, 8, False),
          (48, 2, True)]),
    (41, [(0, 8, False), (8, 8, False), (16, 8, False), (24, 8, False), (32, 7, False), (39, 2, False),
          (41, 7, False), (48, 2, True)]),  # neither part ends on a one-token chunk
    (45, [(0, 8, False), (8, 8, False), (16, 8, False), (24, 8, False), (32, 8, False), (40, 5, False),
          (45, 5, True)]),
    (48, [(0, 8, False), (8, 8, False), (16, 8, False), (24, 8, False), (32, 8, False), (40, 8, False),
          (48, 2, True)]),
    (49, [(0, 8, False), (8, 8, False), (16, 8, False), (24, 8, False), (32, 8, False), (40, 8, False),
          (48, 2, True)]),  # no split: it would leave one token
])
def test_a_prompt_is_cut_the_same_way_alone_and_among_other_requests(
        make_engine: Any, stable: int, expected: list[tuple[int, int, bool]]) -> None:
    tokens = prompt(1, 50)
    assert chunks(50, split_of(50, stable), 8) == expected

    engine, backend = make_engine(slots=3, capacity=0)
    alone = make_job(backend, tokens, new=2, stable=stable)
    submit_together(engine, alone)
    assert collect(alone) == answer(tokens, 2)
    assert prompt_chunks(backend.calls, alone.slot.seq, 50) == expected  # type: ignore[union-attr]

    engine, backend = make_engine(slots=3, capacity=0)
    others = [make_job(backend, prompt(k, 5), new=30) for k in (2, 3)]
    job = make_job(backend, tokens, new=2, stable=stable)
    submit_together(engine, *others, job)
    assert collect(job) == answer(tokens, 2)
    assert [collect(o) for o in others] == [answer(prompt(k, 5), 30) for k in (2, 3)]
    seq = job.slot.seq  # type: ignore[union-attr]
    assert prompt_chunks(backend.calls, seq, 50) == expected
    # the other requests generated between its chunks: they ran, its chunks did not change
    chunk_calls = [i for i, call in enumerate(backend.calls) if call[0][0] == seq and call[0][2] < 50]
    between = backend.calls[chunk_calls[0]:chunk_calls[-1]]
    assert sum(1 for call in between if len(call) == 2 and all(row[1][0] >= GEN for row in call)) == len(expected) - 1


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside"])
@pytest.mark.parametrize("n_batch", [3, 4, 5, 7, 8, 16])
def test_no_prompt_chunk_holds_one_token(make_engine: Any, n_batch: int, beside: bool) -> None:
    """Prompts of 2 to 60 tokens, split at random stable prefixes (or not), resumed at random
    points of what the slot holds: never a chunk of one token (other bits than any other cut),
    never more than n_batch, a pause at the split, the resume point the rule's."""
    engine, backend = make_engine(slots=3 if beside else 1, capacity=0, n_batch=n_batch)
    backend.take_snapshots = False
    others = Beside(engine, backend, 2 if beside else 0)
    seq = len(engine.slots) - 1
    rng = random.Random(n_batch)
    cases = 0
    try:
        for n in range(2, 61):
            for _ in range(4):
                cases += 1
                tokens = prompt(cases, n)
                split = rng.choice([0, *range(MIN_PREFIX_TOKENS, n - 1)])
                held = rng.choice([0, 1, rng.randint(0, n - 2), split - 1, split, split + 1])
                held = max(0, min(held, n - MIN_CHUNK))
                others.ask([*tokens[:held], *prompt(500 + cases, 2)], 1, 0)  # the slot now holds tokens[:held]
                resume = split - MIN_CHUNK if split and split - held == 1 else held
                done = len(backend.calls)
                job = others.ask(tokens, 1, split)
                assert job.slot is engine.slots[seq] and job.split == split
                found = prompt_chunks(backend.calls[done:], seq, n)
                assert_prompt_cut(found, n, n_batch, resume)
                assert not split or resume >= split or split in {pos for pos, _, _ in found}
                assert found == chunks(n, split, n_batch, resume), (n, split, held)
    finally:
        said = others.stop()
    assert all(len(tokens) > cases for tokens in said)


def test_an_n_batch_of_one_still_answers(make_engine: Any) -> None:
    """With n_batch=1 no chunk can hold MIN_CHUNK tokens: the prompt is evaluated one token at a
    time (as before the resume rule), not in an empty chunk."""
    engine, backend = make_engine(slots=1, capacity=0, n_batch=1)
    backend.fail = lambda rows: any(not tokens for _, tokens, _, _ in rows)  # llama_decode: n_tokens == 0 is an error
    job = make_job(backend, prompt(1, 2))
    assert collect(engine.submit(job)) == answer(job.tokens, 3)
    assert prompt_chunks(backend.calls, 0, 2) == [(0, 1, False), (1, 1, True)]


# --- the prefix cache and the slots' own tokens ----------------------------------------------------
def test_a_prefix_hit_resumes_at_the_split_from_the_slot_or_the_cache(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=1_000_000)
    cache = engine.cache
    P, Q = prompt(900, 40), prompt(800, 40)
    a = make_job(backend, prompt(1, 10, P), stable=40)
    assert collect(engine.submit(a)) == answer(a.tokens, 3)
    assert prompt_chunks(backend.calls, 0, 50) == chunks(50, 40, 8)
    assert (cache.hits, cache.misses, cache.restores) == (0, 1, 0)
    assert backend.saved == [0] and cache.contains(None, P) and cache.get(None, P).state == tuple(P)  # type: ignore[union-attr]

    # the slot still holds P, evaluated in prompt chunks: only the rest is evaluated
    done = len(backend.calls)
    b = make_job(backend, prompt(2, 13, P), stable=40)
    assert collect(engine.submit(b)) == answer(b.tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0, 53) == chunks(53, 40, 8, 40) == [(40, 8, False), (48, 5, True)]
    assert (cache.hits, cache.misses, cache.restores) == (1, 1, 0) and backend.saved == [0]

    # another prefix takes the slot (and is cached)...
    c = make_job(backend, prompt(3, 6, Q), stable=40)
    assert collect(engine.submit(c)) == answer(c.tokens, 3)
    assert (cache.hits, cache.misses, cache.restores) == (1, 2, 0) and len(cache) == 2

    # ...so P comes back from the cache, and again only the rest is evaluated (never a last chunk of 1)
    done = len(backend.calls)
    d = make_job(backend, prompt(4, 9, P), stable=40)
    assert collect(engine.submit(d)) == answer(d.tokens, 3)
    assert backend.restored == [(0, tuple(P))]
    assert prompt_chunks(backend.calls[done:], 0, 49) == chunks(49, 40, 8, 40) == [(40, 7, False), (47, 2, True)]
    assert (cache.hits, cache.misses, cache.restores) == (2, 2, 1) and backend.saved == [0, 0]
    assert cache.stats()["hit_rate"] == 0.5
    assert backend.seqs[0] == d.tokens + answer(d.tokens, 2)


def test_a_restored_prefix_is_the_last_to_be_evicted(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=800)  # two prefixes of 40 tokens (400 bytes each)
    P, Q, R = prompt(900, 40), prompt(800, 40), prompt(700, 40)
    for k, prefix in enumerate((P, Q, P, R, P), start=1):
        collect(engine.submit(make_job(backend, prompt(k, 5, prefix), stable=40)))
    cache = engine.cache
    assert [tokens for _, tokens in backend.restored] == [tuple(P), tuple(P)]  # R evicted Q, not P
    assert cache.contains(None, P) and cache.contains(None, R) and not cache.contains(None, Q)
    assert (cache.hits, cache.misses, cache.restores, cache.evictions) == (2, 3, 2, 1)


def test_a_request_takes_the_free_slot_with_the_longest_usable_prefix_then_the_least_recently_used(
        make_engine: Any) -> None:
    engine, backend = make_engine(slots=2, capacity=0)
    P = prompt(900, 40)
    a, c = make_job(backend, prompt(1, 10, P), stable=40), make_job(backend, prompt(3, 10, P), stable=40)
    submit_together(engine, a, c)
    collect(a), collect(c)
    slot_a, slot_c = a.slot, c.slot
    assert slot_a is not slot_c and slot_a is not None and slot_c is not None

    # both slots hold P; the one holding 5 more of its tokens wins
    done = len(backend.calls)
    b = make_job(backend, [*c.tokens[:45], *prompt(2, 5)], stable=40)
    assert collect(engine.submit(b)) == answer(b.tokens, 3)
    assert b.slot is slot_c and prompt_chunks(backend.calls[done:], slot_c.seq, 50) == [(45, 5, True)]

    # the same usable prefix (P) in both: the least recently used slot, a's, then b's
    done = len(backend.calls)
    d = make_job(backend, prompt(4, 10, P), stable=40)
    assert collect(engine.submit(d)) == answer(d.tokens, 3)
    assert d.slot is slot_a and prompt_chunks(backend.calls[done:], slot_a.seq, 50) == chunks(50, 40, 8, 40)
    e = make_job(backend, prompt(5, 10, P), stable=40)
    assert collect(engine.submit(e)) == answer(e.tokens, 3)
    assert e.slot is slot_c

    # a prompt sharing nothing takes the least recently used slot too (d's, not e's)
    f = make_job(backend, prompt(6, 10))
    assert collect(engine.submit(f)) == answer(f.tokens, 3)
    assert f.slot is slot_a and backend.saved == [] and backend.restored == []


def test_a_follow_up_turn_resumes_where_the_previous_prompt_ended_not_at_the_split(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=1_000_000)
    cache = engine.cache
    P = prompt(900, 40)
    a = make_job(backend, prompt(1, 10, P), stable=40)
    collect(engine.submit(a))
    tokens = a.tokens
    for k, extra, expected in ((2, 6, [(50, 6, True)]), (3, 13, [(56, 8, False), (64, 5, True)])):
        start, tokens = len(tokens), [*tokens, *prompt(k, extra)]  # each turn extends the previous prompt
        done = len(backend.calls)
        job = make_job(backend, tokens, stable=40)
        assert collect(engine.submit(job)) == answer(tokens, 3)
        assert prompt_chunks(backend.calls[done:], 0, len(tokens)) == chunks(len(tokens), 40, 8, start) == expected
    # both follow-ups hit (resumed past the split), from the slot: the cache was written once
    assert (cache.hits, cache.misses, cache.restores) == (2, 1, 0) and backend.saved == [0] and len(cache) == 1


def test_generated_tokens_are_never_resumed(make_engine: Any) -> None:
    """A follow-up repeating the previous answer: the slot holds that answer but evaluated one token
    at a time (other bits than a prompt chunk), so it is evaluated again from the prompt's end."""
    engine, backend = make_engine(slots=1, capacity=0)
    P = prompt(900, 40)
    a = make_job(backend, prompt(1, 10, P), new=3, stable=40)
    said = collect(engine.submit(a))
    assert backend.seqs[0] == [*a.tokens, *said[:2]]  # the answer's last token is never evaluated
    tokens = [*a.tokens, *said, *prompt(2, 6)]
    done = len(backend.calls)
    b = make_job(backend, tokens, stable=40)
    assert collect(engine.submit(b)) == answer(tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0, 59) == chunks(59, 40, 8, 50) == [(50, 7, False), (57, 2, True)]
    assert backend.calls[done][0][1][:3] == said  # the answer re-evaluated as a prompt chunk

    # and now that it was, the next turn resumes past it
    done = len(backend.calls)
    c = make_job(backend, [*tokens, *prompt(3, 4)], stable=40)
    assert collect(engine.submit(c)) == answer(c.tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0, 63) == [(59, 4, True)]


@pytest.mark.parametrize(("n", "stable", "capacity"), [(50, 0, 0), (50, 40, 0), (50, 40, 1_000_000),
                                                       (50, 48, 1_000_000), (3, 0, 0), (2, 0, 0)])
def test_an_identical_request_evaluates_its_last_two_tokens(make_engine: Any, n: int, stable: int,
                                                            capacity: int) -> None:
    engine, backend = make_engine(slots=1, capacity=capacity)
    tokens = prompt(1, n)
    collect(engine.submit(make_job(backend, tokens, stable=stable)))
    for _ in range(2):
        done = len(backend.calls)
        again = make_job(backend, tokens, stable=stable)
        assert collect(engine.submit(again)) == answer(tokens, 3)
        assert prompt_chunks(backend.calls[done:], 0, n) == [(n - MIN_CHUNK, MIN_CHUNK, True)]
    cache = engine.cache  # with a split and a cache: the first a miss, the repeats hits from the slot
    counted = bool(capacity and split_of(n, stable))
    assert (cache.hits, cache.misses, cache.restores) == ((2, 1, 0) if counted else (0, 0, 0))


def test_the_resume_point_backs_off_to_two_before_the_split(make_engine: Any) -> None:
    """One token short of the split, a request resumes two short (a chunk of one token before the
    split would give other bits); further short, it resumes where the slot's tokens end."""
    engine, backend = make_engine(slots=1, capacity=1_000_000)
    cache = engine.cache
    P = prompt(900, 40)
    collect(engine.submit(make_job(backend, [*P[:39], *prompt(1, 10)])))  # no split: nothing cached
    done = len(backend.calls)
    b = make_job(backend, prompt(2, 10, P), stable=40)
    assert collect(engine.submit(b)) == answer(b.tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0, 50) == chunks(50, 40, 8, 38) == [(38, 2, False), (40, 8, False),
                                                                                    (48, 2, True)]
    assert (cache.hits, cache.misses) == (0, 1) and cache.get(None, P).state == tuple(P)  # type: ignore[union-attr]

    # one short again, but the cache holds the prefix: restored, resumed at the split
    collect(engine.submit(make_job(backend, [*P[:39], *prompt(3, 10)])))
    done = len(backend.calls)
    c = make_job(backend, prompt(4, 10, P), stable=40)
    assert collect(engine.submit(c)) == answer(c.tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0, 50) == [(40, 8, False), (48, 2, True)]
    assert (cache.hits, cache.misses, cache.restores) == (1, 1, 1)

    # three short, with nothing cached: resumed where the slot's tokens end
    cache.clear()
    collect(engine.submit(make_job(backend, [*P[:37], *prompt(5, 10)])))
    done = len(backend.calls)
    d = make_job(backend, prompt(6, 10, P), stable=40)
    assert collect(engine.submit(d)) == answer(d.tokens, 3)
    assert prompt_chunks(backend.calls[done:], 0, 50) == [(37, 3, False), (40, 8, False), (48, 2, True)]
    assert (cache.hits, cache.misses, cache.restores) == (1, 2, 1) and backend.saved == [0, 0]


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside"])
@pytest.mark.parametrize("capacity", [0, 1_000_000], ids=["no-cache", "cache"])
@pytest.mark.parametrize("n_batch", [3, 5, 8])
def test_random_conversations_resume_where_the_rule_says(make_engine: Any, n_batch: int, capacity: int,
                                                         beside: bool) -> None:
    """Requests sharing prefixes, extending or repeating earlier prompts and answers, each checked
    against the rule written out here: what the slot holds (the previous request's prompt, all
    evaluated in prompt chunks, and its answer, not), what the cache holds, where the request
    resumes, its chunks, the counters. Beside: two requests generate in the other slots all along."""
    engine, backend = make_engine(slots=3 if beside else 1, capacity=capacity, n_batch=n_batch)
    backend.take_snapshots = False
    others = Beside(engine, backend, 2 if beside else 0)
    try:
        seen = converse(engine, backend, random.Random(1000 * n_batch + capacity % 7 + beside), others)
    finally:
        said = others.stop()
    assert all(seen[case] >= 2 for case in ("from the start", "from the slot", "from the slot past the split",
                                             "backed off")), str(dict(seen))
    assert (seen["restored"] >= 2) == bool(capacity), str(dict(seen))
    # the others generated beside every request, in batches of their own (prompt_chunks checks it)
    assert all(len(tokens) > 60 and tokens == answer(runner.tokens, len(tokens))
               for runner, tokens in zip(others.runners, said, strict=True))


def converse(engine: BatchEngine, backend: FakeBackend, rng: random.Random, others: Beside,
             requests: int = 60) -> dict[str, int]:
    """Submit ``requests`` random requests one after another, checking each against the rule;
    returns how many resumed each way."""
    n_batch, capacity, seq = backend.n_batch, engine.cache.enabled, len(engine.slots) - 1
    base = prompt(900, 70)
    prefixes: set[tuple[int, ...]] = set()  # what the cache holds (it never fills here)
    held: list[int] = []  # what the slot holds
    exact = 0  # of which evaluated in prompt chunks
    previous: list[int] = []
    splits: list[list[int]] = []  # the stable prefixes seen so far
    seen: defaultdict[str, int] = defaultdict(int)
    hits = misses = restores = 0
    for k in range(1, requests + 1):
        kind = "shared"
        if previous and len(previous) <= 120:
            kind = rng.choice(["fresh", "shared", "extend", "answered", "repeat", "cut", *["revisit" if splits else "cut"] * 2])
        own = prompt(k, rng.randint(MIN_CHUNK if kind == "revisit" else 1, 12))
        if kind == "revisit":  # an earlier stable prefix, which the slot may no longer hold
            again = list(rng.choice(sorted(prefixes))) if prefixes else rng.choice(splits)
            tokens, m = [*again, *own], len(again)
        elif kind == "fresh":
            tokens, m = own, 0
        elif kind == "shared":
            m = rng.randint(28, 70)
            tokens = [*base[:m], *own]
        elif kind == "extend":
            tokens, m = [*previous, *own], len(previous)
        elif kind == "answered":
            tokens, m = [*previous, *answer(previous, rng.randint(1, 3)), *own], len(previous)
        elif kind == "repeat":
            tokens, m = list(previous), len(previous)
        else:
            m = rng.randint(min(28, len(previous)), len(previous))
            tokens = [*previous[:m], *own]
        n = len(tokens)
        resume = max(0, min(common(held[:exact], tokens), n - MIN_CHUNK))  # the slot's usable prefix
        stable = m if kind == "revisit" else rng.choice([0, m, resume - 1, resume, resume + 1, resume + 1, resume + 2,
                                                        rng.randint(MIN_PREFIX_TOKENS, max(MIN_PREFIX_TOKENS, n))])
        split = split_of(n, stable)
        if split:
            splits.append(tokens[:split])
        new = rng.randint(1, 3)

        restored = bool(split and resume < split and capacity and tuple(tokens[:split]) in prefixes)
        if restored:
            resume = split
        elif split and split - resume == 1:
            resume = split - MIN_CHUNK
            seen["backed off"] += 1
        if split and capacity:
            hit = resume >= split
            hits, misses, restores = hits + hit, misses + (not hit), restores + restored
            if not hit:  # evaluated up to the split, then saved
                prefixes.add(tuple(tokens[:split]))
        seen["restored" if restored else "from the slot past the split" if split and resume > split
             else "from the slot" if resume else "from the start"] += 1

        done = len(backend.calls)
        job = others.ask(tokens, new, stable)
        assert job.slot is engine.slots[seq], (k, kind)
        found = prompt_chunks(backend.calls[done:], seq, n)
        assert_prompt_cut(found, n, n_batch, resume)
        assert found == chunks(n, split, n_batch, resume), (k, kind, n, split, resume)
        assert not split or resume >= split or split in {pos for pos, _, _ in found}  # paused at the split
        # the prompt was evaluated in prompt chunks (a one-token prompt: a chunk of one), the answer not
        held, exact, previous = [*tokens, *answer(tokens, new - 1)], n if n >= MIN_CHUNK else 0, tokens
        assert backend.seqs[seq] == held
    cache = engine.cache
    assert (cache.hits, cache.misses, cache.restores) == (hits, misses, restores)
    assert len(cache) == len(prefixes) and all(cache.get(None, p).state == p for p in prefixes)  # type: ignore[union-attr]
    return seen


def test_a_capacity_of_zero_caches_nothing_and_evaluates_a_prefix_again(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=0)
    P, Q = prompt(900, 40), prompt(800, 40)
    for k, prefix in enumerate((P, Q, P), start=1):
        done = len(backend.calls)
        job = make_job(backend, prompt(k, 10, prefix), stable=40)
        assert collect(engine.submit(job)) == answer(job.tokens, 3)
        assert prompt_chunks(backend.calls[done:], 0, 50) == chunks(50, 40, 8)  # P evaluated again
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
    assert prompt_chunks(backend.calls[done:], 0, 50) == chunks(50, 40, 8)
    cache = engine.cache
    assert (cache.hits, cache.misses, cache.restores) == (0, 3, 0) and backend.restored == []


def test_a_direct_llama_user_invalidates_what_the_idle_slots_lost(make_engine: Any) -> None:
    engine, backend = make_engine(slots=2, capacity=0)
    P, Q = prompt(900, 40), prompt(800, 40)
    a, c = make_job(backend, prompt(1, 10, P), stable=40), make_job(backend, prompt(3, 10, Q), stable=40)
    submit_together(engine, a, c)
    collect(a), collect(c)
    assert (a.slot.seq, c.slot.seq) == (0, 1)  # type: ignore[union-attr]
    with engine.lock:  # what Llama.eval does: writes sequence 0, cuts the others past its length
        backend.raw = True
        backend.seqs[0] = list(range(5, 65))  # longer than what slot 0 held
        backend.seqs[1] = backend.seqs[1][:20]
    done = len(backend.calls)
    b, d = make_job(backend, prompt(2, 10, P), stable=40), make_job(backend, prompt(4, 10, Q), stable=40)
    submit_together(engine, b, d)
    assert (collect(b), collect(d)) == (answer(b.tokens, 3), answer(d.tokens, 3))
    assert (b.slot.seq, d.slot.seq) == (0, 1)  # type: ignore[union-attr]
    # slot 0 lost all it held: evaluated from the start; slot 1 kept 20 tokens of Q: resumed there
    assert prompt_chunks(backend.calls[done:], 0, 50) == chunks(50, 40, 8)
    assert prompt_chunks(backend.calls[done:], 1, 50) == chunks(50, 40, 8, 20) == [
        (20, 8, False), (28, 8, False), (36, 4, False), (40, 8, False), (48, 2, True)]
    assert not backend.violations  # each row started where its sequence ended: the stale cells were dropped


def test_forget_drops_what_the_idle_slots_hold(make_engine: Any) -> None:
    engine, backend = make_engine(slots=1, capacity=0)
    P = prompt(900, 40)
    collect(engine.submit(make_job(backend, prompt(1, 10, P), stable=40)))
    with engine.lock:
        engine.forget()
    assert backend.seqs[0] == []
    done = len(backend.calls)
    collect(engine.submit(make_job(backend, prompt(2, 10, P), stable=40)))
    assert prompt_chunks(backend.calls[done:], 0, 50) == chunks(50, 40, 8)


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


def test_a_failed_decode_that_kept_tokens_leaves_the_slot_in_step(make_engine: Any) -> None:
    """llama.cpp keeps the micro-batches it decoded before failing: the slot must not believe it
    holds less than the sequence does (the next request would resume at the wrong position)."""
    engine, backend = make_engine(slots=1)
    first = make_job(backend, prompt(1, 6), new=2)
    assert collect(engine.submit(first)) == answer(first.tokens, 2)
    backend.keep_part_on_failure = True
    backend.fail = lambda rows: any(3005 in row[1] for row in rows)
    follow = make_job(backend, [*first.tokens, 3005, 3006, 3007], new=2)
    with pytest.raises(GenerationError, match="failed to decode"):
        collect(engine.submit(follow))
    backend.fail = None
    again = make_job(backend, [*first.tokens, 3008, 3009], new=2)
    assert collect(engine.submit(again)) == answer(again.tokens, 2)
    assert backend.violations == []


def test_a_model_that_cannot_cut_a_sequence_resumes_from_nothing(make_engine: Any) -> None:
    """Recurrent models only drop whole sequences: a slot that could not keep its prefix is
    evaluated from the start, not resumed at a position it no longer holds."""
    engine, backend = make_engine(slots=1)
    backend.whole_only = True
    a = make_job(backend, prompt(1, 10), new=2)
    assert collect(engine.submit(a)) == answer(a.tokens, 2)
    b = make_job(backend, [*a.tokens[:6], 4001, 4002, 4003], new=2)  # shares 6 tokens
    assert collect(engine.submit(b)) == answer(b.tokens, 2)
    assert backend.violations == []
    assert prompt_chunks(backend.calls[-3:], 0, len(b.tokens))[0][0] == 0  # evaluated from position 0


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


def test_forgetting_and_resizing_the_cache_do_not_wait_for_traffic(make_engine: Any) -> None:
    """clear_prefix_cache() and prefix_cache_bytes= run while requests decode (the driver holds
    the model's lock for as long as any runs): they return at once, and the idle slots are
    forgotten at the driver's next admission."""
    engine, backend = make_engine(slots=2)
    done = make_job(backend, prompt(1, 6), new=2)
    assert collect(engine.submit(done)) == answer(done.tokens, 2)  # slot 0 now holds its tokens
    gate, inside = threading.Event(), threading.Event()

    def hold(rows: list[Row]) -> None:
        if not gate.is_set():
            inside.set()
            gate.wait(WAIT)

    backend.hook = hold
    running = engine.submit(make_job(backend, prompt(2, 4), new=3))
    assert inside.wait(WAIT)  # the driver is mid-decode, holding the lock
    started = time.monotonic()
    engine.forget_soon()
    engine.cache.capacity_bytes = 10
    assert time.monotonic() - started < 1.0 and engine.lock.locked()
    gate.set()
    collect(running)
    after = make_job(backend, list(done.tokens), new=2)  # the same prompt: nothing left to resume
    assert collect(engine.submit(after)) == answer(after.tokens, 2)
    assert prompt_chunks(backend.calls, after.slot.seq, len(after.tokens))[-1][0] == 0  # type: ignore[union-attr]
