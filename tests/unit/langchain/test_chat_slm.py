"""ChatSLM on a FakeRuntime: translation, sampling options, tools, streaming, structured output."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

import langchain_slm
from langchain_slm import ChatSLM, _convert
from slm_agents.errors import GenerationError, InvalidRequest
from slm_agents.runtimes.fake import FakeRuntime
from slm_agents.runtimes.openai_compat import OpenAICompatRuntime
from slm_agents.types import Completion, Usage


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Weather(BaseModel):
    """The weather in a city."""

    city: str = Field(description="the city")


def forecast(city: str, days: int = 1) -> str:
    """Forecast the weather.

    Args:
        city: The city.
        days: How many days.
    """
    return "sunny"


ADD_CALL = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "confidence": 0.9}


def make(*responses: Any, **params: Any) -> tuple[ChatSLM, FakeRuntime]:
    rt = FakeRuntime(responses=list(responses))
    return ChatSLM(runtime=rt, **params), rt


# -- package ------------------------------------------------------------------------------------
def test_public_api_is_pinned() -> None:
    assert langchain_slm.__all__ == [
        "ChatSLM", "ChatSLMRouter", "EscalationPolicy", "SLMCaptureHandler", "SLMRoutingMiddleware",
        "CaptureMiddleware", "create_slm_agent", "escalation_node", "route_after_slm",
    ]
    assert all(hasattr(langchain_slm, name) for name in langchain_slm.__all__)


def test_import_and_construction_never_import_llama_cpp() -> None:
    code = (
        "import sys, langchain_slm; m = langchain_slm.ChatSLM(); r = langchain_slm.ChatSLMRouter(); "
        "m._get_ls_params(); print('llama_cpp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_construction_is_lazy() -> None:
    model = ChatSLM(model_path="/no/such/file.gguf")  # would raise ModelNotFound if it loaded
    assert model._runtime is None
    assert model.model_name == "file.gguf"


# -- invoke --------------------------------------------------------------------------------------
def test_invoke_text_usage_and_metadata() -> None:
    model, rt = make({"content": "hello there", "usage": (7, 2)})
    msg = model.invoke([SystemMessage("be brief"), HumanMessage("hi")])
    assert isinstance(msg, AIMessage)
    assert msg.content == "hello there"
    assert msg.usage_metadata == {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}
    meta = msg.response_metadata
    assert meta["model_name"] == "fake-slm"
    assert meta["model_provider"] == "slm_agents"
    assert meta["finish_reason"] == "stop"
    assert meta["route"] == "slm"
    assert "confidence" in meta and meta["confidence"] is None
    assert rt.requests[0]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


def test_sampling_fields_and_call_overrides_reach_the_runtime() -> None:
    model, rt = make("a", "b", temperature=0.3, max_tokens=17, seed=5, stop=["X"], top_k=7)
    model.invoke("hi")
    assert rt.requests[0]["sampling"] == {"temperature": 0.3, "max_tokens": 17, "seed": 5, "stop": ["X"], "top_k": 7}
    model.invoke("hi", stop=["Y"], max_tokens=3)
    assert rt.requests[1]["sampling"]["stop"] == ["Y"]
    assert rt.requests[1]["sampling"]["max_tokens"] == 3


def test_empty_stop_list_is_dropped() -> None:
    model, rt = make("a", stop=[])
    model.invoke("hi")
    assert "stop" not in rt.requests[0]["sampling"]


def test_unknown_option_is_refused_by_the_core() -> None:
    model, _ = make("a")
    with pytest.raises(InvalidRequest, match="unknown option"):
        model.invoke("hi", flavour="x")


def test_per_call_model_is_refused() -> None:
    model, _ = make("a")
    with pytest.raises(InvalidRequest, match="model="):
        model.invoke("hi", model="other")


def test_images_are_refused_with_a_fix() -> None:
    model, rt = make("a")
    image = HumanMessage(
        content=[
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]
    )
    with pytest.raises(InvalidRequest, match="text only"):
        model.invoke([image])
    assert rt.requests == []


def test_runtime_errors_propagate() -> None:
    model, _ = make(GenerationError("boom"))
    with pytest.raises(GenerationError, match="boom"):
        model.invoke("hi")


def test_batch() -> None:
    model, _ = make("one", "two")
    out = model.batch(["a", "b"], config={"max_concurrency": 1})
    assert [m.content for m in out] == ["one", "two"]


# -- tools ---------------------------------------------------------------------------------------
def test_bind_tools_every_spelling() -> None:
    model, rt = make("ok")
    raw = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    model.bind_tools([add, Weather, forecast, raw]).invoke("hi")
    names = [t["function"]["name"] for t in rt.requests[0]["tools"]]
    assert names == ["add", "Weather", "forecast", "lookup"]
    assert rt.requests[0]["tools"][2]["function"]["parameters"]["required"] == ["city"]


@pytest.mark.parametrize(
    "choice",
    ["auto", "none", "any", "required", True, "add", {"type": "function", "function": {"name": "add"}}],
)
def test_tool_choice_is_passed_through(choice: Any) -> None:
    model, rt = make(ADD_CALL if choice not in ("none", "auto") else "text")
    model.bind_tools([add, Weather], tool_choice=choice).invoke("1+2")
    assert rt.requests[0]["tool_choice"] == choice


def test_bind_tools_refuses_an_unbound_tool_choice() -> None:
    model, _ = make()
    with pytest.raises(InvalidRequest, match="not bound"):
        model.bind_tools([add], tool_choice="subtract")


def test_tool_calls_on_invoke() -> None:
    model, _ = make(ADD_CALL)
    msg = model.bind_tools([add], tool_choice="any").invoke("1+2")
    assert msg.tool_calls == [{"name": "add", "args": {"a": 1, "b": 2}, "id": msg.tool_calls[0]["id"], "type": "tool_call"}]
    assert msg.tool_calls[0]["id"]
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    assert msg.response_metadata["confidence"] == 0.9


def test_invalid_tool_calls_keep_their_error() -> None:
    model, _ = make({"tool_calls": [{"name": "add", "arguments": {"a": "one"}}]})
    msg = model.bind_tools([add]).invoke("1+2")
    assert msg.tool_calls == []
    assert msg.invalid_tool_calls[0]["name"] == "add"
    assert "a" in msg.invalid_tool_calls[0]["error"]


def test_tool_history_is_translated() -> None:
    model, rt = make("3")
    history = [
        HumanMessage("1+2?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "c1"}]),
        ToolMessage("3", tool_call_id="c1", name="add"),
    ]
    model.bind_tools([add]).invoke(history)
    sent = rt.requests[0]["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1, "b": 2}'}
    assert sent[2] == {"role": "tool", "name": "add", "tool_call_id": "c1", "content": "3"}


# -- streaming -----------------------------------------------------------------------------------
def test_stream_text_usage_on_last_chunk_only() -> None:
    model, _ = make({"content": "one two three", "usage": (4, 3)})
    chunks = list(model.stream("hi"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(c.content for c in chunks) == "one two three"  # type: ignore[misc]
    assert [c.usage_metadata is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].chunk_position == "last"
    full = sum(chunks[1:], chunks[0])
    assert full.usage_metadata == {"input_tokens": 4, "output_tokens": 3, "total_tokens": 7}
    assert full.response_metadata["model_name"] == "fake-slm"
    assert full.response_metadata["route"] == "slm"


def test_stream_tool_call_chunks_aggregate() -> None:
    model, _ = make(ADD_CALL)
    chunks = list(model.bind_tools([add], tool_choice="any").stream("1+2"))
    assert any(c.tool_call_chunks for c in chunks)
    full = sum(chunks[1:], chunks[0])
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("add", {"a": 1, "b": 2})]


def test_deltas_of_one_call_in_one_chunk_are_joined() -> None:
    from slm_agents.types import StreamChunk, ToolCallDelta

    piece = StreamChunk(
        tool_calls=[ToolCallDelta(0, id="c1", name="add"), ToolCallDelta(0, arguments='{"a": '), ToolCallDelta(1, id="c2", name="add")]
    )
    chunk = _convert.stream_chunk_to_message_chunk(piece)
    assert [(c["index"], c["name"], c["args"]) for c in chunk.tool_call_chunks] == [(0, "add", '{"a": '), (1, "add", None)]


def test_stream_callbacks_see_tokens() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

    handler = Tokens()
    model, _ = make("a b c", streaming=True)  # invoke then runs on _stream
    assert model.invoke("hi", config={"callbacks": [handler]}).content == "a b c"
    assert handler.tokens == ["a", " b", " c", ""]


def test_invoke_uses_complete_and_stream_uses_stream() -> None:
    class Counting(FakeRuntime):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.completes = 0

        def complete(self, *a: Any, **k: Any) -> Completion:
            self.completes += 1
            return super().complete(*a, **k)

    rt = Counting(["x", "y"])
    model = ChatSLM(runtime=rt)
    model.invoke("hi")
    list(model.stream("hi"))
    assert rt.completes == 1 and len(rt.requests) == 2


# -- async parity --------------------------------------------------------------------------------
async def test_ainvoke_matches_invoke() -> None:
    sync_model, _ = make(ADD_CALL)
    async_model, _ = make(ADD_CALL)
    a = sync_model.bind_tools([add]).invoke("1+2")
    b = await async_model.bind_tools([add]).ainvoke("1+2")
    assert [(c["name"], c["args"]) for c in a.tool_calls] == [(c["name"], c["args"]) for c in b.tool_calls]
    assert a.usage_metadata == b.usage_metadata
    assert {k: v for k, v in a.response_metadata.items() if "ms" not in k} == {
        k: v for k, v in b.response_metadata.items() if "ms" not in k
    }


async def test_astream_matches_stream() -> None:
    sync_model, _ = make({"content": "one two"})
    async_model, _ = make({"content": "one two"})
    a = [c.content for c in sync_model.stream("hi")]
    b = [c.content async for c in async_model.astream("hi")]
    assert a == b
    last = [c async for c in make({"content": "x"})[0].astream("hi")][-1]
    assert last.usage_metadata is not None and last.chunk_position == "last"


async def test_abatch() -> None:
    model, _ = make("one", "two")
    out = await model.abatch(["a", "b"], config={"max_concurrency": 1})
    assert sorted(m.content for m in out) == ["one", "two"]


# -- structured output ----------------------------------------------------------------------------
class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


class JokeDict(TypedDict):
    setup: str
    punchline: str


JOKE = '{"setup": "why?", "punchline": "because"}'


def test_structured_json_schema_default() -> None:
    model, rt = make(JOKE)
    out = model.with_structured_output(Joke).invoke("joke")
    assert out == Joke(setup="why?", punchline="because")
    fmt = rt.requests[0]["sampling"]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["required"] == ["setup", "punchline"]
    assert rt.requests[0]["tools"] == []


def test_structured_json_schema_typeddict_and_dict() -> None:
    model, _ = make(JOKE, JOKE)
    assert model.with_structured_output(JokeDict).invoke("joke") == {"setup": "why?", "punchline": "because"}
    schema = Joke.model_json_schema()
    assert model.with_structured_output(schema).invoke("joke") == {"setup": "why?", "punchline": "because"}


def test_structured_json_mode() -> None:
    model, rt = make(JOKE)
    out = model.with_structured_output(Joke, method="json_mode").invoke("joke as JSON")
    assert out.punchline == "because"
    assert rt.requests[0]["sampling"]["response_format"] == {"type": "json_object"}


def test_structured_function_calling() -> None:
    model, rt = make({"tool_calls": [{"name": "Joke", "arguments": {"setup": "a", "punchline": "b"}}]})
    out = model.with_structured_output(Joke, method="function_calling").invoke("joke")
    assert out == Joke(setup="a", punchline="b")
    assert rt.requests[0]["tool_choice"] == "Joke"
    assert [t["function"]["name"] for t in rt.requests[0]["tools"]] == ["Joke"]


def test_structured_function_calling_dict_schema() -> None:
    model, _ = make({"tool_calls": [{"name": "Joke", "arguments": {"setup": "a", "punchline": "b"}}]})
    out = model.with_structured_output(Joke.model_json_schema(), method="function_calling").invoke("joke")
    assert out == {"setup": "a", "punchline": "b"}


def test_structured_include_raw_reports_parse_errors() -> None:
    model, _ = make("not json at all")
    out = model.with_structured_output(Joke, include_raw=True).invoke("joke")
    assert isinstance(out["raw"], AIMessage)
    assert out["parsed"] is None
    assert out["parsing_error"] is not None


def test_structured_include_raw_success() -> None:
    model, _ = make(JOKE)
    out = model.with_structured_output(Joke, include_raw=True).invoke("joke")
    assert out["parsed"] == Joke(setup="why?", punchline="because")
    assert out["parsing_error"] is None
    assert out["raw"].response_metadata["route"] == "slm"


def test_structured_streams_parsed_objects() -> None:
    model, _ = make(JOKE)
    chunks = list(model.with_structured_output(Joke).stream("joke"))
    assert chunks[-1] == Joke(setup="why?", punchline="because")


def test_structured_rejects_unknown_method_and_arguments() -> None:
    model, _ = make()
    with pytest.raises(ValueError, match="method"):
        model.with_structured_output(Joke, method="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported"):
        model.with_structured_output(Joke, flavour=1)


# -- runtime choice, tracing ----------------------------------------------------------------------
def test_base_url_builds_an_openai_compatible_runtime_lazily() -> None:
    model = ChatSLM(base_url="http://127.0.0.1:9/v1", model="qwen", api_key="sk-secret-123", timeout=5, max_retries=0)
    assert model._runtime is None
    client = model.client
    assert isinstance(client, OpenAICompatRuntime)
    assert (client.model, client.base_url, client.timeout, client.max_retries) == ("qwen", "http://127.0.0.1:9/v1", 5, 0)
    assert model.client is client
    assert "sk-secret-123" not in repr(model)


def test_runtime_choice_is_validated() -> None:
    # pydantic reports the core's InvalidRequest (a ValueError) as a ValidationError
    with pytest.raises(ValueError, match="needs model="):
        ChatSLM(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="not both"):
        ChatSLM(model_path="x.gguf", base_url="http://127.0.0.1:9/v1", model="m")


def test_ls_params() -> None:
    model = ChatSLM(temperature=0.2, max_tokens=9, stop=["s"])
    params = model._get_ls_params()
    assert params == {
        "ls_provider": "slm_agents",
        "ls_model_name": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 9,
        "ls_stop": ["s"],
    }
    assert model._get_ls_params(stop=["t"], model="other")["ls_stop"] == ["t"]
    assert model._get_ls_params(model="other")["ls_model_name"] == "other"


def test_identifying_params_distinguish_models() -> None:
    assert ChatSLM(temperature=0)._identifying_params != ChatSLM(temperature=1)._identifying_params
    assert ChatSLM()._llm_type == "chat-slm"


def test_completion_to_message_reports_everything() -> None:
    c = Completion(
        message={"role": "assistant", "content": None},
        finish_reason="length",
        usage=Usage(3, 4),
        latency_ms=12.3456,
        ttft_ms=1.0,
        confidence=None,
        model="m",
        runtime="llamacpp",
        invalid_tool_calls=[{"id": "x", "name": "add", "arguments": '{"a":', "error": "not valid JSON"}],
    )
    msg = _convert.completion_to_message(c, route="slm", escalation_reason="truncated")
    assert msg.content == ""
    assert msg.invalid_tool_calls[0]["error"] == "not valid JSON"
    assert msg.response_metadata["escalation_reason"] == "truncated"
    assert msg.response_metadata["latency_ms"] == 12.346
    chunk = _convert.message_to_chunk(msg)
    assert chunk.chunk_position == "last" and chunk.usage_metadata == msg.usage_metadata


# -- the OpenAI-compatible path, on a fake SDK client -------------------------------------------------
def _ns(**kw: Any) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(**kw)


def _delta_chunk(*, tool_calls: Any = None, content: Any = None, finish: Any = None, usage: Any = None) -> Any:
    choice = _ns(finish_reason=finish, delta=_ns(content=content, tool_calls=tool_calls), logprobs=None)
    return _ns(choices=[choice] if usage is None else [], usage=usage, model="served")


class _FakeCompletions:
    def __init__(self, stream_chunks: list[Any], response: Any) -> None:
        self.stream_chunks, self.response = stream_chunks, response
        self.kwargs: list[dict[str, Any]] = []

    def create(self, **kwargs: Any) -> Any:
        self.kwargs.append(kwargs)
        return iter(self.stream_chunks) if kwargs["stream"] else self.response


def test_openai_compatible_path_with_a_server_that_repeats_tool_names() -> None:
    # llama-cpp-python's server repeats the whole function name in every delta of a call
    def tc(args: str) -> Any:
        return [_ns(index=0, id="call_1", function=_ns(name="get_weather", arguments=args))]

    stream = [
        _delta_chunk(tool_calls=tc('{"city": ')),
        _delta_chunk(tool_calls=tc('"Paris"}')),
        _delta_chunk(finish="tool_calls"),
        _delta_chunk(usage=_ns(prompt_tokens=20, completion_tokens=8)),
    ]
    call = _ns(id="call_1", function=_ns(name="get_weather", arguments='{"city": "Paris"}'))
    response = _ns(
        choices=[_ns(message=_ns(content=None, tool_calls=[call]), finish_reason="tool_calls", logprobs=None)],
        usage=_ns(prompt_tokens=20, completion_tokens=8),
        model="served",
    )
    completions = _FakeCompletions(stream, response)
    model = ChatSLM(base_url="http://127.0.0.1:9/v1", model="served", max_tokens=16)
    model.client._client = _ns(chat=_ns(completions=completions))

    @tool
    def get_weather(city: str) -> str:
        """The weather."""
        return "sunny"

    bound = model.bind_tools([get_weather], tool_choice="get_weather")
    chunks = list(bound.stream("weather?"))
    full = sum(chunks[1:], chunks[0])
    assert [(c["name"], c["args"], c["id"]) for c in full.tool_calls] == [("get_weather", {"city": "Paris"}, "call_1")]
    assert full.usage_metadata == {"input_tokens": 20, "output_tokens": 8, "total_tokens": 28}
    msg = bound.invoke("weather?")
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert msg.response_metadata["runtime"] == "openai" and msg.usage_metadata["total_tokens"] == 28
    sent = completions.kwargs[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["max_tokens"] == 16 and sent["stream"] is False


# -- a core fix found through this face ----------------------------------------------------------------
def test_core_parser_allows_a_close_tag_inside_a_string_argument() -> None:
    # SmolLM2 wrote '</tool_call>' inside a string under the grammar (which allows it); the call
    # is valid JSON and must not be cut at that tag.
    from slm_agents.toolcalls import normalize_tools, parse_tool_calls

    tools = normalize_tools([{"name": "f", "parameters": {"type": "object", "properties": {"s": {"type": "string"}}}}])
    text = '<tool_call>\n{"name": "f", "arguments": {"s": "a}}</tool_call> b"}}\n</tool_call>'
    valid, invalid = parse_tool_calls(text, tools)
    assert invalid == [] and valid[0]["function"]["arguments"] == '{"s": "a}}</tool_call> b"}'
    # a call cut off inside its closing tag by max_tokens is complete
    valid, invalid = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"s": "x"}}\n</tool_', tools)
    assert invalid == [] and valid[0]["function"]["arguments"] == '{"s": "x"}'


def test_a_rejected_call_never_becomes_runnable_when_streamed() -> None:
    """LangChain re-parses invalid_tool_calls into tool_calls when chunks are added together."""
    from langchain_core.tools import tool

    from langchain_slm import ChatSLMRouter
    from slm_agents import FakeRuntime

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    bad = {"tool_calls": [{"name": "rm_rf", "arguments": {"path": "/"}}]}
    for model in (ChatSLM(runtime=FakeRuntime([bad])), ChatSLMRouter(slm=FakeRuntime([bad]))):
        bound = model.bind_tools([add])
        total = None
        for chunk in bound.stream("add 1 and 2"):
            total = chunk if total is None else total + chunk
        assert total is not None
        assert total.tool_calls == [], type(model).__name__
        rejected = total.response_metadata.get("invalid_tool_calls") or total.invalid_tool_calls
        assert [c["name"] for c in rejected] == ["rm_rf"], type(model).__name__
