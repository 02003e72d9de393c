"""Private helpers of the capture layer: turning anything an agent hands us into safe JSON/text.

Rules (documented in docs/capture.md):

* objects JSON cannot encode become JSON-able (pydantic ``model_dump()``, dataclasses, sets and
  tuples as lists, bytes as text) or, failing that, their ``repr()``;
* lone surrogates never reach SQLite: JSON keeps them as ``\\udXXX`` escapes (lossless), plain
  text columns get U+FFFD instead;
* nesting deeper than :data:`MAX_DEPTH` and reference cycles are cut with a marker string;
* a single string longer than the store's ``max_string_chars`` is truncated with a marker.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "DEPTH_MARKER",
    "CYCLE_MARKER",
    "truncation_marker",
    "jsonable",
    "dumps",
    "clean_text",
    "to_float",
    "to_int",
]

MAX_DEPTH = 200
DEPTH_MARKER = f"<slm-agents: nesting deeper than {MAX_DEPTH} levels cut here>"
CYCLE_MARKER = "<slm-agents: reference cycle cut here>"
_SURROGATE = re.compile("[\ud800-\udfff]")
_INF = float("inf")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def truncation_marker(dropped: int) -> str:
    """The text appended to a string cut to the store's ``max_string_chars``."""
    return f"…<slm-agents: truncated, {dropped} more characters not stored>"


def clean_text(value: str) -> str:
    """``value`` with lone surrogates replaced by U+FFFD (SQLite stores UTF-8 only)."""
    if value.isascii() or _SURROGATE.search(value) is None:
        return value
    return _SURROGATE.sub("\ufffd", value)


def _fallback(obj: Any) -> Any:
    """A JSON-able stand-in for an object ``json`` cannot encode."""
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    dump = getattr(obj, "model_dump", None)  # pydantic v2 (LangChain / LlamaIndex messages)
    if callable(dump):
        try:
            return dump()
        except Exception:  # noqa: BLE001 - fall through to repr
            pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        try:
            return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        except Exception:  # noqa: BLE001
            pass
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break capture
        return f"<unrepresentable {type(obj).__name__}>"


def jsonable(
    value: Any,
    *,
    text: Any = None,
    max_string_chars: int | None = None,
    stats: dict[str, int] | None = None,
) -> Any:
    """A copy of ``value`` made only of dict/list/str/int/float/bool/None.

    Args:
        value: Anything.
        text: Optional ``(string, key) -> string`` applied to every string value (redaction);
            ``key`` is the dict key the string sits under (None in lists).
        max_string_chars: Cut longer strings (with a marker); None keeps them whole.
        stats: Counters updated in place: ``truncated`` (strings cut), ``cut`` (depth/cycles).
    """
    counters = stats if stats is not None else {}
    on_path: set[int] = set()
    limit = max_string_chars

    def string(v: str, key: str | None) -> str:
        if limit is not None and len(v) > limit:
            v = v[:limit] + truncation_marker(len(v) - limit)
            counters["truncated"] = counters.get("truncated", 0) + 1
        return text(v, key) if text is not None else v

    def walk(v: Any, depth: int, key: str | None) -> Any:
        t = type(v)
        if t is str:
            return string(v, key)
        if v is None or t is bool or t is int:
            return v
        if t is float:
            return v if v == v and v not in (_INF, -_INF) else repr(v)
        if depth >= MAX_DEPTH:
            counters["cut"] = counters.get("cut", 0) + 1
            return DEPTH_MARKER
        if t is not dict and t is not list:
            if isinstance(v, str):
                return string(str(v), key)
            if isinstance(v, bool):
                return bool(v)
            if isinstance(v, int):
                return int(v)
            if isinstance(v, float):
                return walk(float(v), depth, key)
            if not isinstance(v, (Mapping, list, tuple, set, frozenset)):
                converted = _fallback(v)
                if converted is v or type(converted) is str:
                    return string(converted if type(converted) is str else repr(v), key)
                return walk(converted, depth + 1, key)
        marker = id(v)
        if marker in on_path:
            counters["cut"] = counters.get("cut", 0) + 1
            return CYCLE_MARKER
        on_path.add(marker)
        try:
            if isinstance(v, Mapping):
                out: dict[str, Any] = {}
                for k, item in v.items():
                    sk = k if type(k) is str else str(k)
                    out[clean_text(sk)] = walk(item, depth + 1, sk)
                return out
            return [walk(item, depth + 1, None) for item in v]
        finally:
            on_path.discard(marker)

    return walk(value, 0, None)


def dumps(value: Any) -> str:
    """Compact JSON for a column: never raises, never returns text SQLite cannot store.

    The fast path is one ``json.dumps``; anything odd (unencodable objects, surrogates, cycles,
    absurd nesting) falls back to :func:`jsonable` first.
    """
    try:
        out = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        out = _ENCODER.encode(jsonable(value))
    if not out.isascii() and _SURROGATE.search(out) is not None:
        # lone surrogates: keep them losslessly as JSON escapes
        out = json.dumps(json.loads(out), ensure_ascii=True, separators=(",", ":"))
    return out


def to_float(value: Any) -> float | None:
    """``float(value)``, or None when it is missing or not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def to_int(value: Any) -> int | None:
    """``int(value)``, or None when it is missing, not a number, or past SQLite's 64-bit integers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -(2**63) <= number < 2**63 else None  # larger would fail the whole record's insert
