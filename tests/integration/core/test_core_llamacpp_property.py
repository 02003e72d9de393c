"""Property: under the grammar, every call the real model makes is valid for its random tool schemas.

Hypothesis draws 1-3 tools (strings, integers, numbers, booleans, enums, arrays of strings and nested
objects, random required subsets, unicode descriptions) and a request; the default model answers
with ``tool_choice="required"`` or a named tool. A call cut off by ``max_tokens`` must be reported in
``invalid_tool_calls`` with finish ``"length"``; any other invalid call is a failure.

``SLM_AGENTS_PROPERTY_EXAMPLES`` sets the number of examples (default 20).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from slm_agents.runtimes.llamacpp import LlamaCppRuntime
from slm_agents.toolcalls import normalize_tools, validate_tool_call

EXAMPLES = int(os.environ.get("SLM_AGENTS_PROPERTY_EXAMPLES", "20"))
TOOL_NAMES = ["get_weather", "search_docs", "create_ticket", "convert", "lookup_user", "send_email", "book_room"]
PROP_NAMES = ["city", "query", "title", "count", "price", "urgent", "tags", "owner", "mode", "note", "limit"]

descriptions = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=24)
primitive = st.one_of(
    st.builds(lambda d: {"type": "string", "description": d}, descriptions),
    st.just({"type": "integer"}),
    st.just({"type": "number"}),
    st.just({"type": "boolean"}),
    st.lists(st.sampled_from(["low", "high", "über", "東京", "n/a"]), min_size=1, max_size=3, unique=True).map(
        lambda values: {"type": "string", "enum": values}
    ),
    st.just({"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3}),
)


@st.composite
def object_schema(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(PROP_NAMES), min_size=1, max_size=3, unique=True))
    props = {}
    for name in names:
        nested = depth == 0 and draw(st.integers(0, 5)) == 0
        props[name] = draw(object_schema(depth + 1)) if nested else draw(primitive)
    required = [n for n in names if draw(st.booleans())]
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


@st.composite
def tool_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(TOOL_NAMES), min_size=1, max_size=3, unique=True))
    return [
        {"type": "function", "function": {"name": n, "description": draw(descriptions), "parameters": draw(object_schema())}}
        for n in names
    ]


PROMPTS = ["Please use {tool} now.", "Help me with this task: {tool}.", "Call {tool} with sensible values.", "Do it."]


def test_every_grammar_constrained_call_is_valid(runtime: LlamaCppRuntime) -> None:
    stats = {"examples": 0, "valid": 0, "truncated": 0}
    seen: set[str] = set()

    # generate only: no shrinking (each example is a model call; a failure is reported as drawn)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow])
    @given(tools=tool_sets(), data=st.data())
    def check(tools: list[dict[str, Any]], data: st.DataObject) -> None:
        names = [t["function"]["name"] for t in tools]
        named = data.draw(st.one_of(st.none(), st.sampled_from(names)), label="named")
        prompt = data.draw(st.sampled_from(PROMPTS), label="prompt").format(tool=named or names[0])
        key = json.dumps([tools, named, prompt])
        if key in seen:  # hypothesis repeats some draws; greedy decoding would repeat the answer
            return
        seen.add(key)
        c = runtime.complete([{"role": "user", "content": prompt}], tools, named or "required", max_tokens=96)
        stats["examples"] += 1
        norm = normalize_tools(tools)
        if c.invalid_tool_calls:
            # only truncation may leave a call unfinished; never a schema failure
            assert c.finish_reason == "length", c.to_dict()
            assert c.tool_calls == [] and len(c.invalid_tool_calls) == 1, c.to_dict()
            stats["truncated"] += 1
            return
        assert c.finish_reason == "tool_calls", c.to_dict()
        assert len(c.tool_calls) == 1
        fn = c.tool_calls[0]["function"]
        assert fn["name"] in names
        if named is not None:
            assert fn["name"] == named
        assert validate_tool_call(fn["name"], fn["arguments"], norm) == []
        stats["valid"] += 1

    check()
    print(f"\nproperty: {stats['examples']} requests, {stats['valid']} valid calls, "
          f"{stats['truncated']} truncated by max_tokens=96, 0 schema failures")
    assert stats["examples"] >= EXAMPLES // 2 and stats["valid"] + stats["truncated"] == stats["examples"]
    assert stats["valid"] > stats["examples"] // 2  # truncation is the exception, not the rule
