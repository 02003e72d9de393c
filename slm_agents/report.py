"""``slm-agents report``: one self-contained HTML page about a capture file.

Sections: calls by route over time; each task's share of the calls and how ready it is for the
SLM (outcome readiness, and replay readiness when ``slm-agents eval`` results are given); latency
of SLM and LLM calls; escalation reasons; estimated cost saved. Charts are SVG
drawn by matplotlib (the ``loop`` extra) and inlined: the page loads nothing, from anywhere.
Every captured string (task names, models, reasons) is escaped: it is user data.

The numbers come from :func:`slm_agents.capture.query.stats` (the same as ``slm-agents stats``);
the report only adds per-task and per-time breakdowns of the ``calls`` table. Readiness is never
"not escalated": *outcome readiness* is the share of a task's SLM calls that were accepted and not
followed by a tool error or negative feedback (:mod:`slm_agents.capture.outcomes`); *replay
readiness* is what ``slm-agents eval`` measured (``--eval FILE``, the ``--json`` output).

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> _ = store.log({"messages": [{"role": "user", "content": "hi"}], "route": "slm", "task": "greet",
    ...                "latency_ms": 40, "input_tokens": 10, "output_tokens": 2})
    >>> store.flush()
    True
    >>> page = render_report(store.db)
    >>> "<svg" in page and "Calls by route over time" in page and "http://" not in page.split("<svg")[0]
    True
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from ._terminal import safe_text
from .capture.outcomes import outcome_readiness
from .capture.query import Prices, stats
from .errors import missing_extra

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = ["render_report", "write_report", "report_data", "SECTIONS"]

#: The section titles, in page order.
SECTIONS = (
    "Calls by route over time",
    "Tasks: share and outcome readiness",
    "Latency: SLM vs LLM",
    "Escalation reasons",
    "Estimated cost saved",
)

_COLORS = {"slm": "#2e7d32", "llm": "#ef6c00", "shadow": "#757575", "needed": "#c62828", "other": "#5c6bc0"}
_MAX_LABEL = 40


def _label(text: Any) -> str:
    """A chart label: captured text shortened, escape codes shown (matplotlib escapes it in the SVG; math is off).

    Control characters are made visible as in the CLI (``\\x1b``): a font has no glyph for them, and
    matplotlib's warning about it would print them raw to the terminal.
    """
    value = "(none)" if text is None or text == "" else str(text)
    value = safe_text(" ".join(value.split()))
    return value if len(value) <= _MAX_LABEL else value[: _MAX_LABEL - 1] + "…"


def _parse_ts(value: Any) -> _dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


# -- data ------------------------------------------------------------------------------------------
def report_data(db: Database, prices: Prices | None = None, *,
                replay: dict[str, float] | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain data (the summary is :func:`~slm_agents.capture.query.stats`).

    Args:
        db: The capture database.
        prices: Token prices (default :meth:`Prices.from_env`).
        replay: Replay readiness per task (:func:`slm_agents.evaluate.load_replay_readiness`).
    """
    summary = stats(db, prices or Prices.from_env())
    times: list[tuple[_dt.datetime, str]] = []
    for ts, route in db.execute("SELECT ts, route FROM calls WHERE ts IS NOT NULL ORDER BY ts").fetchall():
        parsed = _parse_ts(ts)
        if parsed is not None:
            times.append((parsed, route or "other"))
    latencies: dict[str, list[float]] = defaultdict(list)
    for route, ms in db.execute(  # numbers only, finite: text or inf from another tool would break the chart
            "SELECT route, latency_ms FROM calls WHERE typeof(latency_ms) IN ('integer', 'real') "
            "AND abs(latency_ms) < 9e999").fetchall():
        latencies[route or "other"].append(float(ms))
    # Per task: what the SLM kept, what needed the LLM (escalated, or no LLM was there), what the LLM did.
    tasks = [dict(r) for r in db.query(
        """SELECT COALESCE(task, '') AS task, COUNT(*) AS calls,
                  SUM(route = 'slm' AND error_type IS NULL AND escalation_reason IS NULL
                      AND id NOT IN (SELECT slm_call_id FROM escalations WHERE slm_call_id IS NOT NULL)) AS slm_kept,
                  SUM(route = 'slm' AND NOT (error_type IS NULL AND escalation_reason IS NULL
                      AND id NOT IN (SELECT slm_call_id FROM escalations WHERE slm_call_id IS NOT NULL))) AS slm_needed_llm,
                  SUM(route = 'llm') AS llm, SUM(route = 'shadow') AS shadow
           FROM calls GROUP BY COALESCE(task, '') ORDER BY calls DESC""")]
    outcomes = outcome_readiness(db)
    for task in tasks:
        outcome = outcomes.get(task["task"])
        task["tool_errors"] = outcome.tool_errors if outcome else 0
        task["negative_feedback"] = outcome.negative_feedback if outcome else 0
        task["outcome_readiness"] = outcome.readiness if outcome else None
        task["replay_readiness"] = (replay or {}).get(task["task"]) if task["task"] else None
        task["share"] = task["calls"] / summary["calls"] if summary["calls"] else 0.0
    # One row per escalation event: an SLM attempt (escalated to the LLM, or not because none
    # answered) or an LLM call routed there first; the LLM side of a linked pair is not counted twice.
    reasons = [dict(r) for r in db.query(
        """SELECT reason, kind, COUNT(*) AS count FROM (
             SELECT escalation_reason AS reason,
                    CASE WHEN route = 'llm' THEN 'routed'
                         WHEN id IN (SELECT slm_call_id FROM escalations WHERE slm_call_id IS NOT NULL) THEN 'escalated'
                         ELSE 'needed' END AS kind
             FROM calls
             WHERE escalation_reason IS NOT NULL
               AND id NOT IN (SELECT llm_call_id FROM escalations WHERE llm_call_id IS NOT NULL))
           GROUP BY reason, kind ORDER BY count DESC""")]
    return {"summary": summary, "times": times, "latencies": dict(latencies), "tasks": tasks, "reasons": reasons}


