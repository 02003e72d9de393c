"""Replay tool-calling cases through a runtime and measure how well it agrees with the teacher.

A case is a request (messages, tools, tool_choice) and what the teacher (usually the frontier LLM,
from captured calls) answered: the tool calls it made, or none when it answered in text. Replaying
a task's cases through an SLM gives tool-name accuracy, exact argument match, schema validity,
abstention, speed, a readiness score and the confidence threshold to run the task at.

The same code evaluates any dataset in the JSONL format (one object per line)::

    {"messages": [...], "tools": [...], "expected": [{"name": ..., "arguments": {...}}] or []}

Example:
    >>> from slm_agents.runtimes.fake import FakeRuntime
    >>> tools = [{"name": "add", "parameters": {"type": "object",
    ...           "properties": {"a": {"type": "integer"}}, "required": ["a"]}}]
    >>> cases = [EvalCase(messages=[{"role": "user", "content": "add 1"}], tools=tools,
    ...                   expected=[{"name": "add", "arguments": {"a": 1}}])]
    >>> rt = FakeRuntime(responses=[{"tool_calls": [{"name": "add", "arguments": {"a": 1}}], "confidence": 0.9}])
    >>> report = evaluate(rt, cases)
    >>> report.tasks["default"].readiness
    1.0
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidRequest, SLMAgentsError
from .runtimes.base import Runtime
from .toolcalls import normalize_tools, validate_tool_call

__all__ = [
    "EvalCase",
    "CaseResult",
    "TaskReport",
    "EvalReport",
    "load_cases",
    "evaluate",
    "choose_threshold",
    "compare_calls",
    "Candidate",
    "recommend_candidate",
    "load_replay_readiness",
]


@dataclass
class EvalCase:
    """One request and the teacher's answer.

    Attributes:
        messages: The conversation up to the step, OpenAI format.
        tools: The tools bound at that step.
        expected: The teacher's calls as ``{"name", "arguments": dict}``; ``[]`` when it answered in text.
        tool_choice: The step's tool_choice.
        task: The task label (cases are reported per task).
        id: An identifier (a captured call id, or the line number).
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    task: str = "default"
    id: str = ""


@dataclass
class CaseResult:
    """What the runtime did on one case, and how it compares with the teacher."""

    id: str
    task: str
    predicted: list[dict[str, Any]]
    name_correct: bool
    args_exact: bool
    schema_valid: bool
    abstention_correct: bool | None
    correct: bool
    confidence: float | None
    latency_ms: float
    output_tokens: int
    error: str | None = None


@dataclass
class TaskReport:
    """Metrics of one task.

    Attributes:
        n: Cases replayed.
        tool_name_accuracy: Share of tool-calling cases whose tool names match the teacher's.
        args_exact_match: Share of tool-calling cases whose calls match exactly (names and arguments).
        schema_validity: Share of produced calls valid under their schemas.
        abstention_accuracy: Share of text-answer cases where the runtime made no call (None if none).
        readiness: Share of all cases answered exactly as the teacher did.
        threshold: The confidence threshold that keeps accepted wrong answers under the target
            (None when no threshold can).
        coverage: Share of cases the SLM would answer at that threshold.
        recommendation: ``"move"`` / ``"move with threshold"`` / ``"keep on LLM"``.
    """

    task: str
    n: int
    tool_name_accuracy: float | None
    args_exact_match: float | None
    schema_validity: float | None
    abstention_accuracy: float | None
    readiness: float
    latency_p50_ms: float
    latency_p95_ms: float
    tokens_per_s: float
    threshold: float | None
    coverage: float
    recommendation: str


@dataclass
class EvalReport:
    """Per-task metrics and every case's result."""

    tasks: dict[str, TaskReport]
    results: list[CaseResult]
    max_wrong_rate: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_wrong_rate": self.max_wrong_rate,
            "tasks": {k: asdict(v) for k, v in self.tasks.items()},
            "results": [asdict(r) for r in self.results],
        }


def load_cases(path: str | os.PathLike[str]) -> list[EvalCase]:
    """Read cases from a JSONL file (see the module docstring for the format)."""
    cases = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidRequest(f"{path}:{lineno}: not JSON ({e.msg}); each line must be one JSON object") from e
            if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
                raise InvalidRequest(f"{path}:{lineno}: each line needs a 'messages' list")
            expected = obj.get("expected", [])
            if not isinstance(expected, list):
                raise InvalidRequest(f"{path}:{lineno}: 'expected' must be a list of {{name, arguments}} (or [])")
            try:
                expected = [_norm_call(c) for c in expected]
            except (ValueError, AttributeError, TypeError) as e:
                raise InvalidRequest(
                    f"{path}:{lineno}: each expected call is {{\"name\": ..., \"arguments\": {{...}}}} "
                    f"with JSON-object arguments ({type(e).__name__}: {e})"
                ) from e
            cases.append(
                EvalCase(
                    messages=obj["messages"],
                    tools=obj.get("tools") or [],
                    expected=expected,
                    tool_choice=obj.get("tool_choice", "auto"),
                    task=str(obj.get("task") or Path(path).stem),
                    id=str(obj.get("id") or f"{Path(path).name}:{lineno}"),
                )
            )
    return cases


