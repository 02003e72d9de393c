"""Batched decoding: concurrent requests on one loaded model decode together, one sequence each.

Without it, concurrent steps (a LangGraph fan-out, ``batch()``, several agents in one process)
queue on the model's lock and decode one at a time. Here one driver thread per loaded model owns
the llama.cpp context and runs a loop like llama-server's: every step it decodes the next token
of every request that is generating in one llama.cpp batch, sampling each request's token from
its own row of logits with its own sampler and grammar, then evaluates the next chunk of one
starting request's prompt. A request's thread waits on its own queue for what
the driver produces (stream chunks, the end, or an error).

- **Slots.** A request runs in a slot: a llama.cpp sequence with KV cells of its own, as many
  as the runtime's ``n_ctx`` (so memory grows with the slots; ``stats()`` reports it). A finished
  request leaves its tokens in its slot; the next request takes the free slot sharing the
  longest prefix with its prompt, or restores one from the prefix cache (``_kv_cache``), and
  evaluates only the rest. Requests beyond the slots wait for one.
- **Same answers.** A request's logits are the same bits whatever it is batched with (see
  :func:`multi_sequence_context`), and whatever it resumed from (see ``MIN_CHUNK``): greedy
  answers do not depend on the traffic or on what was evaluated before.
- **Adapters.** A LoRA adapter applies to the whole context, so requests under another adapter
  wait until the running ones finish, then the adapter is switched (first come, first served).
- **Leaving.** A request whose reader goes away (a closed stream, a timeout) is cancelled and its
  slot freed at the next step. An error in one request's callbacks fails that request alone.
- **Sequence 0** is also ``Llama``'s own, for direct users of ``runtime.llama`` (under
  ``runtime.lock``, which the driver holds while it works). ``Llama.eval`` writes sequence 0 and
  cuts every sequence past its own length, so each busy period starts by checking what the idle
  slots still hold.

The engine talks to llama.cpp only through a small backend (:class:`LlamaBackend`), so its
scheduling is tested without a model.
"""

from __future__ import annotations

import contextlib
import ctypes
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import GenerationError, GenerationTimeout
from ._kv_cache import MIN_PREFIX_TOKENS, Adapter, CachedPrefix, PrefixCache, common_prefix_len

__all__ = ["BatchEngine", "Backend", "Job", "Ticket", "LlamaBackend", "DEFAULT_SLOTS", "multi_sequence_context"]

DEFAULT_SLOTS = 4
"""Requests decoded at once per loaded model. Each slot holds ``n_ctx`` KV cells (92 MB at 4096
on the default model); past 4, a batched step on a 2-core CPU grows about as fast as it serves."""

MIN_CHUNK = 2
"""The fewest tokens a prompt chunk holds. Measured on llama.cpp's CPU kernels (flash attention
off, a sequence's own cells): a prompt evaluated in chunks of 2 or more tokens gives the same bits
however it is cut, but a chunk of one token (as a token is generated) gives other bits. So a
request resumes only from tokens evaluated in prompt chunks and never ends its prompt on a
one-token chunk; then its answer is the same whatever it resumed from."""

_CHUNKS, _DONE, _ERROR = 0, 1, 2




class Backend(Protocol):
    """What the engine needs of a llama.cpp context (:class:`LlamaBackend`; fakes in tests)."""

    n_ctx: int  # KV cells of each sequence
    n_batch: int

    @property
    def ctx(self) -> Any:
        """The context handed to samplers: ``sampler.sample(ctx, idx)``."""

    def decode(self, rows: list[tuple[int, list[int], int, bool]]) -> None:
        """Evaluate ``(seq, tokens, first_pos, logits_for_last)`` rows in one batch (the logits of
        a token are read by its index in the batch). Raises on failure."""

    def seq_keep(self, seq: int, n: int) -> bool:
        """Keep the first ``n`` positions of ``seq`` and drop the rest (0: all); False when only
        dropping the whole sequence was possible (recurrent models cannot cut a sequence)."""

    def seq_len(self, seq: int) -> int:
        """How many positions ``seq`` holds (its largest position + 1)."""

    def save(self, seq: int) -> tuple[Any, int]:
        """The saved state of ``seq``: ``(buffer, bytes)``."""

    def restore(self, seq: int, entry: CachedPrefix) -> bool:
        """Load ``entry`` into ``seq`` (emptied first); False if refused."""

    def use_adapter(self, adapter: tuple[str | None, float]) -> Adapter:
        """Run the context under ``(path or None, scale)``; returns the adapter key now active
        (raises for a bad adapter)."""

    def active_adapter(self) -> Adapter: ...

    def raw_used(self) -> bool:
        """True (once) when a direct ``Llama`` user evaluated tokens into sequence 0 since the
        last call."""