# -- charts ----------------------------------------------------------------------------------------
def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise missing_extra("matplotlib", "loop") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _style() -> dict[RcKeyType, Any]:
    return {
        "svg.fonttype": "none",  # text stays text: small, selectable, escaped by matplotlib
        "svg.hashsalt": "slm-agents",  # stable ids: the same data gives the same page
        "text.parse_math": False,  # a captured "$...$" is text, never mathtext
        "font.size": 10,
        "font.family": "sans-serif",
        "axes.spines.top": False,
        "axes.spines.right": False,
    }


_SVG_HEAD = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_SVG_META = re.compile(r"<metadata>.*?</metadata>", re.DOTALL)


def _svg(fig: Any, plt: Any, title: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = _SVG_META.sub("", _SVG_HEAD.sub("", buffer.getvalue(), count=1))
    # An accessible name, and a class the page (and its tests) can find.
    return text.replace("<svg ", f'<svg class="chart" role="img" aria-label="{html.escape(title)}" ', 1)


def _empty(plt: Any, title: str, message: str) -> str:
    fig, ax = plt.subplots(figsize=(8, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#666")
    return _svg(fig, plt, title)


def _bucket(times: list[tuple[_dt.datetime, str]]) -> tuple[_dt.timedelta, str]:
    span = times[-1][0] - times[0][0] if times else _dt.timedelta(0)
    if span <= _dt.timedelta(hours=2):
        return _dt.timedelta(minutes=1), "%H:%M"
    if span <= _dt.timedelta(days=3):
        return _dt.timedelta(hours=1), "%d %b %H:00"
    return _dt.timedelta(days=1), "%Y-%m-%d"


def _chart_time(plt: Any, data: dict[str, Any]) -> str:
    title = SECTIONS[0]
    times = data["times"]
    if not times:
        return _empty(plt, title, "No calls captured yet.")
    import matplotlib.dates as mdates

    size, fmt = _bucket(times)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    counts: dict[str, dict[_dt.datetime, int]] = defaultdict(lambda: defaultdict(int))
    for when, route in times:
        start = epoch + ((when - epoch) // size) * size
        counts[route][start] += 1
    buckets = sorted({b for per in counts.values() for b in per})
    fig, ax = plt.subplots(figsize=(9, 3.2))
    bottom = [0] * len(buckets)
    width = size / _dt.timedelta(days=1) * 0.85
    for route in sorted(counts, key=lambda r: list(_COLORS).index(r) if r in _COLORS else 99):
        heights = [counts[route].get(b, 0) for b in buckets]
        ax.bar([b.replace(tzinfo=None) for b in buckets], heights, width=width, bottom=bottom, align="edge",
               label=_label(route), color=_COLORS.get(route, _COLORS["other"]))
        bottom = [x + h for x, h in zip(bottom, heights, strict=True)]
    naive = [b.replace(tzinfo=None) for b in buckets]
    step = max(1, len(naive) // 12)  # one tick per bucket start, at most about a dozen
    ax.set_xticks(naive[::step])
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt))
    fig.autofmt_xdate()
    ax.set_ylabel("calls")
    _integer_axis(ax.yaxis)
    ax.set_xlabel(f"UTC, per {_human(size)}")
    ax.legend(title="route", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, plt, title)


def _integer_axis(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _human(size: _dt.timedelta) -> str:
    return {60: "minute", 3600: "hour", 86400: "day"}.get(int(size.total_seconds()), str(size))


def _chart_tasks(plt: Any, data: dict[str, Any]) -> str:
    title = SECTIONS[1]
    tasks = data["tasks"]
    if not tasks:
        return _empty(plt, title, "No calls captured yet.")
    shown = tasks[:15]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.2))
    names = [_label(t["task"] or "(no task label)") for t in shown][::-1]
    left = [0] * len(shown)
    series = [("slm_kept", "SLM, kept", _COLORS["slm"]), ("slm_needed_llm", "SLM, needed escalation",
              _COLORS["needed"]), ("llm", "LLM", _COLORS["llm"]), ("shadow", "shadow", _COLORS["shadow"])]
    for key, name, color in series:
        values = [t[key] or 0 for t in shown][::-1]
        if not any(values):
            continue
        ax.barh(names, values, left=left, label=name, color=color)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, task in enumerate(shown[::-1]):
        ready = "" if task["outcome_readiness"] is None else f", outcome readiness {task['outcome_readiness']:.0%}"
        ax.text(left[y], y, f"  {task['share']:.0%} of calls{ready}", va="center", fontsize=9, color="#333")
    ax.set_xlim(0, max(left) * 1.45 if max(left) else 1)
    ax.set_xlabel("calls")
    _integer_axis(ax.xaxis)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, plt, title)


def _chart_latency(plt: Any, data: dict[str, Any]) -> str:
    title = SECTIONS[2]
    lat = {r: v for r, v in data["latencies"].items() if v}
    if not lat:
        return _empty(plt, title, "No latencies captured yet.")
    routes = sorted(lat, key=lambda r: list(_COLORS).index(r) if r in _COLORS else 99)
    fig, ax = plt.subplots(figsize=(9, 0.7 * len(routes) + 1.4))
    import matplotlib

    version = tuple(int(x) for x in re.findall(r"\d+", matplotlib.__version__)[:2])
    horizontal = {"orientation": "horizontal"} if version >= (3, 10) else {"vert": False}
    parts = ax.boxplot([lat[r] for r in routes], patch_artist=True, widths=0.5, medianprops={"color": "black"},
                       **horizontal)
    ax.set_yticks(range(1, len(routes) + 1), [f"{_label(r)} (n={len(lat[r])})" for r in routes])
    for patch, route in zip(parts["boxes"], routes, strict=True):
        patch.set_facecolor(_COLORS.get(route, _COLORS["other"]))
        patch.set_alpha(0.6)
    positive = all(v > 0 for r in routes for v in lat[r])
    if positive and max(max(v) for v in lat.values()) / max(min(min(v) for v in lat.values()), 1e-9) > 50:
        ax.set_xscale("log")
    ax.set_xlabel("latency per call (ms)")
    return _svg(fig, plt, title)


def _chart_reasons(plt: Any, data: dict[str, Any]) -> str:
    title = SECTIONS[3]
    reasons = data["reasons"]
    if not reasons:
        return _empty(plt, title, "No escalations: every SLM step was kept.")
    names: list[str] = []
    for r in reasons:
        if _label(r["reason"]) not in names:
            names.append(_label(r["reason"]))
    names = names[:12]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    left = [0] * len(names)
    for kind, name, color in (("escalated", "SLM step escalated to the LLM", _COLORS["llm"]),
                              ("needed", "SLM step needed escalation, no LLM answered", _COLORS["needed"]),
                              ("routed", "routed to the LLM first", _COLORS["other"])):
        values = [sum(r["count"] for r in reasons if r["kind"] == kind and _label(r["reason"]) == n) for n in names]
        if not any(values):
            continue
        ax.barh(names[::-1], values[::-1], left=left[::-1], label=name, color=color)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("steps with this escalation reason")
    _integer_axis(ax.xaxis)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, plt, title)


