"""``slm-agents`` commands over the capture database: stats, calls, call, merge, redact-check.

:func:`register` adds them to the main ``slm-agents`` click group. Every command takes
``--db PATH`` (default ``$SLM_AGENTS_DB`` or ``./slm_agents.db``). The same file opens in
Datasette as it is: ``datasette slm_agents.db``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from ._terminal import safe_text

__all__ = ["register", "open_capture_file", "one_line_errors", "safe_text", "FiniteFloat", "IsoTime", "stats_command", "calls_command", "call_command", "merge_command", "redact_check_command"]

_db_option = click.option(
    "--db", "db_path", type=click.Path(dir_okay=False), default=None, envvar="SLM_AGENTS_DB",
    help="Capture database (default: $SLM_AGENTS_DB or ./slm_agents.db).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")


def open_capture_file(db_path: str | None, *, write: bool = False) -> Any:
    """Open the capture DB for a CLI command; every problem is one ``ClickException`` line.

    Read commands (``write=False``) open the file read-only (``mode=ro``): nothing is ever
    added to it, and a read-only file works. Writing commands (``write=True``: clustering tasks,
    export and eval record task tables) migrate an older capture file. Always checked first: the
    file exists, is SQLite, is a capture DB (has ``calls``) and is not from a newer slm-agents.
    """
    import os
    import sqlite3

    from sqlite_utils import Database

    from .capture.schema import migrate, migrations
    from .capture.store import resolve_path

    path = resolve_path(db_path)
    if not path.exists():
        raise click.ClickException(
            f"no capture database at {path}. Run an agent with capture on (slm-agents demo, CaptureStore / "
            "get_default_store), or pass --db PATH / set SLM_AGENTS_DB."
        )
    if path.is_dir():
        raise click.ClickException(f"{path} is a directory, not a capture database; pass --db FILE")
    conn = None
    try:
        conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "calls" not in tables:
            raise click.ClickException(f"{path} is not a slm-agents capture database (it has no calls table)")
        applied: set[str] = set()
        if "_sqlite_migrations" in tables:
            applied = {r[0] for r in conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [migrations.name])}
        known = {m.name for m in migrations._migrations}
        if migrations._migrations[0].name not in applied:  # every capture DB starts with m001 (it made calls)
            raise click.ClickException(f"{path} is not a slm-agents capture database (its calls table was not "
                                       "made by slm-agents: no schema record)")
        if applied - known:
            raise click.ClickException(
                f"{path} was written by a newer slm-agents (schema {sorted(applied - known)[-1]}); "
                "upgrade slm-agents to read it")
        if write and applied != known and not os.access(path, os.W_OK):
            raise click.ClickException(f"{path} has an older schema and is read-only; make it writable to migrate it")
        if write and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
            conn.close()
            conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            db = Database(conn)
            if applied != known:
                migrate(db)
            return db
        return Database(conn)
    except sqlite3.DatabaseError as e:
        if conn is not None:
            conn.close()
        raise click.ClickException(f"{path} is not a usable SQLite capture database ({e})") from e
    except click.ClickException:
        if conn is not None:
            conn.close()
        raise


def _open(db_path: str | None) -> Any:
    return open_capture_file(db_path)


def _echo(text: str, **kwargs: Any) -> None:
    click.echo(safe_text(text), **kwargs)


class FiniteFloat(click.ParamType):
    """A float option that refuses NaN, infinities and values outside ``[low, high]``."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            bounds = f"between {self.low:g} and {self.high:g}" if self.high is not None else f"at least {self.low:g}"
            self.fail(f"{value!r} must be {bounds}", param, ctx)
        return number


class IsoTime(click.ParamType):
    """A UTC date or date-time in ISO 8601 (``2025-05-01`` or ``2025-05-01T12:00:00Z``)."""

    name = "iso-date"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        import datetime as dt
        import re

        text = str(value).strip()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]00:?00)?", text):
            self.fail(f"{value!r} is not an ISO date or date-time such as 2025-05-01 or 2025-05-01T12:00:00Z",
                      param, ctx)
        try:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
        except ValueError as e:
            self.fail(f"{value!r} is not a valid date: {e}", param, ctx)
        return text.replace(" ", "T").rstrip("Z").split("+")[0]