@dataclass(eq=False)
class Job:
    """One request for the engine.

    ``sampler`` has a ``current`` attribute: the sampler of the next token (the request may swap
    it from ``on_token``). ``on_token(token, ctx, idx)`` runs on the driver thread right after a
    token is sampled from logits row ``idx``; it returns ``(finished, chunks)``: chunks are
    handed to the reader; a finished request's last token is not evaluated.
    """

    tokens: list[int]
    sampler: Any
    on_token: Callable[[int, Any, int], tuple[bool, list[Any]]]
    adapter: tuple[str | None, float] = (None, 1.0)
    stable: int = 0  # leading prompt tokens worth keeping in the prefix cache
    # engine state
    slot: _Slot | None = None
    todo: list[int] = field(default_factory=list)  # tokens to evaluate next
    cached: bool = False  # the stable prefix was found evaluated (a cache hit)
    order: int = 0  # admission order (first come, first evaluated)
    cancelled: bool = False
    _out: queue.SimpleQueue[tuple[int, Any]] = field(default_factory=queue.SimpleQueue)

    @property
    def split(self) -> int:
        """Where the prompt's evaluation pauses to save its stable prefix in the prefix cache:
        after the stable prefix when it is worth keeping (0: no pause)."""
        return self.stable if MIN_PREFIX_TOKENS <= self.stable <= len(self.tokens) - MIN_CHUNK else 0

    def cancel(self) -> None:
        """Stop this request; the driver frees its slot at its next step."""
        self.cancelled = True

    def results(self, deadline: float | None = None, timeout: float | None = None) -> Iterator[list[Any]]:
        """The chunks the driver produces, until the request ends; raises its error. Past
        ``deadline`` (a ``time.perf_counter()`` value) it cancels and raises GenerationTimeout."""
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.perf_counter())
            try:
                kind, payload = self._out.get(timeout=wait)
            except queue.Empty:
                self.cancel()
                raise GenerationTimeout(
                    f"no answer within the {timeout}s timeout (the model was busy or the prompt long); "
                    "raise timeout= or lower max_tokens="
                ) from None
            if kind == _CHUNKS:
                yield payload
            elif kind == _DONE:
                return
            else:
                raise payload

    def _post(self, kind: int, payload: Any = None) -> None:
        self._out.put((kind, payload))


class Ticket:
    """Lets another thread cancel a request that may not be submitted yet (an async caller that
    is cancelled while its worker thread still prepares the prompt)."""

    def __init__(self) -> None:
        self.job: Job | None = None
        self.cancelled = False

    def attach(self, job: Job) -> None:
        self.job = job
        if self.cancelled:
            job.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        if self.job is not None:
            self.job.cancel()


@dataclass(eq=False)
class _Slot:
    seq: int
    live: list[int] = field(default_factory=list)  # tokens its KV cells hold, in order
    exact: int = 0  # leading tokens evaluated in prompt chunks (of MIN_CHUNK or more tokens)
    job: Job | None = None
    used: float = 0.0  # when it last finished a request (least recently used idles out first)


