"""Agents that send tool_choice="auto" call the tool on the default model and answer from its result.

LangGraph's ``create_react_agent``, LangChain's ``create_agent``, LlamaIndex's ``FunctionAgent``
and ``ReActAgent`` all leave the call-or-answer choice to the model. Each test runs one of them
on the packaged SmolLM2-135M with nothing forced, and asserts that the tool ran with the city
asked about and that the final answer uses what the tool returned.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

RESULT = "It is sunny and 22 C in {city}."


def used_the_result(answer: str) -> bool:
    return "sunny" in answer.lower() or "22" in answer


class WeatherTool:
    """A weather tool that records its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, city: str) -> str:
        self.calls.append(city)
        return RESULT.format(city=city)


# --- LangGraph / LangChain --------------------------------------------------------------------------
def langchain_tool(weather: WeatherTool) -> Any:
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return weather(city)

    return get_weather


def test_langgraph_create_react_agent_calls_the_tool_and_uses_its_result() -> None:
    from langgraph.prebuilt import create_react_agent

    from langchain_slm import ChatSLM

    weather = WeatherTool()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # LangGraph 1.x points to create_agent
        agent = create_react_agent(ChatSLM(max_tokens=64), [langchain_tool(weather)])
    out = agent.invoke({"messages": [("user", "What is the weather in Paris?")]})
    kinds = [m.type for m in out["messages"]]
    assert kinds == ["human", "ai", "tool", "ai"], kinds
    assert [c.strip() for c in weather.calls] == ["Paris"]
    first = out["messages"][1]
    assert first.response_metadata["decision"] == "call" and first.response_metadata["decision_confidence"] > 0.5
    assert used_the_result(out["messages"][-1].content), out["messages"][-1].content


def test_langchain_create_agent_calls_the_tool_and_uses_its_result() -> None:
    from langchain.agents import create_agent

    from langchain_slm import ChatSLM

    weather = WeatherTool()
    agent = create_agent(ChatSLM(max_tokens=64), [langchain_tool(weather)])
    out = agent.invoke({"messages": [("user", "What's the weather like in Rome?")]})
    assert [m.type for m in out["messages"]] == ["human", "ai", "tool", "ai"]
    assert [c.strip() for c in weather.calls] == ["Rome"]
    assert used_the_result(out["messages"][-1].content), out["messages"][-1].content


# --- LlamaIndex --------------------------------------------------------------------------------------
def llamaindex_tool(weather: WeatherTool) -> Any:
    from llama_index.core.tools import FunctionTool

    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return weather(city)

    return FunctionTool.from_defaults(get_weather)


async def test_llamaindex_function_agent_calls_the_tool_and_uses_its_result() -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    from llamaindex_slm import SLM

    weather = WeatherTool()
    agent = FunctionAgent(tools=[llamaindex_tool(weather)], llm=SLM(max_tokens=64),
                          system_prompt="You answer weather questions with the get_weather tool.")
    result = await agent.run("What is the weather in Paris?", max_iterations=4)
    assert [c.strip() for c in weather.calls] == ["Paris"]
    assert used_the_result(str(result)), str(result)


async def test_llamaindex_react_agent_calls_the_tool_and_uses_its_result() -> None:
    from llama_index.core.agent.workflow import ReActAgent

    from llamaindex_slm import SLM

    weather = WeatherTool()
    agent = ReActAgent(tools=[llamaindex_tool(weather)], llm=SLM(max_tokens=64))
    result = await agent.run("What is the weather in Paris?", max_iterations=4)
    assert [c.strip() for c in weather.calls] == ["Paris"]
    assert used_the_result(str(result)), str(result)


@pytest.mark.parametrize("text", ["Hello! How are you today?", "Thanks, that's all I needed."])
def test_small_talk_is_answered_without_a_call(text: str) -> None:
    from langchain_slm import ChatSLM

    weather = WeatherTool()
    msg = ChatSLM(max_tokens=32).bind_tools([langchain_tool(weather)]).invoke(text)
    assert msg.tool_calls == [] and msg.content.strip()
    assert msg.response_metadata["decision"] == "answer"
