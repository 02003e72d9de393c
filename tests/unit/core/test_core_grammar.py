"""JSON schema -> GBNF (slm_agents._gbnf, tool_call_grammar, json_grammar), judged by llama.cpp itself.

Every grammar must be accepted by llama.cpp's GBNF parser (``llama_sampler_init_grammar`` is
non-NULL); for a few schemas, hand-picked strings are run through a real grammar sampler to pin
what is admitted and what is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from slm_agents._gbnf import GrammarBuilder, GrammarLimits, literal
from slm_agents.errors import InvalidRequest
from slm_agents.toolcalls import (
    CALL_CLOSE,
    CALL_OPEN,
    ToolChoice,
    json_grammar,
    normalize_tools,
    tool_call_grammar,
)

# pydantic 2 output for a self-referencing model, verbatim.
PYDANTIC_NODE = {
    "$defs": {
        "Node": {
            "properties": {
                "name": {"title": "Name", "type": "string"},
                "children": {"default": [], "items": {"$ref": "#/$defs/Node"}, "title": "Children", "type": "array"},
                "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}], "default": None},
            },
            "required": ["name"],
            "title": "Node",
            "type": "object",
        }
    },
    "$ref": "#/$defs/Node",
}
PYDANTIC_WRAP = {
    "$defs": PYDANTIC_NODE["$defs"],
    "properties": {
        "root": {"$ref": "#/$defs/Node"},
        "kind": {"default": "a", "enum": ["a", "b"], "title": "Kind", "type": "string"},
    },
    "required": ["root"],
    "title": "Wrap",
    "type": "object",
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "empty-properties": {"type": "object", "properties": {}},
    "no-properties-closed": {"type": "object", "additionalProperties": False},
    "bare-object": {"type": "object"},
    "primitives": {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "z": {"type": "null"},
            "anything": {},
            "t": True,
        },
        "required": ["s", "i"],
    },
    "nested-objects": {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "object", "properties": {"c": {"type": "integer"}}}}}
        },
        "required": ["a"],
    },
    "array-of-objects": {
        "type": "object",
        "properties": {
            "rows": {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": "number"}},
                          "required": ["k"]},
                "minItems": 1,
                "maxItems": 4,
            }
        },
        "required": ["rows"],
    },
    "array-bounds": {
        "type": "object",
        "properties": {
            "exact2": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
            "none": {"type": "array", "maxItems": 0},
            "free": {"type": "array"},
            "untyped": {"items": {"type": "string"}},
        },
    },
    "enums": {
        "type": "object",
        "properties": {
            "mixed": {"enum": ["a", 1, 2.5, None, True, {"k": "v"}, [1]]},
            "strs": {"type": "string", "enum": ["x", "y"]},
        },
        "required": ["mixed"],
    },
    "const": {"type": "object", "properties": {"v": {"const": "fixed"}, "n": {"const": 3}}, "required": ["v"]},
    "any-one-of": {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "o": {"oneOf": [{"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
                            {"type": "array", "items": {"type": "string"}}]},
        },
    },
    "all-of": {
        "type": "object",
        "allOf": [
            {"properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
        ],
    },
    "type-lists-nullable": {
        "type": "object",
        "properties": {
            "sn": {"type": ["string", "null"]},
            "opt": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        },
        "required": ["sn"],
    },
    "optional-only": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
    "string-lengths": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 2, "maxLength": 3},
            "long": {"type": "string", "minLength": 1},
            "short": {"type": "string", "maxLength": 5},
        },
        "required": ["code"],
    },
    "additional-false": {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "required": ["x"],
        "additionalProperties": False,
    },
    "unicode": {
        "type": "object",
        "properties": {"città": {"type": "string", "enum": ["Zürich", "東京", "🌧 rain"]}, "日本": {"type": "integer"}},
        "required": ["città"],
    },
    "awkward-keys": {
        "type": "object",
        "properties": {'say "hi"': {"type": "string"}, "back\\slash": {"type": "integer"}, "new\nline": {"const": "\t"}},
        "required": ['say "hi"', "back\\slash"],
    },
    "defs-refs": {
        "type": "object",
        "definitions": {"Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                                  "required": ["x", "y"]}},
        "properties": {"p": {"$ref": "#/definitions/Point"}, "q": {"$ref": "#/definitions/Point"}},
        "required": ["p"],
    },
    "pydantic-recursive": PYDANTIC_NODE,
    "pydantic-wrap": PYDANTIC_WRAP,
    "implicit-object": {"properties": {"a": {"type": "string"}}, "required": ["a"]},
    "rule-name-clash": {
        "type": "object",
        "properties": {"string": {"type": "string", "maxLength": 3}, "root": {"type": "integer"}, "value": {}},
    },
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_json_grammar_parses_in_llama_cpp(name: str, grammar_parses: Callable[[str], bool]) -> None:
    grammar = json_grammar(SCHEMAS[name])
    assert grammar.startswith("root ::= ")
    assert grammar_parses(grammar), grammar


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("mode", ["auto", "required"])
def test_tool_call_grammar_over_every_schema_parses(
    mode: str, parallel: bool, grammar_parses: Callable[[str], bool]
) -> None:
    tools = normalize_tools([{"name": f"t_{n.replace('-', '_')}", "parameters": s} for n, s in SCHEMAS.items()])
    grammar = tool_call_grammar(tools, ToolChoice(mode), parallel=parallel)  # type: ignore[arg-type]
    assert grammar is not None
    assert grammar_parses(grammar)
    assert len(re.findall(r"^call-t-", grammar, flags=re.M)) == len(SCHEMAS)


def test_json_mode_grammar_parses(grammar_parses: Callable[[str], bool]) -> None:
    assert grammar_parses(json_grammar())


def test_rule_names_are_valid_and_unique() -> None:
    grammar = tool_call_grammar(
        normalize_tools([{"name": f"t{i}", "parameters": s} for i, s in enumerate(SCHEMAS.values())]),
        ToolChoice("required"),
    )
    assert grammar is not None
    names = [line.split(" ::= ")[0] for line in grammar.splitlines()]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9-]+", n) for n in names)


# --- errors -------------------------------------------------------------------------------------
def test_false_schema_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="is `false`"):
        json_grammar({"type": "object", "properties": {"never": False}, "required": ["never"]})


def test_unresolvable_ref_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="cannot resolve \\$ref '#/\\$defs/Missing'"):
        json_grammar({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}})
    with pytest.raises(InvalidRequest, match="cannot resolve"):
        json_grammar({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}})


def test_empty_enum_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="empty enum"):
        json_grammar({"type": "object", "properties": {"e": {"enum": []}}})


def test_too_deep_schema_is_rejected() -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(70):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    with pytest.raises(InvalidRequest, match="deeper than 64"):
        json_grammar(schema)


def test_moderately_deep_schema_is_fine(grammar_parses: Callable[[str], bool]) -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    assert grammar_parses(json_grammar(schema))


@pytest.mark.parametrize("bad", [{"type": "date"}, {"type": "object", "properties": {"a": "string"}}])
def test_unsupported_schemas_are_rejected(bad: dict) -> None:
    with pytest.raises(InvalidRequest, match="schema at"):
        json_grammar(bad)


def test_max_items_below_min_items_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="maxItems < minItems"):
        json_grammar({"type": "array", "minItems": 3, "maxItems": 1})


def test_string_max_length_below_min_length_is_rejected() -> None:
    # llama.cpp's parser never returns on ``char{5,2}``: this must be caught before it gets there
    with pytest.raises(InvalidRequest, match="maxLength < minLength"):
        json_grammar({"type": "object", "properties": {"s": {"type": "string", "minLength": 5, "maxLength": 2}}})


def test_long_minimums_without_maximums(grammar_parses: Callable[[str], bool],
                                        grammar_accepts: Callable[[str, str], bool]) -> None:
    essay = {"type": "string", "minLength": 600}
    grammar = json_grammar(essay)
    assert grammar_parses(grammar)  # used to be char{600,512}, on which llama.cpp hangs
    assert grammar_accepts(grammar, json.dumps("ab" * 300))
    assert not grammar_accepts(grammar, json.dumps("ab" * 299))
    assert grammar_parses(json_grammar({"type": "array", "items": {"type": "integer"}, "minItems": 70}))


def test_render_needs_root() -> None:
    with pytest.raises(InvalidRequest, match="no root rule"):
        GrammarBuilder().render()


def test_literal_escapes() -> None:
    assert literal('a"b\\c\nd\te\x01\x7f') == '"a\\"b\\\\c\\nd\\te\\x01\\x7F"'


# --- tool_call_grammar shape --------------------------------------------------------------------
TOOLS = normalize_tools(
    [
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                               "required": ["city"]}},
        {"name": "ping"},
    ]
)


def test_tool_choice_none_has_no_grammar() -> None:
    assert tool_call_grammar(TOOLS, ToolChoice("none")) is None
    assert tool_call_grammar([], ToolChoice("required")) is None


def test_named_choice_only_includes_that_tool() -> None:
    grammar = tool_call_grammar(TOOLS, ToolChoice("required", "ping"))
    assert grammar is not None
    assert "call-ping ::=" in grammar
    assert "get_weather" not in grammar and "call-get-weather" not in grammar
    assert "text ::=" not in grammar


def test_auto_admits_text_required_does_not() -> None:
    auto = tool_call_grammar(TOOLS, ToolChoice("auto"))
    required = tool_call_grammar(TOOLS, ToolChoice("required"))
    assert auto is not None and "text ::=" in auto
    assert required is not None and "text ::=" not in required


def test_tools_with_same_def_names_keep_their_own_definitions() -> None:
    """Two tools may each define ``$defs/Item``; each call must use its own tool's Item."""

    def tool(name: str, item: dict) -> dict:
        return {"name": name, "parameters": {"type": "object", "$defs": {"Item": item},
                                             "properties": {"item": {"$ref": "#/$defs/Item"}}, "required": ["item"]}}

    a = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    b = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    grammar = tool_call_grammar(normalize_tools([tool("a", a), tool("b", b)]), ToolChoice("required"))
    assert grammar is not None
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())

    def expand(rule: str, seen: set[str]) -> str:
        body = rules[rule]
        for ref in set(re.findall(r"\b[a-z][a-z0-9-]*\b", body)) - seen:
            if ref in rules:
                body += " " + expand(ref, seen | {ref})
        return body

    assert '\\"label\\"' in expand("call-b", {"call-b"})
    assert '\\"x\\"' not in expand("call-b", {"call-b"})
    assert '\\"x\\"' in expand("call-a", {"call-a"})


