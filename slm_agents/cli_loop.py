"""``slm-agents`` commands for the loop after capture: tasks, export, eval, calibrate.

:func:`register` adds them to the main ``slm-agents`` click group. Every command takes
``--db PATH`` (default ``$SLM_AGENTS_DB`` or ./slm_agents.db) and ``--task ID`` (a ``t-…`` id or
a task name from ``slm-agents tasks``). Usage with examples: docs/loop.md.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .errors import SLMAgentsError

__all__ = ["register", "tasks_command", "export_command", "eval_command", "calibrate_command"]

_db_option = click.option(
    "--db", "db_path", type=click.Path(dir_okay=False), default=None, envvar="SLM_AGENTS_DB",
    help="Capture database (default: $SLM_AGENTS_DB or ./slm_agents.db).",
)
_task_option = click.option("--task", "task_id", default=None, help="Only this task: a t-… id or a task name.")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _runtime_options(f: Any, candidates: bool = False) -> Any:
    model = (
        [click.option("--model-path", "model_path", type=click.Path(dir_okay=False), multiple=True,
                      help="GGUF file to replay on (default: the packaged SmolLM2); repeat to compare models."),
         click.option("--lora", "lora_paths", type=click.Path(dir_okay=False), multiple=True,
                      help="Also compare the (first) model with this LoRA adapter (adapter.gguf); repeatable.")]
        if candidates else
        [click.option("--model-path", type=click.Path(dir_okay=False), default=None,
                      help="GGUF file to replay on (default: the packaged SmolLM2).")]
    )
    for option in reversed([
        *model,
        click.option("--base-url", default=None, help="Replay on an OpenAI-compatible server instead."),
        click.option("--model", "model_name", default=None, help="Model name on that server."),
        click.option("--cases", "cases_path", type=click.Path(exists=True, dir_okay=False), default=None,
                     help='Evaluate a JSONL file of {"messages", "tools", "expected"} instead of captured calls.'),
        click.option("--limit", type=click.IntRange(1, 2**63 - 1), default=None,
                     help="Most cases per task (default: 50 captured cases; every line of --cases)."),
        click.option("--max-tokens", type=click.IntRange(1, 2**31 - 1), default=256, show_default=True,
                     help="Cap per replayed answer."),
    ]):
        f = option(f)
    return f


def _fail(e: SLMAgentsError) -> click.ClickException:
    return click.ClickException(str(e))


from .cli_capture import FiniteFloat, IsoTime, one_line_errors, safe_text  # noqa: E402


def _open(db_path: str | None, *, write: bool = True) -> Any:
    from .cli_capture import open_capture_file

    return open_capture_file(db_path, write=write)  # one-line errors: missing, not SQLite, newer schema


def _candidate_options(f: Any) -> Any:
    return _runtime_options(f, candidates=True)


def make_runtime(model_path: str | None, base_url: str | None, model_name: str | None,
                 lora_path: str | None = None) -> Any:
    """The runtime to replay on: an OpenAI-compatible server, else in-process llama.cpp."""
    if base_url:
        from .runtimes.openai_compat import OpenAICompatRuntime

        return OpenAICompatRuntime(model=model_name or "default", base_url=base_url)
    from .runtimes.llamacpp import LlamaCppRuntime

    return LlamaCppRuntime(model_path, lora_path=lora_path)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value * 100:.0f}%" if pct else f"{value:.2f}"
    return str(value)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


# -- tasks -----------------------------------------------------------------------------------------
@click.command("tasks")
@_db_option
@click.option("--recluster", is_flag=True, help="Cluster again now (otherwise only when new calls arrived).")
@click.option("--eval", "eval_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Results of 'slm-agents eval --json': show each task's replay readiness too.")
@_json_option
@one_line_errors
def tasks_command(db_path: str | None, recluster: bool, eval_path: str | None, as_json: bool) -> None:
    """List the tasks captured calls fall into (clustering new calls first).

    Calls with an explicit task label (LangGraph node, router task=) form one task per label;
    the rest are grouped by tools + system prompt, then by content (TF-IDF + k-means).
    "outcome ready" is the share of a task's SLM calls accepted and not followed by a tool error
    or negative feedback; "replay ready" (with --eval) is what slm-agents eval measured.
    """
    from .capture.outcomes import TaskOutcome, outcome_readiness
    from .dataset import list_tasks
    from .evaluate import load_replay_readiness

    try:
        db = _open(db_path)
        tasks = list_tasks(db, recluster=True if recluster else None)
        outcomes = outcome_readiness(db, by="cluster")
        replay = load_replay_readiness(eval_path) if eval_path else {}
    except SLMAgentsError as e:
        raise _fail(e) from e
    no_outcome = TaskOutcome()
    if as_json:
        click.echo(json.dumps([{**t.to_dict(), "outcome": outcomes.get(t.id, no_outcome).to_dict(),
                                "replay_readiness": replay.get(t.policy_key)} for t in tasks], indent=2))
        return
    if not tasks:
        click.echo("No calls captured yet.")
        return
    rows = [[t.id, t.name or "-", str(t.calls), _fmt(t.llm_share, pct=True),
             _fmt(outcomes.get(t.id, no_outcome).readiness, pct=True), _fmt(replay.get(t.policy_key), pct=True),
             str(t.input_tokens + t.output_tokens), f"${t.llm_cost_usd:.4f}", t.label[:70]] for t in tasks]
    click.echo(safe_text(_table(rows, ["id", "name", "calls", "on LLM", "outcome ready", "replay ready", "tokens",
                                       "LLM cost", "label"])))


# -- export ----------------------------------------------------------------------------------------
@click.command("export")
@_db_option
@_task_option
@click.option("--format", "fmt", type=click.Choice(["openai", "trl", "preference"]), default="openai",
              show_default=True, help="Output format.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (train.jsonl, validation.jsonl, README.md).")
@click.option("--val-fraction", type=FiniteFloat(0.0, 1.0), default=0.1, show_default=True, help="Validation share per tool.")
@click.option("--seed", type=int, default=0, show_default=True, help="Split seed.")
@click.option("--route", "routes", multiple=True, help="Routes to export (default: llm, the teacher's answers).")
@click.option("--model", "models", multiple=True, help="Only calls answered by this model.")
@click.option("--since", type=IsoTime(), default=None, help="Only calls at or after this UTC date/time (ISO).")
@click.option("--until", type=IsoTime(), default=None, help="Only calls before this UTC date/time (ISO).")
@click.option("--label", "labels", multiple=True, help="Only calls (or runs) with this label.")
@click.option("--exclude-label", "exclude_labels", multiple=True, help="Leave out calls (or runs) with this label.")
@click.option("--max-messages", type=int, default=None, help="Leave out longer conversations.")
@click.option("--max-chars", type=int, default=None, help="Leave out requests with more characters.")
@click.option("--max-tokens", type=int, default=None, help="Leave out calls with more tokens (estimated if unknown).")
@click.option("--no-dedupe", is_flag=True, help="Keep repeated requests.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--force", is_flag=True, help="Overwrite an earlier export in the -o folder.")
@_json_option
@one_line_errors
def export_command(db_path: str | None, task_id: str | None, fmt: str, out_dir: str, val_fraction: float, seed: int,
                   routes: tuple[str, ...], models: tuple[str, ...], since: str | None, until: str | None,
                   labels: tuple[str, ...], exclude_labels: tuple[str, ...], max_messages: int | None,
                   max_chars: int | None, max_tokens: int | None, no_dedupe: bool, progress: bool | None,
                   force: bool, as_json: bool) -> None:
    """Write curated calls as fine-tuning files, split into train/validation, with a dataset card."""
    from .dataset import export_dataset

    curate: dict[str, Any] = {}
    if fmt == "preference":
        given = [name for name, value in (("--route", routes), ("--model", models), ("--since", since),
                                          ("--until", until), ("--label", labels), ("--exclude-label", exclude_labels),
                                          ("--max-messages", max_messages), ("--max-chars", max_chars),
                                          ("--max-tokens", max_tokens), ("--no-dedupe", no_dedupe)) if value]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} filter captured calls, but --format preference exports every escalation "
                "pair (optionally one --task); drop those options"
            )
    else:
        curate = dict(routes=routes or ("llm",), models=models or None, since=since, until=until,
                      labels=labels or None, exclude_labels=exclude_labels or None, max_messages=max_messages,
                      max_chars=max_chars, max_tokens=max_tokens, dedupe=not no_dedupe)
    try:
        db = _open(db_path)
        result = export_dataset(db, out_dir, format=fmt, task_id=task_id, val_fraction=val_fraction, seed=seed,
                                progress=progress, force=force, **curate)
    except SLMAgentsError as e:
        raise _fail(e) from e
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(result.dropped.items())) or "none"
    click.echo(f"Wrote {result.train} train + {result.validation} validation examples ({fmt}) to {result.out_dir}")
    click.echo(f"  read {result.scanned} rows; left out: {dropped}; {result.seconds:.2f} s")
    click.echo(f"  dataset card: {result.files['card']}")


# -- eval ------------------------------------------------------------------------------------------
def _load(db_path: str | None, task_id: str | None, cases_path: str | None, limit: int | None) -> list[Any]:
    if cases_path:
        from .evaluate import load_cases

        per_task: dict[str, int] = {}
        kept = []
        try:
            loaded = load_cases(cases_path)
        except UnicodeDecodeError as e:
            raise click.ClickException(f"{cases_path} is not UTF-8 JSONL text (a binary file? byte {e.start}); "
                                       "pass a .jsonl file with one case per line") from e
        for case in loaded:
            if task_id and case.task != task_id:
                continue
            per_task[case.task] = per_task.get(case.task, 0) + 1
            if limit is None or per_task[case.task] <= limit:
                kept.append(case)
        return kept
    from .dataset import cases_from_db

    return cases_from_db(_open(db_path), task_id=task_id, limit=limit or 50)


def _replay(db_path: str | None, task_id: str | None, cases_path: str | None, limit: int | None,
            model_path: str | None, base_url: str | None, model_name: str | None, max_tokens: int,
            max_wrong: float, lora_path: str | None = None, cases: list[Any] | None = None) -> Any:
    from .evaluate import evaluate

    cases = cases if cases is not None else _load(db_path, task_id, cases_path, limit)
    if not cases:
        raise click.ClickException(
            "no cases to evaluate: no successful LLM calls captured"
            + (f" for task {task_id!r}" if task_id else "")
            + ". Capture some (route 'llm'), or pass --cases FILE.jsonl."
        )
    runtime = make_runtime(model_path, base_url, model_name, lora_path)
    show = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            click.echo(f"\r  replayed {done}/{total}", nl=done == total, err=True)

    return evaluate(runtime, cases, max_wrong_rate=max_wrong, max_tokens=max_tokens, progress=progress)


@click.command("eval")
@_db_option
@_task_option
@_candidate_options
@click.option("--max-wrong", type=FiniteFloat(0.0, 1.0), default=0.02, show_default=True,
              help="Target share of wrong answers the SLM may keep, for the recommended threshold.")
@_json_option
@one_line_errors
def eval_command(db_path: str | None, task_id: str | None, model_path: tuple[str, ...], lora_paths: tuple[str, ...],
                 base_url: str | None, model_name: str | None, cases_path: str | None, limit: int, max_tokens: int,
                 max_wrong: float, as_json: bool) -> None:
    """Replay a task's captured LLM calls through an SLM and report readiness per task.

    Several --model-path/--lora candidates are replayed on the same cases and compared side by
    side, with the smallest one that can take each task.
    """
    from .evaluate import recommend_candidate

    candidates = _candidates(model_path, lora_paths, base_url)
    try:
        if len(candidates) == 1:
            c = candidates[0]
            report = _replay(db_path, task_id, cases_path, limit, c.model_path, base_url, model_name, max_tokens,
                             max_wrong, c.lora_path)
        else:
            cases = _load(db_path, task_id, cases_path, limit)
            reports = {c.label: _replay(db_path, task_id, cases_path, limit, c.model_path, base_url, model_name,
                                        max_tokens, max_wrong, c.lora_path, cases) for c in candidates}
    except SLMAgentsError as e:
        raise _fail(e) from e
    if len(candidates) > 1:
        tasks = sorted({t for r in reports.values() for t in r.tasks})
        best = {t: recommend_candidate(reports, candidates, t) for t in tasks}
        if as_json:
            click.echo(json.dumps({
                "candidates": [{"label": c.label, "model_path": c.model_path, "lora_path": c.lora_path,
                                "size_bytes": c.size_bytes} for c in candidates],
                "reports": {k: r.to_dict() for k, r in reports.items()},
                "recommended": {t: (b.label if b else None) for t, b in best.items()},
            }, indent=2, default=str))
            return
        rows = [[t, c.label, str(r.tasks[t].n), _fmt(r.tasks[t].tool_name_accuracy, True),
                 _fmt(r.tasks[t].args_exact_match, True), _fmt(r.tasks[t].abstention_accuracy, True),
                 _fmt(r.tasks[t].readiness, True), r.tasks[t].recommendation, f"{c.size_bytes / 1e6:.0f} MB"]
                for t in tasks for c in candidates if t in (r := reports[c.label]).tasks]
        click.echo(safe_text(_table(rows, ["task", "candidate", "n", "tool", "args", "abstain", "ready",
                                           "recommendation", "size"])))
        click.echo("")
        for t, b in best.items():
            click.echo(safe_text(f"{t}: ") + (f"use {b.label} (the smallest that can take it)" if b
                                   else "keep on LLM (no candidate can take it)"))
        return
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    rows = [[t.task, str(t.n), _fmt(t.tool_name_accuracy, True), _fmt(t.args_exact_match, True),
             _fmt(t.schema_validity, True), _fmt(t.abstention_accuracy, True), f"{t.latency_p50_ms:.0f}",
             f"{t.tokens_per_s:.1f}", _fmt(t.readiness, True), t.recommendation,
             _fmt(t.threshold)] for t in report.tasks.values()]
    click.echo(safe_text(_table(rows, ["task", "n", "tool", "args", "schema", "abstain", "p50 ms", "tok/s", "ready",
                                       "recommendation", "threshold"])))


def _candidates(model_paths: tuple[str, ...], lora_paths: tuple[str, ...], base_url: str | None) -> list[Any]:
    """Each --model-path, then the first (or default) model with each --lora."""
    import os

    from .evaluate import Candidate

    if base_url and (len(model_paths) > 1 or lora_paths):
        raise click.ClickException("--base-url replays one server model: drop --model-path/--lora, or --base-url")
    models: list[str | None] = list(model_paths) or [None]

    def size(path: str | None) -> int:
        from .models import default_model_path

        try:
            return os.path.getsize(path or default_model_path())
        except (OSError, SLMAgentsError):
            return 0

    out = [Candidate(os.path.basename(m) if m else "default", m, None, size(m)) for m in models]
    for lora in lora_paths:
        out.append(Candidate(f"{out[0].label}+{os.path.basename(os.path.dirname(os.path.abspath(lora)))}"
                             f"/{os.path.basename(lora)}", models[0], lora, out[0].size_bytes + size(lora)))
    labels = [c.label for c in out]
    for i, c in enumerate(out):
        if labels.count(c.label) > 1:
            c.label = f"{c.label}#{i + 1}"
    return out


# -- calibrate -------------------------------------------------------------------------------------
@click.command("calibrate")
@_db_option
@_task_option
@click.option("--max-wrong", type=FiniteFloat(0.0, 1.0), default=0.02, show_default=True,
              help="Largest share of wrong answers the SLM may keep.")
@click.option("--from", "source", type=click.Choice(["replay", "shadow"]), default="replay", show_default=True,
              help="Replay captured LLM calls now, or use shadow pairs already captured.")
@click.option("-o", "--output", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy file to update (default: $SLM_AGENTS_POLICY or ./slm_agents_policy.json).")
@click.option("--decision", is_flag=True,
              help="Calibrate the tool_choice='auto' call-or-answer decision instead: per-task threshold and margin.")
@_runtime_options
@_json_option
@one_line_errors
def calibrate_command(db_path: str | None, task_id: str | None, max_wrong: float, source: str,
                      policy_path: str | None, decision: bool, model_path: str | None, base_url: str | None,
                      model_name: str | None, cases_path: str | None, limit: int, max_tokens: int,
                      as_json: bool) -> None:
    """Choose each task's confidence threshold (or, with --decision, its call-or-answer threshold and
    margin) and write it into the policy file.

    EscalationPolicy.load(path) reads it; set SLM_AGENTS_POLICY=path for EscalationPolicy.from_env().
    """
    import os

    from .dataset import DEFAULT_POLICY_PATH, calibrate_results, calibrate_shadow, write_thresholds

    path = policy_path or os.environ.get("SLM_AGENTS_POLICY") or DEFAULT_POLICY_PATH
    if decision:
        _calibrate_decisions(db_path, task_id, cases_path, limit, model_path, base_url, model_name, path,
                                    as_json)
        return
    try:
        if source == "shadow":
            calibrations = calibrate_shadow(_open(db_path), task_id=task_id, max_wrong=max_wrong)
        else:
            report = _replay(db_path, task_id, cases_path, limit, model_path, base_url, model_name, max_tokens,
                             max_wrong)
            calibrations = calibrate_results(report.results, max_wrong=max_wrong)
        policy = write_thresholds(calibrations, path)
    except SLMAgentsError as e:
        raise _fail(e) from e
    if as_json:
        click.echo(json.dumps({"policy": str(path), "task_thresholds": policy.task_thresholds,
                               "tasks": {k: v.to_dict() for k, v in calibrations.items()}}, indent=2))
        return
    rows = [[c.task, str(c.n), _fmt(c.accuracy, True), _fmt(c.threshold), _fmt(c.coverage, True),
             _fmt(c.wrong_rate, True), c.recommendation] for c in calibrations.values()]
    click.echo(safe_text(_table(rows, ["task", "n", "accuracy", "threshold", "kept", "wrong kept", "recommendation"])))
    click.echo(f"\nWrote {sum(c.threshold is not None for c in calibrations.values())} threshold(s) to {path}. "
               f"Use it with EscalationPolicy.load({str(path)!r}) or SLM_AGENTS_POLICY={path}.")


def _calibrate_decisions(db_path: str | None, task_id: str | None, cases_path: str | None, limit: int | None,
                                model_path: str | None, base_url: str | None, model_name: str | None, path: str,
                                as_json: bool) -> None:
    from .dataset import calibrate_decisions, write_decisions

    if base_url:
        raise click.UsageError("--decision scores decisions in-process; drop --base-url (use --model-path)")
    try:
        cases = _load(db_path, task_id, cases_path, limit)
        if not cases:
            raise click.ClickException("no cases to calibrate on: capture some LLM calls, or pass --cases FILE.jsonl")
        decisions = calibrate_decisions(make_runtime(model_path, None, model_name), cases)
        write_decisions(decisions, path)
    except SLMAgentsError as e:
        raise _fail(e) from e
    if as_json:
        click.echo(json.dumps({"policy": str(path), "task_decisions": decisions}, indent=2))
        return
    rows = [[task, str(d["n"]), _fmt(d["balanced_accuracy"], True), _fmt(d["threshold"]), _fmt(d["margin"])]
            for task, d in decisions.items()]
    click.echo(safe_text(_table(rows, ["task", "n", "balanced accuracy", "threshold", "margin"])))
    click.echo(f"\nWrote {len(decisions)} decision setting(s) to {path} (tasks whose cases all call, or all "
               "answer, cannot be calibrated and are left out).")


def register(group: click.Group) -> None:
    """Add ``tasks``, ``export``, ``eval`` and ``calibrate`` to ``group``."""
    for command in (tasks_command, export_command, eval_command, calibrate_command):
        group.add_command(command)
