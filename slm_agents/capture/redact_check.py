"""Measure redaction on a labelled set: recall on PII values, and hard negatives kept as they are.

A labelled set is a JSON Lines file; each line is one item::

    {"id": "args-name-email-3", "where": "tool_arguments",
     "input": {"name": "Jane Roe <jane@x.com>"},
     "pii": [{"kind": "EMAIL", "value": "jane@x.com"}]}

``where`` says which part of a captured record ``input`` goes into (see :data:`WHERE`): a user
message, an answer, tool-call arguments, a tool result, metadata, ``params``, escalation or label
extras... ``pii`` lists the values that must not survive, with their kind; an item with no ``pii``
is a *hard negative*: a text or value with nothing to redact that looks close (versions, hashes,
dates, UUIDs, prices, real base64 ``data:`` URLs), which must be stored exactly as given.

:func:`check_labelled` logs every item into an in-memory :class:`~slm_agents.capture.CaptureStore`
(the store's own redaction: envelope positions, secret-named keys, credential headers dropped,
data URLs) and reads the rows back. A PII value *survives* when it is found in any text of the
stored row, JSON strings decoded. The shipped set (:data:`SHIPPED_SET`) is written by
``bench/data/make_redact_labelled.py``; ``slm-agents redact-check --labelled`` runs it.

Example:
    >>> item = LabelledItem(id="e1", where="message", input="mail ann@example.com",
    ...                     pii=(("EMAIL", "ann@example.com"),))
    >>> result = check_labelled([item])
    >>> result.recall, result.negatives_kept
    (1.0, None)
    >>> mask("ann@example.com")
    'an…(15 chars)'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CaptureError, InvalidRequest
from .redact import Redactor

__all__ = ["LabelledItem", "Miss", "RedactCheckResult", "WHERE", "SHIPPED_SET", "load_labelled", "parse_labelled",
           "check_labelled", "summary_lines", "mask"]

#: The labelled set shipped with the package (``slm-agents redact-check --labelled``).
SHIPPED_SET = Path(__file__).with_name("data") / "redact_labelled.jsonl"

#: Where an item's ``input`` goes in a captured record.
WHERE: dict[str, str] = {
    "message": "a user message's text content (a string)",
    "content_part": "the text of a user message's content part {'type': 'text'} (a string)",
    "image_url": "the url of a user message's image_url content part (a string)",
    "answer": "the call's answer, its content (a string)",
    "error": "the call's error_message (a string)",
    "history_tool_call": "an earlier assistant tool call's arguments, a JSON string in messages (an object)",
    "tool_call": "the answer's tool call arguments, a JSON string in tool_calls (an object)",
    "tool_message": "a tool message's content in messages (a string, or an object sent as JSON)",
    "tool_arguments": "a tool execution's arguments (an object)",
    "tool_result": "a tool execution's result (a string or an object)",
    "metadata": "the call's metadata (an object)",
    "params": "the call's params, e.g. extra_headers (an object)",
    "tags": "the call's tags (a list)",
    "escalation": "the extra fields of link_escalation (an object)",
    "label": "the extra fields of label (an object)",
}
_OBJECT_WHERE = frozenset({"history_tool_call", "tool_call", "tool_arguments", "metadata", "params", "escalation",
                           "label"})
_STRING_WHERE = frozenset({"message", "content_part", "image_url", "answer", "error"})
# keys the store takes as columns or as the row's name, not as extras (``id=`` names an escalation row)
_RESERVED_EXTRA = {"escalation": {"id", "ts", "slm_call_id", "llm_call_id", "reason", "metadata"},
                   "label": {"call_or_run_id", "label", "score", "note"}}


@dataclass(frozen=True)
class LabelledItem:
    """One labelled item: ``input`` put at ``where``; ``pii`` the (kind, value) pairs that must not survive.

    No ``pii``: a hard negative, to be stored unchanged.

    Example:
        >>> LabelledItem(id="n1", where="message", input="Version 1.2.3").negative
        True
    """

    id: str
    where: str
    input: Any
    pii: tuple[tuple[str, str], ...] = ()

    @property
    def negative(self) -> bool:
        return not self.pii


@dataclass(frozen=True)
class Miss:
    """A labelled PII value that survived redaction (``value`` is raw: print it with :func:`mask`)."""

    item: str
    where: str
    kind: str
    value: str


@dataclass
class RedactCheckResult:
    """Figures of one run of :func:`check_labelled`.

    ``per_kind`` maps a kind to ``(removed, labelled)``; ``changed`` lists the hard negatives
    that were changed as ``(item id, where, placeholder kinds that appeared)``.
    """

    items: int = 0
    pii_values: int = 0
    removed: int = 0
    negatives: int = 0
    kept: int = 0
    per_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    misses: list[Miss] = field(default_factory=list)
    changed: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        """Share of labelled PII values that do not survive (None without any)."""
        return self.removed / self.pii_values if self.pii_values else None

    @property
    def negatives_kept(self) -> float | None:
        """Share of hard negatives stored unchanged (None without any)."""
        return self.kept / self.negatives if self.negatives else None


def mask(value: str) -> str:
    """``value`` shown without giving it away: its first two characters and its length."""
    return f"{value[:2]}…({len(value)} chars)"


# -- reading a labelled set ------------------------------------------------------------------------


def parse_labelled(text: str, *, name: str = "labelled set") -> list[LabelledItem]:
    """Items of a labelled set given as JSON Lines text; one ``InvalidRequest`` naming the line otherwise."""
    if "\x00" in text:
        raise InvalidRequest(f"{name} is a binary file, not a labelled set (JSON Lines, one item a line)")
    items: list[LabelledItem] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where_ = f"{name} line {number}"
        try:
            raw = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise InvalidRequest(f"{where_} is not JSON ({e}); a labelled set has one JSON object a line") from e
        item = _item(raw, where_)
        if item.id in seen:
            raise InvalidRequest(f"{where_}: the id {item.id!r} is used twice; give each item its own id")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InvalidRequest(f"{name} has no items; a labelled set has one JSON object a line")
    return items


def _item(raw: Any, where_: str) -> LabelledItem:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where_} is not a JSON object with id, where, input and pii")
    item_id, where, pii = raw.get("id"), raw.get("where"), raw.get("pii", [])
    value: Any = raw.get("input")
    if not isinstance(item_id, str) or not item_id:
        raise InvalidRequest(f"{where_}: 'id' must be a non-empty string")
    if where not in WHERE:
        raise InvalidRequest(f"{where_}: 'where' must be one of {', '.join(WHERE)}, not {where!r}")
    if where in _STRING_WHERE and not isinstance(value, str):
        raise InvalidRequest(f"{where_}: the input of {where!r} must be a string")
    if where in _OBJECT_WHERE and not isinstance(value, dict):
        raise InvalidRequest(f"{where_}: the input of {where!r} must be a JSON object")
    if where == "tags" and not isinstance(value, list):
        raise InvalidRequest(f"{where_}: the input of 'tags' must be a list")
    if where in ("tool_message", "tool_result") and not isinstance(value, (str, dict, list)):
        raise InvalidRequest(f"{where_}: the input of {where!r} must be a string, an object or a list")
    clash = _RESERVED_EXTRA[where] & set(value) if where in _RESERVED_EXTRA else set()
    if clash:
        raise InvalidRequest(f"{where_}: {sorted(clash)} are columns of {where}, not extra fields; rename them")
    if not isinstance(pii, list):
        raise InvalidRequest(f"{where_}: 'pii' must be a list of {{'kind', 'value'}} objects")
    pairs = []
    for entry in pii:
        if not (isinstance(entry, dict) and isinstance(entry.get("kind"), str) and isinstance(entry.get("value"), str)
                and entry["value"]):
            raise InvalidRequest(f"{where_}: each 'pii' entry is {{'kind': 'EMAIL', 'value': 'the text'}}")
        pairs.append((entry["kind"], entry["value"]))
    return LabelledItem(id=item_id, where=where, input=value, pii=tuple(pairs))


def load_labelled(path: str | Path | None = None) -> list[LabelledItem]:
    """Read a labelled set (default: :data:`SHIPPED_SET`); a bad file is one ``InvalidRequest``."""
    p = Path(path) if path is not None else SHIPPED_SET
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InvalidRequest(f"cannot read the labelled set {p}: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"{p} is not UTF-8 text ({e.reason} at byte {e.start}): not a labelled set") from e
    return parse_labelled(text, name=str(p))


# -- running it through the store ------------------------------------------------------------------

_USER = {"role": "user", "content": "look this up"}


def _log(store: Any, item: LabelledItem, n: int) -> tuple[str, str]:
    """Log ``item`` into ``store`` where it belongs; returns (table, row id)."""
    where, value = item.where, item.input
    cid = f"redact-check-{n}"
    call: dict[str, Any] = {"id": cid, "messages": [_USER]}
    if where == "message":
        call["messages"] = [{"role": "user", "content": value}]
    elif where == "content_part":
        call["messages"] = [{"role": "user", "content": [{"type": "text", "text": value}]}]
    elif where == "image_url":
        call["messages"] = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": value}}]}]
    elif where == "answer":
        call["content"] = value
    elif where == "error":
        call["error_message"] = value
    elif where == "history_tool_call":
        call["messages"] = [_USER, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps(value)}}]}]
    elif where == "tool_call":
        call["tool_calls"] = [{"id": "call_1", "type": "function",
                               "function": {"name": "lookup", "arguments": json.dumps(value)}}]
    elif where == "tool_message":
        content = value if isinstance(value, str) else json.dumps(value)
        call["messages"] = [_USER, {"role": "tool", "tool_call_id": "call_1", "name": "lookup", "content": content}]
    elif where in ("metadata", "params", "tags"):
        call[where] = value
    elif where in ("tool_arguments", "tool_result"):
        key = "arguments" if where == "tool_arguments" else "result"
        return "tool_executions", store.log_tool({"id": cid, "call_id": "call_1", "name": "lookup", key: value})
    elif where == "escalation":
        return "escalations", store.link_escalation("slm-call", "llm-call", "invalid_tool_call", **value)
    elif where == "label":
        return "labels", store.label("some-call", "bad", **value)
    return "calls", store.log(call)


def _strings(value: Any) -> Iterator[str]:
    """Every text in a stored value: strings, keys, and the texts of JSON documents inside strings."""
    if isinstance(value, str):
        yield value
        if value[:1] in ("{", "[", '"'):
            try:
                decoded = json.loads(value)
            except (ValueError, RecursionError):
                return
            yield from _strings(decoded)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _row(store: Any, table: str, rid: str) -> dict[str, Any] | None:
    if table == "calls":
        from .query import read_call

        call = read_call(store.db, rid, hydrate=True)
        if call is not None:  # only this call's own columns: not what hydrate links to it
            for linked in ("tool_executions", "escalations", "labels"):
                call.pop(linked, None)
        return call
    rows = list(store.db.query(f"SELECT * FROM {table} WHERE id = ?", [rid]))  # noqa: S608 - a fixed table name
    return rows[0] if rows else None


def _stored(item: LabelledItem, row: dict[str, Any]) -> Any:
    """The stored form of ``item.input``, to compare with it (JSON decoded where it was encoded)."""
    where = item.where
    if where in ("message", "content_part", "image_url", "history_tool_call", "tool_message"):
        messages = row.get("messages") or []
        if where == "message":
            return messages[0].get("content")
        if where == "content_part":
            return messages[0]["content"][0].get("text")
        if where == "image_url":
            return messages[0]["content"][0]["image_url"].get("url")
        if where == "history_tool_call":
            return _decoded(messages[1]["tool_calls"][0]["function"]["arguments"])
        content = messages[1].get("content")
        return content if isinstance(item.input, str) else _decoded(content)
    if where == "answer":
        return row.get("content")
    if where == "error":
        return row.get("error_message")
    if where == "tool_call":
        return _decoded(row["tool_calls"][0]["function"]["arguments"])
    if where == "metadata":
        meta = dict(row.get("metadata") or {})
        meta.pop("data_urls", None)  # added by the store: media types of data URLs kept
        return meta
    if where in ("params", "tags"):
        return row.get(where)
    if where == "tool_arguments":
        return _decoded(row.get("arguments"))
    if where == "tool_result":
        return row.get("result") if isinstance(item.input, str) else _decoded(row.get("result"))
    if where == "escalation":
        return _decoded(row.get("metadata"))
    return _decoded(row.get("extra"))


def _decoded(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _placeholders(value: Any) -> tuple[str, ...]:
    import re

    found = set()
    for text in _strings(value):
        found.update(re.findall(r"<([A-Z][A-Z0-9_]*)_\d+>", text))
    return tuple(sorted(found))


def check_labelled(items: Sequence[LabelledItem] | Iterable[LabelledItem], *,
                   redactor: Redactor | None = None) -> RedactCheckResult:
    """Log every item into an in-memory capture store with ``redactor`` and measure what survived.

    Args:
        items: The labelled items (:func:`load_labelled`).
        redactor: The redactor to measure (default: ``Redactor.default()``, what a store uses).

    Raises:
        CaptureError: An item could not be stored (the figures would be wrong without it).
    """
    from sqlite_utils import Database

    from .store import CaptureStore

    items = list(items)
    result = RedactCheckResult(items=len(items))
    store = CaptureStore(Database(memory=True), redactor=redactor if redactor is not None else Redactor.default())
    try:
        logged = [_log(store, item, n) for n, item in enumerate(items)]
        store.flush()
        per_kind: dict[str, list[int]] = {}
        for item, (table, rid) in zip(items, logged, strict=True):
            row = _row(store, table, rid)
            if row is None:
                raise CaptureError(f"the labelled item {item.id!r} was not stored ({store.stats}); the figures "
                                   "would leave it out")
            if item.negative:
                result.negatives += 1
                stored = _stored(item, row)
                if stored == item.input:
                    result.kept += 1
                else:
                    result.changed.append((item.id, item.where, _placeholders(stored)))
                continue
            texts = list(_strings(row))
            for kind, value in item.pii:
                counts = per_kind.setdefault(kind, [0, 0])
                counts[1] += 1
                result.pii_values += 1
                if any(value in text for text in texts):
                    result.misses.append(Miss(item.id, item.where, kind, value))
                else:
                    counts[0] += 1
                    result.removed += 1
        result.per_kind = {kind: (c[0], c[1]) for kind, c in sorted(per_kind.items())}
    finally:
        store.close()
    return result


def summary_lines(result: RedactCheckResult) -> list[str]:
    """The figures of ``result`` as lines of text, every PII value masked."""
    lines = []
    recall, kept = result.recall, result.negatives_kept
    lines.append(f"recall {_fmt(recall)} ({result.removed}/{result.pii_values} labelled PII values removed)")
    lines.append(f"hard negatives kept {_fmt(kept)} ({result.kept}/{result.negatives} stored unchanged)")
    if result.per_kind:
        lines.append("recall per kind:")
        width = max(len(k) for k in result.per_kind)
        for kind, (removed, total) in result.per_kind.items():
            lines.append(f"  {kind.ljust(width)}  {_fmt(removed / total)}  ({removed}/{total})")
    for miss in result.misses:
        lines.append(f"missed: {miss.item} ({miss.where}) {miss.kind} {mask(miss.value)}")
    for item_id, where, kinds in result.changed:
        now = ", ".join(f"<{k}_n>" for k in kinds) or "a different value"
        lines.append(f"hard negative changed: {item_id} ({where}) now holds {now}")
    return lines


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
