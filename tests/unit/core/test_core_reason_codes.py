"""Structured reason codes (issue 12 §3): runtimes raise typed errors and report invalid tool calls
with a ``kind``; the policy maps types and kinds to reasons and never reads message text."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from slm_agents.errors import (
    BadServerResponse,
    ContextOverflow,
    GenerationError,
    GenerationTimeout,
    InvalidRequest,
    MalformedOutput,
)
from slm_agents.policy import ERROR_REASONS, FAULT_REASONS, REASONS, EscalationPolicy, reason_for_error
from slm_agents.routing import run_routed
from slm_agents.runtimes.base import prepare_request
from slm_agents.runtimes.fake import FakeRuntime
from slm_agents.runtimes.openai_compat import OpenAICompatRuntime
from slm_agents.toolcalls import FAULT_KINDS, diagnose_tool_call, normalize_tools, parse_tool_calls
from slm_agents.types import Completion

try:  # the HTTP library the installed openai SDK builds its errors from
    import httpx2 as httpx  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the openai version
    import httpx  # type: ignore[no-redef]

TOOLS = normalize_tools([
    {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}},
])
MSGS = [{"role": "user", "content": "1+1?"}]
REQUEST = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


# --- exceptions: the class decides ---------------------------------------------------------------
@pytest.mark.parametrize(("error", "reason"), [
    (GenerationTimeout("slow"), "timeout"),
    (TimeoutError(), "timeout"),
    (ContextOverflow("too long", tokens=300, n_ctx=256), "context_overflow"),
    (MalformedOutput("garbage"), "malformed"),
    (BadServerResponse("not JSON"), "malformed"),
    (GenerationError("llama.cpp failed"), "error"),
    (InvalidRequest("bad option"), "error"),
])
def test_each_error_class_has_its_reason(error: BaseException, reason: str) -> None:
    verdict = EscalationPolicy().check(error, TOOLS, "auto")
    assert (verdict.ok, verdict.reason) == (False, reason)
    assert reason in REASONS


@pytest.mark.parametrize("text", ["timeout", "the prompt takes 9000 tokens but the context holds 256",
                                  "tool call is not valid JSON", "timed out"])
def test_message_text_never_decides_the_reason(text: str) -> None:
    """An untyped error says 'timeout' or 'context': it is still just an error."""
    assert reason_for_error(RuntimeError(text)) == "error"
    assert EscalationPolicy().check(GenerationError(text), TOOLS, "auto").reason == "error"


def test_every_mapped_reason_is_documented() -> None:
    assert {reason for _, reason in ERROR_REASONS} <= set(REASONS)
    assert set(FAULT_REASONS) == set(FAULT_KINDS) and set(FAULT_REASONS.values()) <= set(REASONS)


# --- invalid tool calls: the kind decides ---------------------------------------------------------
def invalid(kind: str | None, error: str, name: str | None = "add", arguments: str = '{"a": 1}') -> Completion:
    entry: dict[str, Any] = {"id": "c1", "name": name, "arguments": arguments, "error": error}
    if kind is not None:
        entry["kind"] = kind
    return Completion(message={"role": "assistant", "content": None}, invalid_tool_calls=[entry])


@pytest.mark.parametrize(("kind", "reason"), [
    ("malformed", "malformed"), ("unknown_tool", "unknown_tool"),
    ("invalid_arguments", "invalid_arguments"), ("forbidden", "unknown_tool"),
])
def test_reported_kind_wins_over_misleading_text(kind: str, reason: str) -> None:
    # every text below points at another reason than the kind does
    misleading = {"malformed": "unknown tool 'x'", "unknown_tool": "arguments are not valid JSON",
                  "invalid_arguments": "tool_choice='none' forbids", "forbidden": "must be a JSON object"}[kind]
    assert EscalationPolicy().check(invalid(kind, misleading), TOOLS, "auto").reason == reason


@pytest.mark.parametrize(("name", "arguments", "choice", "reason"), [
    (None, "<tool_call>{", "auto", "malformed"),
    ("sub", "{}", "auto", "unknown_tool"),
    ("add", "{oops", "auto", "malformed"),
    ("add", "[1]", "auto", "malformed"),
    ("add", '{"a": "two"}', "auto", "invalid_arguments"),
    ("add", '{"a": 1}', "none", "unknown_tool"),
])
def test_entries_without_a_kind_are_judged_by_their_structure(name: str | None, arguments: str, choice: str,
                                                             reason: str) -> None:
    """Entries built by a face from a framework's message carry no kind; the text is 'x' throughout."""
    assert EscalationPolicy().check(invalid(None, "x", name, arguments), TOOLS, choice).reason == reason


def test_parser_and_fake_runtime_report_kinds() -> None:
    text = ('<tool_call>\n{"name": "add", "arguments": {"a": "two"}}\n</tool_call>'
            '<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>'
            '<tool_call>\n{"name": "add", "arguments": {oops\n</tool_call>')
    valid, bad = parse_tool_calls(text, TOOLS)
    assert valid == [] and [b["kind"] for b in bad] == ["invalid_arguments", "unknown_tool", "malformed"]
    fake = FakeRuntime([{"tool_calls": [{"name": "add", "arguments": "{bad"}]}]).complete(MSGS, TOOLS)
    assert [b["kind"] for b in fake.invalid_tool_calls] == ["malformed"]
    fault = diagnose_tool_call("add", {"a": 1.5}, TOOLS)
    assert fault is not None and fault.kind == "invalid_arguments" and "a: 1.5 is not of type 'integer'" in fault.message


# --- runtimes raise the types ---------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    {"error": {"message": "maximum context length is 4096 tokens", "type": "invalid_request_error",
               "code": "context_length_exceeded"}},
    {"error": {"message": "request exceeds the available context size", "type": "exceed_context_size_error",
               "code": 400}},
])
def test_openai_compat_raises_context_overflow_from_the_servers_error_code(body: dict[str, Any]) -> None:
    error = openai.BadRequestError("Error code: 400", response=httpx.Response(400, request=REQUEST), body=body["error"])
    got = OpenAICompatRuntime("m", base_url="http://127.0.0.1:1/v1")._translate(error)
    assert type(got) is ContextOverflow and "shorten the conversation" in str(got)


def test_openai_compat_other_bad_requests_stay_invalid_requests() -> None:
    body = {"message": "the context window is fine, temperature is not", "type": "invalid_request_error",
            "code": "invalid_value"}
    error = openai.BadRequestError("Error code: 400", response=httpx.Response(400, request=REQUEST), body=body)
    assert type(OpenAICompatRuntime("m")._translate(error)) is InvalidRequest


def test_openai_compat_server_without_choices_is_malformed_output() -> None:
    class Empty:
        choices: list[Any] = []

    rt = OpenAICompatRuntime("m", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(MalformedOutput, match="returned no choices"):
        rt._from_response(prepare_request(MSGS, TOOLS, "auto", {}), Empty(), 0.0)


def test_a_routed_step_escalates_with_the_typed_reason() -> None:
    for error, reason in ((ContextOverflow("long"), "context_overflow"), (BadServerResponse("junk"), "malformed")):
        out = run_routed(EscalationPolicy(), MSGS, TOOLS, "auto",
                         slm=lambda e=error: FakeRuntime([e]).complete(MSGS, TOOLS), llm=lambda: "LLM")
        assert (out.route, out.reason, out.result, type(out.slm_error)) == ("llm", reason, "LLM", type(error))
