"""The Query Writer agent from NVIDIA's "Small Language Models are the Future of Agentic AI".

A heterogeneous agent: four SLM parts (table extractor, re-ranker, query writer, query fixer)
and one LLM part (researcher), orchestrated by code over a small SQLite database shipped as
``shop.sql``. ``slm-agents demo`` runs it; docs/demo.md describes it.

Example:
    >>> from slm_agents.runtimes.fake import FakeRuntime
    >>> slm = FakeRuntime(responses=[
    ...     {"tool_calls": [{"name": "select_table", "arguments": {"table": "employees"}}]},
    ...     {"tool_calls": [{"name": "choose_table", "arguments": {"table": "employees"}}]},
    ...     {"tool_calls": [{"name": "run_sql", "arguments": {"query": "SELECT MAX(salary) FROM employees"}}]},
    ... ])
    >>> QueryWriterAgent(slm).ask("What is the highest salary?").result.rows
    [(90000,)]
"""

from .agent import NO_LLM_REASON, PARTS, Answer, QueryWriterAgent, Step, is_open_question
from .db import ShopDatabase, SqlResult, load_sql

__all__ = ["QueryWriterAgent", "Answer", "Step", "PARTS", "NO_LLM_REASON", "is_open_question", "ShopDatabase",
           "SqlResult", "load_sql"]