# --- acceptance by a real grammar sampler -------------------------------------------------------
def compact(value: Any) -> str:
    """The canonical layout the grammar writes: ', ' and ': ' separators."""
    return json.dumps(value, ensure_ascii=False)


ACCEPTANCE = [
    (
        SCHEMAS["additional-false"],
        [compact({"x": 1}), compact({"x": -20})],
        ['{"x":1}', compact({"x": 1.5}), compact({"x": 1, "y": 2}), compact({}), compact({"x": "1"}), '{"x": 01}'],
    ),
    (
        {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]},
        [compact({"city": "Paris"}), compact({"city": "Zürich \\\" ok", "unit": "f"}), compact({"city": ""})],
        [compact({"unit": "c"}), compact({"city": "P", "unit": "k"}), compact({"unit": "c", "city": "P"}),
         '{"city": "a\nb"}', compact({"city": None})],
    ),
    (
        SCHEMAS["optional-only"],
        ["{}", compact({"b": 2}), compact({"a": 1, "b": 2}), compact({"a": 1})],
        [compact({"b": 2, "a": 1}), "{, }", compact({"c": 1})],
    ),
    (
        SCHEMAS["enums"],
        [compact({"mixed": None}), compact({"mixed": 2.5}), compact({"mixed": {"k": "v"}, "strs": "y"}),
         compact({"mixed": [1]})],
        [compact({"mixed": 3}), compact({"mixed": "b"}), compact({"mixed": "a", "strs": "z"})],
    ),
    (
        SCHEMAS["string-lengths"],
        [compact({"code": "ab"}), compact({"code": "abc", "long": "x", "short": ""}), compact({"code": "日本語"})],
        [compact({"code": "a"}), compact({"code": "abcd"}), compact({"code": "ab", "long": ""}),
         compact({"code": "ab", "short": "toolong"})],
    ),
    (
        SCHEMAS["array-of-objects"],
        [compact({"rows": [{"k": "a"}]}), compact({"rows": [{"k": "a", "v": 1.5e3}, {"k": "b"}, {"k": "c"}, {"k": "d"}]})],
        [compact({"rows": []}), compact({"rows": [{"k": str(i)} for i in range(5)]}), compact({"rows": [{"v": 1}]})],
    ),
    (
        PYDANTIC_NODE,
        [compact({"name": "r"}), compact({"name": "r", "children": [{"name": "c", "children": []}],
                                          "parent": {"name": "p", "parent": None}})],
        [compact({"children": []}), compact({"name": "r", "children": [{"children": []}]})],
    ),
    (
        SCHEMAS["type-lists-nullable"],
        [compact({"sn": None}), compact({"sn": "s", "opt": 3}), compact({"sn": "s", "opt": None})],
        [compact({"sn": 1}), compact({"opt": 1})],
    ),
    (
        SCHEMAS["awkward-keys"],
        [compact({'say "hi"': "x", "back\\slash": 1}), compact({'say "hi"': "", "back\\slash": 0, "new\nline": "\t"})],
        [compact({'say "hi"': "x"}), compact({"say hi": "x", "back\\slash": 1})],
    ),
    (
        SCHEMAS["all-of"],
        [compact({"a": "s", "b": 1})],
        [compact({"a": "s"}), compact({"b": 1})],
    ),
]


