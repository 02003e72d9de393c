"""ChatSLMRouter escalating to a real OpenAI-compatible server on loopback.

The "LLM" is llama-cpp-python's own server (the ``llama_server`` fixture in
``tests/integration/conftest.py``: the default GGUF, chatml-function-calling, 127.0.0.1) reached
through ``ChatSLM(base_url=..., model=...)``, the OpenAI-compatible path. The SLM is made to
fail on purpose (a FakeRuntime naming an unknown tool, or raising), or is the real in-process
model held to an unreachable confidence threshold, so every test escalates to the real server.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.tools import tool

from langchain_slm import ChatSLM, ChatSLMRouter
from slm_agents.errors import GenerationError
from slm_agents.runtimes.fake import FakeRuntime


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return "sunny"


@pytest.fixture(scope="module")
def server_llm(llama_server: Any) -> ChatSLM:
    return ChatSLM(base_url=llama_server.base_url, model=llama_server.model, temperature=0, max_tokens=48, timeout=120)


def test_unknown_tool_escalates_to_the_server(server_llm: ChatSLM) -> None:
    slm = FakeRuntime([{"tool_calls": [{"name": "get_stock_price", "arguments": {"ticker": "X"}}]}])
    router = ChatSLMRouter(slm=slm, llm=server_llm)
    msg = router.bind_tools([get_weather], tool_choice="get_weather").invoke("What is the weather in Paris?")
    meta = msg.response_metadata
    assert (meta["route"], meta["escalation_reason"]) == ("llm", "unknown_tool")
    assert "get_stock_price" in meta["escalation_detail"]
    # a real answer from the server, validated against the tool schema by the OpenAI-compatible runtime
    assert meta["runtime"] == "openai" and meta["model_name"]
    assert [c["name"] for c in msg.tool_calls] == ["get_weather"]
    assert isinstance(msg.tool_calls[0]["args"].get("city"), str)
    assert msg.usage_metadata is not None and msg.usage_metadata["input_tokens"] > 0


async def test_slm_error_escalates_to_the_server_async(server_llm: ChatSLM) -> None:
    router = ChatSLMRouter(slm=FakeRuntime([GenerationError("model crashed")]), llm=server_llm, tool_steps_only=False)
    msg = await router.ainvoke("Say hello.")
    meta = msg.response_metadata
    assert (meta["route"], meta["escalation_reason"]) == ("llm", "error")
    assert isinstance(msg.content, str) and msg.content.strip()
    # streaming: the same routed call, emitted as one last chunk (the fake SLM's queue is now
    # empty, so it raises again)
    chunks = [c async for c in router.astream("Say hello.")]
    assert len(chunks) == 1 and chunks[0].chunk_position == "last"
    assert chunks[0].response_metadata["escalation_reason"] == "error"
    assert chunks[0].content


def test_real_slm_low_confidence_escalates_to_the_server(server_llm: ChatSLM) -> None:
    slm = ChatSLM(temperature=0, max_tokens=48)  # the real in-process model
    router = ChatSLMRouter(slm=slm, llm=server_llm, confidence_threshold=1.0)
    # a named tool_choice: llama-cpp-python's server accepts only "auto" or a named function
    chunks = list(router.bind_tools([get_weather], tool_choice="get_weather").stream("Weather in Tokyo?"))
    msg = sum(chunks[1:], chunks[0])
    meta = msg.response_metadata
    assert (meta["route"], meta["escalation_reason"]) == ("llm", "low_confidence")
    assert 0.0 < meta["slm_confidence"] < 1.0  # the real SLM ran, called the tool, and was judged
    assert meta["runtime"] == "openai"
    assert [c["name"] for c in msg.tool_calls] == ["get_weather"]
