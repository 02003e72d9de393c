"""Export curated calls as fine-tuning files: OpenAI chat JSONL, TRL conversational, preference pairs.

Every export writes ``train.jsonl``, ``validation.jsonl`` and a dataset card ``README.md`` into
the output folder. The split is stratified by the first tool each answer called (``<text>`` for
text answers), deterministic for a seed, and leakage-free: a normalised request never lands in
both splits (checked before the files are renamed into place).

Formats, one JSON object per line:

* ``openai`` — OpenAI chat fine-tuning: ``{"messages": [..., assistant answer], "tools": [...],
  "parallel_tool_calls": bool}``; tool-call ``arguments`` are JSON strings.
* ``trl`` — Hugging Face / TRL conversational: ``{"messages": [...], "tools": [...]}``; tool-call
  ``arguments`` are objects (what chat templates expect).
* ``preference`` — pairs from the ``escalations`` table: ``{"prompt": [...], "chosen": [LLM answer],
  "rejected": [SLM attempt], "tools": [...]}`` (TRL's conversational preference format).

Example:
    >>> import json, tempfile
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    >>> for i in range(10):
    ...     _ = store.log({"messages": [{"role": "user", "content": f"add {i}"}], "tools": tools, "route": "llm",
    ...                    "tool_calls": [{"id": "c", "type": "function",
    ...                                    "function": {"name": "add", "arguments": "{}"}}]})
    >>> store.flush()
    True
    >>> out = export_dataset(store.db, tempfile.mkdtemp(), format="openai", val_fraction=0.2)
    >>> out.train, out.validation
    (8, 2)
    >>> line = json.loads(open(out.files["train"]).readline())
    >>> line["messages"][-1]["tool_calls"][0]["function"]["arguments"]
    '{}'
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..errors import InvalidRequest
from ..toolcalls import normalize_tools
from ._rows import BlobCache, answer_message, has_table, loads, request_key
from .curate import TEXT_STRATUM, Curator, find_leakage

__all__ = [
    "FORMATS",
    "ExportResult",
    "export_dataset",
    "to_openai_example",
    "to_trl_example",
    "preference_pairs",
    "stratified_split",
]

FORMATS = ("openai", "trl", "preference")
_KEEP_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        format: ``"openai"``, ``"trl"`` or ``"preference"``.
        out_dir: The output folder.
        files: ``{"train": path, "validation": path, "card": path}``.
        train / validation: Examples in each split.
        scanned: Candidate rows read.
        dropped: Rows left out, by reason.
        tasks: Examples per task.
        strata: Examples per first tool called.
        redactions: Sum of the ``redactions`` column over the exported calls.
        rows_with_redactions: Exported calls in which redaction replaced something.
        seconds: Wall time.
    """

    format: str
    out_dir: Path
    files: dict[str, Path]
    train: int = 0
    validation: int = 0
    scanned: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    strata: dict[str, int] = field(default_factory=dict)
    redactions: int = 0
    rows_with_redactions: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["files"] = {k: str(v) for k, v in self.files.items()}
        return data


# -- records ---------------------------------------------------------------------------------------
def _clean_message(m: dict[str, Any], *, dict_args: bool) -> dict[str, Any]:
    if len(m) == 2 and isinstance(m.get("content"), str) and m.get("role") in ("user", "system", "developer"):
        return m  # already clean (the common case): no copy
    out = {k: m[k] for k in _KEEP_KEYS if k in m and m[k] is not None}
    if "content" not in out and m.get("role") != "assistant":
        out["content"] = ""
    calls = []
    for i, c in enumerate(m.get("tool_calls") or []):
        fn = c.get("function", c)
        args = fn.get("arguments", {})
        if dict_args and isinstance(args, str):
            args = loads(args) if args.strip() else {}
        elif not dict_args and not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        calls.append({"id": c.get("id") or f"call_{i}", "type": "function",
                      "function": {"name": fn.get("name"), "arguments": args}})
    if calls:
        out["tool_calls"] = calls
    elif "tool_calls" in out:
        del out["tool_calls"]
    if out.get("role") == "assistant" and "content" not in out:
        out["content"] = None if calls else ""
    return out