def _chart_cost(plt: Any, data: dict[str, Any]) -> str:
    title = SECTIONS[4]
    cost = data["summary"]["cost"]
    fig, ax = plt.subplots(figsize=(9, 2.2))
    actual = cost["llm_cost"] + cost["slm_cost"]
    ax.barh(["this run", "all on the LLM"], [actual, cost["cost_if_all_llm"]],
            color=[_COLORS["slm"], _COLORS["llm"]])
    top = max(actual, cost["cost_if_all_llm"])
    for y, value in enumerate([actual, cost["cost_if_all_llm"]]):
        ax.text(value + top * 0.01, y, f" ${value:.4f}", va="center")
    ax.set_xlim(0, top * 1.25 if top else 1)
    ax.set_xlabel("estimated USD")
    return _svg(fig, plt, title)


# -- page ------------------------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>slm-agents report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;max-width:1000px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:0}.kpis{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:130px}.kpi b{display:block;font-size:20px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left}
th{background:#fafafa}td.n{text-align:right;font-variant-numeric:tabular-nums}.note{color:#555;font-size:13px}
svg.chart{max-width:100%;height:auto;display:block}
</style></head><body>
<h1>slm-agents report</h1>
<p class="sub">{{ source }} &middot; {{ first }} to {{ last }} (UTC) &middot; generated {{ generated }}</p>
<div class="kpis">
<div class="kpi"><b>{{ s.calls }}</b>model calls</div>
<div class="kpi"><b>{{ s.tool_executions }}</b>tool executions</div>
<div class="kpi"><b>{{ kept_pct }}</b>SLM calls kept</div>
<div class="kpi"><b>{{ saved }}</b>estimated saved</div>
<div class="kpi"><b>{{ p50 }}</b>latency p50 (p95 {{ p95 }})</div>
</div>

<section id="routes"><h2>{{ titles[0] }}</h2>{{ charts[0] | safe }}
<table><tr><th>route</th><th>calls</th><th>input tokens</th><th>output tokens</th><th>errors</th><th>p50 ms</th><th>p95 ms</th></tr>
{% for r in s.by_route %}<tr><td>{{ r.route or "-" }}</td><td class="n">{{ r.calls }}</td><td class="n">{{ r.input_tokens }}</td>
<td class="n">{{ r.output_tokens }}</td><td class="n">{{ r.errors or 0 }}</td><td class="n">{{ ms(r.p50_ms) }}</td><td class="n">{{ ms(r.p95_ms) }}</td></tr>
{% endfor %}</table></section>

<section id="tasks"><h2>{{ titles[1] }}</h2>{{ charts[1] | safe }}
<p class="note"><b>Outcome readiness</b> is the share of a task's SLM calls that the policy accepted <i>and</i>
that were not followed by a tool error or negative feedback (a thumbs down, a low score, a run marked
failed). An SLM call that was not escalated is only <i>kept</i>: kept is not ready. <b>Replay readiness</b> is
the share of captured LLM calls the SLM answered exactly as the LLM did when replayed by
<code>slm-agents eval</code>{% if has_replay %}{% else %}; pass <code>--eval FILE</code> (written by
<code>slm-agents eval --json</code>) to show it{% endif %}.</p>
<table><tr><th>task</th><th>calls</th><th>share</th><th>SLM kept</th><th>SLM, needed escalation</th><th>LLM</th>
<th>tool errors after SLM</th><th>negative feedback</th><th>outcome readiness</th><th>replay readiness</th></tr>
{% for t in tasks %}<tr><td>{{ t.task or "(no task label)" }}</td><td class="n">{{ t.calls }}</td><td class="n">{{ pct(t.share) }}</td>
<td class="n">{{ t.slm_kept or 0 }}</td><td class="n">{{ t.slm_needed_llm or 0 }}</td><td class="n">{{ t.llm or 0 }}</td>
<td class="n">{{ t.tool_errors }}</td><td class="n">{{ t.negative_feedback }}</td>
<td class="n">{{ pct(t.outcome_readiness) }}</td><td class="n">{{ pct(t.replay_readiness) }}</td></tr>
{% endfor %}</table></section>

<section id="latency"><h2>{{ titles[2] }}</h2>{{ charts[2] | safe }}</section>

<section id="escalations"><h2>{{ titles[3] }}</h2>{{ charts[3] | safe }}
<table><tr><th>reason</th><th>linked SLM&rarr;LLM pairs</th></tr>
{% for e in s.escalations %}<tr><td>{{ e.reason or "-" }}</td><td class="n">{{ e.count }}</td></tr>
{% else %}<tr><td colspan="2">no SLM attempt was replaced by an LLM answer</td></tr>{% endfor %}</table></section>

<section id="cost"><h2>{{ titles[4] }}</h2>{{ charts[4] | safe }}
<p class="note">From <code>slm-agents stats</code>: SLM calls kept are priced at the LLM's rate minus the SLM's;
escalated, failed and shadow SLM calls only cost the SLM's rate. Prices (USD per 1M tokens): LLM
{{ c.prices_per_million_tokens.llm_input }} in / {{ c.prices_per_million_tokens.llm_output }} out, SLM
{{ c.prices_per_million_tokens.slm_input }} in / {{ c.prices_per_million_tokens.slm_output }} out.
LLM calls ${{ "%.4f" % c.llm_cost }}, SLM calls ${{ "%.4f" % c.slm_cost }}, all on the LLM ${{ "%.4f" % c.cost_if_all_llm }}:
saved <b>${{ "%.4f" % c.saved }}</b>{% if c.saved_fraction is not none %} ({{ pct(c.saved_fraction) }}){% endif %}
over {{ c.slm_calls_kept }} SLM calls kept. Token counts come from each model's tokenizer: an estimate.</p></section>
</body></html>
"""


def render_report(db: Database, prices: Prices | None = None, *, source: str = "",
                  replay: dict[str, float] | None = None) -> str:
    """The report page for ``db`` as an HTML string (self-contained: inline CSS and SVG, no scripts).

    ``replay`` is replay readiness per task (:func:`slm_agents.evaluate.load_replay_readiness`).
    """
    import jinja2

    plt = _pyplot()
    data = report_data(db, prices, replay=replay)
    import matplotlib

    with matplotlib.rc_context(_style()):
        charts = [_chart_time(plt, data), _chart_tasks(plt, data), _chart_latency(plt, data),
                  _chart_reasons(plt, data), _chart_cost(plt, data)]
    s = data["summary"]
    cost = s["cost"]
    slm_calls = cost["slm_calls_kept"] + cost["slm_calls_escalated_failed_or_shadow"]
    times = data["times"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_PAGE).render(
        s=s, c=cost, tasks=data["tasks"], charts=charts, has_replay=bool(replay), titles=SECTIONS, ms=ms, pct=pct,
        source=source or "capture database",
        first=times[0][0].strftime("%Y-%m-%d %H:%M") if times else "-",
        last=times[-1][0].strftime("%Y-%m-%d %H:%M") if times else "-",
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        kept_pct=f"{cost['slm_calls_kept']}/{slm_calls}" if slm_calls else "-",
        saved=f"${cost['saved']:.4f}",
        p50=(ms(s["latency"]["p50_ms"]) + " ms") if s["latency"]["p50_ms"] is not None else "-",
        p95=(ms(s["latency"]["p95_ms"]) + " ms") if s["latency"]["p95_ms"] is not None else "-",
    )


def write_report(
    db_path: str | os.PathLike[str] | Database | None = None,
    output: str | os.PathLike[str] = "report.html",
    *,
    prices: Prices | None = None,
    replay: dict[str, float] | None = None,
) -> Path:
    """Write the report for a capture file (default ``$SLM_AGENTS_DB`` or ./slm_agents.db); returns its path.

    The capture file is opened read-only.

    Raises:
        CaptureError: There is no capture file at ``db_path``.
    """
    import sqlite3

    from .capture import resolve_path
    from .errors import CaptureError

    if isinstance(db_path, Database):
        db, source = db_path, "capture database"
    else:
        path = resolve_path(db_path)
        if not path.exists():
            raise CaptureError(f"no capture database at {path}. Run an agent with capture on "
                               "(slm-agents demo), or pass --db PATH.")
        conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)
        db, source = Database(conn), path.name
        if "calls" not in db.table_names():
            conn.close()
            raise CaptureError(f"{path} is not a slm-agents capture database (it has no calls table).")
    out = Path(output)
    out.write_text(render_report(db, prices, source=source, replay=replay), encoding="utf-8")
    return out.absolute()
