"""Recipe: the Query Writer agent (NVIDIA's SLM paper) on the default local model, captured.

Four SLM parts (table extractor, re-ranker, query writer, query fixer) and an LLM researcher answer
questions about a small SQLite shop shipped with slm-agents. Every call goes to the capture file
($SLM_AGENTS_DB, else ./slm_agents.db); the recipe ends with stats, tasks and an export of it.
Set OPENAI_API_KEY (or OPENAI_BASE_URL) and SLM_AGENTS_LLM_MODEL to put the researcher on a real LLM.

Run: python cookbook/query_writer_demo.py
"""

from __future__ import annotations

from slm_agents.capture import CaptureStore
from slm_agents.demo import llm_from_env, run_demo, show_loop, slm_runtimes

QUESTIONS = [
    "Which customers live in Paris?",
    "What is the average salary in the Engineering department?",
    "Which product category should we promote next quarter, and why?",
]


def main() -> None:
    store = CaptureStore()  # $SLM_AGENTS_DB or ./slm_agents.db
    try:
        answers = run_demo(slm_runtimes(), llm_from_env(), QUESTIONS, store=store, max_fixes=1)
    finally:
        store.close()
    for answer in answers:
        outcome = answer.text if answer.text is not None else (
            answer.result.as_text(3) if answer.result is not None else "(no SQL ran)")
        print(f"\n{answer.question}\n{outcome}")
    show_loop(store.path)


if __name__ == "__main__":
    main()
