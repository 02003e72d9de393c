"""The Query Writer agent of NVIDIA's "Small Language Models are the Future of Agentic AI".

Five parts, orchestrated by plain code (the paper's "code agency"):

==================  =====  ==============================================================
part                model  what it does
==================  =====  ==============================================================
``table_extractor``  SLM   picks the table the question needs (tool call, enum of tables)
``reranker``         SLM   chooses the best of the candidate tables (tool call, enum of
                           the candidates)
``query_writer``     SLM   writes the SQL (tool call ``run_sql(query)``)
``query_fixer``      SLM   repairs the SQL from the database's error, at most N times
``researcher``       LLM   plans open questions into database questions and answers them
==================  =====  ==============================================================

Every SLM step runs through :func:`slm_agents.routing.run_routed` under an
:class:`~slm_agents.policy.EscalationPolicy` that keeps ``researcher`` on the LLM. When no LLM is
configured, the SLM stands in for the researcher and the step is recorded as needing escalation
(route ``slm``, ``escalation_reason`` ``route:llm_tasks``). Every call, tool execution and
escalation goes to a :class:`~slm_agents.capture.CaptureStore` when one is given, labelled with
the part's name as its task; calls whose SQL ran are labelled ``verified``, the others ``failed``.

Example:
    >>> from slm_agents.runtimes.fake import FakeRuntime
    >>> slm = FakeRuntime(responses=[
    ...     {"tool_calls": [{"name": "select_table", "arguments": {"table": "customers"}}]},
    ...     {"tool_calls": [{"name": "choose_table", "arguments": {"table": "customers"}}]},
    ...     {"tool_calls": [{"name": "run_sql", "arguments": {"query": "SELECT COUNT(*) FROM customers"}}]},
    ... ])
    >>> answer = QueryWriterAgent(slm).ask("How many customers are there?")
    >>> answer.ok, answer.result.rows, [s.part for s in answer.steps]
    (True, [(10,)], ['table_extractor', 'reranker', 'query_writer'])
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._ids import new_id
from ..policy import EscalationPolicy
from ..routing import Routed, run_routed
from ..types import Completion, Message
from .db import ShopDatabase, SqlResult

__all__ = ["QueryWriterAgent", "Step", "Answer", "PARTS", "NO_LLM_REASON", "is_open_question"]

#: The five parts, in the order they run.
PARTS = ("table_extractor", "reranker", "query_writer", "query_fixer", "researcher")
#: The reason recorded on a researcher step the SLM had to answer because no LLM is configured.
NO_LLM_REASON = "route:llm_tasks"

_OPEN = re.compile(r"^\s*(why|should|how (could|can|should|would)|what (would|should)|which .* should|"
                   r"recommend|suggest|explain|compare)\b", re.IGNORECASE)


def is_open_question(question: str) -> bool:
    """True for questions the researcher plans (why/should/recommend...), False for lookups.

    Example:
        >>> is_open_question("Which product category should we promote?"), is_open_question("How many orders?")
        (True, False)
    """
    return bool(_OPEN.search(question))


@dataclass
class Step:
    """One model step of the agent, as printed by the demo.

    Attributes:
        part: One of :data:`PARTS`.
        route: ``"slm"`` or ``"llm"``: who answered.
        reason: Why the step left the SLM (or needed to), else None.
        output: The step's output: a table name, SQL, a plan or an answer text.
        latency_ms: Wall time of the step (SLM attempt and LLM answer together).
        call_id: The captured call used (None without capture).
        result: For SQL steps, what the database returned.
    """

    part: str
    route: str
    reason: str | None
    output: Any
    latency_ms: float
    call_id: str | None = None
    result: SqlResult | None = None


@dataclass
class Answer:
    """The outcome of one question.

    Attributes:
        question: The question asked.
        steps: Every model step, in order.
        result: The last SQL result (None when no SQL ran).
        text: The researcher's answer for open questions.
        run_id: Groups the question's captured calls.
    """

    question: str
    steps: list[Step] = field(default_factory=list)
    result: SqlResult | None = None
    text: str | None = None
    run_id: str = ""
    sub_answers: list[Answer] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The SQL ran (lookups), or the researcher answered (open questions)."""
        if self.text is not None:
            return bool(self.text.strip())
        return self.result is not None and self.result.ok

    @property
    def fixes(self) -> int:
        return sum(1 for s in self.steps if s.part == "query_fixer")


