"""Real clients against ``slm-agents serve`` on loopback: the default model as the SLM, a real
llama_cpp.server as the upstream "LLM".

The openai SDK (sync and async, streaming and not), LangChain's ``ChatOpenAI`` and LlamaIndex's
``OpenAILike`` change only their base URL. Tool calls come back well-formed; a step whose task
has a strict threshold in the policy escalates to the upstream with its reason recorded; every
step is captured.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway_support import model_threads, running_gateway

from slm_agents.capture import CaptureStore
from slm_agents.policy import EscalationPolicy
from slm_agents.testing import llama_server
from slm_agents_gateway import Gateway

pytestmark = pytest.mark.integration

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@dataclass
class Served:
    base_url: str
    store: CaptureStore
    gateway: Gateway

    def rows(self, run_id: str) -> list[dict[str, Any]]:
        assert self.store.flush(10)
        return list(self.store.db.query("select * from calls where run_id = ? order by id", [run_id]))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from slm_agents import LlamaCppRuntime, OpenAICompatRuntime

    # The upstream "LLM": llama_cpp.server on 127.0.0.1, started and stopped by the helper the
    # core's integration tests use (slm_agents.testing).
    with llama_server(tmp_path_factory.mktemp("upstream")) as upstream:
        slm = LlamaCppRuntime(n_threads=model_threads(), n_ctx=2048)
        llm = OpenAICompatRuntime(model=upstream.model, base_url=upstream.base_url, api_key="sk-upstream-secret")
        # The default model's forced weather call has confidence ~0.2: the "strict" task escalates it.
        policy = EscalationPolicy(task_thresholds={"strict": 0.9})
        store = CaptureStore(tmp_path_factory.mktemp("gateway") / "capture.db")
        gateway = Gateway(slm, llm=llm, policy=policy, store=store, close_store=False)
        try:
            with running_gateway(gateway) as base:
                yield Served(base, store, gateway)
        finally:
            store.close()


def well_formed(name: str | None, arguments: str | None) -> dict[str, Any]:
    assert name == "get_weather"
    args = json.loads(arguments or "")
    assert isinstance(args, dict) and isinstance(args.get("city"), str) and args["city"]
    return args


def test_gateway_openai_sync_tool_call_on_the_slm(served: Served) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="slm-agents/weather", messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=48)
    r = raw.parse()
    assert raw.headers["x-slm-agents-route"] == "slm" and raw.headers["x-slm-agents-task"] == "weather"
    call = r.choices[0].message.tool_calls[0]
    assert call.type == "function" and call.id
    well_formed(call.function.name, call.function.arguments)
    assert r.choices[0].finish_reason == "tool_calls" and r.usage.completion_tokens > 0
    meta = r.model_extra["slm_agents"]
    assert meta["route"] == "slm" and meta["runtime"] == "llamacpp" and 0 < meta["confidence"] <= 1
    [row] = served.rows(r.id)
    assert (row["route"], row["task"], row["framework"], row["valid"]) == ("slm", "weather", "gateway", 1)


async def test_gateway_openai_async_streaming_tool_call(served: Served) -> None:
    client = openai.AsyncOpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model="slm-agents/weather", messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=48,
            stream=True, stream_options={"include_usage": True})
        name, args, finish, usage, cid = "", "", None, None, ""
        async for chunk in stream:
            cid = chunk.id
            usage = chunk.usage or usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for d in choice.delta.tool_calls or []:
                    name += (d.function.name or "") if d.function else ""
                    args += (d.function.arguments or "") if d.function else ""
    well_formed(name, args)
    assert finish == "tool_calls" and usage is not None and usage.total_tokens > 0
    assert [r["route"] for r in served.rows(cid)] == ["slm"]


async def test_gateway_openai_async_escalates_to_the_upstream_with_its_reason(served: Served) -> None:
    client = openai.AsyncOpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    async with client:
        raw = await client.chat.completions.with_raw_response.create(
            model="slm-agents/strict", messages=ASK, tools=[WEATHER], max_tokens=48,
            tool_choice={"type": "function", "function": {"name": "get_weather"}})  # llama_cpp.server 500s on "required"
    r = raw.parse()
    assert raw.headers["x-slm-agents-route"] == "llm" and raw.headers["x-slm-agents-reason"] == "low_confidence"
    meta = r.model_extra["slm_agents"]
    assert meta["reason"] == "low_confidence" and meta["runtime"] == "openai" and meta["slm_confidence"] < 0.9
    well_formed(r.choices[0].message.tool_calls[0].function.name, r.choices[0].message.tool_calls[0].function.arguments)
    slm_row, llm_row = served.rows(r.id)
    assert (slm_row["route"], slm_row["escalation_reason"], slm_row["valid"]) == ("slm", "low_confidence", 0)
    assert (llm_row["route"], llm_row["escalation_reason"], llm_row["runtime"]) == ("llm", "low_confidence", "openai")
    [esc] = served.store.db.query("select * from escalations where llm_call_id = ?", [llm_row["id"]])
    assert esc["slm_call_id"] == slm_row["id"] and esc["reason"] == "low_confidence"
    captured = json.dumps([dict(x) for x in served.store.db.query("select * from calls")])
    assert "sk-upstream-secret" not in captured  # the upstream's key is never captured


def test_gateway_openai_sync_stream_text_goes_to_the_upstream(served: Served) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
            model="slm-agents", messages=[{"role": "user", "content": "Say hello."}], max_tokens=16,
            stream=True) as response:
        assert response.headers["x-slm-agents-route"] == "llm"
        assert response.headers["x-slm-agents-reason"] == "route:no_tools"  # free text stays on the LLM by default
        text, cid = "", ""
        for chunk in response.parse():
            cid = chunk.id
            text += "".join(c.delta.content or "" for c in chunk.choices)
    assert text.strip()
    [row] = served.rows(cid)
    assert (row["route"], row["escalation_reason"], row["model"]) == ("llm", "route:no_tools", "smollm2")


def test_gateway_langchain_chat_openai(served: Served) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return f"Sunny in {city}"

    chat = ChatOpenAI(model="slm-agents/weather", base_url=served.base_url, api_key="unused", max_tokens=48,
                      max_retries=0, temperature=0)
    bound = chat.bind_tools([get_weather], tool_choice="get_weather")
    message = bound.invoke("What is the weather in Paris?")
    [call] = message.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"].get("city"), str) and call["id"]
    chunks = list(bound.stream("What is the weather in Rome?"))
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    [streamed] = total.tool_calls
    assert streamed["name"] == "get_weather" and isinstance(streamed["args"].get("city"), str)


async def test_gateway_llamaindex_openai_like(served: Served) -> None:
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai_like import OpenAILike

    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return f"Sunny in {city}"

    llm = OpenAILike(model="slm-agents/weather", api_base=served.base_url, api_key="unused", is_chat_model=True,
                     is_function_calling_model=True, max_tokens=48, max_retries=0, context_window=2048)
    tool = FunctionTool.from_defaults(get_weather)
    response = llm.chat_with_tools([tool], user_msg="What is the weather in Paris?", tool_required=True)
    [selection] = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "get_weather" and isinstance(selection.tool_kwargs.get("city"), str)
    aresponse = await llm.achat_with_tools([tool], user_msg="What is the weather in Rome?", tool_required=True)
    [aselection] = llm.get_tool_calls_from_response(aresponse)
    assert aselection.tool_name == "get_weather" and isinstance(aselection.tool_kwargs.get("city"), str)


def test_gateway_models_lists_the_policys_tasks(served: Served) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["slm-agents", "slm-agents/strict"]


def test_gateway_real_server_rejects_unknown_fields_without_capturing(served: Served, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    before = served.store.stats.enqueued
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="slm-agents", messages=ASK, extra_body={"temprature": 0.1})
    assert e.value.body["param"] == "temprature" and e.value.body["type"] == "invalid_request_error"
    assert served.store.stats.enqueued == before