class BatchEngine:
    """Decodes the requests submitted to one loaded model, several at once.

    Args:
        backend: The context to decode in.
        lock: The loaded model's lock, held by the driver while it works (so direct users of
            the model wait for a quiet moment).
        slots: Requests decoded at once (sequences 0..slots-1).
        cache: Evaluated prefixes to resume from (shared with the runtime's ``stats()``).
    """

    def __init__(self, backend: Backend, lock: threading.Lock, slots: int, cache: PrefixCache):
        if slots < 1:
            raise ValueError("slots must be 1 or more")
        self.backend, self.lock, self.cache = backend, lock, cache
        self.slots = [_Slot(seq=i) for i in range(slots)]
        self._pending: deque[Job] = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.steps = 0  # batched decodes run
        self.rows = 0  # requests served by them (rows / steps: the mean batch)
        self.peak = 0  # most requests decoded in one step
        self._admitted = 0
        self._requested: tuple[str | None, float] | None = None  # the adapter last asked of the backend
        self._forget = False  # forget_soon() asked while the driver was busy

    # -- the requester's side ------------------------------------------------------------------
    def submit(self, job: Job) -> Job:
        """Queue ``job``; read its output with :meth:`Job.results`."""
        with self._cv:
            if self._closed:
                raise GenerationError("the model was closed")
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slm-agents-decode", daemon=True)
                self._thread.start()
            self._cv.notify()
        return job

    def close(self, timeout: float = 10.0) -> None:
        """Stop the driver after the step in progress; queued requests fail."""
        with self._cv:
            self._closed = True
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def forget(self) -> None:
        """Drop what the idle slots hold (call with the lock held)."""
        self._forget = False
        for slot in self.slots:
            if slot.job is None:
                self._keep(slot, 0)

    def forget_soon(self) -> None:
        """Drop what the idle slots hold: now if the model is quiet, else as each busy slot
        frees (the driver does it), without waiting for the traffic to stop."""
        with self._cv:
            self._forget = True
        if self.lock.acquire(blocking=False):
            try:
                self.forget()
            finally:
                self.lock.release()

    def busy(self) -> int:
        return sum(slot.job is not None for slot in self.slots)

    def stats(self) -> dict[str, Any]:
        return {"slots": len(self.slots), "slots_busy": self.busy(), "batch_steps": self.steps,
                "batch_mean": self.rows / self.steps if self.steps else None, "batch_peak": self.peak}

    # -- the driver ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if self._closed:
                    self._fail_all(GenerationError("the model was closed"))
                    return
            with self.lock:
                try:
                    self._check_idle_slots()
                    while not self._closed:
                        self._admit()
                        if not any(slot.job for slot in self.slots):
                            break
                        self._step()
                except Exception as e:  # a fault of the engine's own: fail what it holds, go on
                    for slot in self.slots:
                        self._finish(slot, GenerationError(f"the decode loop failed: {e!r}"))
                        self._keep(slot, 0)

    def _fail_all(self, error: BaseException) -> None:
        while self._pending:
            self._pending.popleft()._post(_ERROR, error)
        for slot in self.slots:
            if slot.job is not None:
                self._finish(slot, error)

    def _check_idle_slots(self) -> None:
        """A direct user of ``Llama`` (under the lock, between busy periods) writes sequence 0 and
        cuts every sequence past its own length: drop slot 0's tokens if it was used, and keep
        what the others still hold."""
        if self.backend.raw_used():
            self._keep(self.slots[0], 0)
        for slot in self.slots:
            if slot.job is None:
                held = self.backend.seq_len(slot.seq)
                if held != len(slot.live):
                    self._keep(slot, min(held, len(slot.live)), force=True)

    def _admit(self) -> None:
        """Give free slots to waiting requests, in order, while they fit."""
        with self._cv:
            if self._forget:
                self.forget()
            while self._pending:
                job = self._pending[0]
                if job.cancelled:
                    self._pending.popleft()._post(_DONE)
                    continue
                free = [s for s in self.slots if s.job is None]
                if not free:
                    return
                running = [s.job for s in self.slots if s.job is not None]
                if running and job.adapter != running[0].adapter:
                    return  # another adapter: wait until the running requests finish
                slot = max(free, key=lambda s: (self._usable(s, job.tokens), -s.used))
                self._pending.popleft()
                try:
                    self._start(slot, job, switch=not running)
                except Exception as e:  # a bad adapter fails this request only
                    slot.job = None
                    self._keep(slot, 0)
                    job._post(_ERROR, e)

    def _start(self, slot: _Slot, job: Job, switch: bool) -> None:
        """Put ``job`` in ``slot``: switch the adapter if it differs, resume from the longest
        evaluated prefix (the slot's own or a cached one), and queue the rest of the prompt."""
        backend = self.backend
        if switch and job.adapter != self._requested:
            before = backend.active_adapter()
            now = backend.use_adapter(job.adapter)
            self._requested = job.adapter
            if now != before:  # other weights: every held prefix is stale
                for s in self.slots:
                    self._keep(s, 0)
        slot.job, job.slot = job, slot
        self._admitted += 1
        job.order = self._admitted
        tokens, split = job.tokens, job.split
        resume = self._usable(slot, tokens)
        if split and resume < split and self.cache.enabled:
            entry = self.cache.get(backend.active_adapter(), tokens[:split])
            if entry is not None and backend.restore(slot.seq, entry):
                self.cache.touch(entry)
                self.cache.restores += 1
                slot.live, slot.exact, resume = list(entry.tokens), split, split
            elif entry is not None:  # refused: the sequence is empty now
                slot.live, slot.exact, resume = [], 0, 0
        if split and 0 < split - resume < MIN_CHUNK:
            resume = max(0, split - MIN_CHUNK)  # no one-token chunk before the split either
        self._keep(slot, resume)
        resume = len(slot.live)  # less when the model could not cut the sequence
        job.todo = tokens[resume:]
        job.cached = bool(split) and resume >= split
        if split and self.cache.enabled:
            if job.cached:
                self.cache.hits += 1
            else:
                self.cache.misses += 1

    @staticmethod
    def _usable(slot: _Slot, tokens: list[int]) -> int:
        """How many leading ``tokens`` a request can take from ``slot``: those it holds as
        evaluated in prompt chunks (not one token at a time), leaving a chunk of at least
        ``MIN_CHUNK`` tokens to evaluate."""
        limit = min(slot.exact, len(tokens) - MIN_CHUNK)
        return common_prefix_len(slot.live, tokens, limit) if limit > 0 else 0

    def _keep(self, slot: _Slot, n: int, force: bool = False) -> None:
        """Make ``slot`` hold its first ``n`` tokens (``force``: tell llama.cpp even when the
        slot's record says it holds no more)."""
        if (force or n < len(slot.live) or n == 0) and not self.backend.seq_keep(slot.seq, n):
            n = 0  # the model could only drop the whole sequence
        del slot.live[n:]
        slot.exact = min(slot.exact, n)

    def _step(self) -> None:
        """One step: the next token of every generating request in one batched decode (n_batch
        at a time), then the next chunk of one starting request's prompt in a decode of its own
        (``n_batch`` tokens at most, never a one-token chunk; see ``MIN_CHUNK``)."""
        generating, starting = [], []
        for slot in self.slots:
            job = slot.job
            if job is None:
                continue
            if job.cancelled:
                self._finish(slot)
            elif len(slot.live) >= len(job.tokens):
                generating.append(slot)
            else:
                starting.append(slot)
        n_batch = self.backend.n_batch  # a decode holds at most n_batch tokens (more slots than that: several)
        for i in range(0, len(generating), n_batch):
            self._decode([(slot, 1) for slot in generating[i : i + n_batch]])
        if starting:
            slot = min(starting, key=lambda s: s.job.order if s.job else 0)  # first come
            job = slot.job
            assert job is not None
            end = job.split if len(slot.live) < job.split else len(job.tokens)
            left = end - len(slot.live)
            n = min(left, n_batch)
            short = MIN_CHUNK - (left - n)  # what the last chunk would lack
            if 0 < short < MIN_CHUNK and n - short >= 1:
                n -= short  # leave the last chunk MIN_CHUNK tokens, not one (an n_batch under 3 cannot)
            self._decode([(slot, n)])

    def _decode(self, work: list[tuple[_Slot, int]]) -> None:
        """Evaluate the next ``n`` tokens of each slot's request in one batch; sample the requests
        whose prompt is then evaluated."""
        rows = []
        for slot, n in work:
            job = slot.job
            assert job is not None
            rows.append((slot.seq, job.todo[:n], len(slot.live), n == len(job.todo)))
        try:
            self.backend.decode(rows)
        except Exception as e:
            for slot, _ in work:
                self._finish(slot, GenerationError(f"llama.cpp failed to decode: {e}"))
                # it may have kept part of the batch: hold exactly what the slot's record says
                self._keep(slot, min(len(slot.live), self.backend.seq_len(slot.seq)), force=True)
            return
        self.steps += 1
        self.rows += len(work)
        self.peak = max(self.peak, len(work))
        end = 0  # batch index just past the row
        for (slot, n), (_, _, _, logits) in zip(work, rows, strict=True):
            end += n
            job = slot.job
            assert job is not None
            if n >= MIN_CHUNK and slot.exact == len(slot.live):
                slot.exact += n  # a prompt chunk: the same bits as any other chunking of it
            slot.live.extend(job.todo[:n])
            del job.todo[:n]
            if self._saves_prefix(slot) and len(slot.live) == job.split and self.cache.enabled:
                self._save_prefix(slot)
            if logits:
                self._sample(slot, end - 1)

    def _sample(self, slot: _Slot, idx: int) -> None:
        job = slot.job
        assert job is not None
        ctx = self.backend.ctx
        try:
            token = job.sampler.current.sample(ctx, idx)
            finished, chunks = job.on_token(token, ctx, idx)
        except Exception as e:
            self._finish(slot, e)
            return
        if chunks:
            job._post(_CHUNKS, chunks)
        if finished:
            self._finish(slot)
        else:
            job.todo = [token]

    def _saves_prefix(self, slot: _Slot) -> bool:
        job = slot.job
        return job is not None and not job.cached and job.split > 0

    def _save_prefix(self, slot: _Slot) -> None:
        job = slot.job
        assert job is not None
        adapter = self.backend.active_adapter()
        prefix = job.tokens[: job.split]
        if not self.cache.contains(adapter, prefix):
            state, nbytes = self.backend.save(slot.seq)
            self.cache.put(adapter, prefix, state, nbytes)

    def _finish(self, slot: _Slot, error: BaseException | None = None) -> None:
        job = slot.job
        slot.job, slot.used = None, time.monotonic()
        if job is None:
            return
        job._post(_DONE if error is None else _ERROR, error)


