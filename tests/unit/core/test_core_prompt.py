"""Rendering conversations with a model's chat template (slm_agents.runtimes._prompt)."""

from __future__ import annotations

import json

import pytest

from slm_agents.errors import InvalidRequest
from slm_agents.runtimes._prompt import ChatTemplate, text_of
from slm_agents.toolcalls import ToolChoice, normalize_tools, parse_tool_calls, tools_system_prompt

TOOLS = normalize_tools(
    [
        {"name": "get_weather", "description": "Weather in a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
    ]
)
AUTO = ToolChoice("auto")
CALL_1 = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
CALL_2 = {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": {"tz": "CET"}}}

# A Hermes/Qwen-style template that renders tools and structured tool calls itself.
NATIVE = (
    "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %}[{{ t.function.name }}]{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.arguments | tojson }}"
    "|{{ c.function.arguments.city }}</tool_call>{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def smollm2(smollm2_template_source: str) -> ChatTemplate:
    return ChatTemplate(smollm2_template_source, "<|im_start|>", "<|im_end|>")


def turns(prompt: str) -> list[tuple[str, str]]:
    """(role, content) of each ChatML turn, the trailing generation prompt excluded."""
    assert prompt.endswith("<|im_start|>assistant\n")
    out = []
    for part in prompt.removesuffix("<|im_start|>assistant\n").split("<|im_start|>")[1:]:
        role, _, rest = part.partition("\n")
        out.append((role, rest.removesuffix("\n").removesuffix("<|im_end|>")))
    return out


def test_smollm2_template_is_not_native(smollm2: ChatTemplate) -> None:
    assert not smollm2.native_tools
    assert "<tool_call>" not in smollm2.source


def test_plain_conversation_uses_model_default_system(smollm2: ChatTemplate) -> None:
    prompt = smollm2.render([{"role": "user", "content": "hi"}], [], ToolChoice("none"))
    assert prompt.endswith("<|im_start|>assistant\n")
    assert turns(prompt)[:2] == [
        ("system", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
        ("user", "hi"),
    ]


def test_tools_go_into_a_new_system_prompt(smollm2: ChatTemplate) -> None:
    prompt = smollm2.render([{"role": "user", "content": "Weather in Paris?"}], TOOLS, AUTO)
    (role, system), (user_role, user) = turns(prompt)[:2]
    assert role == "system" and system == tools_system_prompt(TOOLS)
    for tool in TOOLS:
        assert json.dumps(tool, ensure_ascii=False) in system
    assert (user_role, user) == ("user", "Weather in Paris?")
    assert "SmolLM" not in prompt  # the model's default system prompt is replaced


def test_tools_merge_into_existing_system_message(smollm2: ChatTemplate) -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    system_turns = [t for t in turns(smollm2.render(msgs, TOOLS, AUTO)) if t[0] == "system"]
    assert system_turns == [("system", "Be brief.\n\n" + tools_system_prompt(TOOLS))]


def test_tool_prompt_does_not_depend_on_tool_choice(smollm2: ChatTemplate) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    prompts = {smollm2.render(msgs, TOOLS, c) for c in (AUTO, ToolChoice("none"), ToolChoice("required", "get_time"))}
    assert len(prompts) == 1


def test_history_with_calls_and_results(smollm2: ChatTemplate) -> None:
    msgs = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL_1, CALL_2]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
        {"role": "assistant", "content": "18°C at noon."},
        {"role": "user", "content": "Thanks"},
    ]
    got = turns(smollm2.render(msgs, TOOLS, AUTO))
    assert [r for r, _ in got] == ["system", "user", "assistant", "user", "assistant", "user"]
    calls, invalid = parse_tool_calls(got[2][1], TOOLS, ids=["call_1", "call_2"])
    assert invalid == []
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET"}),
    ]
    # Both results in one user turn, each named after the call it answers.
    blocks = got[3][1].split("\n</tool_response>\n<tool_response>\n")
    assert len(blocks) == 2
    assert json.loads(blocks[0].removeprefix("<tool_response>\n")) == {"name": "get_weather", "content": "18°C"}
    last, _, asked = blocks[1].partition("\n</tool_response>\n")
    assert json.loads(last) == {"name": "get_time", "content": "12:00"}
    assert asked == "Weather and time in Paris?"  # the request the results answer, restated
    assert got[4] == ("assistant", "18°C at noon.")


def test_assistant_text_and_calls_together(smollm2: ChatTemplate) -> None:
    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL_1]},
        {"role": "tool", "tool_call_id": "call_1", "name": "explicit_name", "content": "ok"},
    ]
    got = turns(smollm2.render(msgs, TOOLS, AUTO))
    assert got[2][1].startswith("Let me check.\n<tool_call>\n")
    assert '"name": "explicit_name"' in got[3][1]  # an explicit name wins over the lookup


