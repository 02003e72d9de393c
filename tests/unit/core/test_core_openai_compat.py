"""The OpenAI-compatible runtime's pieces that need no server (slm_agents.runtimes.openai_compat)."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS
from typing import Any

import openai
import pytest

from slm_agents.errors import GenerationError, GenerationTimeout, InvalidRequest, RuntimeUnavailable
from slm_agents.runtimes.base import prepare_request
from slm_agents.runtimes.openai_compat import (
    OpenAICompatRuntime,
    _check_calls,
    _StreamAssembler,
    _wire_messages,
    _wire_tool_choice,
)
from slm_agents.toolcalls import ToolChoice, normalize_tools
from slm_agents.types import Usage

try:  # the HTTP library the installed openai SDK builds its errors from
    import httpx2 as httpx  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the openai version
    import httpx  # type: ignore[no-redef]

TOOLS = normalize_tools(
    [
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                               "required": ["city"]}},
        {"name": "ping"},
    ]
)
USER = [{"role": "user", "content": "hi"}]


def raw(name: str, arguments: str, id: str | None = "c1") -> dict[str, Any]:
    return {"id": id, "name": name, "arguments": arguments}


# --- _check_calls -------------------------------------------------------------------------------
def test_check_calls_valid_and_empty_arguments() -> None:
    valid, invalid = _check_calls(
        [raw("get_weather", '{"city": "Oslo"}'), raw("ping", "", id="c2"), raw("ping", "  ", id="c3")],
        TOOLS, ToolChoice("auto"),
    )
    assert invalid == []
    assert [(v["id"], v["type"], v["function"]["arguments"]) for v in valid] == [
        ("c1", "function", '{"city": "Oslo"}'), ("c2", "function", "{}"), ("c3", "function", "{}")]


def test_check_calls_tool_choice_none_forbids_calls() -> None:
    valid, invalid = _check_calls([raw("ping", "{}")], TOOLS, ToolChoice("none"))
    assert valid == []
    assert invalid == [{"id": "c1", "name": "ping", "arguments": "{}", "error": "tool_choice='none' forbids tool calls",
                        "kind": "forbidden"}]


def test_check_calls_named_mismatch() -> None:
    valid, invalid = _check_calls([raw("ping", "{}"), raw("get_weather", '{"city": "x"}', "c2")], TOOLS,
                                  ToolChoice("required", "get_weather"))
    assert [v["id"] for v in valid] == ["c2"]
    assert invalid[0]["error"] == "tool_choice requires 'get_weather', but the call names 'ping'"
    assert invalid[0]["kind"] == "forbidden"


def test_check_calls_schema_failures() -> None:
    valid, invalid = _check_calls(
        [raw("get_weather", "{}"), raw("nope", "{}", "c2"), raw("get_weather", "{bad", "c3")], TOOLS, ToolChoice("auto")
    )
    assert valid == []
    assert [i["error"].split(":")[0] for i in invalid] == ["(root)", "unknown tool 'nope' (bound tools", "arguments are not valid JSON"]
    assert invalid[2]["arguments"] == "{bad"
    assert [i["kind"] for i in invalid] == ["invalid_arguments", "unknown_tool", "malformed"]


def test_check_calls_invents_missing_ids() -> None:
    valid, invalid = _check_calls([raw("ping", "{}", None), raw("nope", "{}", None)], TOOLS, ToolChoice("auto"))
    assert valid[0]["id"] == "call_0" and invalid[0]["id"] == "call_1"


# --- wire format --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice("auto"), "auto"),
        (ToolChoice("none"), "none"),
        (ToolChoice("required"), "required"),
        (ToolChoice("required", "ping"), {"type": "function", "function": {"name": "ping"}}),
    ],
)
def test_wire_tool_choice(choice: ToolChoice, wire: Any) -> None:
    assert _wire_tool_choice(choice) == wire


def test_wire_messages_encodes_dict_arguments() -> None:
    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}},
            {"id": "b", "function": {"name": "ping", "arguments": "{}"}},
            {"id": "c", "name": "ping"},  # a bare call, as some faces carry it
        ]},
        {"role": "tool", "tool_call_id": "a", "content": "18C"},
    ]
    before = json.dumps(msgs)
    out = _wire_messages(msgs)
    assert json.dumps(msgs) == before  # the caller's messages are not mutated
    calls = out[1]["tool_calls"]
    assert calls[0] == {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}}
    assert calls[1]["function"]["arguments"] == "{}" and calls[1]["type"] == "function"
    assert calls[2]["function"] == {"name": "ping", "arguments": "{}"}
    assert out[0] is msgs[0] and out[2] is msgs[2]


def test_request_kwargs() -> None:
    rt = OpenAICompatRuntime("m", base_url="http://127.0.0.1:1/v1", logprobs=True, default_params={"temperature": 0.1})
    req = prepare_request(USER, TOOLS, "ping", {"top_k": 5, "max_tokens": 9, "parallel_tool_calls": False,
                                               "response_format": {"type": "text"}, "timeout": 3},
                          extra_keys=frozenset({"top_k", "min_p", "repeat_penalty"}))
    kw = rt._kwargs(req, stream=True)
    assert kw["model"] == "m" and kw["stream"] is True and kw["stream_options"] == {"include_usage": True}
    assert kw["tool_choice"] == {"type": "function", "function": {"name": "ping"}}
    assert kw["parallel_tool_calls"] is False and kw["temperature"] == 0.1 and kw["max_tokens"] == 9
    assert kw["extra_body"] == {"top_k": 5} and kw["timeout"] == 3 and kw["logprobs"] is True
    assert "response_format" not in kw  # text is the default
    plain = rt._kwargs(prepare_request(USER, None, None, {}), stream=False)
    assert "tools" not in plain and "tool_choice" not in plain and "stream_options" not in plain


# --- stream assembly ----------------------------------------------------------------------------
def chunk(content: str | None = None, tool_calls: list | None = None, finish: str | None = None,
          usage: Any = None, choices: bool = True) -> NS:
    delta = NS(content=content, tool_calls=tool_calls, role=None)
    return NS(
        model="served-model",
        usage=usage,
        choices=[NS(index=0, delta=delta, finish_reason=finish, logprobs=None)] if choices else [],
    )


def tc(index: int, id: str | None = None, name: str | None = None, arguments: str | None = None) -> NS:
    return NS(index=index, id=id, type="function" if id else None, function=NS(name=name, arguments=arguments))


def assemble(chunks: list[NS], tool_choice: Any = "auto") -> tuple[list, Any]:
    rt = OpenAICompatRuntime("m", base_url="http://127.0.0.1:1/v1")
    acc = _StreamAssembler(rt, prepare_request(USER, TOOLS, tool_choice, {}), 0.0)
    out = [c for c in (acc.add(ch) for ch in chunks) if c is not None]
    return out, acc.finish()


def test_stream_text_deltas_and_usage_on_a_final_chunk_without_choices() -> None:
    out, last = assemble([
        chunk(content=""),  # role-only first chunk
        chunk(content="Hel"),
        chunk(content="lo"),
        chunk(finish="stop"),
        chunk(choices=False, usage=NS(prompt_tokens=12, completion_tokens=2)),
    ])
    assert [c.content for c in out] == ["Hel", "lo"]
    c = last.completion
    assert last.finish_reason == "stop" == c.finish_reason
    assert c.content == "Hello" and c.usage == Usage(12, 2) and c.model == "served-model"
    assert c.ttft_ms is not None and c.latency_ms >= c.ttft_ms


def test_stream_tool_call_deltas_split_across_chunks_by_index() -> None:
    out, last = assemble([
        chunk(tool_calls=[tc(0, "call_a", "get_weather", "")]),
        chunk(tool_calls=[tc(0, arguments='{"ci')]),
        chunk(tool_calls=[tc(1, "call_b", "ping", "{")]),
        chunk(tool_calls=[tc(0, arguments='ty": "Oslo"}'), tc(1, arguments="}")]),
        chunk(finish="tool_calls"),
    ])
    deltas = [d for c in out for d in c.tool_calls]
    assert [(d.index, d.id, d.name) for d in deltas if d.id] == [(0, "call_a", "get_weather"), (1, "call_b", "ping")]
    assert "".join(d.arguments for d in deltas if d.index == 0) == '{"city": "Oslo"}'
    c = last.completion
    assert c.finish_reason == "tool_calls" and c.content == ""
    assert [(t["id"], t["function"]["name"], t["function"]["arguments"]) for t in c.tool_calls] == [
        ("call_a", "get_weather", '{"city": "Oslo"}'), ("call_b", "ping", "{}")]
    assert c.usage == Usage(0, 0)  # the server sent none


def test_stream_invalid_calls_are_reported_and_finish_fixed() -> None:
    _, last = assemble([chunk(tool_calls=[tc(0, "call_a", "get_weather", "{}")]), chunk(finish="tool_calls")])
    c = last.completion
    assert c.tool_calls == [] and c.finish_reason == "stop"
    assert c.invalid_tool_calls[0]["error"] == "(root): 'city' is a required property"


def test_stream_length_finish_is_kept() -> None:
    _, last = assemble([chunk(content="abc"), chunk(finish="length")])
    assert last.completion.finish_reason == "length"


# --- errors, repr -------------------------------------------------------------------------------
REQUEST = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


def status_error(cls: type, code: int) -> Exception:
    return cls("server said no", response=httpx.Response(code, request=REQUEST), body=None)


@pytest.mark.parametrize(
    ("error", "ours", "fragment"),
    [
        (openai.APITimeoutError(request=REQUEST), GenerationTimeout, "did not answer within 7.0s"),
        (openai.APIConnectionError(request=REQUEST), RuntimeUnavailable, "cannot reach http://127.0.0.1:1/v1"),
        (status_error(openai.AuthenticationError, 401), RuntimeUnavailable, "refused the API key"),
        (status_error(openai.NotFoundError, 404), InvalidRequest, "has no model 'm'"),
        (status_error(openai.BadRequestError, 400), InvalidRequest, "rejected the request"),
        (status_error(openai.InternalServerError, 500), GenerationError, "failed"),
        (status_error(openai.RateLimitError, 429), GenerationError, "failed"),
        (openai.APIError("weird", REQUEST, body=None), GenerationError, "failed: weird"),
    ],
)
def test_translate_maps_sdk_errors(error: Exception, ours: type, fragment: str) -> None:
    rt = OpenAICompatRuntime("m", base_url="http://127.0.0.1:1/v1", timeout=7.0)
    got = rt._translate(error)
    assert type(got) is ours
    assert fragment in str(got)


def test_translate_leaves_other_errors_alone() -> None:
    rt = OpenAICompatRuntime("m")
    e = RuntimeError("x")
    assert rt._translate(e) is e


def test_translate_types_parsing_errors_from_a_malformed_body() -> None:
    from slm_agents.errors import BadServerResponse

    assert isinstance(OpenAICompatRuntime("m")._translate(KeyError("x")), BadServerResponse)


def test_repr_never_shows_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = OpenAICompatRuntime("m", base_url="http://h/v1", api_key="sk-secret-123")
    assert "sk-secret-123" not in repr(rt) and "sk-secret-123" not in str(rt)
    assert repr(rt) == "OpenAICompatRuntime(model='m', base_url='http://h/v1')"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-456")
    assert "sk-env-456" not in repr(OpenAICompatRuntime("m"))


def test_constructor_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env/v1")
    rt = OpenAICompatRuntime("m")
    assert rt.base_url == "http://env/v1" and rt.name == "openai" and rt.model_name == "m"
    assert rt._api_key == "sk-no-key-required"
    with pytest.raises(InvalidRequest, match="needs model="):
        OpenAICompatRuntime("")


def test_bad_requests_fail_before_any_network() -> None:
    rt = OpenAICompatRuntime("m", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(InvalidRequest):
        rt.complete([])
    with pytest.raises(InvalidRequest, match="unknown option"):
        rt.complete(USER, mirostat=2)
    assert rt._client is None  # no client was even built
