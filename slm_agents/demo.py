"""``slm-agents demo``: the Query Writer agent from NVIDIA's SLM paper, on the default local model.

Five parts answer questions about a small shop database shipped with the package
(:mod:`slm_agents.querywriter`): a table-name extractor, a re-ranker, a query writer and a
query fixer run on the SLM; a researcher that plans open questions runs on the LLM when one is
configured (``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``, model ``SLM_AGENTS_LLM_MODEL``). Every step
is printed (part, route, tool call or SQL, rows, latency) and captured; the demo ends with what
``slm-agents stats``, ``tasks`` and ``export`` say about the capture. Docs: docs/demo.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .querywriter.agent import PARTS, Answer, QueryWriterAgent, Step, describe_output

__all__ = ["DEMO_QUESTIONS", "DEMO_TOOLS", "DEFAULT_LLM_MODEL", "llm_from_env", "slm_runtimes", "run_demo",
           "show_loop"]

#: The questions the demo asks: four lookups and one open question for the researcher.
DEMO_QUESTIONS = [
    "How many customers are there?",
    "Which customers live in Paris?",
    "List the products in the Books category.",
    "What is the average salary in the Engineering department?",
    "Which product category should we promote next quarter, and why?",
]

#: The LLM model used when ``SLM_AGENTS_LLM_MODEL`` is not set.
DEFAULT_LLM_MODEL = "gpt-4o-mini"

#: Three toy tools (weather, calculator, units); the runtime benchmark still uses them.
DEMO_TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "calculator", "description": "Evaluate an arithmetic expression with + - * /.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}},
    {"type": "function", "function": {
        "name": "convert_units", "description": "Convert a value between km, mi, kg and lb.",
        "parameters": {"type": "object", "properties": {
            "value": {"type": "number"},
            "from_unit": {"type": "string", "enum": ["km", "mi", "kg", "lb"]},
            "to_unit": {"type": "string", "enum": ["km", "mi", "kg", "lb"]}},
            "required": ["value", "from_unit", "to_unit"]}}},
]


def llm_from_env(environ: dict[str, str] | None = None) -> Any:
    """The researcher's LLM: an :class:`~slm_agents.runtimes.openai_compat.OpenAICompatRuntime` when
    ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set (model ``SLM_AGENTS_LLM_MODEL``, default
    :data:`DEFAULT_LLM_MODEL`), else None.

    Example:
        >>> llm_from_env({}) is None
        True
        >>> llm_from_env({"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1", "SLM_AGENTS_LLM_MODEL": "qwen"}).model
        'qwen'
    """
    env = os.environ if environ is None else environ
    if not (env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL")):
        return None
    from .runtimes.openai_compat import OpenAICompatRuntime

    return OpenAICompatRuntime(
        model=env.get("SLM_AGENTS_LLM_MODEL") or DEFAULT_LLM_MODEL,
        base_url=env.get("OPENAI_BASE_URL") or None,
        api_key=env.get("OPENAI_API_KEY") or None,
        timeout=60.0,
    )


def slm_runtimes(
    model_path: str | None = None, *, n_ctx: int = 1024, n_threads: int | None = None, lora_path: str | None = None
) -> dict[str, Any]:
    """One in-process llama.cpp runtime per SLM part, all on the same GGUF file.

    The weights are memory-mapped once; each part gets its own llama.cpp context (``seed`` only
    tells the runtime's model cache the contexts apart: decoding is greedy), so each part's fixed
    system prompt and tools stay in its own KV cache from one question to the next and only the
    question is evaluated. On a small CPU that is most of the demo's speed.

    Args:
        model_path: A GGUF file (default: the packaged SmolLM2-135M-Instruct).
        n_ctx: Context per part.
        n_threads: Decoding threads. None: every core, or one when the machine is already busy
            (load average at or above the core count), since llama.cpp threads spin-wait for each
            other and oversubscribed cores make every step many times slower.
        lora_path: A LoRA adapter (``adapter.gguf`` from ``slm-agents finetune``) every part runs with.
    """
    from .runtimes.llamacpp import LlamaCppRuntime

    if n_threads is None:
        cores = os.cpu_count() or 1
        busy = hasattr(os, "getloadavg") and os.getloadavg()[0] >= cores
        n_threads = 1 if busy else cores
    return {part: LlamaCppRuntime(model_path, n_ctx=n_ctx, n_threads=n_threads, seed=i, lora_path=lora_path)
            for i, part in enumerate(PARTS)}


def _format_step(step: Step) -> str:
    reason = f" ({step.reason})" if step.reason else ""
    line = f"  {step.part:<15} {step.route}{reason:<18} {step.latency_ms:6.0f} ms  "
    if step.part in ("query_writer", "query_fixer"):
        line += f"run_sql: {describe_output(step.output, 80) or '(no query)'}"
        result = step.result
        if result is not None:
            if result.ok:
                rows = "; ".join(", ".join(str(v) for v in row) for row in result.rows[:3])
                more = f" (+{len(result.rows) - 3} more)" if len(result.rows) > 3 else ""
                line += f"\n  {'':<15} -> {len(result.rows)} row(s): {describe_output(rows, 70)}{more}"
            else:
                line += f"\n  {'':<15} -> error: {describe_output(result.error, 70)}"
    elif step.part == "table_extractor":
        line += f"select_table: {step.output or '(none)'}"
    elif step.part == "reranker":
        line += f"choose_table: {' > '.join(step.output or []) or '(none)'}"
    elif isinstance(step.output, list):
        line += f"ask_database: {describe_output(step.output, 80)}"
    else:
        line += f"answer: {describe_output(step.output, 80)}"
    return line


def _outcome(answer: Answer) -> str:
    if answer.text is not None:
        return "answered" if answer.ok else "no answer"
    if answer.ok:
        fixed = f" after {answer.fixes} fix(es)" if answer.fixes else ""
        return f"SQL ran{fixed}: {len(answer.result.rows)} row(s)"  # type: ignore[union-attr]
    return f"SQL still failing after {answer.fixes} fix(es): unanswered"


def run_demo(
    slm: Any,
    llm: Any = None,
    questions: list[str] | None = None,
    *,
    store: Any = None,
    echo: Callable[[str], None] = print,
    max_fixes: int = 2,
) -> list[Answer]:
    """Run the Query Writer agent on ``questions`` (default :data:`DEMO_QUESTIONS`), printing each step.

    Args:
        slm: The SLM runtime, or ``{part: runtime}`` (see :func:`slm_runtimes`).
        llm: The researcher's LLM runtime, or None (the SLM stands in; the steps are recorded as
            needing escalation).
        questions: What to ask.
        store: A :class:`~slm_agents.capture.CaptureStore` (None: capture nothing).
        echo: Where lines go.
        max_fixes: Most query-fixer attempts per question.

    Returns:
        One :class:`~slm_agents.querywriter.agent.Answer` per question.
    """
    agent = QueryWriterAgent(slm, llm, store=store, max_fixes=max_fixes,
                             on_step=lambda _answer, step: echo(_format_step(step)))
    if llm is None:
        echo("No LLM configured (set OPENAI_API_KEY or OPENAI_BASE_URL): the SLM stands in for the researcher,\n"
             "and those steps are recorded as needing escalation (reason route:llm_tasks).")
    else:
        echo(f"Researcher on the LLM: {llm.model_name} ({llm.name}).")
    answers = []
    for question in questions or DEMO_QUESTIONS:
        echo(f"\nQ: {question}")
        started = time.perf_counter()
        answer = agent.run(question)
        echo(f"  => {_outcome(answer)} [{(time.perf_counter() - started):.1f} s]")
        answers.append(answer)
    answered = sum(a.ok for a in answers)
    echo(f"\n{answered}/{len(answers)} questions answered; "
         f"{sum(len(a.steps) + sum(len(s.steps) for s in a.sub_answers) for a in answers)} model steps.")
    return answers


def show_loop(db_path: str | os.PathLike[str], *, echo: Callable[[str], None] = print,
              export_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Print what ``slm-agents stats``, ``tasks`` and ``export`` say about a capture file.

    Runs the CLI's own commands in-process (the same code and output as on the command line).
    The export keeps the LLM's answers and the SLM answers whose SQL ran (label ``verified``). It
    goes to ``export_dir``, by default the folder ``slm_agents_export`` beside the capture file,
    which each run replaces (its files, not the folder's other contents).

    Returns:
        ``{"export_dir", "files": {name: lines}}``.
    """
    import click

    from .cli_capture import stats_command
    from .cli_loop import export_command, tasks_command

    out = Path(export_dir) if export_dir is not None else Path(db_path).absolute().parent / "slm_agents_export"
    db = str(db_path)
    commands = [
        (stats_command, ["--db", db]),
        (tasks_command, ["--db", db]),
        (export_command, ["--db", db, "-o", str(out), "--route", "llm", "--route", "slm", "--label", "verified",
                          "--no-progress", "--force"]),
    ]
    for command, args in commands:
        echo(f"\n$ slm-agents {command.name} {' '.join(args)}")
        try:
            command.main(args, prog_name=f"slm-agents {command.name}", standalone_mode=False)
        except click.ClickException as e:
            echo(f"  {e.format_message()}")
    files = {}
    for path in sorted(out.glob("*")):
        with open(path, encoding="utf-8") as f:
            files[path.name] = sum(1 for _ in f)
    echo(f"\nexported files in {out}: " + ", ".join(f"{n} ({c} lines)" for n, c in files.items()))
    return {"export_dir": out, "files": files}