def to_openai_example(record: dict[str, Any]) -> dict[str, Any]:
    """One OpenAI chat fine-tuning example from a curated record (see :class:`Curator`).

    Example:
        >>> rec = {"messages": [{"role": "user", "content": "hi"}], "tools": [],
        ...        "answer": {"role": "assistant", "content": "hello"}}
        >>> to_openai_example(rec)
        {'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]}
    """
    example = _openai_body(record)
    if record.get("tools"):
        example["tools"] = normalize_tools(record["tools"])
    return example


def _openai_body(record: dict[str, Any]) -> dict[str, Any]:
    messages = [_clean_message(m, dict_args=False) for m in record["messages"] if isinstance(m, dict)]
    answer = _clean_message(record["answer"], dict_args=False)
    example: dict[str, Any] = {"messages": [*messages, answer]}
    if record.get("tools"):
        params = record.get("params") or {}
        parallel = params.get("parallel_tool_calls") if isinstance(params, dict) else None
        example["parallel_tool_calls"] = bool(parallel) if parallel is not None else len(answer.get("tool_calls", [])) > 1
    return example


def to_trl_example(record: dict[str, Any]) -> dict[str, Any]:
    """One TRL conversational example (``messages`` + ``tools``; arguments as objects).

    Example:
        >>> rec = {"messages": [{"role": "user", "content": "add"}], "tools": [{"name": "add"}],
        ...        "answer": {"role": "assistant", "content": None, "tool_calls": [
        ...            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]}}
        >>> to_trl_example(rec)["messages"][-1]["tool_calls"][0]["function"]["arguments"]
        {'a': 1}
    """
    example = _trl_body(record)
    if record.get("tools"):
        example["tools"] = normalize_tools(record["tools"])
    return example


def _trl_body(record: dict[str, Any]) -> dict[str, Any]:
    messages = [_clean_message(m, dict_args=True) for m in record["messages"] if isinstance(m, dict)]
    return {"messages": [*messages, _clean_message(record["answer"], dict_args=True)]}


def _same_answer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    from ..evaluate import compare_calls

    ca, cb = a.get("tool_calls") or [], b.get("tool_calls") or []
    if ca or cb:
        return compare_calls(ca, cb)
    return " ".join((a.get("content") or "").split()) == " ".join((b.get("content") or "").split())