def test_tool_result_for_unknown_call_id_has_empty_name(smollm2: ChatTemplate) -> None:
    msgs = [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "zzz", "content": "r"}]
    got = turns(smollm2.render(msgs, TOOLS, AUTO))
    assert '{"name": "", "content": "r"}' in got[2][1]


def test_results_separated_by_a_turn_are_not_merged(smollm2: ChatTemplate) -> None:
    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [CALL_1]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a"},
        {"role": "assistant", "content": None, "tool_calls": [CALL_2]},
        {"role": "tool", "tool_call_id": "call_2", "content": "b"},
    ]
    got = turns(smollm2.render(msgs, TOOLS, AUTO))
    assert [r for r, _ in got] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert got[3][1].count("<tool_response>") == 1 and got[5][1].count("<tool_response>") == 1


def test_developer_role_content_parts_and_none(smollm2: ChatTemplate) -> None:
    msgs = [
        {"role": "developer", "content": "Dev rules."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, "b", {"type": "image_url", "image_url": {}},
                                     {"type": "text", "text": "c"}]},
        {"role": "assistant", "content": None},
    ]
    got = turns(smollm2.render(msgs, [], ToolChoice("none")))
    assert got == [("system", "Dev rules."), ("user", "abc"), ("assistant", "")]


def test_text_of() -> None:
    assert text_of(None) == ""
    assert text_of("x") == "x"
    assert text_of([{"type": "text", "text": "a"}, "b", {"type": "image_url"}]) == "ab"
    assert text_of(3) == "3"


def test_fallback_chatml_when_model_has_no_template() -> None:
    t = ChatTemplate(None)
    assert not t.native_tools
    prompt = t.render([{"role": "user", "content": "hi"}], TOOLS, AUTO)
    assert turns(prompt)[0] == ("system", tools_system_prompt(TOOLS))


def test_template_raise_exception_becomes_invalid_request() -> None:
    t = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        t.render([{"role": "user", "content": "hi"}], [], ToolChoice("none"))


def test_native_template_gets_tools_and_dict_arguments() -> None:
    t = ChatTemplate(NATIVE)
    assert t.native_tools
    msgs = [
        {"role": "developer", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {"role": "assistant", "content": None, "tool_calls": [CALL_1]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    prompt = t.render(msgs, TOOLS, AUTO)
    assert "TOOLS:[get_weather][get_time]" in prompt
    assert '<tool_call>{"city": "Paris"}|Paris</tool_call>' in prompt  # a dict, not a JSON string
    assert "<|im_start|>system\nsys" in prompt and "<|im_start|>user\nWeather?" in prompt
    assert "<|im_start|>tool\n18C" in prompt  # native templates see tool turns as they are
    assert "You can call these tools" not in prompt


def test_native_template_without_tools_gets_none() -> None:
    t = ChatTemplate(NATIVE)
    prompt = t.render([{"role": "user", "content": "hi"}], [], ToolChoice("none"))
    assert "TOOLS:" not in prompt


def test_render_does_not_mutate_messages(smollm2: ChatTemplate) -> None:
    msgs = [
        {"role": "developer", "content": "d"},
        {"role": "assistant", "content": None, "tool_calls": [dict(CALL_1)]},
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
    ]
    before = json.dumps(msgs)
    smollm2.render(msgs, TOOLS, AUTO)
    ChatTemplate(NATIVE).render(msgs, TOOLS, AUTO)
    assert json.dumps(msgs) == before
