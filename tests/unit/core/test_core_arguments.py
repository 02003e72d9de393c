"""One parameter shape across faces: the same names, defaults and errors (slm_agents.arguments)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from slm_agents import EscalationPolicy, FakeRuntime
from slm_agents.arguments import check_sampling, resolve_policy, runtime_choice
from slm_agents.errors import InvalidRequest
from slm_agents.routing import Routed

ROUTER_ARGS = {"slm", "llm", "policy", "shadow", "task", "capture"}


def test_runtime_choice_never_drops_a_model_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert runtime_choice() == "local" and runtime_choice("m.gguf") == "local"
    assert runtime_choice(base_url="http://127.0.0.1:9/v1", model="qwen") == "server"
    with pytest.raises(InvalidRequest, match="pass base_url= too"):
        runtime_choice(model="qwen")
    with pytest.raises(InvalidRequest, match="not both"):
        runtime_choice("m.gguf", model="qwen")
    with pytest.raises(InvalidRequest, match="needs model="):
        runtime_choice(base_url="http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert runtime_choice(model="qwen") == "server"


def test_policy_and_sampling_checks() -> None:
    base = EscalationPolicy(confidence_threshold=0.3)
    assert resolve_policy(base) is base
    assert resolve_policy(base, confidence_threshold=0.6, max_tools=None).confidence_threshold == 0.6
    with pytest.raises(InvalidRequest, match="policy= takes"):
        resolve_policy({"confidence_threshold": 0.5})
    with pytest.raises(InvalidRequest, match="unknown policy field"):
        resolve_policy(base, confidence=0.5)
    with pytest.raises(InvalidRequest):
        resolve_policy(base, confidence_threshold=2.0)
    check_sampling(temperature=0, max_tokens=1)
    for bad in ({"temperature": -0.1}, {"temperature": "hot"}, {"max_tokens": 0}, {"max_tokens": True}):
        with pytest.raises(InvalidRequest):
            check_sampling(**bad)


# -- the faces ------------------------------------------------------------------------------------------
# the faces raise ImportError (naming the pip install) when their framework is missing
lc = pytest.importorskip("langchain_slm", reason="needs the langchain extra", exc_type=ImportError)
li = pytest.importorskip("llamaindex_slm", reason="needs the llamaindex extra", exc_type=ImportError)


def test_models_share_names_defaults_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert lc.ChatSLM().temperature is None and li.SLM().temperature is None
    for make in (lc.ChatSLM, li.SLM):
        with pytest.raises(InvalidRequest, match="model='qwen' names a model on an OpenAI-compatible server"):
            make(model="qwen")
        with pytest.raises(InvalidRequest, match="temperature= must be 0 or more"):
            make(temperature=-1.0)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    from slm_agents.runtimes.openai_compat import OpenAICompatRuntime

    assert isinstance(lc.ChatSLM(model="qwen").client, OpenAICompatRuntime)
    assert isinstance(li.SLM(model="qwen").runtime, OpenAICompatRuntime)


def test_routers_take_the_same_arguments(tmp_path: Any) -> None:
    from langchain_slm.middleware import SLMRoutingMiddleware

    assert set(lc.ChatSLMRouter.model_fields) >= ROUTER_ARGS
    assert set(inspect.signature(li.RouterLLM.__init__).parameters) >= ROUTER_ARGS
    assert ROUTER_ARGS - {"llm"} <= set(inspect.signature(SLMRoutingMiddleware.__init__).parameters)

    def routers(**kwargs: Any) -> list[Any]:
        return [lc.ChatSLMRouter(slm=FakeRuntime(["x"]), **kwargs), li.RouterLLM(slm=FakeRuntime(["x"]), **kwargs),
                SLMRoutingMiddleware(FakeRuntime(["x"]), **kwargs)]

    assert [r.policy.confidence_threshold for r in routers(confidence_threshold=0.61)] == [0.61] * 3
    stores = [r.capture for r in routers(capture=str(tmp_path / "c.db"))]
    assert stores[0] is stores[1] is stores[2]  # one default store per path
    for bad, match in (({"policy": {"x": 1}}, "policy= takes"), ({"capture": 42}, "capture= takes"),
                       ({"confidence_threshold": 7.0}, "confidence_threshold")):
        with pytest.raises(InvalidRequest, match=match):
            routers(**bad)
    for make in (lambda: lc.ChatSLMRouter(slm=42), lambda: li.RouterLLM(slm=42),
                 lambda: SLMRoutingMiddleware(42)):
        with pytest.raises(InvalidRequest, match="slm= takes"):
            make()


def test_routers_report_the_same_routing_keys() -> None:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.llms.mock import MockLLM

    keys = set(Routed("slm", None, None).report())
    lc_router = lc.ChatSLMRouter(slm=FakeRuntime([""]), llm=FakeMessagesListChatModel(responses=[AIMessage("a")]),
                                 tool_steps_only=False)  # fmt: skip
    lc_meta = lc_router.invoke("hi", task="greet").response_metadata
    li_router = li.RouterLLM(slm=FakeRuntime([""]), llm=MockLLM(), tool_steps_only=False)
    li_meta = li_router.chat([ChatMessage(role="user", content="hi")], task="greet").additional_kwargs
    assert keys <= set(lc_meta) and keys <= set(li_meta)
    for key in keys - {"slm_latency_ms"}:
        assert lc_meta[key] == li_meta[key], key
    assert (lc_meta["route"], lc_meta["escalation_reason"], lc_meta["task"]) == ("llm", "empty", "greet")
