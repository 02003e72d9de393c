"""Task clustering: group captured calls into the tasks an agent performs.

1. Calls that carry an explicit ``task`` label (the LangGraph node name, a router's ``task=``)
   form one task per label: that is the name the escalation policy sees at run time.
2. The other calls are grouped by their signature: the tools offered and the system prompt.
3. Within a signature, calls are clustered on the content of their last user message: TF-IDF,
   then MiniBatchKMeans with ``random_state=0``; k is chosen by the silhouette score (cosine) over
   a small range on a deterministic sample, and stays 1 unless the clusters are clearly apart.

The result is persisted in two tables this module creates (idempotently) in the capture file:
``tasks`` (one row per task) and ``call_tasks`` (``call_id`` -> ``task_id``), so every command
accepts a task id. Ids are stable for the same data: ``t-`` + 8 hex of the signature and cluster
index (clusters are numbered in order of their first call). Labelled tasks get ``t-`` + 8 hex of
the label, and can also be referred to by the label itself.

Needs the ``loop`` extra (scikit-learn) only when some signature has enough unlabelled calls to
be split.

Example:
    >>> from sqlite_utils import Database
    >>> from slm_agents.capture import CaptureStore
    >>> store = CaptureStore(Database(memory=True), redactor=None)
    >>> for i in range(3):
    ...     _ = store.log({"messages": [{"role": "user", "content": f"add {i}"}], "route": "llm",
    ...                    "task": "calculator", "input_tokens": 100, "output_tokens": 10})
    >>> store.flush()
    True
    >>> [(t.name, t.calls, t.llm_share) for t in cluster_tasks(store.db)]
    [('calculator', 3, 1.0)]
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlite_utils import Database

from ..capture._utils import to_int
from ..errors import InvalidRequest, missing_extra
from ._rows import BlobCache, called_tools, has_table, loads, text_of

__all__ = ["Task", "cluster_tasks", "recount_tasks", "list_tasks", "resolve_task", "ensure_tables", "unassigned_calls",
           "TASKS_TABLE", "CALL_TASKS_TABLE"]

TASKS_TABLE = "tasks"
CALL_TASKS_TABLE = "call_tasks"

_TASK_COLUMNS = {
    "id": str,
    "name": str,
    "label": str,
    "method": str,
    "signature": str,
    "cluster_index": int,
    "top_tools": str,
    "sample_prompt": str,
    "calls": int,
    "llm_calls": int,
    "slm_calls": int,
    "shadow_calls": int,
    "escalations": int,
    "llm_share": float,
    "input_tokens": int,
    "output_tokens": int,
    "llm_cost_usd": float,
    "clustered_at": str,
}


@dataclass
class Task:
    """One task: a labelled agent step, or a cluster of similar unlabelled calls.

    Attributes:
        id: ``t-`` + 8 hex characters.
        name: The explicit task label, when the calls carry one (None for clusters).
        label: A readable description: top tools and a sample prompt.
        method: ``"label"`` or ``"cluster"``.
        signature: Hash of the tools offered and the system prompt (clusters), or of the label.
        cluster_index: The cluster's number within its signature.
        top_tools: The tools the answers called most, most frequent first.
        sample_prompt: The start of one request's last user message (already redacted).
        calls: Calls in the task (every route).
        llm_calls / slm_calls / shadow_calls: Calls by route.
        escalations: SLM calls of the task that were escalated.
        llm_share: Share of the task's steps answered by the LLM.
        input_tokens / output_tokens: Tokens over every call.
        llm_cost_usd: Estimated cost of the task's LLM calls (``Prices.from_env()``).

    Example:
        >>> Task(id="t-0000abcd", name="search").policy_key
        'search'
    """

    id: str
    name: str | None = None
    label: str = ""
    method: str = "label"
    signature: str = ""
    cluster_index: int = 0
    top_tools: list[str] = field(default_factory=list)
    sample_prompt: str = ""
    calls: int = 0
    llm_calls: int = 0
    slm_calls: int = 0
    shadow_calls: int = 0
    escalations: int = 0
    llm_share: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    llm_cost_usd: float = 0.0
    clustered_at: str = ""

    @property
    def policy_key(self) -> str:
        """The key of this task in ``EscalationPolicy.task_thresholds``: the label, else the id."""
        return self.name or self.id

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "policy_key": self.policy_key}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        data: dict[str, Any] = {k: row.get(k) for k in _TASK_COLUMNS}
        data["top_tools"] = loads(data["top_tools"]) or []
        for key in ("label", "sample_prompt", "signature", "method", "clustered_at"):
            data[key] = data[key] or ""
        for key in ("cluster_index", "calls", "llm_calls", "slm_calls", "shadow_calls", "escalations",
                    "input_tokens", "output_tokens"):
            data[key] = int(data[key] or 0)
        data["llm_share"] = float(data["llm_share"] or 0.0)
        data["llm_cost_usd"] = float(data["llm_cost_usd"] or 0.0)
        return cls(**data)


def ensure_tables(db: Database) -> None:
    """Create ``tasks`` and ``call_tasks`` if they are missing (idempotent)."""
    db.table(TASKS_TABLE).create(_TASK_COLUMNS, pk="id", if_not_exists=True)
    db.table(CALL_TASKS_TABLE).create({"call_id": str, "task_id": str}, pk="call_id", if_not_exists=True)
    db.table(CALL_TASKS_TABLE).create_index(["task_id"], if_not_exists=True)


def unassigned_calls(db: Database) -> int:
    """Captured calls that no task holds yet (all of them before the first clustering)."""
    if not has_table(db, CALL_TASKS_TABLE):
        return int(db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    return int(db.execute(
        f"SELECT COUNT(*) FROM calls WHERE id NOT IN (SELECT call_id FROM {CALL_TASKS_TABLE})"
    ).fetchone()[0])


def list_tasks(db: Database, *, recluster: bool | None = None, **options: Any) -> list[Task]:
    """The stored tasks, largest first; clusters first when needed.

    Args:
        db: A migrated capture database.
        recluster: True: cluster again now. False: only read what is stored. None (default):
            cluster when there are calls no task holds yet (new captures since the last run).
        **options: Passed to :func:`cluster_tasks`.
    """
    if recluster or (recluster is None and unassigned_calls(db)):
        return cluster_tasks(db, **options)
    ensure_tables(db)
    return [Task.from_row(r) for r in db.query(f"SELECT * FROM {TASKS_TABLE} ORDER BY calls DESC, id")]


def resolve_task(db: Database, key: str) -> Task:
    """The task with id or name ``key`` (clustering first when calls were captured since the last run).

    Raises:
        InvalidRequest: No such task (the message lists how to see the known ones).
    """
    tasks = list_tasks(db)
    for task in tasks:
        if key in (task.id, task.name):
            return task
    known = ", ".join(t.policy_key for t in tasks[:10]) or "none yet"
    raise InvalidRequest(
        f"no task {key!r} in this capture database (known: {known}). List them with "
        "'slm-agents tasks', or cluster new calls with 'slm-agents tasks --recluster'."
    )


def _hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


@dataclass
class _Group:
    signature: str
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def _last_user_text(messages: list[Any], blobs: BlobCache) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, dict) and "$blob" in content:
                content = blobs.get(content["$blob"])
            return " ".join(text_of(content).split())[:2000]
    return ""


def _system_key(messages: list[Any]) -> str:
    for m in messages:
        if isinstance(m, dict) and m.get("role") in ("system", "developer"):
            content = m.get("content")
            return json.dumps(content, sort_keys=True) if isinstance(content, dict) else " ".join(text_of(content).split())
    return ""


def _split(texts: list[str], *, max_k: int, min_cluster: int, sample_size: int, random_state: int,
           min_silhouette: float) -> list[int]:
    """Cluster labels for ``texts`` (all 0 when they do not split clearly)."""
    n = len(texts)
    if n < 2 * min_cluster or max_k < 2:
        return [0] * n
    try:
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.metrics import silhouette_score
    except ImportError as e:
        raise missing_extra("scikit-learn", "loop") from e
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        limits: Any = contextlib.nullcontext()
    else:
        # one thread: small fits are dominated by OpenMP start-up, worst on a busy machine
        limits = threadpool_limits(limits=1)
    with limits:
        return _kmeans(texts, MiniBatchKMeans, TfidfVectorizer, silhouette_score, max_k=max_k,
                       min_cluster=min_cluster, sample_size=sample_size, random_state=random_state,
                       min_silhouette=min_silhouette)


def _kmeans(texts: list[str], kmeans: Any, tfidf: Any, silhouette: Any, *, max_k: int, min_cluster: int,
            sample_size: int, random_state: int, min_silhouette: float) -> list[int]:
    n = len(texts)
    vectorizer = tfidf(max_features=5000, sublinear_tf=True, min_df=1)
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # empty vocabulary: nothing to tell the calls apart
        return [0] * n
    rng = random.Random(random_state)
    index = sorted(rng.sample(range(n), sample_size)) if n > sample_size else list(range(n))
    sample = matrix[index]
    best_k, best_score, best_model = 1, min_silhouette, None
    for k in range(2, min(max_k, len(index) // min_cluster) + 1):
        model = kmeans(n_clusters=k, random_state=random_state, n_init=3, batch_size=1024)
        labels = model.fit_predict(sample)
        sizes = Counter(int(x) for x in labels)
        if len(sizes) < 2 or min(sizes.values()) < max(1, min_cluster * len(index) // n):
            continue  # a cluster too small to be a task of its own
        score = float(silhouette(sample, labels, metric="cosine", random_state=random_state))
        if score > best_score + 1e-9:
            best_k, best_score, best_model = k, score, model
    if best_model is None or best_k == 1:
        return [0] * n
    return [int(x) for x in best_model.predict(matrix)]


def cluster_tasks(
    db: Database,
    *,
    max_k: int = 8,
    min_cluster: int = 5,
    sample_size: int = 1500,
    min_silhouette: float = 0.1,
    random_state: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[Task]:
    """Cluster every captured call into tasks and store the result (replacing the previous one).

    Args:
        db: A migrated capture database (written to: ``tasks`` and ``call_tasks``).
        max_k: Most clusters per signature.
        min_cluster: Fewest calls a cluster may hold when k is chosen; signatures with fewer than
            twice this many unlabelled calls stay one task.
        sample_size: Calls per signature used to choose k (deterministic sample).
        min_silhouette: A split is kept only when its silhouette score (cosine) beats this.
        random_state: Seed of the sample and of MiniBatchKMeans.
        progress: Called as ``progress(done, total)`` while reading calls.

    Returns:
        The tasks, largest first.
    """
    from ..capture.query import Prices

    prices = Prices.from_env()
    ensure_tables(db)
    total = int(db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    escalated = {r[0] for r in db.execute("SELECT slm_call_id FROM escalations WHERE slm_call_id IS NOT NULL")}
    blobs = BlobCache(db)
    labelled: dict[str, list[str]] = defaultdict(list)
    groups: dict[str, _Group] = {}
    info: dict[str, tuple[str | None, int, int, str | None]] = {}
    tools_of: dict[str, list[str]] = {}
    cursor = db.conn.execute(
        "SELECT id, task, route, messages, tools_hash, tool_calls, input_tokens, output_tokens FROM calls ORDER BY id"
    )
    for done, (cid, task, route, messages_json, tools_hash, tool_calls_json, inp, out) in enumerate(cursor, 1):
        info[cid] = (route, to_int(inp) or 0, to_int(out) or 0, None)  # text or inf: 0
        tools_of[cid] = called_tools(tool_calls_json)
        if task:
            labelled[task].append(cid)
        else:
            messages = loads(messages_json)
            messages = messages if isinstance(messages, list) else []
            signature = _hex(f"{tools_hash or ''}|{_system_key(messages)}")
            group = groups.get(signature)
            if group is None:
                group = groups[signature] = _Group(signature)
            group.ids.append(cid)
            group.texts.append(_last_user_text(messages, blobs))
        if progress and (done % 5000 == 0 or done == total):
            progress(done, total)

    members: list[tuple[Task, list[str]]] = []
    for name in sorted(labelled):
        members.append((Task(id="t-" + _hex("task:" + name), name=name, method="label",
                             signature=_hex("task:" + name)), labelled[name]))
    for signature in sorted(groups):
        group = groups[signature]
        labels = _split(group.texts, max_k=max_k, min_cluster=min_cluster, sample_size=sample_size,
                        random_state=random_state, min_silhouette=min_silhouette)
        clusters: dict[int, list[int]] = defaultdict(list)
        for i, label in enumerate(labels):
            clusters[label].append(i)
        ordered = sorted(clusters.values(), key=lambda idx: group.ids[idx[0]])  # by first call
        for index, idx in enumerate(ordered):
            task = Task(id="t-" + _hex(f"{signature}:{index}"), method="cluster", signature=signature,
                        cluster_index=index, sample_prompt=_redacted(group.texts[idx[0]])[:80])
            members.append((task, [group.ids[i] for i in idx]))

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    tasks: list[Task] = []
    mapping: list[tuple[str, str]] = []
    for task, ids in members:
        _tally(task, ids, info, tools_of, escalated, prices)
        mapping.extend((cid, task.id) for cid in ids)
        if task.method == "label" and not task.sample_prompt:
            task.sample_prompt = _sample_prompt(db, ids[0], blobs)
        task.label = _task_label(task)
        task.clustered_at = now
        tasks.append(task)

    with db.conn:
        db.conn.execute(f"DELETE FROM {CALL_TASKS_TABLE}")
        db.conn.execute(f"DELETE FROM {TASKS_TABLE}")
        columns = list(_TASK_COLUMNS)
        db.conn.executemany(
            f"INSERT INTO {TASKS_TABLE} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [tuple(json.dumps(t.top_tools) if c == "top_tools" else getattr(t, c) for c in columns) for t in tasks],
        )
        db.conn.executemany(f"INSERT OR REPLACE INTO {CALL_TASKS_TABLE} (call_id, task_id) VALUES (?, ?)", mapping)
    tasks.sort(key=lambda t: (-t.calls, t.id))
    return tasks


def _tally(task: Task, ids: list[str], info: dict[str, tuple[str | None, int, int, str | None]],
           tools_of: dict[str, list[str]], escalated: set[str], prices: Any) -> None:
    """Set ``task``'s counters, shares, cost and top tools from its calls ``ids``."""
    tool_counts: Counter[str] = Counter()
    task.calls = task.llm_calls = task.slm_calls = task.shadow_calls = task.escalations = 0
    task.input_tokens = task.output_tokens = 0
    task.llm_cost_usd = 0.0
    for cid in ids:
        route, inp, out, _ = info[cid]
        tool_counts.update(tools_of[cid])
        task.calls += 1
        task.input_tokens += inp
        task.output_tokens += out
        if route == "llm":
            task.llm_calls += 1
            task.llm_cost_usd += (inp * prices.llm_input + out * prices.llm_output) / 1_000_000
        elif route == "shadow":
            task.shadow_calls += 1
        elif route == "slm":
            task.slm_calls += 1
            task.escalations += cid in escalated
    steps = task.llm_calls + task.slm_calls - task.escalations
    task.llm_share = task.llm_calls / steps if steps > 0 else 0.0
    task.top_tools = [name for name, _ in tool_counts.most_common(3)]