def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": list(properties)}}}


_RUN_SQL = _tool("run_sql", "Run one SQLite SELECT query.", {"query": {"type": "string", "maxLength": 300}})
# The system prompts and tools stay the same from one question to the next, so a runtime that keeps
# its KV cache per part (see slm_agents.demo) evaluates them once; the question comes last.
_WRITER_PROMPT = ("Write one SQLite SELECT query that answers the question, using only the given tables "
                  "and columns. Add a WHERE clause only when the question asks for one.\nExamples:\n"
                  "Question: How many products are there?\nQuery: SELECT COUNT(*) FROM products\n"
                  "Question: Which employees work in Sales?\n"
                  "Query: SELECT name FROM employees WHERE department = 'Sales'")
_FIXER_PROMPT = ("The SQLite query failed. Write a corrected SELECT query, using only the given tables "
                 "and columns.\nExample:\nTables:\nproducts(id, name, category, price)\n"
                 "Question: Which products cost more than 100?\nQuery: SELECT name FROM product WHERE cost > 100\n"
                 "Error: no such table: product\nFixed: SELECT name FROM products WHERE price > 100")
_ASK = _tool("ask_database", "Ask the database simple questions.", {
    "questions": {"type": "array", "items": {"type": "string", "maxLength": 100}, "minItems": 1, "maxItems": 2}})


