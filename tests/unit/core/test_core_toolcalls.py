"""Tool specs, tool_choice, validation, parsing and the streaming parser (slm_agents.toolcalls)."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slm_agents.errors import InvalidRequest, ToolCallError
from slm_agents.toolcalls import (
    CALL_CLOSE,
    CALL_OPEN,
    ToolCallStreamParser,
    ToolChoice,
    check_tool_call,
    format_tool_calls,
    normalize_tool_choice,
    normalize_tools,
    parse_tool_calls,
    validate_tool_call,
)

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}
ORDER_PARAMS = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "vip": {"type": "boolean"}},
            "required": ["name"],
        },
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["sku", "qty"],
            },
            "minItems": 1,
            "maxItems": 3,
        },
        "priority": {"enum": [1, 2, None]},
        "note": {"type": "string"},
    },
    "required": ["customer", "items"],
}


@pytest.fixture
def tools() -> list[dict]:
    return normalize_tools(
        [
            {"type": "function", "function": {"name": "get_weather", "description": "w", "parameters": WEATHER_PARAMS}},
            {"name": "place_order", "parameters": ORDER_PARAMS},
            {"name": "ping"},
            {"name": "meteo", "parameters": {"type": "object", "properties": {"ville": {"type": "string"}, "città": {"type": "string"}}}},
        ]
    )


def block(name: str, arguments: object) -> str:
    return CALL_OPEN + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + CALL_CLOSE


# --- normalize_tools ----------------------------------------------------------------------------
def test_normalize_tools_accepts_openai_bare_and_anthropic_shapes() -> None:
    out = normalize_tools(
        [
            {"type": "function", "function": {"name": "a", "description": "A", "parameters": WEATHER_PARAMS}},
            {"name": "b", "description": "B", "parameters": WEATHER_PARAMS},
            {"name": "c", "description": "C", "input_schema": WEATHER_PARAMS},
            {"name": "d"},
        ]
    )
    assert [t["type"] for t in out] == ["function"] * 4
    assert [t["function"]["name"] for t in out] == ["a", "b", "c", "d"]
    assert [t["function"]["description"] for t in out] == ["A", "B", "C", ""]
    assert out[2]["function"]["parameters"] == WEATHER_PARAMS
    assert out[3]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert normalize_tools(None) == [] and normalize_tools([]) == []


def test_normalize_tools_is_idempotent() -> None:
    once = normalize_tools([{"name": "b", "parameters": WEATHER_PARAMS}])
    assert normalize_tools(once) == once


@pytest.mark.parametrize("name", ["", "has space", "a" * 65, "semi;colon", None, 3, "日本"])
def test_normalize_tools_rejects_bad_names(name: object) -> None:
    with pytest.raises(InvalidRequest, match="1-64 letters"):
        normalize_tools([{"name": name}])


def test_normalize_tools_accepts_edge_names() -> None:
    names = ["a" * 64, "x.y-z_9", "A"]
    assert [t["function"]["name"] for t in normalize_tools([{"name": n} for n in names])] == names


def test_normalize_tools_rejects_duplicates() -> None:
    with pytest.raises(InvalidRequest, match="two tools are named 'f'"):
        normalize_tools([{"name": "f"}, {"type": "function", "function": {"name": "f"}}])


@pytest.mark.parametrize("params", [{"type": "array"}, {"type": "string"}, ["not", "a", "dict"]])
def test_normalize_tools_rejects_non_object_parameters(params: object) -> None:
    with pytest.raises(InvalidRequest, match="type 'object'"):
        normalize_tools([{"name": "f", "parameters": params}])


def test_normalize_tools_rejects_non_dicts_and_other_tool_types() -> None:
    with pytest.raises(InvalidRequest, match="OpenAI-format dicts"):
        normalize_tools(["get_weather"])  # type: ignore[list-item]
    with pytest.raises(InvalidRequest, match="only 'function' tools"):
        normalize_tools([{"type": "code_interpreter"}])


# --- normalize_tool_choice ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        (None, ToolChoice("auto")),
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        (False, ToolChoice("none")),
        ("any", ToolChoice("required")),
        ("required", ToolChoice("required")),
        (True, ToolChoice("required")),  # several tools bound: any of them
        ("ping", ToolChoice("required", "ping")),
        ({"type": "function", "function": {"name": "ping"}}, ToolChoice("required", "ping")),
        ({"name": "get_weather"}, ToolChoice("required", "get_weather")),
    ],
)
def test_normalize_tool_choice_spellings(tools: list[dict], spelling: object, expected: ToolChoice) -> None:
    assert normalize_tool_choice(spelling, tools) == expected


def test_tool_choice_true_with_one_tool_forces_that_tool() -> None:
    one = normalize_tools([{"name": "only"}])
    assert normalize_tool_choice(True, one) == ToolChoice("required", "only")
    assert normalize_tool_choice("required", one) == ToolChoice("required", None)


def test_tool_choice_without_tools() -> None:
    assert normalize_tool_choice(None, []) == ToolChoice("none")
    assert normalize_tool_choice("none", []) == ToolChoice("none")
    for spelling in ("auto", "required", "any", True, "f", {"name": "f"}):
        with pytest.raises(InvalidRequest, match="needs tools|not bound"):
            normalize_tool_choice(spelling, [])


def test_tool_choice_unknown_name_lists_bound_tools(tools: list[dict]) -> None:
    with pytest.raises(InvalidRequest) as info:
        normalize_tool_choice("get_wether", tools)
    assert "'get_wether'" in str(info.value)
    assert "get_weather, place_order, ping, meteo" in str(info.value)
    with pytest.raises(InvalidRequest, match="bound tools: get_weather"):
        normalize_tool_choice({"type": "function", "function": {"name": "nope"}}, tools)


@pytest.mark.parametrize("bad", [{"type": "function"}, {"function": {"name": 3}}, 42, 1.5, ["ping"]])
def test_tool_choice_unreadable_spellings(tools: list[dict], bad: object) -> None:
    with pytest.raises(InvalidRequest, match="tool_choice"):
        normalize_tool_choice(bad, tools)


def test_forces_call_property() -> None:
    assert ToolChoice("required").forces_call and ToolChoice("required", "f").forces_call
    assert not ToolChoice("auto").forces_call and not ToolChoice("none").forces_call


# --- validate_tool_call -------------------------------------------------------------------------
VALID_ORDER = {"customer": {"name": "Ann", "vip": True}, "items": [{"sku": "A1", "qty": 2}], "priority": None}


def test_validate_accepts_nested_valid_arguments(tools: list[dict]) -> None:
    assert validate_tool_call("place_order", VALID_ORDER, tools) == []
    assert validate_tool_call("place_order", json.dumps(VALID_ORDER), tools) == []  # JSON string form


@pytest.mark.parametrize(
    ("arguments", "where", "fragment"),
    [
        ({**VALID_ORDER, "customer": {"vip": True}}, "customer", "'name' is a required property"),
        ({**VALID_ORDER, "customer": {"name": 5}}, "customer/name", "is not of type 'string'"),
        ({**VALID_ORDER, "items": []}, "items", "should be non-empty"),
        ({**VALID_ORDER, "items": [{"sku": "a", "qty": 1}] * 4}, "items", "is too long"),
        ({**VALID_ORDER, "items": [{"sku": "a", "qty": "1"}]}, "items/0/qty", "is not of type 'integer'"),
        ({**VALID_ORDER, "priority": 3}, "priority", "is not one of"),
        ({"customer": {"name": "Ann"}}, "(root)", "'items' is a required property"),
    ],
)
def test_validate_reports_where_and_what(tools: list[dict], arguments: dict, where: str, fragment: str) -> None:
    problems = validate_tool_call("place_order", arguments, tools)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{where}: ")
    assert fragment in problems[0]


def test_validate_reports_every_problem_sorted_by_path(tools: list[dict]) -> None:
    bad = {"customer": {"name": 1}, "items": [{"sku": 2, "qty": 1}], "priority": "x"}
    problems = validate_tool_call("place_order", bad, tools)
    assert [p.split(":")[0] for p in problems] == ["customer/name", "items/0/sku", "priority"]


def test_validate_optional_fields_and_enum(tools: list[dict]) -> None:
    assert validate_tool_call("get_weather", {"city": "Paris"}, tools) == []
    assert validate_tool_call("get_weather", {"city": "Paris", "unit": "c"}, tools) == []
    assert validate_tool_call("get_weather", {"city": "Paris", "unit": "kelvin"}, tools)[0].startswith("unit: ")


def test_validate_tool_without_arguments(tools: list[dict]) -> None:
    for arguments in ({}, "{}", "", "  "):
        assert validate_tool_call("ping", arguments, tools) == []


def test_validate_unicode_names_and_values(tools: list[dict]) -> None:
    assert validate_tool_call("météo", {}, tools)[0].startswith("unknown tool 'météo'")  # names are ASCII
    assert validate_tool_call("meteo", {"ville": "Zürich 🌧", "città": "Roma"}, tools) == []
    assert validate_tool_call("meteo", {"città": 2}, tools) == ["città: 2 is not of type 'string'"]
    assert validate_tool_call("meteo", '{"ville": "東京"}', tools) == []
    assert validate_tool_call("meteo", {"ville": 1}, tools) == ["ville: 1 is not of type 'string'"]


@pytest.mark.parametrize("arguments", [[1, 2], 3, None, "[1]", '"text"'])
def test_validate_rejects_non_object_arguments(tools: list[dict], arguments: object) -> None:
    problems = validate_tool_call("ping", arguments, tools)
    assert problems and "must be a JSON object" in problems[0]


def test_validate_bad_json_string(tools: list[dict]) -> None:
    problems = validate_tool_call("get_weather", '{"city": ', tools)
    assert len(problems) == 1 and problems[0].startswith("arguments are not valid JSON")


@pytest.mark.parametrize("name", ["nope", None, ""])
def test_validate_unknown_tool_lists_bound_tools(tools: list[dict], name: str | None) -> None:
    problems = validate_tool_call(name, {}, tools)
    assert problems == [f"unknown tool {name!r} (bound tools: get_weather, place_order, ping, meteo)"]
    assert validate_tool_call("x", {}, []) == ["unknown tool 'x' (bound tools: none)"]


def test_check_tool_call_raises_with_problems(tools: list[dict]) -> None:
    check_tool_call("get_weather", {"city": "x"}, tools)  # valid: no exception
    with pytest.raises(ToolCallError) as info:
        check_tool_call("get_weather", {"unit": "c"}, tools)
    assert info.value.tool_name == "get_weather"
    assert info.value.problems == ["(root): 'city' is a required property"]
    assert isinstance(info.value, ValueError)


# --- parse_tool_calls ---------------------------------------------------------------------------
def test_parse_single_valid_call(tools: list[dict]) -> None:
    valid, invalid = parse_tool_calls(block("get_weather", {"city": "Paris"}), tools)
    assert invalid == []
    assert len(valid) == 1
    call = valid[0]
    assert call["type"] == "function" and call["id"].startswith("call_") and len(call["id"]) == 29
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_parse_parallel_calls_keep_order_and_unique_ids(tools: list[dict]) -> None:
    text = "\n".join([block("get_weather", {"city": "A"}), block("ping", {}), block("get_weather", {"city": "B"})])
    valid, invalid = parse_tool_calls(text, tools)
    assert invalid == []
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in valid] == [
        ("get_weather", {"city": "A"}),
        ("ping", {}),
        ("get_weather", {"city": "B"}),
    ]
    assert len({c["id"] for c in valid}) == 3


def test_parse_uses_given_ids_then_fresh_ones(tools: list[dict]) -> None:
    text = block("ping", {}) + "\n" + block("ping", {})
    valid, _ = parse_tool_calls(text, tools, ids=["call_a"])
    assert valid[0]["id"] == "call_a"
    assert valid[1]["id"].startswith("call_") and valid[1]["id"] != "call_a"


def test_parse_invalid_json(tools: list[dict]) -> None:
    valid, invalid = parse_tool_calls(CALL_OPEN + '{"name": "ping", "arguments": {' + CALL_CLOSE, tools, ids=["c1"])
    assert valid == []
    assert invalid[0]["id"] == "c1" and invalid[0]["name"] is None
    assert invalid[0]["error"].startswith("tool call is not valid JSON")
    assert invalid[0]["arguments"] == '{"name": "ping", "arguments": {'


def test_parse_unknown_tool_and_missing_required(tools: list[dict]) -> None:
    text = block("launch", {"x": 1}) + "\n" + block("get_weather", {"unit": "c"})
    valid, invalid = parse_tool_calls(text, tools)
    assert valid == []
    assert [i["name"] for i in invalid] == ["launch", "get_weather"]
    assert invalid[0]["error"].startswith("unknown tool 'launch'")
    assert invalid[1]["error"] == "(root): 'city' is a required property"
    assert json.loads(invalid[1]["arguments"]) == {"unit": "c"}


def test_parse_truncated_block_is_invalid_not_a_crash(tools: list[dict]) -> None:
    text = CALL_OPEN + '{"name": "get_weather", "arguments": {"city": "Par'
    valid, invalid = parse_tool_calls(text, tools)
    assert valid == [] and len(invalid) == 1
    assert "not valid JSON" in invalid[0]["error"]


def test_parse_valid_call_before_truncated_one(tools: list[dict]) -> None:
    text = block("ping", {}) + "\n" + CALL_OPEN + '{"name": "ping", "argu'
    valid, invalid = parse_tool_calls(text, tools)
    assert len(valid) == 1 and len(invalid) == 1


def test_parse_reads_string_arguments_and_parameters_key(tools: list[dict]) -> None:
    text = (
        CALL_OPEN + json.dumps({"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}) + CALL_CLOSE + "\n"
        + CALL_OPEN + json.dumps({"name": "get_weather", "parameters": {"city": "Rome"}}) + CALL_CLOSE
    )
    valid, invalid = parse_tool_calls(text, tools)
    assert invalid == []
    assert [json.loads(c["function"]["arguments"])["city"] for c in valid] == ["Oslo", "Rome"]


def test_parse_no_blocks_is_empty(tools: list[dict]) -> None:
    assert parse_tool_calls("The weather is nice.", tools) == ([], [])


def test_parse_non_object_call(tools: list[dict]) -> None:
    _, invalid = parse_tool_calls(CALL_OPEN + "[1, 2]" + CALL_CLOSE, tools)
    assert invalid[0]["error"] == 'tool call must be a JSON object with a string "name"'


# --- format_tool_calls --------------------------------------------------------------------------
def test_format_round_trips_through_parse(tools: list[dict]) -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}},
        {"id": "c2", "type": "function", "function": {"name": "place_order", "arguments": VALID_ORDER}},
        {"id": "c3", "type": "function", "function": {"name": "ping", "arguments": ""}},
    ]
    text = format_tool_calls(calls)
    assert "Zürich" in text  # not \\u-escaped
    valid, invalid = parse_tool_calls(text, tools, ids=["c1", "c2", "c3"])
    assert invalid == []
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in valid] == [
        ("c1", "get_weather", {"city": "Zürich"}),
        ("c2", "place_order", VALID_ORDER),
        ("c3", "ping", {}),
    ]


# --- ToolCallStreamParser -----------------------------------------------------------------------
CANONICAL = "\n".join(
    [
        block("get_weather", {"city": 'Pa"ris {x}', "unit": "c"}),
        block("place_order", VALID_ORDER),
        block("ping", {}),
        block("meteo", {"ville": "東京 ]}\\", "città": "\n\t"}),
    ]
)


def run_parser(pieces: list[str]) -> tuple[ToolCallStreamParser, str, dict[int, dict]]:
    parser = ToolCallStreamParser()
    text = ""
    calls: dict[int, dict] = {}
    for piece in pieces:
        out, deltas = parser.feed(piece)
        text += out
        for d in deltas:
            slot = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            if d.id is not None:
                assert slot["id"] is None, "id sent twice"
                slot["id"] = d.id
            if d.name is not None:
                assert slot["name"] is None, "name sent twice"
                slot["name"] = d.name
            slot["arguments"] += d.arguments
    return parser, text, calls


def assert_matches_parse(pieces: list[str], tools: list[dict]) -> None:
    parser, text, calls = run_parser(pieces)
    assert text == ""
    valid, invalid = parse_tool_calls("".join(pieces), tools, ids=parser.ids)
    assert invalid == []
    assert [calls[i]["id"] for i in sorted(calls)] == [c["id"] for c in valid] == parser.ids
    assert [calls[i]["name"] for i in sorted(calls)] == [c["function"]["name"] for c in valid]
    for i, call in enumerate(valid):
        assert json.loads(calls[i]["arguments"]) == json.loads(call["function"]["arguments"])
        assert calls[i]["arguments"] == json.dumps(json.loads(calls[i]["arguments"]), ensure_ascii=False)


def test_stream_parser_whole_text(tools: list[dict]) -> None:
    assert_matches_parse([CANONICAL], tools)


def test_stream_parser_char_by_char(tools: list[dict]) -> None:
    assert_matches_parse(list(CANONICAL), tools)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(CANONICAL)), max_size=40))
def test_stream_parser_random_splits(cuts: list[int]) -> None:
    tools = normalize_tools(
        [
            {"name": "get_weather", "parameters": WEATHER_PARAMS},
            {"name": "place_order", "parameters": ORDER_PARAMS},
            {"name": "ping"},
            {"name": "meteo", "parameters": {"type": "object", "properties": {"ville": {"type": "string"}, "città": {"type": "string"}}}},
        ]
    )
    bounds = [0, *sorted(set(cuts)), len(CANONICAL)]
    pieces = [CANONICAL[a:b] for a, b in pairwise(bounds)]
    assert_matches_parse(pieces, tools)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    text=st.text(min_size=1).filter(lambda t: not t.lstrip().startswith("<") and t.strip()),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_stream_parser_plain_text_passes_through(text: str, cuts: list[int]) -> None:
    bounds = [0, *sorted(c for c in set(cuts) if c < len(text)), len(text)]
    pieces = [text[a:b] for a, b in pairwise(bounds)]
    parser, out, calls = run_parser(pieces)
    assert out == text
    assert calls == {} and parser.ids == []


def test_stream_parser_waits_on_a_possible_tag_then_releases_text() -> None:
    parser = ToolCallStreamParser()
    assert parser.feed("  <tool") == ("", [])
    assert parser.feed("box> hi") == ("  <toolbox> hi", [])
    assert parser.feed(" more") == (" more", [])


def test_stream_parser_hands_out_given_ids() -> None:
    parser = ToolCallStreamParser(ids=["call_fixed"])
    _, deltas = parser.feed(block("ping", {}))
    assert deltas[0].id == "call_fixed" and deltas[0].name == "ping" and deltas[0].index == 0


def test_stream_parser_stops_on_non_canonical_layout() -> None:
    parser = ToolCallStreamParser()
    out, deltas = parser.feed('<tool_call>\n{"arguments": {}, "name": "ping"}\n</tool_call>')
    assert (out, deltas) == ("", [])
    assert parser.feed("more text") == ("", [])