def _task_label(task: Task) -> str:
    tools = ", ".join(task.top_tools) or "no tool calls"
    prefix = f"{task.name}: " if task.name else ""
    return f"{prefix}{tools} | {task.sample_prompt[:60]!r}"


def recount_tasks(db: Database) -> list[Task]:
    """Recompute every stored task's counters from the calls ``call_tasks`` assigns to it.

    ``slm-agents merge`` copies the task tables of each file and then calls this: a task found in
    several files counts the merged calls once each. Assignments and labels are kept as they are.
    """
    from ..capture.query import Prices

    ensure_tables(db)
    tasks = {r["id"]: Task.from_row(r) for r in db.query(f"SELECT * FROM {TASKS_TABLE}")}
    escalated = {r[0] for r in db.execute("SELECT slm_call_id FROM escalations WHERE slm_call_id IS NOT NULL")}
    info: dict[str, tuple[str | None, int, int, str | None]] = {}
    tools_of: dict[str, list[str]] = {}
    members: dict[str, list[str]] = defaultdict(list)
    for task_id, cid, route, inp, out, tool_calls_json in db.execute(
        f"SELECT ct.task_id, c.id, c.route, c.input_tokens, c.output_tokens, c.tool_calls "
        f"FROM {CALL_TASKS_TABLE} ct JOIN calls c ON c.id = ct.call_id ORDER BY c.id"
    ):
        info[cid] = (route, to_int(inp) or 0, to_int(out) or 0, None)  # text or inf: 0
        tools_of[cid] = called_tools(tool_calls_json)
        members[task_id].append(cid)
    prices = Prices.from_env()
    for task_id, task in tasks.items():
        _tally(task, members.get(task_id, []), info, tools_of, escalated, prices)
        task.label = _task_label(task)
    columns = [c for c in _TASK_COLUMNS if c != "id"]
    with db.conn:
        db.conn.executemany(
            f"UPDATE {TASKS_TABLE} SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
            [(*(json.dumps(t.top_tools) if c == "top_tools" else getattr(t, c) for c in columns), t.id)
             for t in tasks.values()],
        )
    return sorted(tasks.values(), key=lambda t: (-t.calls, t.id))


def _sample_prompt(db: Database, call_id: str, blobs: BlobCache) -> str:
    row = db.execute("SELECT messages FROM calls WHERE id = ?", [call_id]).fetchone()
    messages = loads(row[0]) if row else None
    return _redacted(_last_user_text(messages if isinstance(messages, list) else [], blobs))[:80]


def _redacted(text: str) -> str:
    """Task labels are shown and exported: never carry PII, even from a DB captured unredacted."""
    from ..capture import Redactor

    return Redactor().redact_text(text)[0]