class LlamaBackend:
    """:class:`Backend` over a ``llama_cpp.Llama`` whose context was made with several sequences
    (see :func:`multi_sequence_context`)."""

    def __init__(self, llm: Any, adapters: Any, n_ctx: int):
        import llama_cpp
        from llama_cpp import _internals

        self._lib, self._llm, self._adapters = llama_cpp, llm, adapters
        self.n_ctx = n_ctx  # cells per sequence
        self.n_batch = int(llm.n_batch)
        self._batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        llm._stack.callback(self._batch.close)

    @property
    def ctx(self) -> Any:
        return self._llm._ctx

    def _memory(self) -> Any:
        return self._lib.llama_get_memory(self._llm._ctx.ctx)

    def decode(self, rows: list[tuple[int, list[int], int, bool]]) -> None:
        b = self._batch.batch
        i = 0
        for seq, tokens, pos, logits in rows:
            for k, token in enumerate(tokens):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos + k, 1, False
                b.seq_id[i][0] = seq
                i += 1
            b.logits[i - 1] = logits
        b.n_tokens = i
        code = self._lib.llama_decode(self._llm._ctx.ctx, b)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")

    def seq_keep(self, seq: int, n: int) -> bool:
        if self._lib.llama_memory_seq_rm(self._memory(), seq, n, -1):
            return True
        self._lib.llama_memory_seq_rm(self._memory(), seq, -1, -1)
        return n == 0

    def seq_len(self, seq: int) -> int:
        return int(self._lib.llama_memory_seq_pos_max(self._memory(), seq)) + 1

    def save(self, seq: int) -> tuple[Any, int]:
        ctx = self._llm._ctx.ctx
        size = self._lib.llama_state_seq_get_size(ctx, seq)
        buf = (ctypes.c_uint8 * size)()
        return buf, int(self._lib.llama_state_seq_get_data(ctx, buf, size, seq))

    def restore(self, seq: int, entry: CachedPrefix) -> bool:
        self.seq_keep(seq, 0)
        if self._lib.llama_state_seq_set_data(self._llm._ctx.ctx, entry.state, entry.nbytes, seq) != entry.nbytes:
            self.seq_keep(seq, 0)
            return False
        return True

    def use_adapter(self, adapter: tuple[str | None, float]) -> Adapter:
        self._adapters.use(*adapter)
        return self.active_adapter()

    def active_adapter(self) -> Adapter:
        return self._adapters.active  # type: ignore[no-any-return]

    def raw_used(self) -> bool:
        if self._llm.n_tokens == 0:
            return False
        self._llm.reset()  # its live prefix is gone once a slot reuses sequence 0
        return True


