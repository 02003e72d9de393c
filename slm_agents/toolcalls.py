"""Tool specs, ``tool_choice``, the tool-call grammar, parsing and validation.

Everything here works on OpenAI chat-format dicts. Local models write tool calls in one format,
the Hermes/Qwen one, which many small models were trained on::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

:func:`tool_call_grammar` builds a GBNF grammar that only admits calls in that format, naming a
bound tool, with arguments valid under that tool's JSON schema; :func:`parse_tool_calls` reads
them back; :func:`validate_tool_call` says precisely what is wrong with a call from any source
(the escalation policy uses it on every SLM answer).

Example:
    >>> tools = normalize_tools([{"name": "add", "parameters": {"type": "object",
    ...     "properties": {"a": {"type": "integer"}}, "required": ["a"]}}])
    >>> calls, invalid = parse_tool_calls(
    ...     '<tool_call>\\n{"name": "add", "arguments": {"a": 2}}\\n</tool_call>', tools)
    >>> calls[0]["function"]["name"], calls[0]["function"]["arguments"], invalid
    ('add', '{"a": 2}', [])
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from ._gbnf import GrammarBuilder, GrammarLimits, literal
from .errors import InvalidRequest, ToolCallError
from .types import ToolCallDelta

__all__ = [
    "ToolChoice",
    "GrammarLimits",
    "normalize_tools",
    "normalize_tool_choice",
    "tool_call_grammar",
    "json_grammar",
    "parse_tool_calls",
    "validate_tool_call",
    "diagnose_tool_call",
    "invalid_call",
    "ToolCallFault",
    "FAULT_KINDS",
    "check_tool_call",
    "new_call_id",
    "tools_system_prompt",
    "format_tool_calls",
    "ToolCallStreamParser",
    "CALL_OPEN",
    "CALL_CLOSE",
    "react_grammars",
    "REACT_CALL_HEAD",
    "REACT_ANSWER_HEAD",
]

CALL_OPEN = "<tool_call>\n"
CALL_CLOSE = "\n</tool_call>"
_NAME_PREFIX = '{"name": "'
_ARGS_PREFIX = '", "arguments": '
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_OPEN_RE = re.compile(r"<tool_call>\s*")
_JSON_DECODER = json.JSONDecoder()
MAX_PARALLEL_CALLS = 8

_EMPTY_PARAMS: dict[str, Any] = {"type": "object", "properties": {}}


# --- tool specs ---------------------------------------------------------------------------------
def normalize_tools(tools: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Bring tool specs to OpenAI's ``{"type": "function", "function": {...}}`` shape.

    Accepts OpenAI tool dicts, bare function dicts (``{"name", "description", "parameters"}``)
    and Anthropic-style dicts (``{"name", "input_schema"}``).

    Raises:
        InvalidRequest: a tool has no valid name, two tools share a name, or parameters are
            not an object schema.
    """
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, dict):
            raise InvalidRequest(
                f"tool #{i} is a {type(tool).__name__}; pass OpenAI-format dicts "
                "(the LangChain and LlamaIndex faces convert their tool types for you)"
            )
        fn = tool.get("function", tool) if tool.get("type", "function") == "function" else None
        if fn is None:
            raise InvalidRequest(f"tool #{i} has type {tool.get('type')!r}; only 'function' tools are supported")
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InvalidRequest(
                f"tool #{i} has name {name!r}; use 1-64 letters, digits, '_', '.' or '-'"
            )
        if name in seen:
            raise InvalidRequest(f"two tools are named {name!r}; tool names must be unique")
        seen.add(name)
        params = fn.get("parameters", fn.get("input_schema")) or _EMPTY_PARAMS
        if not isinstance(params, dict) or params.get("type", "object") != "object":
            raise InvalidRequest(f"tool {name!r}: parameters must be a JSON schema of type 'object'")
        spec: dict[str, Any] = {"name": name, "description": fn.get("description") or "", "parameters": params}
        out.append({"type": "function", "function": spec})
    return out