@pytest.mark.parametrize(("schema", "good", "bad"), ACCEPTANCE)
def test_grammar_admits_valid_and_only_valid_json(
    schema: dict, good: list[str], bad: list[str], grammar_accepts: Callable[[str, str], bool]
) -> None:
    import jsonschema

    grammar = json_grammar(schema)
    for text in good:
        jsonschema.validate(json.loads(text), schema)  # the hand-picked "good" strings really are valid
        assert grammar_accepts(grammar, text), f"rejected valid {text!r}"
    for text in bad:
        assert not grammar_accepts(grammar, text), f"admitted {text!r}"


def test_json_mode_admits_objects_only(grammar_accepts: Callable[[str, str], bool]) -> None:
    grammar = json_grammar()
    assert grammar_accepts(grammar, compact({"a": [1, {"b": None}], "c": "d"}))
    assert grammar_accepts(grammar, "{}")
    assert not grammar_accepts(grammar, "[1]")
    assert not grammar_accepts(grammar, '"text"')


def call_text(name: str, arguments: dict) -> str:
    return CALL_OPEN + compact({"name": name, "arguments": arguments}) + CALL_CLOSE


def test_tool_call_grammar_acceptance(grammar_accepts: Callable[[str, str], bool]) -> None:
    weather = call_text("get_weather", {"city": "Paris"})
    ping = call_text("ping", {})
    required = tool_call_grammar(TOOLS, ToolChoice("required"))
    single = tool_call_grammar(TOOLS, ToolChoice("required"), parallel=False)
    named = tool_call_grammar(TOOLS, ToolChoice("required", "ping"))
    auto = tool_call_grammar(TOOLS, ToolChoice("auto"), parallel=False)
    assert required and single and named and auto
    assert grammar_accepts(required, weather)
    assert grammar_accepts(required, weather + "\n" + ping)
    assert not grammar_accepts(required, "It is sunny.")
    assert not grammar_accepts(required, call_text("get_weather", {}))
    assert not grammar_accepts(required, call_text("launch", {}))
    assert grammar_accepts(single, weather)
    assert not grammar_accepts(single, weather + "\n" + ping)
    assert grammar_accepts(named, ping)
    assert not grammar_accepts(named, weather)
    assert grammar_accepts(auto, ping)
    assert grammar_accepts(auto, "It is sunny in Paris.")
    assert not grammar_accepts(auto, "<b>bold</b>")


