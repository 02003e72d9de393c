"""The one definition of the capture tables' columns: name, SQL type, how the writer fills it, docs.

The writer (:class:`~slm_agents.capture._writer.RowBuilder`) builds each row in this order, the
readers decode the ``json`` columns, and the schema documentation (docs/capture.md) is generated
from the descriptions. The migrations in :mod:`slm_agents.capture.schema` stay as they were
released; a test checks that a migrated database has exactly these columns, in this order.

``fill`` says how a record's value becomes the column's value:

* ``plain``: short text as given (ids, names, routes), control characters removed;
* ``float`` / ``int``: a number, or NULL when the value is not one;
* ``json``: JSON text, redacted; ``text``: free text, redacted;
* ``special``: built by the writer from several record keys (ids, timestamps, messages, blobs,
  tools, counters; see the descriptions).

Example:
    >>> [c.name for c in CALLS][:4]
    ['id', 'ts', 'run_id', 'parent_run_id']
    >>> JSON_COLUMNS["calls"]
    ('messages', 'tool_names', 'tool_choice', 'params', 'tool_calls', 'tags', 'metadata')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Column", "CALLS", "TOOL_EXECUTIONS", "ESCALATIONS", "LABELS", "BLOBS", "CAPTURE_SESSIONS", "TABLES", "names",
           "JSON_COLUMNS", "COLUMN_DOCS"]

Fill = Literal["plain", "float", "int", "json", "text", "special"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, SQL type, how the writer fills it and what it holds."""

    name: str
    type: Literal["TEXT", "INTEGER", "REAL"]
    fill: Fill
    doc: str
    json: bool = False  # holds JSON text (the readers decode it)


def _c(name: str, type_: Literal["TEXT", "INTEGER", "REAL"], fill: Fill, doc: str) -> Column:
    return Column(name, type_, fill, doc, json=fill == "json" or doc.startswith("JSON"))


CALLS: tuple[Column, ...] = (
    _c("id", "TEXT", "special", "Time-sortable ULID."),
    _c("ts", "TEXT", "special", "When the call was logged, UTC ISO-8601."),
    _c("run_id", "TEXT", "plain", "The framework's run id of this call."),
    _c("parent_run_id", "TEXT", "plain", "The enclosing run (agent step, chain)."),
    _c("thread_id", "TEXT", "plain", "Conversation/thread id (LangGraph `thread_id`)."),
    _c("framework", "TEXT", "plain", '`"langchain"`, `"langgraph"`, `"llamaindex"` or `"core"`.'),
    _c("task", "TEXT", "plain", "The agent node or task label."),
    _c("runtime", "TEXT", "plain", '`"llamacpp"`, `"openai"`, ...'),
    _c("model_requested", "TEXT", "plain", "The model asked for."),
    _c("model", "TEXT", "plain", "The model that answered."),
    _c("route", "TEXT", "plain", '`"slm"`, `"llm"` or `"shadow"`.'),
    _c("escalation_reason", "TEXT", "plain", "Why this step left the SLM (set on the SLM attempt and the LLM call of a routed step)."),
    _c("messages", "TEXT", "special", "JSON: the request in OpenAI chat format, redacted. A long text is replaced "
       'by `{"$blob": sha256}` (see `blobs`); `read_call` puts it back.'),
    _c("tools_hash", "TEXT", "special", "SHA-256 of the tools list in `blobs`."),
    _c("tool_names", "TEXT", "special", "JSON list of the tool names offered."),
    _c("tool_choice", "TEXT", "special", "JSON: the `tool_choice` sent; `\"auto\"` when tools were sent without one."),
    _c("params", "TEXT", "special", "JSON: sampling parameters (credential-shaped keys dropped)."),
    _c("content", "TEXT", "text", "The answer's text, redacted."),
    _c("tool_calls", "TEXT", "special", "JSON: the answer's tool calls in OpenAI format, redacted."),
    _c("finish_reason", "TEXT", "plain", '`"stop"`, `"tool_calls"`, `"length"`, ...'),
    _c("valid", "INTEGER", "special", "1 when every tool call matched its schema, 0 when not, NULL when unknown."),
    _c("confidence", "REAL", "float", "Runtime confidence in the tool calls (0..1)."),
    _c("latency_ms", "REAL", "float", "Wall time of the call."),
    _c("ttft_ms", "REAL", "float", "Time to first token."),
    _c("input_tokens", "INTEGER", "special", "Prompt tokens (`input_tokens`, or `usage.input_tokens`)."),
    _c("output_tokens", "INTEGER", "special", "Generated tokens (`output_tokens`, or `usage.output_tokens`)."),
    _c("error_type", "TEXT", "plain", "Exception class when the call failed."),
    _c("error_message", "TEXT", "text", "Its message, redacted."),
    _c("tags", "TEXT", "json", "JSON list of tags."),
    _c("metadata", "TEXT", "special", "JSON object: `metadata` plus every unknown record key."),
    _c("redactions", "INTEGER", "special", "How many spans redaction replaced in this row."),
    _c("truncated", "INTEGER", "special", "How many strings were cut to `max_string_chars` (0 normally)."),
)

