"""JSON Schema to GBNF (llama.cpp's grammar format).

One :class:`GrammarBuilder` turns JSON schemas into GBNF rules that accept exactly the JSON values
the schema allows, written in one canonical layout: ``{"key": value, "other": [1, 2]}`` (a space
after ``:`` and ``,``, nothing else). A fixed layout keeps generations short and lets the stream
parser find where arguments end. Keywords the grammar cannot express (``pattern``, ``minimum``,
``multipleOf`` …) are left to the JSON-schema validation that follows every parse.

Example:
    >>> b = GrammarBuilder()
    >>> b.root(b.value({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}))
    >>> "root ::=" in b.render()
    True
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest

__all__ = ["GrammarBuilder", "GrammarLimits", "literal"]


@dataclass(frozen=True)
class GrammarLimits:
    """Caps for what a schema leaves unbounded, so a looping model cannot fill ``max_tokens``.

    A schema's own ``maxLength``/``maxItems`` always win; these apply where it sets none.

    Attributes:
        max_string: Characters in a string without ``maxLength``.
        max_items: Items in an array (and keys in a free-form object) without ``maxItems``.
    """

    max_string: int = 512
    max_items: int = 64

    def __post_init__(self) -> None:
        for name in ("max_string", "max_items"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequest(f"grammar limit {name} must be a positive integer, got {value!r}")


_PRIMITIVES = {  # bodies are str.format templates over GrammarLimits (more = max_items - 1)
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{{4}})',
    "string": '"\\"" char{{0,{max_string}}} "\\""',
    "integer": '"-"? ([0-9] | [1-9] [0-9]{{1,15}})',
    "number": 'integer ("." [0-9]{{1,16}})? ([eE] [-+]? [0-9]{{1,4}})?',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{{" ( string ": " value ( ", " string ": " value ){{0,{more}}} )? "}}"',
    "array": '"[" ( value ( ", " value ){{0,{more}}} )? "]"',
}
_DEPENDS = {
    "string": ["char"],
    "number": ["integer"],
    "value": ["object", "array", "string", "number", "boolean", "null"],
    "object": ["string", "value"],
    "array": ["value"],
}


def literal(text: str) -> str:
    """Quote ``text`` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _json_literal(value: Any) -> str:
    return literal(json.dumps(value, ensure_ascii=False))