def multi_sequence_context(llm: Any, slots: int) -> int:
    """Give ``llm`` a context of ``slots`` sequences, each its own KV stream of the context length
    ``llm`` was made with, in place of the one-sequence context it made; returns that length.

    Sequence 0 is also ``Llama``'s own (a direct user's). Each sequence has cells of its own,
    not a share of one pool, and flash attention is off: measured on llama.cpp's CPU kernels,
    a sequence's logits are then the same bits whatever other sequences share the batch, while a
    pool (cells interleaved with others') or flash attention (with prompts of a few hundred
    tokens) change them. ``test_core_batching.py`` checks it on every run.
    """
    import llama_cpp
    from llama_cpp import _internals

    params = llm.context_params
    n_ctx = int(params.n_ctx)
    params.n_ctx = n_ctx * slots
    params.n_seq_max = slots
    # llama.cpp reserves an output row per sequence and aborts the process when that exceeds
    # n_outputs_max (n_batch by default): with more slots than n_batch, raise it to the slots
    params.n_outputs_max = max(int(params.n_outputs_max) or int(params.n_batch), slots)
    params.kv_unified = False
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    old, llm._ctx = llm._ctx, ctx
    with contextlib.suppress(Exception):
        old.close()
    llm._stack.callback(ctx.close)
    llm.reset()
    return n_ctx
