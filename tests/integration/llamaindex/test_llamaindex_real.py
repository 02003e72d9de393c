"""The LlamaIndex face on the real default model, and escalation to a real loopback server.

Kept short: small max_tokens, one agent run, one structured prediction, one escalation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llamaindex_slm import SLM, RouterLLM, slm_agents_capture
from slm_agents.capture import CaptureStore
from slm_agents.policy import EscalationPolicy

pytestmark = pytest.mark.timeout(180)


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"It is sunny and 22 C in {city}."


class City(BaseModel):
    """A city and the country it is in."""

    name: str
    country: str


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CaptureStore]:
    s = CaptureStore(tmp_path / "capture.db", redactor=None)
    handler = slm_agents_capture(store=s)
    yield s
    handler.remove()
    s.close()


async def test_function_agent_on_default_model_is_captured(store: CaptureStore) -> None:
    agent = FunctionAgent(
        name="weather",
        tools=[FunctionTool.from_defaults(get_weather, return_direct=True)],
        llm=SLM(max_tokens=48),
        initial_tool_choice="get_weather",
    )
    result = await agent.run("What is the weather in Paris?", max_iterations=3)
    assert [c.tool_name for c in result.tool_calls] == ["get_weather"]
    assert str(result).startswith("It is sunny and 22 C in")

    assert slm_agents_capture().flush(30)
    rows = [store.get_call(r["id"]) for r in store.db.query("select id from calls order by id")]
    assert len(rows) == 1
    row = rows[0]
    assert (row["framework"], row["task"], row["runtime"]) == ("llamaindex", "run_agent_step", "llamacpp")
    assert row["model"].endswith(".gguf") and row["input_tokens"] > 20 and row["output_tokens"] > 0
    assert row["tool_calls"][0]["function"]["name"] == "get_weather" and row["valid"] == 1
    assert row["tool_choice"] == "get_weather" and row["metadata"]["agent"] == "weather"


def test_structured_predict_returns_the_model_object() -> None:
    out = SLM(max_tokens=48).structured_predict(City, PromptTemplate("Where does Anna live? {text}"),
                                                text="Anna lives in Paris, France.")
    assert isinstance(out, City) and out.name and out.country


def test_escalation_to_a_loopback_server_is_routed_and_linked(store: CaptureStore, llama_server) -> None:
    # 4 tokens cannot hold a tool call: the SLM's answer is truncated, so the step escalates.
    router = RouterLLM(
        slm=SLM(max_tokens=4),
        llm=SLM(base_url=llama_server.base_url, model=llama_server.model, max_tokens=48, timeout=90),
        policy=EscalationPolicy(),
    )
    tool = FunctionTool.from_defaults(get_weather)
    response = router.chat_with_tools([tool], user_msg="What is the weather in Paris?", tool_choice="get_weather")
    assert (response.additional_kwargs["route"], response.additional_kwargs["escalation_reason"]) == ("llm", "truncated")
    calls = router.get_tool_calls_from_response(response)
    assert [c.tool_name for c in calls] == ["get_weather"] and calls[0].tool_id

    assert slm_agents_capture().flush(30)
    rows = [store.get_call(r["id"]) for r in store.db.query("select id from calls order by id")]
    assert [(r["route"], r["escalation_reason"], r["runtime"]) for r in rows] == [
        ("slm", "truncated", "llamacpp"), ("llm", "truncated", "openai")]
    assert rows[0]["finish_reason"] == "length"
    [link] = list(store.db["escalations"].rows)
    assert (link["slm_call_id"], link["llm_call_id"]) == (rows[0]["id"], rows[1]["id"])