def preference_pairs(
    db: Database,
    *,
    task_id: str | None = None,
    include_shadow: bool = True,
    stats: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Preference pairs from ``escalations``: the prompt, the LLM's answer (chosen), the SLM's (rejected).

    Pairs are left out when the LLM call failed, when the SLM produced nothing (an error: there
    is no rejected answer to learn from) or when both answered the same (shadow agreement).

    Args:
        db: A migrated capture database.
        task_id: Only pairs whose SLM call belongs to this task (id or name).
        include_shadow: Also use shadow pairs (route ``shadow``, linked with reason ``shadow``).
        stats: A dict updated with counts of left-out pairs by reason (and ``scanned``).

    Yields:
        Records with ``prompt``, ``chosen``, ``rejected``, ``tools`` and, for the split,
        ``request_hash``, ``stratum``, ``task_id``, ``reason``, ``redactions``.
    """
    stats = stats if stats is not None else {}
    where = ["l.error_type IS NULL", "(l.finish_reason IS NULL OR l.finish_reason != 'length')"]
    args: list[Any] = []
    if not include_shadow:
        where.append("s.route != 'shadow'")
    joined = has_table(db, "call_tasks")
    if task_id is not None:
        from .tasks import resolve_task

        where.append("ct.task_id = ?")
        args.append(resolve_task(db, task_id).id)
        joined = True
    join = " LEFT JOIN call_tasks ct ON ct.call_id = s.id" if joined else ""
    sql = (
        "SELECT e.reason, s.messages, s.tools_hash, s.content, s.tool_calls, l.content, l.tool_calls, "
        f"COALESCE(s.redactions, 0) + COALESCE(l.redactions, 0), {'ct.task_id' if joined else 'NULL'}, s.task "
        "FROM escalations e JOIN calls s ON s.id = e.slm_call_id JOIN calls l ON l.id = e.llm_call_id"
        f"{join} WHERE {' AND '.join(where)} ORDER BY e.id"
    )
    blobs = BlobCache(db)
    for reason, messages_json, tools_hash, s_content, s_calls, l_content, l_calls, redactions, tid, task in \
            db.conn.execute(sql, args):
        stats["scanned"] = stats.get("scanned", 0) + 1
        messages = loads(messages_json)
        if not isinstance(messages, list) or not messages:
            stats["no_messages"] = stats.get("no_messages", 0) + 1
            continue
        chosen = answer_message(l_content, loads(l_calls))
        rejected = answer_message(s_content, loads(s_calls))
        if not chosen.get("tool_calls") and not (chosen.get("content") or "").strip():
            stats["empty_chosen"] = stats.get("empty_chosen", 0) + 1
            continue
        if not rejected.get("tool_calls") and not (rejected.get("content") or "").strip():
            stats["slm_no_output"] = stats.get("slm_no_output", 0) + 1
            continue
        if _same_answer(chosen, rejected):
            stats["identical"] = stats.get("identical", 0) + 1
            continue
        blobs.messages(messages)
        tools = blobs.tools(tools_hash)
        first = chosen.get("tool_calls")
        yield {
            "prompt": [_clean_message(m, dict_args=True) for m in messages if isinstance(m, dict)],
            "chosen": [_clean_message(chosen, dict_args=True)],
            "rejected": [_clean_message(rejected, dict_args=True)],
            "tools": normalize_tools(tools) if tools else [],
            "request_hash": request_key(messages_json, tools_hash),
            "stratum": first[0]["function"]["name"] if first else TEXT_STRATUM,
            "task_id": tid or task,
            "reason": reason,
            "redactions": int(redactions or 0),
        }


# -- split -----------------------------------------------------------------------------------------
def stratified_split(items: Iterable[tuple[str, str]], val_fraction: float, seed: int = 0) -> set[str]:
    """The groups that go to validation, stratified by stratum, deterministic for ``seed``.

    Args:
        items: ``(group, stratum)`` pairs; a group (a normalised request) goes wholly to one split,
            under the stratum it was first seen with.
        val_fraction: Share of each stratum's groups for validation (rounded; a stratum with a
            single group stays in train).
        seed: Shuffling seed.

    Example:
        >>> items = [(f"a{i}", "add") for i in range(10)] + [(f"s{i}", "sub") for i in range(5)]
        >>> val = stratified_split(items, 0.2, seed=1)
        >>> sum(g.startswith("a") for g in val), sum(g.startswith("s") for g in val)
        (2, 1)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidRequest(f"val_fraction must be in [0, 1), got {val_fraction}")
    strata: dict[str, list[str]] = {}
    seen: set[str] = set()
    for group, stratum in items:
        if group in seen:
            continue
        seen.add(group)
        strata.setdefault(stratum, []).append(group)
    validation: set[str] = set()
    for stratum in sorted(strata):
        groups = sorted(strata[stratum])
        random.Random(f"{seed}:{stratum}").shuffle(groups)
        n_val = int(len(groups) * val_fraction + 0.5) if len(groups) > 1 else 0
        validation.update(groups[: min(n_val, len(groups) - 1)])
    return validation


# -- export ----------------------------------------------------------------------------------------
def _progress_bar(enabled: bool | None, total: int, desc: str) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        return None
    return tqdm(total=total, desc=desc, unit="call", file=sys.stderr, mininterval=0.5)


