"""Router overhead: ChatSLMRouter vs calling the same SLM directly through ChatSLM.

Both sides run one tool-calling step through LangChain's ``invoke`` (callbacks, config, message
conversion). With a FakeRuntime on both sides the model costs ~nothing, so the difference is
what the router adds: the policy's routing and checking (tool-call schema validation), the
second translation and the metadata. Then the same comparison on the real default model
(SmolLM2-135M, greedy, grammar-constrained tool call), where the overhead is lost in the noise
of generation.

Run:
    python bench/bench_router.py                 # fake (isolated overhead) + real model
    python bench/bench_router.py --n 2000 --real-n 0   # fake only

Prints medians in milliseconds; the target is a router overhead of <= 1 ms per call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool

from langchain_slm import ChatSLM, ChatSLMRouter
from slm_agents.runtimes.fake import FakeRuntime


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather in a city."""
    return "sunny"


MESSAGES = [SystemMessage("You are a weather assistant."), HumanMessage("What is the weather in Paris?")]
CALL = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}], "confidence": 0.9}


def timed(fn: Callable[[], Any], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def compare(direct: Any, router: Any, n: int, warmup: int) -> tuple[float, float]:
    """Interleave the two sides in blocks so drift in machine load hits both alike."""
    a: list[float] = []
    b: list[float] = []
    block = max(1, n // 10)
    done = 0
    while done < n:
        k = min(block, n - done)
        a += timed(lambda: direct.invoke(MESSAGES), k, warmup if done == 0 else 0)
        b += timed(lambda: router.invoke(MESSAGES), k, warmup if done == 0 else 0)
        done += k
    return statistics.median(a), statistics.median(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="calls per side with the fake runtime")
    parser.add_argument("--real-n", type=int, default=10, help="calls per side with the real model (0: skip)")
    args = parser.parse_args()

    llm = FakeMessagesListChatModel(responses=[AIMessage("never used")])
    direct = ChatSLM(runtime=FakeRuntime([CALL], cycle=True)).bind_tools([get_weather], tool_choice="any")
    router = ChatSLMRouter(slm=ChatSLM(runtime=FakeRuntime([CALL], cycle=True)), llm=llm).bind_tools(
        [get_weather], tool_choice="any"
    )
    assert router.invoke(MESSAGES).response_metadata["route"] == "slm"
    d, r = compare(direct, router, args.n, warmup=50)
    print(f"fake runtime, n={args.n}: direct ChatSLM {d:.3f} ms, ChatSLMRouter {r:.3f} ms, "
          f"router overhead {r - d:.3f} ms (median per call; target <= 1 ms)")  # fmt: skip

    if args.real_n:
        slm = ChatSLM(temperature=0, max_tokens=48)
        direct = slm.bind_tools([get_weather], tool_choice="any")
        router = ChatSLMRouter(slm=slm, llm=llm).bind_tools([get_weather], tool_choice="any")
        msg = router.invoke(MESSAGES)  # loads the model
        assert msg.response_metadata["route"] == "slm", msg.response_metadata
        d, r = compare(direct, router, args.real_n, warmup=1)
        print(f"real model ({slm.model_name}), n={args.real_n}: direct ChatSLM {d:.1f} ms, "
              f"ChatSLMRouter {r:.1f} ms, difference {r - d:.1f} ms (generation dominates; noisy)")  # fmt: skip


if __name__ == "__main__":
    main()