class GrammarBuilder:
    """Accumulates named GBNF rules; shared primitives are emitted once."""

    def __init__(self, limits: GrammarLimits | None = None) -> None:
        self.limits = limits or GrammarLimits()
        self._rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self._defs: dict[str, Any] = {}
        self._ref_rules: dict[str, str] = {}

    # -- public -------------------------------------------------------------------------------
    def root(self, body: str) -> None:
        """Set the ``root`` rule."""
        self._rules["root"] = body

    def rule(self, hint: str, body: str) -> str:
        """Add a rule (deduplicated by body) and return its name."""
        if body in self._by_body:
            return self._by_body[body]
        name = self._fresh(hint)
        self._rules[name] = body
        self._by_body[body] = name
        return name

    def value(self, schema: Any, hint: str = "v") -> str:
        """Return a GBNF expression that matches JSON values valid under ``schema``."""
        # ``$ref`` resolves against this schema's own ``$defs``: two tools may both define "Item".
        self._defs, self._ref_rules = {}, {}
        if isinstance(schema, dict) and ("$defs" in schema or "definitions" in schema):
            self._defs.update(schema.get("$defs", {}))
            self._defs.update(schema.get("definitions", {}))
        return self._visit(schema, hint, depth=0)

    def render(self) -> str:
        """The whole grammar, ``root`` first."""
        if "root" not in self._rules:
            raise InvalidRequest("grammar has no root rule; call GrammarBuilder.root() first")
        lines = [f"root ::= {self._rules['root']}"]
        lines += [f"{name} ::= {body}" for name, body in self._rules.items() if name != "root"]
        return "\n".join(lines) + "\n"

    # -- internals ----------------------------------------------------------------------------
    def _fresh(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9-]+", "-", hint).strip("-").lower() or "r"
        if base in _PRIMITIVES or base == "root":
            base = base + "-x"
        name, n = base, 1
        while name in self._rules:
            n += 1
            name = f"{base}-{n}"
        return name

    def _prim(self, name: str) -> str:
        if name not in self._rules:
            self._rules[name] = _PRIMITIVES[name].format(max_string=self.limits.max_string,
                                                         more=self.limits.max_items - 1)
            for dep in _DEPENDS.get(name, []):
                self._prim(dep)
        return name

    def _visit(self, schema: Any, hint: str, depth: int) -> str:
        if depth > 64:
            raise InvalidRequest("JSON schema nests deeper than 64 levels; simplify the tool schema")
        if schema is True or schema == {} or schema is None:
            return self._prim("value")
        if schema is False:
            raise InvalidRequest(f"schema at '{hint}' is `false`, so no value can match it")
        if not isinstance(schema, dict):
            raise InvalidRequest(f"schema at '{hint}' must be an object, got {type(schema).__name__}")

        if "$ref" in schema:
            return self._ref(schema["$ref"], depth)
        if "const" in schema:
            return _json_literal(schema["const"])
        if "enum" in schema:
            options = schema["enum"]
            if not options:
                raise InvalidRequest(f"schema at '{hint}' has an empty enum")
            return "(" + " | ".join(_json_literal(v) for v in options) + ")"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                alts = [self._visit(s, f"{hint}-{i}", depth + 1) for i, s in enumerate(schema[key])]
                return "(" + " | ".join(alts) + ")"
        if "allOf" in schema:
            merged = _merge_all_of(schema)
            return self._visit(merged, hint, depth + 1)

        typ = schema.get("type")
        if isinstance(typ, list):
            alts = [self._visit({**schema, "type": t}, f"{hint}-{t}", depth + 1) for t in typ]
            return "(" + " | ".join(alts) + ")"
        if typ is None:
            if "properties" in schema:
                typ = "object"
            elif "items" in schema:
                typ = "array"
            else:
                return self._prim("value")
        if typ == "string":
            return self._string(schema, hint)
        if typ in ("integer", "number", "boolean", "null"):
            return self._prim(typ)
        if typ == "object":
            return self._object(schema, hint, depth)
        if typ == "array":
            return self._array(schema, hint, depth)
        raise InvalidRequest(f"schema at '{hint}' has unsupported type {typ!r}")

    def _ref(self, ref: str, depth: int) -> str:
        if ref in self._ref_rules:
            return self._ref_rules[ref]
        match = re.fullmatch(r"#/(\$defs|definitions)/(.+)", ref)
        if not match or match.group(2) not in self._defs:
            raise InvalidRequest(f"cannot resolve $ref {ref!r}; only local '#/$defs/…' references are supported")
        key = match.group(2)
        name = self._fresh(f"def-{key}")
        self._ref_rules[ref] = name
        self._rules[name] = "(placeholder)"  # reserve the name; recursion may refer to it
        self._rules[name] = self._visit(self._defs[key], name, depth + 1)
        return name

    def _string(self, schema: dict[str, Any], hint: str) -> str:
        lo = int(schema.get("minLength", 0))
        hi = schema.get("maxLength")
        if lo == 0 and hi is None:
            return self._prim("string")
        hi = max(lo, self.limits.max_string) if hi is None else int(hi)
        if hi < lo:  # llama.cpp's grammar parser never returns on x{5,2}
            raise InvalidRequest(f"schema at '{hint}' has maxLength < minLength")
        self._prim("char")
        reps = f"{{{lo},{hi}}}"
        return self.rule(f"{hint}-str", f'"\\"" char{reps} "\\""')

    def _array(self, schema: dict[str, Any], hint: str, depth: int) -> str:
        items = schema.get("items", {})
        item = self._visit(items, f"{hint}-item", depth + 1)
        lo = int(schema.get("minItems", 0))
        hi = schema.get("maxItems")
        hi = max(lo, self.limits.max_items) if hi is None else int(hi)
        if hi < lo:
            raise InvalidRequest(f"schema at '{hint}' has maxItems < minItems")
        if hi == 0:
            return '"[]"'
        tail = f'( ", " {item} ){{{max(lo - 1, 0)},{hi - 1}}}'
        body = f'"[" {item} {tail} "]"' if lo >= 1 else f'"[" ( {item} {tail} )? "]"'
        return self.rule(f"{hint}-arr", body)

    def _object(self, schema: dict[str, Any], hint: str, depth: int) -> str:
        props: dict[str, Any] = schema.get("properties") or {}
        if not props:
            extra = schema.get("additionalProperties", True)
            # An explicit empty ``properties`` (a tool without arguments) admits only {}, as listed
            # properties admit only themselves below; a bare {"type": "object"} admits any object.
            if extra is False or ("properties" in schema and "additionalProperties" not in schema):
                return '"{}"'
            return self._prim("object")
        required = [k for k in props if k in set(schema.get("required", []))]
        optional = [k for k in props if k not in required]
        pieces: dict[str, str] = {}
        for key in props:
            sub = self._visit(props[key], f"{hint}-{key}", depth + 1)
            pieces[key] = f'{_json_literal(key)} ": " {sub}'
        if required:
            body = ' ", " '.join(pieces[k] for k in required)
            body += "".join(f' ( ", " {pieces[k]} )?' for k in optional)
            return self.rule(f"{hint}-obj", f'"{{" {body} "}}"')
        # Nothing required: any ordered subset of the optional keys, the empty one included.
        alts = []
        for i, key in enumerate(optional):
            rest = "".join(f' ( ", " {pieces[k]} )?' for k in optional[i + 1 :])
            alts.append(pieces[key] + rest)
        return self.rule(f"{hint}-obj", '"{" ( ' + " | ".join(alts) + ' )? "}"')


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged.setdefault("properties", {}).update(value)
            elif key == "required":
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
            else:
                merged.setdefault(key, value)
    return merged
