"""Every cookbook recipe runs offline on the default model, exits 0 and prints what it promises.

The expected lines are what a recipe shows whatever the 135M model decides (structure, routes,
counts a recipe forces); a recipe whose output changes shape fails here, not only one that crashes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = sorted((Path(__file__).resolve().parents[2] / "cookbook").glob("*.py"))

#: For each recipe: patterns (regular expressions, multiline) its standard output must contain.
EXPECTED: dict[str, list[str]] = {
    "capture_basics": [r"^stored user message: .*<EMAIL_1>", r"^escalated from: True$",
                       r"^calls by route: \{.*'llm': 1", r"'dropped': 0", r"'unwritten': 0", r"^capture file: "],
    "capture_to_finetune": [r"^captured \d+ calls into ", r"^task t-[0-9a-f]{8} \(weather\): \d+ calls",
                            r"^exported \d+ train \+ \d+ validation examples", r"^eval \S+: n=\d+ ",
                            r"^policy .*: task thresholds \{"],
    "concurrent_agents_batched": [r"^Weather in Paris\?\s+-> ", r"^batched 4 requests: \d+ decodes, up to [2-4] requests per decode",
                                  r"^same answers as one at a time: True$"],
    "create_agent_slm_routing": [r"^ai    lookup_order\(\{'order_number': 17\}\)  route=llm reason=\w+",
                                 r"route=llm reason=route:max_depth", r"^captured escalation \(\w+\): SLM said ",
                                 r"LLM said \[\{'id': 'llm_1'"],
    "finetune_loop": [r"^1\. captured \d+ teacher steps of task 'support'", r"^2\. trained \d+ steps in \d+ s: ",
                      r"^3\. held-out readiness: base \d\.\d\d -> tuned \d\.\d\d",
                      r"router step of task 'support' ran on "],
    "gateway_openai_client": [r"^1\. route=slm call=get_weather\{", r"^2\. streamed arguments: \{",
                              r"^3\. route=llm reason=\w+", r"^models: \[", r"0 dropped, 0 failed",
                              r"^captured: \[\('slm', 'weather'"],
    "langchain_capture_one_callback": [r"^agent answered: ", r"^captured \d+ model call\(s\)",
                                       r"task=planner\s+route=llm", r"task=extract\s+route=slm",
                                       r"^handler failures: 0$"],
    "langgraph_drop_in_chat_slm": [r"^human -> ", r"^ai    -> get_weather\(", r"^tool  -> 'It is sunny",
                                   r"^model: SmolLM2-135M-Instruct\S* \| steps: \d+$"],
    "langgraph_escalation_node": [r"^\[agent\] ai: ", r"^messages in state: \['human', 'ai'",
                                  r"^capture file: "],
    "llamaindex_function_agent": [r"^answer: \S", r"^captured [1-9]\d* call\(s\) into "],
    "llamaindex_react_agent": [r"^answer: ", r"^captured [1-9]\d* call\(s\) into "],
    "outcome_readiness": [r"^'Where is order 17\?': lookup_order\(",
                          r"^SLM calls 4, kept \(not escalated\) 4, followed by a tool error \d, by negative feedback \d$",
                          r"^outcome readiness of task 'lookup': [0-9]{1,2}%$"],  # under 100%: the thumbs down
    "query_writer_demo": [r"^\s+table_extractor\s+slm", r"^\s+query_writer\s+slm", r"outcome ready",
                          r"^Which customers live in Paris\?$"],
    "router_capture_both_faces": [r"^LangChain: llm truncated$", r"^LlamaIndex: llm truncated$",
                                  r"escalation: \S+ -> \S+ \(truncated\)", r"^same records in both faces: True$"],
    "shared_model_many_nodes": [r"^round 2 fixer\s+ttft ", r"^prefix cache: 3 prefixes, [\d.]+ MiB, hits 3, misses 3$",
                                r"^memory: weights \d+ MiB"],
    "runtime_tool_calling": [r"^call: get_weather \{", r"^delta: get_weather", r"^usage: \{'input_tokens': \d+",
                             r"^json: \{", r"^async call: get_weather$"],
}


def test_every_recipe_has_expected_output() -> None:
    assert sorted(EXPECTED) == [p.stem for p in RECIPES]


def test_there_are_recipes() -> None:
    assert RECIPES, "cookbook/ has no recipes"


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs(recipe: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SLM_AGENTS_DB": str(tmp_path / "capture.db"), "PYTHONUNBUFFERED": "1",
           "SLM_AGENTS_COOKBOOK_QUICK": "1"}  # recipes that train keep it to a smoke-sized run
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    proc = subprocess.run(
        [sys.executable, str(recipe)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{recipe.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    missing = [p for p in EXPECTED[recipe.stem] if not re.search(p, proc.stdout, re.MULTILINE)]
    assert not missing, f"{recipe.name} did not print {missing}:\n{proc.stdout[-3000:]}"