TOOL_EXECUTIONS: tuple[Column, ...] = (
    _c("id", "TEXT", "special", "Time-sortable ULID."),
    _c("ts", "TEXT", "special", "UTC ISO-8601."),
    _c("call_id", "TEXT", "plain", "The tool call's id (`tool_calls[].id`)."),
    _c("model_call_id", "TEXT", "plain", "The `calls.id` whose answer requested it, when known (else the "
       "call whose `tool_calls` hold `call_id`: see `slm_agents.capture.outcomes`)."),
    _c("run_id", "TEXT", "plain", "The framework's run id."),
    _c("thread_id", "TEXT", "plain", "Conversation/thread id."),
    _c("framework", "TEXT", "plain", "Which face logged it."),
    _c("task", "TEXT", "plain", "Agent node or task label."),
    _c("name", "TEXT", "plain", "Tool name."),
    _c("arguments", "TEXT", "json", "JSON arguments, redacted."),
    _c("result", "TEXT", "text", "The result, redacted: text as returned, other values as JSON (NULL on error)."),
    _c("error_type", "TEXT", "special", "Exception class when the tool failed (`error`'s class, or `error_type`)."),
    _c("error_message", "TEXT", "special", "Its message, redacted (`error`'s text, or `error_message`)."),
    _c("latency_ms", "REAL", "float", "Tool wall time."),
    _c("metadata", "TEXT", "special", "JSON object: extra keys."),
    _c("redactions", "INTEGER", "special", "Spans replaced by redaction."),
)

ESCALATIONS: tuple[Column, ...] = (
    _c("id", "TEXT", "special", "Time-sortable ULID."),
    _c("ts", "TEXT", "special", "UTC ISO-8601."),
    _c("slm_call_id", "TEXT", "plain", "The SLM attempt (`calls.id`)."),
    _c("llm_call_id", "TEXT", "plain", "The LLM call that replaced it (`calls.id`)."),
    _c("reason", "TEXT", "plain", "Why: `invalid_arguments`, `low_confidence`, `timeout`, ... "
       "(`slm_agents.policy.REASONS`)."),
    _c("metadata", "TEXT", "special", "JSON object: extra keys."),
)

LABELS: tuple[Column, ...] = (
    _c("id", "TEXT", "special", "Time-sortable ULID."),
    _c("ts", "TEXT", "special", "UTC ISO-8601."),
    _c("target_id", "TEXT", "plain", "A `calls.id`, or a run or thread id (then it is about the run's final call)."),
    _c("label", "TEXT", "plain", 'Free text, e.g. `"good"`, `"bad"`, `"failed"`, `"gold"` (`store.feedback` '
       'writes `"good"`/`"bad"`).'),
    _c("score", "REAL", "float", "Numeric feedback, 0 (bad) to 1 (good) for `store.feedback`."),
    _c("note", "TEXT", "text", "Free-text note, redacted."),
    _c("extra", "TEXT", "special", "JSON object: extra keyword arguments."),
)

BLOBS: tuple[Column, ...] = (
    _c("hash", "TEXT", "special", "SHA-256 (hex) of `content`."),
    _c("kind", "TEXT", "special", '`"tools"` or `"text"`.'),
    _c("size", "INTEGER", "special", "Length of `content` in characters."),
    _c("content", "TEXT", "special", "The text (tools as JSON)."),
    _c("first_seen", "TEXT", "special", "UTC ISO-8601 of the first write."),
)

CAPTURE_SESSIONS: tuple[Column, ...] = (
    _c("id", "TEXT", "special", "One id per store and process (a forked child starts its own)."),
    _c("pid", "INTEGER", "special", "The process that wrote."),
    _c("label", "TEXT", "special", "The capture file as that store named it."),
    _c("started", "TEXT", "special", "When the store's writer started, UTC ISO-8601."),
    _c("updated", "TEXT", "special", "When these counters were last saved (with every batch written)."),
    _c("closed", "TEXT", "special", "When the store closed (`close()` or the exit flush); NULL while open, "
       "or when the process ended without either."),
    _c("accepted", "INTEGER", "special", "Records `log()` & co. took."),
    _c("written", "INTEGER", "special", "Records stored."),
    _c("dropped", "INTEGER", "special", "Records refused because the queue was full."),
    _c("failed", "INTEGER", "special", "Records whose row could not be built or inserted (logged by type)."),
    _c("duplicates", "INTEGER", "special", "Records whose id was already stored (the first row is kept)."),
    _c("unwritten", "INTEGER", "special", "Accepted but not (yet) stored: at close, those it could not write."),
)

#: Every capture table's columns, in table order.
TABLES: dict[str, tuple[Column, ...]] = {
    "calls": CALLS,
    "tool_executions": TOOL_EXECUTIONS,
    "escalations": ESCALATIONS,
    "blobs": BLOBS,
    "labels": LABELS,
    "capture_sessions": CAPTURE_SESSIONS,
}


def names(table: str, fill: Fill | None = None) -> tuple[str, ...]:
    """The column names of ``table`` in order (only those filled as ``fill``, when given)."""
    return tuple(c.name for c in TABLES[table] if fill is None or c.fill == fill)


#: The columns that hold JSON text, which the readers decode.
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(c.name for c in cols if c.json) for table, cols in TABLES.items() if any(c.json for c in cols)
}

#: The description of every column, for the generated schema docs.
COLUMN_DOCS: dict[str, dict[str, str]] = {table: {c.name: c.doc for c in cols} for table, cols in TABLES.items()}
