"""Task clustering: labels first, then signature, then content; persisted and deterministic."""

from __future__ import annotations

import re

import pytest

from slm_agents.capture import CaptureStore
from slm_agents.dataset import cluster_tasks, list_tasks, open_db, resolve_task
from slm_agents.dataset.tasks import unassigned_calls
from slm_agents.errors import InvalidRequest

from .conftest import populate


def _task_of(db, call_id: str) -> str:
    return db.execute("select task_id from call_tasks where call_id = ?", [call_id]).fetchone()[0]


def test_labelled_calls_form_one_task_per_label(db) -> None:
    tasks = {t.name: t for t in cluster_tasks(db) if t.name}
    assert set(tasks) == {"triage", "triage-tools", "router"}
    triage = tasks["triage"]
    assert triage.calls == 4 and triage.llm_calls == 4 and triage.llm_share == 1.0
    assert triage.policy_key == "triage" and triage.method == "label"
    router = tasks["router"]
    assert router.shadow_calls == 10 and router.llm_calls == 10
    assert router.top_tools == ["get_weather"]
    # the escalated SLM call does not count as a step kept on the SLM
    assert tasks["triage-tools"].escalations == 1 and tasks["triage-tools"].llm_share == 1.0


def test_two_prompt_families_split(db, db_path) -> None:
    from .conftest import CITIES  # noqa: F401 - documents where the families come from

    ids = {}
    store_rows = list(db.query("select id, messages from calls where task is null and error_type is null "
                               "and (finish_reason is null or finish_reason != 'cancelled')"))
    cluster_tasks(db)
    for row in store_rows:
        family = "weather" if "weather" in row["messages"] else "math"
        ids.setdefault(family, set()).add(_task_of(db, row["id"]))
    assert len(ids["weather"]) == 1 and len(ids["math"]) == 1
    assert ids["weather"] != ids["math"]
    weather = resolve_task(db, next(iter(ids["weather"])))
    assert weather.method == "cluster" and weather.name is None
    assert weather.top_tools[0] == "get_weather" and "weather" in weather.sample_prompt
    assert re.fullmatch(r"t-[0-9a-f]{8}", weather.id)
    assert weather.llm_cost_usd > 0


def test_clustering_is_deterministic(tmp_path) -> None:
    results = []
    for name in ("a.db", "b.db"):
        store = CaptureStore(tmp_path / name, redactor=None)
        populate(store)
        store.flush(10)
        store.close()
        db = open_db(tmp_path / name)
        tasks = cluster_tasks(db)
        # call ids differ between files: compare which calls (by request text) share a task
        groups = {}
        for row in db.query("select c.messages, ct.task_id from calls c join call_tasks ct on ct.call_id = c.id"):
            groups.setdefault(row["task_id"], set()).add(row["messages"])
        results.append(([(t.id, t.calls, t.label) for t in tasks], sorted(map(sorted, groups.values()))))
        db.conn.close()
    assert results[0] == results[1]


def test_assignment_is_persisted_and_refreshed(db) -> None:
    assert unassigned_calls(db) == db["calls"].count
    tasks = list_tasks(db)
    assert unassigned_calls(db) == 0
    assert db["tasks"].count == len(tasks) and db["call_tasks"].count == db["calls"].count
    assert list_tasks(db, recluster=False) == tasks  # read back, same tasks
    db["calls"].insert({"id": "zzz-new", "messages": '[{"role":"user","content":"hi"}]', "task": "greet",
                        "route": "llm", "content": "hello"})
    assert unassigned_calls(db) == 1
    names = [t.name for t in list_tasks(db)]  # new calls: clustered again automatically
    assert "greet" in names and unassigned_calls(db) == 0


def test_resolve_task_by_id_or_name_and_helpful_error(db) -> None:
    triage = resolve_task(db, "triage")
    assert resolve_task(db, triage.id) == triage
    with pytest.raises(InvalidRequest, match="slm-agents tasks"):
        resolve_task(db, "t-nothere")


def test_small_groups_stay_one_task_without_sklearn(db, monkeypatch) -> None:
    import sys

    for name in ("sklearn", "sklearn.cluster", "sklearn.feature_extraction.text", "sklearn.metrics"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now fails
    from slm_agents.errors import RuntimeUnavailable

    with pytest.raises(RuntimeUnavailable, match=r"slm-agents\[loop\]"):
        cluster_tasks(db)
    tasks = cluster_tasks(db, min_cluster=50)  # no group is big enough to split: sklearn not needed
    assert sum(t.method == "cluster" for t in tasks) == 1