class QueryWriterAgent:
    """The Query Writer agent: four SLM parts, one LLM part, on :class:`ShopDatabase`.

    Args:
        slm: The runtime the SLM parts run on (e.g. ``LlamaCppRuntime()``), or a dict
            ``{part: runtime}`` to give parts their own runtime (a fine-tuned SLM per part).
        llm: The LLM runtime (e.g. ``OpenAICompatRuntime``); None when no LLM is configured.
        db: The database (default: a fresh :class:`ShopDatabase`).
        policy: Routing and escalation rules (default ``EscalationPolicy.from_env()``);
            ``researcher`` is always added to ``llm_tasks``.
        store: A :class:`~slm_agents.capture.CaptureStore`, or None to capture nothing.
        max_fixes: Most query-fixer attempts per question.
        max_tokens: Token caps per part (merged over the defaults).
        on_step: Called with ``(answer, step)`` after every step (the demo prints them).

    Example:
        >>> from slm_agents.runtimes.fake import FakeRuntime
        >>> agent = QueryWriterAgent(FakeRuntime(), llm=None)
        >>> agent.policy.route([], None, task="researcher").route
        'llm'
    """

    def __init__(
        self,
        slm: Any,
        llm: Any = None,
        *,
        db: ShopDatabase | None = None,
        policy: EscalationPolicy | None = None,
        store: Any = None,
        max_fixes: int = 2,
        max_tokens: dict[str, int] | None = None,
        on_step: Callable[[Answer, Step], Any] | None = None,
    ):
        self._slm = slm
        self.llm = llm
        self.db = db or ShopDatabase()
        base = policy or EscalationPolicy.from_env()
        # a copy: the caller's policy (perhaps shared with a router) is left as it was
        self.policy = dataclasses.replace(base, llm_tasks=set(base.llm_tasks) | {"researcher"})
        self.store = store
        self.max_fixes = max_fixes
        self.max_tokens = {"table_extractor": 48, "reranker": 48, "query_writer": 96, "query_fixer": 96,
                           "researcher": 96, **(max_tokens or {})}
        self.on_step = on_step
        self._schema = self.db.schema()
        self._extract_tool = _tool("select_table", "The table the question is about.",
                                   {"table": {"type": "string", "enum": list(self.db.tables)}})

    def slm_for(self, part: str) -> Any:
        """The SLM runtime of ``part``."""
        return self._slm.get(part) if isinstance(self._slm, dict) else self._slm

    # -- one routed, captured model step ----------------------------------------------------------
    def _step(self, answer: Answer, part: str, messages: list[Message], tools: list[dict] | None,
              tool_choice: Any) -> tuple[Step, Completion | None]:
        sampling = {"max_tokens": self.max_tokens[part], "temperature": 0.0}
        slm = self.slm_for(part)
        llm = self.llm
        start = time.perf_counter()
        llm_errors: list[Exception] = []

        def call_llm() -> Completion | None:
            try:
                return llm.complete(messages, tools, tool_choice, **sampling)
            except Exception as e:  # kept: the SLM's attempt and the reason it escalated stay on record
                llm_errors.append(e)
                return None

        try:
            routed = run_routed(
                self.policy, messages, tools, tool_choice, task=part,
                slm=lambda: slm.complete(messages, tools, tool_choice, **sampling),
                llm=call_llm if llm is not None else None,
            )
        except Exception as e:  # the SLM failed and no LLM could answer (or the LLM failed): go on without
            verdict = self.policy.check(e, tools, tool_choice, task=part)
            routed = Routed("slm", verdict.reason, None, None, e, verdict, (time.perf_counter() - start) * 1000)
        ms = (time.perf_counter() - start) * 1000
        reason = routed.reason
        if routed.route == "slm" and self.policy.route(messages, tools, task=part).route == "llm":
            reason = NO_LLM_REASON  # the step belongs on the LLM; none is configured, the SLM stood in
        completion: Completion | None = routed.result if isinstance(routed.result, Completion) else None
        call_id = self._capture(answer, part, routed, reason, messages, tools, tool_choice, sampling,
                                llm_error=llm_errors[0] if llm_errors else None)
        step = Step(part=part, route="llm" if routed.route in ("llm", "shadow") else "slm", reason=reason,
                    output=None, latency_ms=ms, call_id=call_id)
        return step, completion

    def _capture(self, answer: Answer, part: str, routed: Any, reason: str | None, messages: list[Message],
                 tools: list[dict] | None, tool_choice: Any, params: dict[str, Any],
                 llm_error: Exception | None = None) -> str | None:
        store = self.store
        if store is None:
            return None
        common = {"framework": "core", "task": part, "run_id": answer.run_id, "escalation_reason": reason,
                  "metadata": {"agent": "query_writer"}}
        slm_id = llm_id = None
        if routed.slm is not None:
            slm_id = store.log_completion(
                routed.slm, messages=messages, tools=tools, tool_choice=tool_choice, params=params,
                route="slm", valid=routed.verdict.ok if routed.verdict is not None else None, **common)
        elif routed.slm_error is not None:
            slm_id = store.log({
                "messages": messages, "tools": tools, "tool_choice": tool_choice, "params": params, "route": "slm",
                "valid": False, "error_type": type(routed.slm_error).__name__, "error_message": str(routed.slm_error),
                "latency_ms": routed.slm_ms, **common})
        if routed.route in ("llm", "shadow") and isinstance(routed.result, Completion):
            llm_id = store.log_completion(routed.result, messages=messages, tools=tools, tool_choice=tool_choice,
                                          params=params, route="llm", **common)
        elif llm_error is not None:
            llm_id = store.log({
                "messages": messages, "tools": tools, "tool_choice": tool_choice, "params": params, "route": "llm",
                "error_type": type(llm_error).__name__, "error_message": str(llm_error), **common})
        if slm_id is not None and llm_id is not None:
            store.link_escalation(slm_id, llm_id, reason or "shadow")
        return llm_id or slm_id

    def _emit(self, answer: Answer, step: Step) -> None:
        answer.steps.append(step)
        if self.on_step is not None:
            self.on_step(answer, step)

    def _log_tool(self, step: Step, completion: Completion | None, name: str, arguments: dict[str, Any],
                  result: Any, error: str | None, ms: float) -> None:
        if self.store is None:
            return
        calls = completion.parsed_tool_calls() if completion is not None else []
        record: dict[str, Any] = {
            "model_call_id": step.call_id, "call_id": calls[0]["id"] if calls else None, "name": name,
            "arguments": arguments, "latency_ms": ms, "task": step.part, "framework": "core"}
        if error is not None:
            record["error"] = error
        else:
            record["result"] = result
        self.store.log_tool(record)

    def _label(self, steps: list[Step], label: str, note: str | None = None) -> None:
        if self.store is None:
            return
        for step in steps:
            if step.call_id is not None:
                self.store.label(step.call_id, label, note=note)

    @staticmethod
    def _argument(completion: Completion | None, key: str) -> Any:
        if completion is None:
            return None
        for call in completion.parsed_tool_calls():
            if key in call["arguments"]:
                return call["arguments"][key]
        return None

    # -- the parts ------------------------------------------------------------------------------------
    def extract_table(self, answer: Answer, question: str) -> str | None:
        """Table name extractor (SLM): one tool call whose argument is an enum of the tables."""
        messages = [
            {"role": "system", "content": "Pick the database table the question is about.\nTables:\n" + self._schema},
            {"role": "user", "content": question},
        ]
        tool = self._extract_tool
        step, completion = self._step(answer, "table_extractor", messages, [tool], "select_table")
        table = self._argument(completion, "table")
        step.output = table if table in self.db.columns else None
        self._log_tool(step, completion, "select_table", {"table": table}, step.output, None, 0.0)
        self._emit(answer, step)
        return step.output

    def rerank(self, answer: Answer, question: str, candidates: list[str]) -> list[str]:
        """Re-ranker (SLM): chooses the best of the candidate tables; it goes first."""
        if len(candidates) < 2:
            return candidates
        tool = _tool("choose_table", "The best table for the question.",
                     {"table": {"type": "string", "enum": list(candidates)}})
        messages = [
            {"role": "system", "content": "Choose the best table for the question.\nTables:\n" + self._schema},
            {"role": "user", "content": f"{question}\nCandidates: {', '.join(candidates)}"},
        ]
        step, completion = self._step(answer, "reranker", messages, [tool], "choose_table")
        best = self._argument(completion, "table")
        ranked = ([best] if best in candidates else []) + [c for c in candidates if c != best]
        step.output = ranked
        self._log_tool(step, completion, "choose_table", {"table": best}, ranked, None, 0.0)
        self._emit(answer, step)
        return ranked

    def _sql_step(self, answer: Answer, part: str, messages: list[Message]) -> Step:
        step, completion = self._step(answer, part, messages, [_RUN_SQL], "run_sql")
        query = self._argument(completion, "query")
        if not isinstance(query, str):
            query = (completion.content if completion is not None else "") or ""
        started = time.perf_counter()
        result = self.db.run(query)
        ms = (time.perf_counter() - started) * 1000
        step.output, step.result = result.query, result
        self._log_tool(step, completion, "run_sql", {"query": query},
                       None if not result.ok else result.as_text(self.db.max_rows), result.error, ms)
        self._emit(answer, step)
        return step

    def write_query(self, answer: Answer, question: str, tables: list[str]) -> Step:
        """Query writer (SLM): text to SQL, as a ``run_sql(query)`` tool call; the query runs read-only."""
        messages = [
            {"role": "system", "content": _WRITER_PROMPT},
            {"role": "user", "content": f"Tables:\n{self.db.schema(tables)}\nQuestion: {question}"},
        ]
        return self._sql_step(answer, "query_writer", messages)

    def fix_query(self, answer: Answer, question: str, tables: list[str], failed: SqlResult) -> Step:
        """Query fixer (SLM): a corrected ``run_sql`` call from the failed query and the database's error."""
        messages = [
            {"role": "system", "content": _FIXER_PROMPT},
            {"role": "user", "content": f"Tables:\n{self.db.schema(tables)}\nQuestion: {question}\n"
             f"Query: {failed.query}\nError: {failed.error}"},
        ]
        return self._sql_step(answer, "query_fixer", messages)

    # -- questions --------------------------------------------------------------------------------
    def ask(self, question: str, *, run_id: str | None = None) -> Answer:
        """A lookup question: extract, re-rank, write, and fix until the SQL runs (at most ``max_fixes``)."""
        answer = Answer(question=question, run_id=run_id or new_id())
        table = self.extract_table(answer, question)
        candidates = self.db.candidates(question, [table] if table else None)
        tables = self.rerank(answer, question, candidates)[:2]
        step = self.write_query(answer, question, tables)
        sql_steps = [step]
        tried = {_norm_sql(step.output)}
        while step.result is not None and not step.result.ok and len(sql_steps) <= self.max_fixes:
            step = self.fix_query(answer, question, tables, step.result)
            sql_steps.append(step)
            if _norm_sql(step.output) in tried:
                break  # the fixer repeated a query that already failed: another try would too
            tried.add(_norm_sql(step.output))
        answer.result = step.result
        picks = [s for s in answer.steps if s.part in ("table_extractor", "reranker")]
        for s in sql_steps:
            self._label([s], "verified" if s.result is not None and s.result.ok else "failed",
                        None if s.result is None else s.result.error)
        self._label(picks, "verified" if answer.ok else "failed")
        return answer

    def research(self, question: str, *, run_id: str | None = None) -> Answer:
        """An open question: the researcher (LLM) plans database questions, the SLM parts answer them,
        and the researcher answers from the results."""
        answer = Answer(question=question, run_id=run_id or new_id())
        overview = "Tables:\n" + self.db.schema()
        plan_messages = [
            {"role": "system", "content": "You are a data analyst. Split the question into one or two "
             "simple questions the database can answer.\n" + overview},
            {"role": "user", "content": question},
        ]
        step, completion = self._step(answer, "researcher", plan_messages, [_ASK], "ask_database")
        planned = self._argument(completion, "questions")
        subs = [q.strip() for q in planned if isinstance(q, str) and q.strip()][:2] if isinstance(planned, list) else []
        step.output = subs
        self._log_tool(step, completion, "ask_database", {"questions": planned}, subs, None, 0.0)
        self._emit(answer, step)
        findings = []
        for sub in subs:
            sub_answer = self.ask(sub, run_id=answer.run_id)
            answer.sub_answers.append(sub_answer)
            result = sub_answer.result
            findings.append(f"Q: {sub}\nSQL: {result.query if result else '-'}\n"
                            f"Result: {result.as_text() if result else '-'}")
        answer_messages = [
            {"role": "system", "content": "You are a data analyst. Answer the question in two sentences "
             "from the database results."},
            {"role": "user", "content": question + "\n\nDatabase results:\n" + ("\n\n".join(findings) or "(none)")},
        ]
        step, completion = self._step(answer, "researcher", answer_messages, None, None)
        answer.text = (completion.content if completion is not None else "").strip()
        step.output = answer.text
        self._emit(answer, step)
        return answer

    def run(self, question: str) -> Answer:
        """:meth:`research` for open questions (:func:`is_open_question`), else :meth:`ask`."""
        return self.research(question) if is_open_question(question) else self.ask(question)


def _norm_sql(query: Any) -> str:
    return " ".join(str(query or "").lower().split())


def describe_output(output: Any, limit: int = 90) -> str:
    """A one-line rendering of a step's output."""
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