def export_dataset(
    db: Database,
    out_dir: str | os.PathLike[str],
    *,
    format: str = "openai",
    task_id: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    force: bool = False,
    **curate: Any,
) -> ExportResult:
    """Curate, split and write a fine-tuning dataset with its card.

    Args:
        db: A migrated capture database.
        out_dir: Output folder (created; ``train.jsonl``, ``validation.jsonl``, ``README.md``
            are overwritten).
        format: One of :data:`FORMATS`.
        task_id: Only this task (id or name, see ``slm-agents tasks``).
        val_fraction: Share of each stratum for validation.
        seed: Split seed.
        progress: Show a tqdm bar on stderr (None: only when stderr is a terminal).
        on_progress: Called as ``on_progress(done, total)`` every 1,000 rows and at the end
            (``total`` counts candidate rows before de-duplication).
        force: Overwrite an earlier export in ``out_dir`` (refused otherwise).
        **curate: Filters for :class:`Curator` (routes, models, since, labels, max_tokens, ...).

    Files are written mode 0600 and a folder this creates is 0700 (captured data is sensitive).

    Raises:
        InvalidRequest: Unknown format, bad fraction, an earlier export in ``out_dir`` without
            ``force``, a missing parent folder, or (never expected) leakage between splits.
    """
    if format not in FORMATS:
        raise InvalidRequest(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    stratified_split([], val_fraction)  # validates the fraction before any work
    start = time.perf_counter()
    # the filters are checked (a bad range, an unknown task) before any file or folder is written
    curator = Curator(db, task_id=task_id, **curate) if format != "preference" else None
    out = _private_dir(out_dir, force=force)
    result = ExportResult(format=format, out_dir=out, files={
        "train": out / "train.jsonl", "validation": out / "validation.jsonl", "card": out / "README.md"})

    pair_stats: dict[str, int] = {}
    if curator is None:
        source: Iterable[dict[str, Any]] = preference_pairs(db, task_id=task_id, stats=pair_stats)
        total = int(db.execute("SELECT COUNT(*) FROM escalations").fetchone()[0])
    else:
        source = curator
        total = curator.count()
    body = {"openai": _openai_body, "trl": _trl_body}.get(format)

    groups: list[str] = []
    strata_of: list[tuple[str, str]] = []
    task_of: list[str] = []
    bar = _progress_bar(progress, total, f"export {format}")
    tasks: Counter[str] = Counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=out) as spool:
        write = spool.write
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        encoded_tools: dict[str, str] = {}  # the same tools list is encoded once, not once per row
        for n, record in enumerate(source, 1):
            if body is not None:
                line = dumps(body(record))
                tools = record.get("tools")
                if tools:
                    key = record.get("tools_hash") or dumps(tools)
                    enc = encoded_tools.get(key)
                    if enc is None:
                        enc = encoded_tools[key] = dumps(normalize_tools(tools))
                    line = f'{line[:-1]},"tools":{enc}}}'
            else:
                line = dumps({k: record[k] for k in ("prompt", "chosen", "rejected", "tools")})
                result.redactions += record["redactions"]
                result.rows_with_redactions += record["redactions"] > 0
            write(line)
            write("\n")
            groups.append(record["request_hash"])
            strata_of.append((record["request_hash"], record["stratum"]))
            task_of.append(record.get("task_id") or record.get("task") or "-")
            if bar is not None and n % 1000 == 0:
                bar.update(1000)
            if on_progress is not None and n % 1000 == 0:
                on_progress(n, total)
        if bar is not None:
            bar.update(bar.total - bar.n if bar.total else 0)
            bar.close()
        if on_progress is not None:
            on_progress(len(groups), total)
        validation = stratified_split(strata_of, val_fraction, seed)
        train_keys = (g for g in groups if g not in validation)
        leaked = find_leakage(train_keys, validation & set(groups))
        if leaked:  # pragma: no cover - the split is by request, so this means a bug
            raise InvalidRequest(f"{len(leaked)} request(s) would be in both splits; nothing was written")
        spool.seek(0)
        train_tmp = result.files["train"].with_suffix(".jsonl.tmp")
        val_tmp = result.files["validation"].with_suffix(".jsonl.tmp")
        with _open_private(train_tmp) as ft, _open_private(val_tmp) as fv:
            for group, (_, stratum), task, line in zip(groups, strata_of, task_of, spool, strict=True):
                if group in validation:
                    fv.write(line)
                    result.validation += 1
                else:
                    ft.write(line)
                    result.train += 1
                result.strata[stratum] = result.strata.get(stratum, 0) + 1
                tasks[task] += 1
        os.replace(train_tmp, result.files["train"])
        os.replace(val_tmp, result.files["validation"])

    if curator is not None:
        result.scanned = curator.stats.scanned
        result.dropped = dict(curator.stats.dropped)
        result.redactions = curator.stats.redactions
        result.rows_with_redactions = curator.stats.rows_with_redactions
    else:
        result.scanned = pair_stats.pop("scanned", 0)
        result.dropped = pair_stats
    result.tasks = dict(tasks.most_common())
    result.seconds = time.perf_counter() - start
    write_private(result.files["card"], dataset_card(db, result, seed=seed, val_fraction=val_fraction))
    return result


