"""Time-sortable ids (ULID format): 48 bits of milliseconds, then 80 random bits, 26 characters.

Ids made later sort after ids made earlier, as plain strings; within one millisecond in one
process they still increase (the random part is incremented), so an ``ORDER BY id`` is an order
of creation. A forked child starts a fresh sequence, so parent and child never collide.

Example:
    >>> a, b = new_id(), new_id()
    >>> len(a), a < b
    (26, True)
    >>> id_timestamp(a) > 1.6e9
    True
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time

__all__ = ["new_id", "id_timestamp"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD)
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1

_random = random.Random()  # not for secrets: ids only need to be unique (reseeded after fork)
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _reset_after_fork() -> None:
    global _lock, _last_ms, _last_rand
    _random.seed()
    _lock = threading.Lock()
    _last_ms = -1
    _last_rand = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def new_id() -> str:
    """A new 26-character ULID; strictly increasing within this process."""
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
            if rand > _RANDOM_MAX:  # 2**80 ids in one millisecond: borrow the next one
                ms += 1
                rand = _random.getrandbits(_RANDOM_BITS - 1)
        else:
            # the top bit stays clear so that incrementing has room before it overflows
            rand = _random.getrandbits(_RANDOM_BITS - 1)
        _last_ms, _last_rand = ms, rand
    return _encode((ms << _RANDOM_BITS) | rand)


_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # every 10 bits as two characters


def _encode(value: int) -> str:
    """A 128-bit ``value`` as 26 Crockford base-32 characters (the first holds 3 bits, as in the
    ULID spec); the same text as ``_encode_reference``, several times faster (ids are made on the
    agent's thread at every captured call)."""
    p = _PAIRS
    return (_CROCKFORD[value >> 125] + p[(value >> 115) & 1023] + p[(value >> 105) & 1023]
            + p[(value >> 95) & 1023] + p[(value >> 85) & 1023] + p[(value >> 75) & 1023]
            + p[(value >> 65) & 1023] + p[(value >> 55) & 1023] + p[(value >> 45) & 1023]
            + p[(value >> 35) & 1023] + p[(value >> 25) & 1023] + p[(value >> 15) & 1023]
            + p[(value >> 5) & 1023] + _CROCKFORD[value & 31])


def _encode_reference(value: int) -> str:
    # 26 characters hold 130 bits; the two leading bits are zero, as in the ULID spec
    raw = (value << 30).to_bytes(20, "big")
    return base64.b32encode(raw)[:26].decode("ascii").translate(_TO_CROCKFORD)


def id_timestamp(value: str) -> float:
    """The Unix time (seconds) encoded in an id made by :func:`new_id`.

    Raises:
        ValueError: ``value`` is not a 26-character ULID.
    """
    if len(value) != 26:
        raise ValueError(f"not a ULID: {value!r} (expected 26 characters)")
    number = 0
    for char in value[:10].upper():
        digit = _CROCKFORD.find(char)
        if digit < 0:
            raise ValueError(f"not a ULID: {value!r} (bad character {char!r})")
        number = number * 32 + digit
    return number / 1000.0