def one_line_errors(f: Any) -> Any:
    """Turn database, file and decoding errors escaping a command into one ``Error:`` line.

    Example:
        >>> @one_line_errors
        ... def boom() -> None:
        ...     raise OSError(28, "No space left on device", "out.jsonl")
        >>> try:
        ...     boom()
        ... except click.ClickException as e:
        ...     print(e.message)
        cannot write out.jsonl: No space left on device
    """
    import functools
    import sqlite3

    from .errors import SLMAgentsError

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except sqlite3.Error as e:
            text = str(e)
            hint = " (the file is read-only: copy it somewhere writable)" if "readonly" in text else ""
            raise click.ClickException(f"database error{_in_db()}: {text}{hint}") from e
        except OSError as e:
            if e.filename:
                raise click.ClickException(f"cannot write {e.filename}: {e.strerror or e}") from e
            raise click.ClickException(str(e)) from e
        except UnicodeError as e:
            raise click.ClickException(f"not UTF-8 text: {e}") from e
        except SLMAgentsError as e:
            raise click.ClickException(str(e)) from e

    return wrapper


def _in_db() -> str:
    """`` in PATH`` for the running command's ``--db`` (so a corrupt page names its file), else ``""``."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if "db_path" in ctx.params:
            from .capture._paths import resolve_path

            return f" in {resolve_path(ctx.params['db_path'] or (ctx.obj or {}).get('db_path'))}"
        ctx = ctx.parent
    return ""


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "  (none)"

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1f}"
        return str(value)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  " + "  ".join("-" * w for w in widths))
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _price_option(name: str, default_help: str) -> Any:
    return click.option(
        f"--price-{name.replace('_', '-')}", name, type=FiniteFloat(0.0), default=None,
        envvar=f"SLM_AGENTS_PRICE_{name.upper()}", show_envvar=True,
        help=f"USD per million tokens ({default_help}).",
    )


@click.command("stats")
@_db_option
@_json_option
@_price_option("llm_input", "default 2.50")
@_price_option("llm_output", "default 10.00")
@_price_option("slm_input", "default 0")
@_price_option("slm_output", "default 0")
@one_line_errors
def stats_command(db_path: str | None, as_json: bool, **prices: float | None) -> None:
    """Calls by route, model and task; escalations; tokens; latency; estimated cost saved.

    Savings price the SLM calls that were kept (not escalated, no error) at the LLM's rate
    minus the SLM's, and subtract what escalated, failed and shadow SLM calls cost.
    """
    from .capture import Prices, stats

    summary = stats(_open(db_path), Prices.from_env(**prices))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    cost = summary["cost"]
    p = cost["prices_per_million_tokens"]
    out = [
        f"{summary['calls']} calls, {summary['tool_executions']} tool executions, {summary['labels']} labels",
        _capture_line(summary["capture"]),
        f"tokens: {summary['tokens']['input']} in, {summary['tokens']['output']} out; "
        f"latency p50 {_ms(summary['latency']['p50_ms'])}, p95 {_ms(summary['latency']['p95_ms'])}",
        "",
        "by route:",
        _table(summary["by_route"], ["route", "calls", "input_tokens", "output_tokens", "errors", "invalid", "p50_ms", "p95_ms"]),
        "",
        "by model:",
        _table(summary["by_model"], ["model", "calls", "input_tokens", "output_tokens", "p50_ms", "p95_ms"]),
        "",
        "by task:",
        _table(summary["by_task"], ["task", "calls", "input_tokens", "output_tokens", "errors", "p50_ms", "p95_ms"]),
        "",
        "escalation reasons:",
        _table(summary["escalations"] or summary["escalation_reasons_on_calls"], ["reason", "count"]),
        "",
        f"estimated cost (USD per 1M tokens: LLM {p['llm_input']}/{p['llm_output']} in/out, "
        f"SLM {p['slm_input']}/{p['slm_output']}):",
        f"  LLM calls ${cost['llm_cost']:.4f}, SLM calls ${cost['slm_cost']:.4f}, "
        f"all-LLM would have been ${cost['cost_if_all_llm']:.4f}",
        f"  saved ${cost['saved']:.4f}"
        + (f" ({cost['saved_fraction']:.0%})" if cost["saved_fraction"] is not None else "")
        + f" over {cost['slm_calls_kept']} SLM calls kept",
    ]
    _echo("\n".join(out))


def _capture_line(c: dict[str, int] | None) -> str:
    if c is None:
        return "capture: no store counters in this file (written by an older slm-agents)"
    open_ = f", {c['not_closed']} not closed (open, or the process ended without close)" if c["not_closed"] else ""
    return (f"capture: {c['accepted']} accepted, {c['written']} written, {c['dropped']} dropped, {c['failed']} failed, "
            f"{c['duplicates']} duplicate ids, {c['not_written']} not written ({c['stores']} store(s){open_})")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _list(db_path: str | None, route: str | None, task: str | None, model: str | None, limit: int, as_json: bool) -> None:
    from .capture import list_calls

    rows = list_calls(_open(db_path), route=route, task=task, model=model, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["tokens"] = f"{row['input_tokens'] or 0}/{row['output_tokens'] or 0}"
        row["answer"] = (row["content"] or "").replace("\n", " ")[:40] or (
            f"tools: {row['tool_names']}" if row["tool_names"] else ""
        )
    _echo(_table(rows, ["id", "ts", "route", "task", "model", "finish_reason", "latency_ms", "tokens", "answer"]))


def _show(db_path: str | None, call_id: str) -> None:
    from .capture import read_call

    call = read_call(_open(db_path), call_id)
    if call is None:
        raise click.ClickException(safe_text(f"no call with id {call_id!r}; list ids with: slm-agents calls"))
    _echo(json.dumps(call, indent=2, ensure_ascii=False))


@click.group("calls", invoke_without_command=True)
@_db_option
@click.option("--route", help="Only this route: slm, llm or shadow.")
@click.option("--task", help="Only this task.")
@click.option("--model", help="Only this model.")
@click.option("--limit", "-n", type=click.IntRange(0, 2**63 - 1), default=20, show_default=True,
              help="How many, newest first.")
@_json_option
@click.pass_context
@one_line_errors
def calls_command(ctx: click.Context, db_path: str | None, route: str | None, task: str | None,
                  model: str | None, limit: int, as_json: bool) -> None:
    """List captured calls, newest first; ``calls show ID`` prints one in full."""
    ctx.ensure_object(dict)
    ctx.obj["db_path"] = db_path
    if ctx.invoked_subcommand is None:
        _list(db_path, route, task, model, limit, as_json)


@calls_command.command("show")
@click.argument("call_id")
@_db_option
@click.pass_context
@one_line_errors
def calls_show_command(ctx: click.Context, call_id: str, db_path: str | None) -> None:
    """Print one call in full (JSON), with its tools, tool executions, escalations and labels."""
    _show(db_path or (ctx.obj or {}).get("db_path"), call_id)


@click.command("call")
@click.argument("call_id")
@_db_option
@one_line_errors
def call_command(call_id: str, db_path: str | None) -> None:
    """Print one call in full (same as ``calls show ID``)."""
    _show(db_path, call_id)


@click.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The combined file.")
@one_line_errors
def merge_command(sources: tuple[str, ...], output: str) -> None:
    """Combine per-worker capture files into one (rows deduplicated on id, blobs on hash)."""
    from .capture import merge
    from .errors import CaptureError

    for source in sources:  # each must be a capture DB (one line naming it otherwise); opened read-only
        open_capture_file(source).conn.close()
    if Path(output).exists():
        open_capture_file(output).conn.close()
    if not Path(output).absolute().parent.is_dir():
        raise click.ClickException(f"the folder {Path(output).absolute().parent} does not exist; create it first")
    try:
        added = merge(output, list(sources))
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"merged {len(sources)} file(s) into {output}: "
               + ", ".join(f"{n} {table}" for table, n in added.items()))


@click.command("redact-check")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--labelled", is_flag=True,
              help="Measure redaction on a labelled set (JSON Lines): FILE, or the set shipped with slm-agents.")
@click.option("--min-recall", type=FiniteFloat(0.0, 1.0), default=0.99, show_default=True,
              help="With --labelled: exit 1 when fewer labelled PII values than this share are removed.")
@click.option("--min-negatives", type=FiniteFloat(0.0, 1.0), default=0.98, show_default=True,
              help="With --labelled: exit 1 when fewer hard negatives than this share are stored unchanged.")
@click.pass_context
@one_line_errors
def redact_check_command(ctx: click.Context, file: str | None, labelled: bool, min_recall: float,
                         min_negatives: float) -> None:
    """Print FILE redacted as the capture store would store it; counts per kind on stderr.

    Use ``-`` for standard input. With ``--labelled``, run every item of a labelled set (FILE,
    default: the shipped one) through the capture store's redaction and print the recall (labelled
    PII values removed), the hard negatives kept unchanged, recall per kind and each miss (masked);
    the exit code is 1 below --min-recall or --min-negatives. Format: docs/capture.md.
    """
    from .capture._utils import clean_text

    if labelled:
        _labelled_check(ctx, file, min_recall, min_negatives)
        return
    if file is None:
        raise click.UsageError("give FILE (or - for standard input), or --labelled to measure on a labelled set")
    from .capture import Redactor

    with click.open_file(file, "r", encoding="utf-8", errors="surrogateescape") as f:
        text = f.read()
    if "\x00" in text:
        raise click.ClickException(f"{file} is a binary file; redact-check reads text")
    redactor = Redactor.default()
    session = redactor.session()
    click.echo(clean_text(session.text(text)), nl=False)  # whole text: PEM keys span lines
    counts = Counter(session.counts)
    summary = ", ".join(f"{kind}: {n}" for kind, n in counts.most_common()) or "nothing found"
    click.echo(f"redact-check: {sum(counts.values())} redaction(s) — {summary}", err=True)


def _labelled_check(ctx: click.Context, file: str | None, min_recall: float, min_negatives: float) -> None:
    from .capture.redact_check import (
        SHIPPED_SET,
        check_labelled,
        load_labelled,
        parse_labelled,
        summary_lines,
    )

    if file == "-":
        with click.open_file("-", "rb") as stdin:
            data = stdin.read()
        try:
            items = parse_labelled(data.decode("utf-8"), name="standard input")
        except UnicodeDecodeError as e:
            raise click.ClickException(f"standard input is not UTF-8 text ({e.reason}): not a labelled set") from e
    else:
        items = load_labelled(file)
    result = check_labelled(items)
    negatives = sum(1 for item in items if item.negative)
    click.echo(f"redact-check: {len(items)} labelled items ({len(items) - negatives} with PII, {negatives} hard "
               f"negatives) from {'standard input' if file == '-' else file or SHIPPED_SET}")
    _echo("\n".join(summary_lines(result)))
    failures = []
    if result.recall is None or result.recall < min_recall:
        failures.append("no labelled PII values" if result.recall is None else
                        f"recall {result.recall:.3f} < {min_recall:g}")
    if result.negatives_kept is None or result.negatives_kept < min_negatives:
        failures.append("no hard negatives" if result.negatives_kept is None else
                        f"hard negatives kept {result.negatives_kept:.3f} < {min_negatives:g}")
    if failures:
        click.echo("FAIL: " + "; ".join(failures))
        ctx.exit(1)
    click.echo(f"PASS: recall >= {min_recall:g}, hard negatives kept >= {min_negatives:g}")


def register(group: click.Group) -> None:
    """Add the capture commands to ``group`` (the main ``slm-agents`` group)."""
    for command in (stats_command, calls_command, call_command, merge_command, redact_check_command):
        group.add_command(command)


def _main() -> None:  # pragma: no cover - lets the commands run before cli.py wires them
    group = click.Group("slm-agents")
    register(group)
    group()


if __name__ == "__main__":  # pragma: no cover
    _main()
    sys.exit(0)