def _open_private(path: Path) -> Any:
    """``open(path, "w")`` creating the file 0600 (an existing file is made 0600 too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def write_private(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically, mode 0600 (exports, dataset cards, reports)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with _open_private(tmp) as f:
        f.write(text)
    os.replace(tmp, target)
    return target


def _private_dir(out_dir: str | os.PathLike[str], *, force: bool) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidRequest(f"{out} is a file; export -o takes a folder")
    if not out.parent.is_dir():
        raise InvalidRequest(f"the folder {out.parent} does not exist; create it first, or choose another -o")
    if out.is_dir():
        earlier = [n for n in ("train.jsonl", "validation.jsonl", "README.md") if (out / n).exists()]
        if earlier and not force:
            raise InvalidRequest(f"{out} already holds an export ({', '.join(earlier)}); pass --force "
                                 "(force=True) to overwrite it, or choose another -o")
    else:
        out.mkdir(mode=0o700)
    return out


_FORMAT_DOCS = {
    "openai": "OpenAI chat fine-tuning JSONL: `messages` ending with the assistant answer (tool-call "
    "`arguments` are JSON strings), `tools`, `parallel_tool_calls`.",
    "trl": "Hugging Face / TRL conversational: `messages` (tool-call `arguments` are objects) and `tools`.",
    "preference": "Preference pairs (TRL conversational): `prompt`, `chosen` (the LLM's answer), "
    "`rejected` (the SLM's attempt), `tools`.",
}


def dataset_card(db: Database, result: ExportResult, *, seed: int, val_fraction: float) -> str:
    """The README.md written next to an export: counts, tasks, tools, redaction summary."""
    labels: dict[str, str] = {}
    if has_table(db, "tasks"):
        labels = {r[0]: r[1] or r[2] for r in db.execute("SELECT id, name, label FROM tasks")}
    lines = [
        f"# slm-agents dataset ({result.format})",
        "",
        _FORMAT_DOCS[result.format],
        "",
        "| split | examples | file |",
        "|---|---|---|",
        f"| train | {result.train} | `train.jsonl` |",
        f"| validation | {result.validation} | `validation.jsonl` |",
        "",
        f"Split: stratified by the first tool called, validation fraction {val_fraction}, seed {seed}; "
        "no normalised request is in both splits.",
        "",
        f"Rows read: {result.scanned}. Left out: "
        + (", ".join(f"{k} {v}" for k, v in sorted(result.dropped.items())) or "none") + ".",
        "",
        "## Tasks",
        "",
        "| task | examples | description |",
        "|---|---|---|",
    ]
    for task, count in result.tasks.items():
        lines.append(f"| `{task}` | {count} | {labels.get(task, '').replace('|', '/')} |")
    lines += ["", "## Answers by first tool called", "", "| tool | examples |", "|---|---|"]
    for stratum, count in sorted(result.strata.items(), key=lambda kv: -kv[1]):
        lines.append(f"| `{stratum}` | {count} |")
    lines += [
        "",
        "## Redaction",
        "",
        f"Texts were redacted at capture time. Spans replaced in the exported calls: {result.redactions} "
        f"(in {result.rows_with_redactions} calls). The capture store records a total per call, not per kind.",
        "",
        f"Exported by `slm-agents export` in {result.seconds:.2f} s.",
        "",
    ]
    return "\n".join(lines)