def test_parallel_calls_are_capped_at_eight(grammar_accepts: Callable[[str, str], bool]) -> None:
    grammar = tool_call_grammar(TOOLS, ToolChoice("required"))
    assert grammar is not None
    ping = call_text("ping", {})
    assert grammar_accepts(grammar, "\n".join([ping] * 8))
    assert not grammar_accepts(grammar, "\n".join([ping] * 9))


def test_grammar_limits_cap_what_the_schema_leaves_unbounded(grammar_parses: Callable[[str], bool],
                                                             grammar_accepts: Callable[[str, str], bool]) -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "integer"}},
                                               "note": {"type": "string"}, "any": {}}, "required": ["tags"]}
    small = GrammarLimits(max_string=5, max_items=3)
    grammar = json_grammar(schema, limits=small)
    assert grammar_parses(grammar)
    assert grammar_accepts(grammar, '{"tags": [1, 2, 3], "note": "abcde", "any": ["x", "y", "z"]}')
    assert not grammar_accepts(grammar, '{"tags": [1, 2, 3, 4]}')
    assert not grammar_accepts(grammar, '{"tags": [], "note": "abcdef"}')
    assert not grammar_accepts(grammar, '{"tags": [], "any": ["x", "y", "z", "w"]}')  # free-form values too
    assert grammar_accepts(json_grammar(schema), '{"tags": [' + ", ".join(["1"] * 64) + "]}")  # default: 64
    assert not grammar_accepts(json_grammar(schema), '{"tags": [' + ", ".join(["1"] * 65) + "]}")


def test_a_schemas_own_bounds_win_over_the_grammar_limits(grammar_accepts: Callable[[str, str], bool]) -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "maxItems": 6}
    assert grammar_accepts(json_grammar(schema, limits=GrammarLimits(max_items=2)), "[1, 2, 3, 4, 5, 6]")


@pytest.mark.parametrize("bad", [{"max_items": 0}, {"max_string": -1}, {"max_items": True}, {"max_string": 2.5}])
def test_grammar_limits_must_be_positive_integers(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest, match="positive integer"):
        GrammarLimits(**bad)
