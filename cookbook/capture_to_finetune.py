"""Recipe: from captured calls to a fine-tuning set, a readiness report and a calibrated policy.

Runs offline on the packaged default model in under a minute:

1. capture a few tool-calling steps (the default model stands in for the frontier LLM here;
   in a real agent these are the LLM calls the LangChain/LlamaIndex capture records);
2. cluster them into tasks;
3. export an OpenAI-format fine-tuning set with its dataset card;
4. replay the task through the SLM and calibrate its confidence threshold into a policy file.

Run: python cookbook/capture_to_finetune.py      (honours SLM_AGENTS_DB; default ./slm_agents.db)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from slm_agents import LlamaCppRuntime
from slm_agents.capture import CaptureStore, resolve_path
from slm_agents.dataset import (
    calibrate_results,
    cases_from_db,
    export_dataset,
    list_tasks,
    open_db,
    write_thresholds,
)
from slm_agents.evaluate import evaluate
from slm_agents.policy import EscalationPolicy

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "convert_currency", "description": "Convert an amount between currencies",
        "parameters": {"type": "object", "properties": {
            "amount": {"type": "number"}, "to": {"type": "string", "enum": ["EUR", "USD", "JPY"]}},
            "required": ["amount", "to"]}}},
]
QUESTIONS = [
    ("weather", "What's the weather in Paris?"),
    ("weather", "Is it raining in Oslo right now?"),
    ("currency", "Convert 20 dollars to euros."),
    ("currency", "How much is 100 in JPY?"),
]


def main() -> None:
    db_path = resolve_path()  # $SLM_AGENTS_DB or ./slm_agents.db
    runtime = LlamaCppRuntime(max_tokens=64)

    # 1. Capture: each step's request and answer go to the store (redacted, off the hot path).
    store = CaptureStore(db_path)
    for task, question in QUESTIONS:
        messages = [{"role": "user", "content": question}]
        completion = runtime.complete(messages, TOOLS, tool_choice="required", max_tokens=64)
        store.log_completion(completion, messages=messages, tools=TOOLS, tool_choice="required",
                             route="llm", task=task, framework="core")
    store.flush(30)
    store.close()
    print(f"captured {len(QUESTIONS)} calls into {db_path}")

    # 2. Tasks: labelled calls form one task per label; the rest are clustered.
    db = open_db(db_path)
    for t in list_tasks(db, recluster=True):
        print(f"task {t.id} ({t.policy_key}): {t.calls} calls, {t.llm_share:.0%} on the LLM, top tools {t.top_tools}")

    # 3. Export the weather task as OpenAI fine-tuning JSONL (+ dataset card).
    out_dir = Path(tempfile.mkdtemp(prefix="slm-agents-export-"))
    result = export_dataset(db, out_dir, format="openai", task_id="weather", val_fraction=0.5)
    first = json.loads(result.files["train"].read_text().splitlines()[0])
    print(f"exported {result.train} train + {result.validation} validation examples to {out_dir}")
    print("last message of the first example:", json.dumps(first["messages"][-1])[:120])

    # 4. Replay the captured answers through the SLM, then calibrate the threshold into a policy.
    cases = cases_from_db(db, limit=10)
    report = evaluate(runtime, cases, max_tokens=64)
    for name, t in report.tasks.items():
        print(f"eval {name}: n={t.n} tool-name accuracy={t.tool_name_accuracy} readiness={t.readiness:.2f} "
              f"-> {t.recommendation}")
    policy_path = Path(os.environ.get("SLM_AGENTS_POLICY") or db_path.parent / "slm_agents_policy.json")
    calibrations = calibrate_results(report.results, max_wrong=0.05)
    write_thresholds(calibrations, policy_path)
    policy = EscalationPolicy.load(policy_path)
    print(f"policy {policy_path}: task thresholds {policy.task_thresholds}")
    db.conn.close()


if __name__ == "__main__":
    main()
