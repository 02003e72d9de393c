"""Private helpers of :mod:`slm_agents.dataset`: opening a capture file, putting blobs back,
normalising requests for de-duplication, and estimating tokens.

Rows are read with plain ``sqlite3`` cursors so that 100,000 calls stream through without being
held in memory; the JSON columns are decoded once per row.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..capture.query import BlobCache, loads, open_db

__all__ = [
    "open_db",
    "BlobCache",
    "loads",
    "request_hash",
    "request_key",
    "text_of",
    "estimate_tokens",
    "answer_message",
    "called_tools",
    "has_table",
]

_NAME = re.compile(r'"name"\s*:\s*"([^"\\]+)"')


def has_table(db: Database, name: str) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone()
    return row is not None


def text_of(content: Any) -> str:
    """The text of a message content (a string, a list of parts, a blob reference or None)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") if isinstance(p, dict) else str(p) for p in content if p is not None
        )
    if isinstance(content, dict):
        return str(content.get("text") or content.get("$blob") or "")
    return str(content)


_IDS = re.compile(r'"(?:id|tool_call_id)"\s*:\s*"(?:[^"\\]|\\.)*"')
_ALL_WS = re.compile(r"(?:\s|\\[ntr])+")


def request_key(messages_json: str, tools_key: str | None = None) -> str:
    """:func:`request_hash` computed on the stored JSON text of ``calls.messages``, without decoding it."""
    text = _ALL_WS.sub("", _IDS.sub("", messages_json or ""))
    return hashlib.sha256(f"{text}\x00{tools_key or ''}".encode()).hexdigest()[:32]


def request_hash(messages: Iterable[dict[str, Any]], tools: Any = None) -> str:
    """A hash of the request that ignores whitespace and call ids.

    Two captured calls with the same roles, texts and tool calls (whitespace anywhere ignored,
    including inside tool-call arguments) and the same tools hash the same, whatever ids the
    framework gave the calls.

    Args:
        messages: OpenAI-format messages.
        tools: The tools list, or any stable identifier of it (e.g. ``calls.tools_hash``).

    Example:
        >>> a = request_hash([{"role": "user", "content": "hi  there\\n"}], "t1")
        >>> a == request_hash([{"role": "user", "content": "hi there"}], "t1")
        True
        >>> a == request_hash([{"role": "user", "content": "hi there"}], "t2")
        False
    """
    tools_key = tools if isinstance(tools, str) or tools is None else json.dumps(tools, sort_keys=True)
    text = json.dumps(list(messages or []), ensure_ascii=False, separators=(",", ":"), default=str)
    return request_key(text, tools_key)


def estimate_tokens(messages: Iterable[dict[str, Any]], answer: dict[str, Any] | None = None) -> int:
    """A rough token count (characters / 4, plus 4 per message) for length limits.

    Example:
        >>> estimate_tokens([{"role": "user", "content": "x" * 40}])
        14
    """
    chars = 0
    count = 0
    for m in [*(messages or []), *([answer] if answer else [])]:
        count += 1
        if isinstance(m, dict):
            chars += len(text_of(m.get("content")))
            for c in m.get("tool_calls") or []:
                fn = c.get("function", c) if isinstance(c, dict) else {}
                args = fn.get("arguments")
                chars += len(fn.get("name") or "") + len(args if isinstance(args, str) else json.dumps(args))
    return chars // 4 + 4 * count


def answer_message(content: Any, tool_calls: Any) -> dict[str, Any]:
    """The assistant message of a captured answer, tool-call arguments as JSON strings."""
    calls = []
    for i, c in enumerate(tool_calls or []):
        if not isinstance(c, dict):
            continue
        fn = c.get("function", c)
        args = fn.get("arguments", {})
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        calls.append({"id": c.get("id") or f"call_{i}", "type": "function",
                      "function": {"name": fn.get("name"), "arguments": args}})
    message: dict[str, Any] = {"role": "assistant", "content": content if content else None}
    if calls:
        message["tool_calls"] = calls
    return message


def called_tools(tool_calls_json: str | None) -> list[str]:
    """Tool names in a raw ``calls.tool_calls`` column, without decoding it.

    Example:
        >>> called_tools('[{"id":"c1","type":"function","function":{"name":"add","arguments":"{\\\\"name\\\\":1}"}}]')
        ['add']
    """
    if not tool_calls_json:
        return []
    return _NAME.findall(tool_calls_json)


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out
