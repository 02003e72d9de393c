"""Feedback from the LangChain face: the handler's thin ``feedback`` reaches the core store and
counts in outcome readiness (issue 12 §5)."""

from __future__ import annotations

import uuid

import pytest
from sqlite_utils import Database

from langchain_slm import ChatSLM
from langchain_slm.callbacks import SLMCaptureHandler
from slm_agents.capture import CaptureStore
from slm_agents.capture.outcomes import outcome_readiness
from slm_agents.errors import InvalidRequest
from slm_agents.runtimes.fake import FakeRuntime


def test_thumbs_down_on_a_run_counts_against_its_task() -> None:
    store = CaptureStore(Database(memory=True), redactor=None)
    handler = SLMCaptureHandler(store, task="greet")
    model = ChatSLM(runtime=FakeRuntime(["hello", "hi there"]))
    bad_run, good_run = uuid.uuid4(), uuid.uuid4()
    model.invoke("hi", config={"callbacks": [handler], "run_id": bad_run})
    model.invoke("hi", config={"callbacks": [handler], "run_id": good_run})
    handler.feedback(bad_run, good=False, note="rude")   # a LangChain run id (a UUID) is enough
    handler.feedback(str(good_run), score=0.9)
    assert handler.flush()
    labels = [(r["label"], r["score"], r["note"]) for r in store.db.query("select * from labels order by id")]
    assert labels == [("bad", 0.0, "rude"), (None, 0.9, None)]
    assert [r["run_id"] for r in store.db.query("select run_id from calls order by id")] == [str(bad_run),
                                                                                            str(good_run)]
    outcome = outcome_readiness(store.db)["greet"]  # ChatSLM calls are SLM calls, accepted
    assert (outcome.slm_calls, outcome.negative_feedback, outcome.readiness) == (2, 1, 0.5)
    with pytest.raises(InvalidRequest, match="0 \\(bad\\) to 1"):
        handler.feedback(good_run, score=7)