def _norm_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        args = json.loads(args) if args.strip() else {}
    return {"name": fn.get("name"), "arguments": args}


def compare_calls(expected: list[dict[str, Any]], predicted: list[dict[str, Any]]) -> bool:
    """True when two lists of tool calls match exactly (names in order, arguments equal).

    Calls may be in OpenAI format (``{"function": {"name", "arguments": str}}``) or
    ``{"name", "arguments": dict}``; arguments compare as in :func:`evaluate` (1 == 1.0,
    surrounding whitespace in strings ignored). Unparseable arguments never match.

    Example:
        >>> compare_calls([{"name": "add", "arguments": {"a": 1}}],
        ...               [{"function": {"name": "add", "arguments": '{"a": 1.0}'}}])
        True
    """
    try:
        exp = [_norm_call(c) for c in expected or []]
        got = [_norm_call(c) for c in predicted or []]
    except (ValueError, AttributeError):
        return False
    return [c["name"] for c in exp] == [c["name"] for c in got] and all(
        _same(e["arguments"], g["arguments"]) for e, g in zip(exp, got, strict=True)
    )


def _score(case: EvalCase, predicted: list[dict[str, Any]], tools: list[dict]) -> tuple[bool, bool, bool, bool | None]:
    exp_names = [c["name"] for c in case.expected]
    got_names = [c["name"] for c in predicted]
    name_ok = exp_names == got_names
    args_ok = name_ok and all(_same(e["arguments"], g["arguments"]) for e, g in zip(case.expected, predicted, strict=True))
    valid = all(not validate_tool_call(c["name"], c["arguments"], tools) for c in predicted)
    abstain = (not predicted) if not case.expected else None
    return name_ok, args_ok, valid, abstain


def _same(a: Any, b: Any) -> bool:
    """Exact match, with 1 == 1.0 and surrounding whitespace in strings ignored."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def choose_threshold(pairs: Iterable[tuple[float | None, bool]], max_wrong_rate: float = 0.02) -> tuple[float | None, float]:
    """The lowest confidence threshold at which accepted answers are wrong at most ``max_wrong_rate``.

    Args:
        pairs: ``(confidence, correct)`` per case; a None confidence counts as 0.
        max_wrong_rate: The largest acceptable share of wrong answers among those accepted.

    Returns:
        ``(threshold, coverage)``: coverage is the share of all cases accepted at the threshold.
        ``(None, 0.0)`` when no threshold meets the target.

    Example:
        >>> choose_threshold([(0.9, True), (0.8, True), (0.4, False), (0.3, True)], 0.0)
        (0.8, 0.5)
    """
    items = sorted(((c or 0.0, ok) for c, ok in pairs), key=lambda p: -p[0])
    if not items:
        return None, 0.0
    best: tuple[float | None, float] = (None, 0.0)
    wrong = 0
    for i, (conf, ok) in enumerate(items, 1):
        wrong += not ok
        next_conf = items[i][0] if i < len(items) else None
        if next_conf == conf:
            continue  # a threshold cannot split equal confidences
        if wrong / i <= max_wrong_rate:
            best = (conf, i / len(items))
    return best


def evaluate(
    runtime: Runtime,
    cases: list[EvalCase],
    *,
    max_wrong_rate: float = 0.02,
    move_at: float = 0.9,
    max_tokens: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Replay ``cases`` through ``runtime`` and report per task.

    Args:
        runtime: Any :class:`~slm_agents.runtimes.Runtime` (usually the candidate SLM).
        cases: From :func:`load_cases` or from captured LLM calls.
        max_wrong_rate: Target share of wrong answers accepted, for the threshold.
        move_at: Readiness at or above which a task can move to the SLM without a threshold.
        max_tokens: Cap per replayed answer.
        progress: Called as ``progress(done, total)`` after each case.
    """
    results: list[CaseResult] = []
    for i, case in enumerate(cases, 1):
        tools = normalize_tools(case.tools)
        start = time.perf_counter()
        try:
            completion = runtime.complete(case.messages, tools or None, case.tool_choice if tools else None,
                                          max_tokens=max_tokens)
        except SLMAgentsError as e:
            results.append(CaseResult(case.id, case.task, [], False, False, False, None, False, None,
                                      (time.perf_counter() - start) * 1000, 0, f"{type(e).__name__}: {e}"))
        else:
            predicted = [{"name": c["name"], "arguments": c["arguments"]} for c in completion.parsed_tool_calls()]
            predicted += [{"name": c.get("name"), "arguments": c.get("arguments")} for c in completion.invalid_tool_calls]
            name_ok, args_ok, valid, abstain = _score(case, predicted, tools)
            correct = args_ok if case.expected else bool(abstain)
            results.append(CaseResult(case.id, case.task, predicted, name_ok, args_ok, valid, abstain, correct,
                                      completion.confidence, completion.latency_ms, completion.usage.output_tokens))
        if progress:
            progress(i, len(cases))
    tasks = {}
    for task in sorted({r.task for r in results}):
        rs = [r for r in results if r.task == task]
        tasks[task] = _task_report(task, rs, [c for c in cases if c.task == task], max_wrong_rate, move_at)
    return EvalReport(tasks, results, max_wrong_rate)


