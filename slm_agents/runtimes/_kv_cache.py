"""Evaluated prompt prefixes of one loaded llama.cpp model, kept to resume from: the prefix cache.

An agent graph shares one small model among nodes with different system prompts and tools
(planner, query writer, fixer). Each of the model's slots (``_batch``) holds the prompt it last
evaluated, so without a cache every switch between nodes evaluates the whole prefix again. This
cache keeps the KV state of N stable prefixes (system prompt + tools; each saved with llama.cpp's
``llama_state_seq_get_data`` and restored into any slot with ``llama_state_seq_set_data``, as
llama-cpp-python's ``LlamaRAMCache`` does), bounded by bytes and evicted least-recently-used
first.

Why state copies and not more sequences held in the context (``n_seq_max`` with
``seq_cp``): on the default model both resume a 386-token prefix in under a millisecond (0.41 ms
restore vs 0.01 ms copy), against seconds to evaluate it; state copies cost exactly the bytes of
the prefixes held, while a sequence's cells are allocated up front. ``bench/kv_cache.py
--options`` measures both.

An entry is the exact stable prefix of a step, evaluated in prompt chunks, so resuming from it
gives the same answer as evaluating it (``_batch.MIN_CHUNK`` says why that holds).

A prefix is only valid under the LoRA adapter it was evaluated with, so an entry's key is the
adapter and the tokens. This module holds no llama.cpp calls: the saved state is opaque bytes,
which keeps the bookkeeping testable without a model (see ``_batch`` for the calls).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_PREFIX_CACHE_BYTES", "MIN_PREFIX_TOKENS", "CachedPrefix", "PrefixCache", "common_prefix_len"]

DEFAULT_PREFIX_CACHE_BYTES = 128 * 1024 * 1024
"""128 MiB: on the default model (22.5 KiB of KV per token) 14 prefixes of 400 tokens."""

MIN_PREFIX_TOKENS = 32
"""Shorter stable prefixes are cheaper to evaluate again than to keep."""

Adapter = tuple[str, float] | None


def common_prefix_len(a: Any, b: Any, limit: int | None = None) -> int:
    """How many leading items ``a`` and ``b`` share (at most ``limit``)."""
    n = min(len(a), len(b)) if limit is None else min(len(a), len(b), limit)
    if list(a[:n]) == list(b[:n]):
        return n
    same = 0
    while same < n and a[same] == b[same]:
        same += 1
    return same


@dataclass
class CachedPrefix:
    """One evaluated prefix: the tokens, the adapter they ran under, and the saved KV state."""

    adapter: Adapter
    tokens: tuple[int, ...]
    state: Any  # what llama.cpp saved for the sequence (a ctypes byte array)
    nbytes: int


class PrefixCache:
    """A byte-bounded LRU of evaluated prompt prefixes, keyed by adapter and tokens.

    Thread-safe: the decode thread uses it while another thread may resize or clear it.

    Args:
        capacity_bytes: The most state bytes to hold; 0 disables the cache.

    Example:
        >>> cache = PrefixCache(100)
        >>> cache.put(None, [1, 2, 3], b"state", 60)
        True
        >>> cache.get(None, [1, 2, 3]).nbytes
        60
        >>> cache.get(("adapter.gguf", 1.0), [1, 2, 3]) is None  # another adapter: no match
        True
    """

    def __init__(self, capacity_bytes: int = DEFAULT_PREFIX_CACHE_BYTES):
        self._entries: OrderedDict[tuple[Adapter, tuple[int, ...]], CachedPrefix] = OrderedDict()
        self._lock = threading.RLock()
        self._capacity = 0
        self.bytes = 0
        self.hits = 0  # requests whose stable prefix was not evaluated again
        self.misses = 0  # requests that evaluated their stable prefix
        self.restores = 0  # hits served from a cached entry (the rest resumed the live context)
        self.evictions = 0
        self.capacity_bytes = capacity_bytes

    @property
    def capacity_bytes(self) -> int:
        return self._capacity

    @capacity_bytes.setter
    def capacity_bytes(self, value: int) -> None:
        with self._lock:
            if value < 0:
                raise ValueError("prefix_cache_bytes must be 0 (no cache) or more")
            self._capacity = int(value)
            self._evict_until(0)

    @property
    def enabled(self) -> bool:
        return self._capacity > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, adapter: Adapter, tokens: Any) -> CachedPrefix | None:
        """The entry for exactly ``tokens`` under ``adapter``, if held."""
        with self._lock:
            return self._entries.get((adapter, tuple(tokens)))

    def contains(self, adapter: Adapter, tokens: Any) -> bool:
        with self._lock:
            return (adapter, tuple(tokens)) in self._entries

    def touch(self, entry: CachedPrefix) -> None:
        """Mark ``entry`` as just used (the last to be evicted)."""
        with self._lock:
            key = (entry.adapter, entry.tokens)
            if key in self._entries:  # another thread may have evicted it meanwhile
                self._entries.move_to_end(key)

    def fits(self, nbytes: int) -> bool:
        return 0 < nbytes <= self._capacity

    def put(self, adapter: Adapter, tokens: Any, state: Any, nbytes: int) -> bool:
        """Keep ``state`` for ``tokens`` under ``adapter``, evicting the least recently used
        entries to make room; False (nothing kept) when it is larger than the whole capacity."""
        with self._lock:
            if not self.fits(nbytes):
                return False
            key = (adapter, tuple(tokens))
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._evict_until(nbytes)
            self._entries[key] = CachedPrefix(adapter, key[1], state, nbytes)
            self.bytes += nbytes
            return True

    def clear(self) -> None:
        """Drop every entry (the counters stay)."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            looked = self.hits + self.misses
            return {
                "cache_capacity_bytes": self._capacity,
                "cache_bytes": self.bytes,
                "cache_entries": len(self._entries),
                "cache_hits": self.hits,
                "cache_misses": self.misses,
                "cache_restores": self.restores,
                "cache_evictions": self.evictions,
                "hit_rate": self.hits / looked if looked else None,
            }

    def _evict_until(self, room: int) -> None:
        while self._entries and self.bytes + room > self._capacity:
            _, entry = self._entries.popitem(last=False)
            self.bytes -= entry.nbytes
            self.evictions += 1
