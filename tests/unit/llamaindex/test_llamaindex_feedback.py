"""Feedback from the LlamaIndex face: the handler's thin ``feedback`` reaches the core store
(issue 12 §5)."""

from __future__ import annotations

import pytest

from slm_agents.capture import CaptureStore
from slm_agents.capture.outcomes import negative_feedback_calls
from slm_agents.errors import InvalidRequest


def test_feedback_through_the_instrumentation_handler(store: CaptureStore, capture: object) -> None:
    call_id = store.log({"messages": [{"role": "user", "content": "q"}], "route": "slm", "task": "lookup"})
    label_id = capture.feedback(call_id, good=False)  # type: ignore[attr-defined]
    assert capture.flush()  # type: ignore[attr-defined]
    row = store.db["labels"].get(label_id)
    assert (row["target_id"], row["label"], row["score"]) == (call_id, "bad", 0.0)
    assert negative_feedback_calls(store.db) == {call_id}
    with pytest.raises(InvalidRequest, match="good=True/False"):
        capture.feedback(call_id)  # type: ignore[attr-defined]