def _share(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _task_report(task: str, rs: list[CaseResult], cases: list[EvalCase], max_wrong: float, move_at: float) -> TaskReport:
    calling = [r for r, c in zip(rs, cases, strict=True) if c.expected]
    texting = [r for r, c in zip(rs, cases, strict=True) if not c.expected]
    produced = [r for r in rs if r.predicted]
    lat = sorted(r.latency_ms for r in rs)
    toks = sum(r.output_tokens for r in rs)
    secs = sum(r.latency_ms for r in rs) / 1000
    readiness = sum(r.correct for r in rs) / len(rs)
    threshold, coverage = choose_threshold(((r.confidence, r.correct) for r in rs), max_wrong)
    if readiness >= move_at and 1 - readiness <= max_wrong:
        recommendation, threshold, coverage = "move", None, 1.0
    elif threshold is not None and coverage > 0:
        recommendation = "move with threshold"
    else:
        recommendation = "keep on LLM"
    return TaskReport(
        task=task,
        n=len(rs),
        tool_name_accuracy=_share([r.name_correct for r in calling]),
        args_exact_match=_share([r.args_exact for r in calling]),
        schema_validity=_share([r.schema_valid for r in produced]),
        abstention_accuracy=_share([bool(r.abstention_correct) for r in texting]),
        readiness=readiness,
        latency_p50_ms=statistics.median(lat) if lat else 0.0,
        latency_p95_ms=lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0,
        tokens_per_s=toks / secs if secs > 0 else 0.0,
        threshold=threshold,
        coverage=coverage,
        recommendation=recommendation,
    )


@dataclass
class Candidate:
    """One model to compare in ``slm-agents eval``: a GGUF file, optionally with a LoRA adapter.

    Example:
        >>> Candidate("base", None, None, 0).label
        'base'
    """

    label: str
    model_path: str | None
    lora_path: str | None
    size_bytes: int


def recommend_candidate(
    reports: dict[str, EvalReport], candidates: list[Candidate], task: str
) -> Candidate | None:
    """The smallest candidate (model file plus adapter, in bytes) that can take ``task``.

    "Can take" is the evaluation's own verdict: a recommendation other than ``"keep on LLM"``
    (readiness at the move target, or a confidence threshold that keeps wrong answers under
    ``max_wrong_rate``). Among equal sizes the higher readiness wins. None: no candidate does.
    """
    fit = []
    for c in candidates:
        t = reports[c.label].tasks.get(task)
        if t is not None and t.recommendation != "keep on LLM":
            fit.append((c.size_bytes, -t.readiness, c.label, c))
    return min(fit)[3] if fit else None


def load_replay_readiness(path: str | os.PathLike[str]) -> dict[str, float]:
    """Replay readiness per task from a file ``slm-agents eval --json`` wrote.

    The report and ``slm-agents tasks --eval FILE`` show it beside outcome readiness. With
    several candidates (``--model-path`` / ``--lora`` more than once), a task's figure is the best
    candidate's.

    Raises:
        InvalidRequest: The file cannot be read or is not ``slm-agents eval --json`` output.

    Example:
        >>> import json, tempfile
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        >>> _ = f.write(json.dumps({"tasks": {"lookup": {"readiness": 0.75}}})); f.close()
        >>> load_replay_readiness(f.name)
        {'lookup': 0.75}
    """
    hint = "write it with: slm-agents eval --json > eval.json"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InvalidRequest(f"cannot read eval results from {path} ({type(e).__name__}); {hint}") from e
    reports = list(data["reports"].values()) if isinstance(data, dict) and isinstance(data.get("reports"), dict) \
        else [data]
    out: dict[str, float] = {}
    for report in reports:
        tasks = report.get("tasks") if isinstance(report, dict) else None
        if not isinstance(tasks, dict):
            raise InvalidRequest(f"{path} is not slm-agents eval output (no 'tasks'); {hint}")
        for task, figures in tasks.items():
            value = figures.get("readiness") if isinstance(figures, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
                out[str(task)] = max(float(value), out.get(str(task), 0.0))
    return out
