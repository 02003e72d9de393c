"""Recipe: an escalated router step, captured whole by the default handler, in LangChain and LlamaIndex.

One tool-calling step goes SLM first. The SLM (SmolLM2-135M, capped at 4 tokens so its tool call
is cut short: ``truncated``) fails the policy and the LLM answers instead (a second local model
stands in for your frontier LLM, so the recipe runs offline). With nothing more than the default
capture line of each framework — ``SLMCaptureHandler()`` for LangChain, ``slm_agents_capture()``
for LlamaIndex — the store holds the SLM attempt, the LLM answer and the escalation linking them:
a training pair. Both faces write the same records (the core builds them).

Run: python cookbook/router_capture_both_faces.py   (two steps, each one SLM and one LLM call)
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage
from llama_index.core.base.llms.types import ChatMessage

from langchain_slm import ChatSLM, ChatSLMRouter, SLMCaptureHandler
from llamaindex_slm import SLM, RouterLLM, slm_agents_capture
from slm_agents.capture import CaptureStore

QUESTION = "What is the weather in Paris?"
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def step_rows(store: CaptureStore) -> list[dict[str, Any]]:
    """The calls and escalations of the store, printed and returned."""
    assert store.flush(30)
    calls = list(store.db.query("select id, route, escalation_reason, valid, framework, tool_calls from calls order by id"))
    links = list(store.db.query("select slm_call_id, llm_call_id, reason from escalations"))
    for c in calls:
        print(f"  {c['framework']:10} route={c['route']:3} reason={c['escalation_reason']} valid={c['valid']} "
              f"tool_calls={(c['tool_calls'] or '')[:80]}")
    for link in links:
        print(f"  escalation: {link['slm_call_id']} -> {link['llm_call_id']} ({link['reason']})")
    assert [c["route"] for c in calls] == ["slm", "llm"], calls
    assert [(x["slm_call_id"], x["llm_call_id"]) for x in links] == [(calls[0]["id"], calls[1]["id"])], links
    return calls


def langchain_step() -> list[dict[str, Any]]:
    router = ChatSLMRouter(slm=ChatSLM(max_tokens=4), llm=ChatSLM(max_tokens=64), task="weather")
    handler = SLMCaptureHandler("router_langchain.db")  # <- the line: no capture= on the router needed
    answer = router.bind_tools([TOOL], tool_choice="any").invoke([HumanMessage(QUESTION)],
                                                                 config={"callbacks": [handler]})
    print("LangChain:", answer.response_metadata["route"], answer.response_metadata["escalation_reason"])
    return step_rows(handler.store)


def llamaindex_step() -> list[dict[str, Any]]:
    handler = slm_agents_capture("router_llamaindex.db")  # <- the line
    try:
        router = RouterLLM(slm=SLM(max_tokens=4), llm=SLM(max_tokens=64), task="weather")
        answer = router.chat([ChatMessage(role="user", content=QUESTION)], tools=[TOOL], tool_choice="required")
        print("LlamaIndex:", answer.additional_kwargs["route"], answer.additional_kwargs["escalation_reason"])
        return step_rows(handler.store)
    finally:
        handler.remove()


def main() -> None:
    lc, li = langchain_step(), llamaindex_step()
    same = [(a["route"], a["escalation_reason"], a["valid"]) for a in lc] == \
        [(b["route"], b["escalation_reason"], b["valid"]) for b in li]  # fmt: skip
    print("same records in both faces:", same)
    assert same and lc[0]["escalation_reason"] == "truncated"


if __name__ == "__main__":
    main()