def _tool_map(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"] for t in tools}


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """A normalised ``tool_choice``.

    Attributes:
        mode: ``"none"`` (no call), ``"auto"`` (text or calls), ``"required"`` (at least one call).
        name: With ``required``, the one tool that must be called; None for any tool.
    """

    mode: Literal["none", "auto", "required"]
    name: str | None = None

    @property
    def forces_call(self) -> bool:
        return self.mode == "required"


def normalize_tool_choice(tool_choice: Any, tools: list[dict[str, Any]]) -> ToolChoice:
    """Read every spelling of ``tool_choice`` that OpenAI, LangChain and LlamaIndex use.

    ``None`` means ``"auto"`` with tools and ``"none"`` without; ``"any"``/``"required"``/``True``
    force some call; a tool name or ``{"type": "function", "function": {"name": ...}}`` forces
    that tool.

    Raises:
        InvalidRequest: unknown spelling, or a tool name that is not bound.
    """
    names = [t["function"]["name"] for t in tools]
    if tool_choice is None:
        return ToolChoice("auto" if tools else "none")
    if tool_choice is False or tool_choice == "none":
        return ToolChoice("none")
    name: str | None = None
    mode: Literal["auto", "required"]
    if tool_choice is True or tool_choice in ("any", "required"):
        mode = "required"
    elif tool_choice == "auto":
        mode = "auto"
    elif isinstance(tool_choice, str):
        mode, name = "required", tool_choice
    elif isinstance(tool_choice, dict):
        fn = tool_choice.get("function", tool_choice)
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise InvalidRequest(
                f"tool_choice {tool_choice!r} names no tool; use {{'type': 'function', 'function': {{'name': ...}}}}"
            )
        mode = "required"
    else:
        raise InvalidRequest(
            f"tool_choice {tool_choice!r} is not understood; use 'auto', 'none', 'required', 'any' or a tool name"
        )
    if mode != "none" and not tools:
        raise InvalidRequest(f"tool_choice={tool_choice!r} needs tools; bind at least one tool")
    if name is not None and name not in names:
        raise InvalidRequest(f"tool_choice names {name!r}, which is not bound; bound tools: {', '.join(names)}")
    if mode == "required" and name is None and len(names) == 1 and tool_choice is True:
        name = names[0]
    return ToolChoice(mode, name)


# --- grammars -----------------------------------------------------------------------------------
def tool_call_grammar(
    tools: list[dict[str, Any]], choice: ToolChoice, *, parallel: bool = True, limits: GrammarLimits | None = None
) -> str | None:
    """GBNF admitting only well-formed calls of the bound tools, honouring ``choice``.

    Returns None for ``tool_choice="none"`` (free text; no call is ever parsed then).
    With ``"auto"`` the grammar also admits plain text, which may not begin with ``<``.
    ``limits`` caps strings and arrays the schemas leave unbounded (default: 512 characters, 64 items).
    """
    if choice.mode == "none" or not tools:
        return None
    return _tool_call_grammar_cached(_freeze(tools), choice, parallel, limits or GrammarLimits())


@lru_cache(maxsize=128)
def _tool_call_grammar_cached(frozen_tools: str, choice: ToolChoice, parallel: bool, limits: GrammarLimits) -> str:
    tools = json.loads(frozen_tools)
    builder = GrammarBuilder(limits)
    alts = []
    for fn in (t["function"] for t in tools):
        if choice.name is not None and fn["name"] != choice.name:
            continue
        args = builder.value(fn["parameters"], hint=f"{fn['name']}-args")
        head = literal(CALL_OPEN + _NAME_PREFIX + fn["name"] + _ARGS_PREFIX)
        alts.append(builder.rule(f"call-{fn['name']}", f'{head} {args} {literal("}" + CALL_CLOSE)}'))
    call = builder.rule("call", " | ".join(alts))
    calls = f'{call} ( "\\n" {call} ){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else call
    if choice.mode == "auto":
        builder.root(f"( {calls} ) | text")
        builder.rule("text", "[^<] .*")
    else:
        builder.root(calls)
    return builder.render()


#: How a ReAct step (LlamaIndex's ReActAgent format) that calls a tool begins, and one that answers.
REACT_CALL_HEAD = "Thought: I need to use a tool to help me answer the question.\nAction: "
REACT_ANSWER_HEAD = "Thought: I can answer without using any more tools.\nAnswer: "


def react_grammars(
    tools: list[dict[str, Any]], choice: ToolChoice, *, limits: GrammarLimits | None = None
) -> tuple[str, str]:
    """GBNF for the two kinds of ReAct step: ``(call, answer)``.

    A call is ``Thought: ...`` then ``Action: <a bound tool>`` and ``Action Input: <arguments valid
    under its schema>``; an answer is ``Thought: ...`` then ``Answer: <one line of text>``. The thought is
    fixed text: small models wander there, and the agent reads only the action or the answer.
    The answer is one line that does not open with ``[`` (small models copy the ReAct prompt's
    ``[your answer here]`` placeholder).

    Example:
        >>> call, answer = react_grammars(normalize_tools([{"name": "ping"}]), ToolChoice("auto"))
        >>> "Action Input: " in call and "ping" in call and "Answer: " in answer
        True
    """
    return _react_grammars_cached(_freeze(tools), choice, limits or GrammarLimits())


@lru_cache(maxsize=64)
def _react_grammars_cached(frozen_tools: str, choice: ToolChoice, limits: GrammarLimits) -> tuple[str, str]:
    builder = GrammarBuilder(limits)
    alts = []
    for fn in (t["function"] for t in json.loads(frozen_tools)):
        if choice.name is not None and fn["name"] != choice.name:
            continue
        args = builder.value(fn["parameters"], hint=f"{fn['name']}-args")
        alts.append(f"{literal(fn['name'] + chr(10) + 'Action Input: ')} {args}")
    builder.root(f"{literal(REACT_CALL_HEAD)} ( {' | '.join(alts)} )")
    return builder.render(), f"root ::= {literal(REACT_ANSWER_HEAD)} [^\\n\\[] [^\\n]*\n"


def json_grammar(schema: dict[str, Any] | None = None, *, limits: GrammarLimits | None = None) -> str:
    """GBNF for JSON mode (any JSON object) or for values valid under ``schema``."""
    return _json_grammar_cached(_freeze(schema) if schema is not None else None, limits or GrammarLimits())


@lru_cache(maxsize=64)
def _json_grammar_cached(frozen_schema: str | None, limits: GrammarLimits) -> str:
    builder = GrammarBuilder(limits)
    if frozen_schema is None:
        builder.root(builder.value({"type": "object"}))
    else:
        builder.root(builder.value(json.loads(frozen_schema), hint="out"))
    return builder.render()


def _freeze(value: Any) -> str:
    # Key order is kept: it fixes the order in which the grammar writes object properties.
    return json.dumps(value, ensure_ascii=False)


# --- prompts ------------------------------------------------------------------------------------
def tools_system_prompt(tools: list[dict[str, Any]]) -> str:
    """The instructions added to the system prompt for chat templates without tool support."""
    listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    # The text does not depend on tool_choice (the grammar enforces it), so steps with the same
    # tools share one prompt prefix and reuse its KV cache.
    return (
        "You can call these tools:\n<tools>\n"
        f"{listing}\n</tools>\n"
        "To call a tool, write its name and JSON arguments inside tags, like this:\n"
        f'{CALL_OPEN}{{"name": "tool_name", "arguments": {{"parameter": "value"}}}}{CALL_CLOSE}\n'
        "Otherwise answer in plain text.\n"
        "When a <tool_response> arrives, answer the user's question from it, in one sentence."
    )


def format_tool_calls(tool_calls: list[dict[str, Any]]) -> str:
    """Render an assistant message's OpenAI ``tool_calls`` back into the model's text format."""
    blocks = []
    for call in tool_calls:
        fn = call.get("function", call)
        args = fn.get("arguments", {})
        if isinstance(args, str):
            with contextlib.suppress(json.JSONDecodeError):
                args = json.loads(args) if args.strip() else {}
        body = json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
        blocks.append(f"{CALL_OPEN}{body}{CALL_CLOSE}")
    return "\n".join(blocks)


# --- parsing and validation ---------------------------------------------------------------------
def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's style (``call_`` + 24 hex digits)."""
    return "call_" + secrets.token_hex(12)


#: Why a tool call is invalid: the ``kind`` of each ``invalid_tool_calls`` entry a runtime reports.
#: ``malformed``: the call or its arguments do not parse as a JSON object; ``unknown_tool``: it
#: names a tool that is not bound; ``invalid_arguments``: the arguments fail the tool's JSON
#: schema; ``forbidden``: ``tool_choice`` rules the call out (``"none"``, or another tool forced).
FAULT_KINDS = ("malformed", "unknown_tool", "invalid_arguments", "forbidden")


@dataclass(frozen=True, slots=True)
class ToolCallFault:
    """What is wrong with one tool call: a :data:`FAULT_KINDS` kind and readable problems.

    Example:
        >>> tools = normalize_tools([{"name": "add", "parameters": {"type": "object"}}])
        >>> diagnose_tool_call("sub", {}, tools).kind
        'unknown_tool'
        >>> diagnose_tool_call("add", "{oops", tools).kind
        'malformed'
        >>> diagnose_tool_call("add", {}, tools) is None
        True
    """

    kind: str
    problems: tuple[str, ...]

    @property
    def message(self) -> str:
        return "; ".join(self.problems)


def diagnose_tool_call(name: str | None, arguments: Any, tools: list[dict[str, Any]]) -> ToolCallFault | None:
    """The fault of one call (None when it is valid).

    Checks that the tool is bound, the arguments are a JSON object (or a JSON string of one), and
    that they satisfy the tool's JSON schema: types, required keys, enums, nesting, and whatever
    else JSON Schema says.
    """
    by_name = _tool_map(tools)
    if not name or name not in by_name:
        known = ", ".join(by_name) or "none"
        return ToolCallFault("unknown_tool", (f"unknown tool {name!r} (bound tools: {known})",))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            return ToolCallFault("malformed", (f"arguments are not valid JSON: {e.msg} at position {e.pos}",))
    if not isinstance(arguments, dict):
        return ToolCallFault("malformed", (f"arguments must be a JSON object, got {type(arguments).__name__}",))
    validator = _validator(_freeze(by_name[name]["parameters"]))
    problems = []
    for err in sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        problems.append(f"{where}: {err.message}")
    return ToolCallFault("invalid_arguments", tuple(problems)) if problems else None


def validate_tool_call(name: str | None, arguments: Any, tools: list[dict[str, Any]]) -> list[str]:
    """Every problem with one call, as readable sentences; an empty list means it is valid.

    :func:`diagnose_tool_call` says the same with the kind of fault, for code that reacts to it.
    """
    fault = diagnose_tool_call(name, arguments, tools)
    return list(fault.problems) if fault is not None else []


def invalid_call(call_id: str, name: str | None, arguments: Any, fault: ToolCallFault) -> dict[str, Any]:
    """An ``invalid_tool_calls`` entry: ``{"id", "name", "arguments", "error", "kind"}``."""
    return {"id": call_id, "name": name, "arguments": arguments, "error": fault.message, "kind": fault.kind}


def check_tool_call(name: str | None, arguments: Any, tools: list[dict[str, Any]]) -> None:
    """Raise :class:`ToolCallError` when :func:`validate_tool_call` finds problems."""
    problems = validate_tool_call(name, arguments, tools)
    if problems:
        raise ToolCallError(
            f"tool call to {name!r} is invalid: " + "; ".join(problems), tool_name=name, problems=problems
        )


@lru_cache(maxsize=256)
def _validator(frozen_schema: str) -> Any:
    import jsonschema

    schema = json.loads(frozen_schema)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def parse_tool_calls(
    text: str, tools: list[dict[str, Any]], *, ids: list[str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read ``<tool_call>`` blocks out of ``text``.

    Args:
        text: Model output.
        tools: The bound tools (normalised), to validate against.
        ids: Ids to give the calls in order (a stream parser hands out ids before the end);
            fresh ids are made for the rest.

    Returns:
        ``(valid, invalid)``: valid calls in OpenAI format, and invalid ones as
        ``{"id", "name", "arguments", "error", "kind"}`` (arguments as the raw string, ``kind``
        one of :data:`FAULT_KINDS`).
    """
    valid: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    ids = list(ids or [])
    for i, raw in enumerate(_call_blocks(text)):
        call_id = ids[i] if i < len(ids) else new_call_id()
        name, args, error = _decode_call(raw)
        fault = ToolCallFault("malformed", (error,)) if error is not None else diagnose_tool_call(name, args, tools)
        if fault is None:
            arguments = json.dumps(args, ensure_ascii=False)
            valid.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        else:
            raw_args = json.dumps(args, ensure_ascii=False) if args is not None else raw
            invalid.append(invalid_call(call_id, name, raw_args, fault))
    return valid, invalid


def _call_blocks(text: str) -> Iterator[str]:
    """The raw JSON of each ``<tool_call>`` block in ``text``.

    A block ends where its JSON value ends, so a string argument may itself contain
    ``</tool_call>`` (the grammar allows it); a block whose JSON does not parse runs to its
    closing tag, or to the end of the text.
    """
    pos = 0
    while (match := _OPEN_RE.search(text, pos)) is not None:
        start = match.end()
        try:
            _, end = _JSON_DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            close = text.find("</tool_call>", start)
            end = close if close >= 0 else len(text)
            yield text[start:end].rstrip()
        else:
            yield text[start:end]
        pos = end


def _decode_call(raw: str) -> tuple[str | None, Any, str | None]:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        return None, None, f"tool call is not valid JSON: {e.msg} at position {e.pos}"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None, None, 'tool call must be a JSON object with a string "name"'
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return obj["name"], args, "arguments are a string that is not JSON"
    return obj["name"], args, None


# --- streaming ----------------------------------------------------------------------------------
@dataclass
class ToolCallStreamParser:
    """Turns the growing text of a grammar-constrained answer into text and tool-call deltas.

    Feed it each text delta; it returns the text to show and :class:`ToolCallDelta` s in OpenAI's
    streaming shape (id and name once, then argument fragments). It expects the canonical layout
    :func:`tool_call_grammar` enforces; :func:`parse_tool_calls` on the whole text stays the
    authority, and :attr:`ids` keeps the ids handed out so both agree.

    Example:
        >>> p = ToolCallStreamParser()
        >>> text, deltas = p.feed('<tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>')
        >>> [(d.name, d.arguments) for d in deltas]
        [('f', ''), (None, '{"x": 1}')]
    """

    ids: list[str] = field(default_factory=list)
    _buf: str = ""
    _pos: int = 0
    _count: int = 0
    _mode: str = "start"  # start | text | open | name | args | close | broken
    _depth: int = 0
    _in_str: bool = False
    _esc: bool = False

    def feed(self, delta: str) -> tuple[str, list[ToolCallDelta]]:
        """Take the next piece of the answer; return the text to show and the tool-call deltas.

        Each mode has one step (:meth:`_start`, :meth:`_literal` for the fixed text around a call,
        :meth:`_name`, :meth:`_arguments`); a step consumes what it can and says whether the
        parser can go on with the rest now or must wait for more text.
        """
        self._buf += delta
        deltas: list[ToolCallDelta] = []
        while True:
            rest = self._buf[self._pos :]
            if self._mode == "text":  # not a tool call: everything is text from here on
                self._pos = len(self._buf)
                return rest, deltas
            if self._mode == "broken" or not rest:
                return "", deltas
            step = self._start if self._mode == "start" else self._name if self._mode == "name" else \
                self._arguments if self._mode == "args" else self._literal
            if not step(rest, deltas):
                return "", deltas

    def _start(self, rest: str, deltas: list[ToolCallDelta]) -> bool:
        """The answer's first characters: a tool call (mode ``open``) or text (mode ``text``)."""
        lead = rest.lstrip()
        if lead.startswith(CALL_OPEN):
            self._pos += len(rest) - len(lead)
            self._mode = "open"
        elif not lead or CALL_OPEN.startswith(lead):
            return False  # may still become a tool call
        else:
            self._mode = "text"
        return True

    def _literal(self, rest: str, deltas: list[ToolCallDelta]) -> bool:
        """The fixed text before a call's name (mode ``open``) or after its arguments (``close``)."""
        if self._mode == "open" and rest.startswith("\n"):
            self._pos += 1  # the newline between two calls
            return True
        expected = CALL_OPEN + _NAME_PREFIX if self._mode == "open" else "}" + CALL_CLOSE
        if len(rest) < len(expected):
            if not expected.startswith(rest):
                self._mode = "broken"
            return False
        if not rest.startswith(expected):
            self._mode = "broken"
            return False
        self._pos += len(expected)
        self._mode = "name" if self._mode == "open" else "open"
        return True

    def _name(self, rest: str, deltas: list[ToolCallDelta]) -> bool:
        """The tool's name: once it is whole, a delta with the call's id and name."""
        end = rest.find('"')
        if end < 0:
            return False
        if not rest[end:].startswith(_ARGS_PREFIX):
            if len(rest) - end >= len(_ARGS_PREFIX):
                self._mode = "broken"
            return False
        index = self._count
        if index >= len(self.ids):
            self.ids.append(new_call_id())
        self._count += 1
        deltas.append(ToolCallDelta(index=index, id=self.ids[index], name=rest[:end]))
        self._pos += end + len(_ARGS_PREFIX)
        self._mode, self._depth, self._in_str, self._esc = "args", 0, False, False
        return True

    def _arguments(self, rest: str, deltas: list[ToolCallDelta]) -> bool:
        """The arguments' JSON, passed on as it comes, up to the brace that closes it."""
        taken = 0
        done = False
        for ch in rest:
            taken += 1
            if self._in_str:
                if self._esc:
                    self._esc = False
                elif ch == "\\":
                    self._esc = True
                elif ch == '"':
                    self._in_str = False
            elif ch == '"':
                self._in_str = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth == 0:
                    done = True
                    break
        fragment = rest[:taken]
        if fragment:
            deltas.append(ToolCallDelta(index=self._count - 1, arguments=fragment))
        self._pos += taken
        if done:
            self._mode = "close"
        return done
