"""Training examples for one task, from a capture database, rendered the way the runtime renders them.

The calls come from the core's curation (:class:`slm_agents.dataset.Curator`): the teacher's
successful calls of the task (route ``llm``: answers the LLM gave, first or after an escalation,
so the chosen side of every escalation pair is in) and the SLM's accepted calls (route ``slm``),
de-duplicated, split by the core's stratified split (per called tool, text answers their own
stratum). Answers in text after a tool result stay in: they teach the model when not to call.

Each example's text is ``runtime.render_prompt(messages, tools) + runtime.render_answer(answer)``:
byte for byte what the runtime sends at inference, plus what it would generate. The loss covers
the answer's tokens only (:func:`encode`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from slm_agents.dataset import Curator, stratified_split
from slm_agents.errors import InvalidRequest
from slm_agents.evaluate import EvalCase

__all__ = ["Example", "TaskData", "load_task", "encode", "IGNORE"]

#: The label of tokens the loss ignores (the prompt's).
IGNORE = -100


@dataclass
class Example:
    """One captured call: the request and the answer to learn."""

    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    answer: dict[str, Any]
    stratum: str

    def case(self, task: str) -> EvalCase:
        """This example as an evaluation case (the answer's calls are the expected ones)."""
        expected = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")}
                    for c in self.answer.get("tool_calls") or []]
        return EvalCase(messages=self.messages, tools=self.tools, expected=expected, task=task, id=self.id)


@dataclass
class TaskData:
    """A task's examples, split."""

    task: str
    train: list[Example] = field(default_factory=list)
    validation: list[Example] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        def kinds(examples: list[Example]) -> dict[str, int]:
            return dict(Counter("call" if e.answer.get("tool_calls") else "text" for e in examples))

        return {"train": len(self.train), "validation": len(self.validation), "train_kinds": kinds(self.train),
                "validation_kinds": kinds(self.validation), "dropped": dict(self.dropped)}


def load_task(db: Any, task: str, *, val_fraction: float = 0.15, seed: int = 0,
              routes: tuple[str, ...] = ("llm", "slm"), min_examples: int = 20) -> TaskData:
    """The examples of ``task`` (an id or name from ``slm-agents tasks``), split train/validation.

    Raises:
        InvalidRequest: an empty or unknown task, or fewer than ``min_examples`` usable calls.
    """
    if not task or not task.strip():
        raise InvalidRequest("--task is empty; name a task from 'slm-agents tasks' (its id or name)")
    curator = Curator(db, task_id=task, routes=routes)
    examples: list[Example] = []
    groups: list[tuple[str, str]] = []
    for record in curator:
        answer = record["answer"]
        try:
            for call in answer.get("tool_calls") or []:
                json.loads(call["function"]["arguments"] or "{}")
        except (ValueError, TypeError, KeyError):
            curator.stats.dropped["unparseable_call"] = curator.stats.dropped.get("unparseable_call", 0) + 1
            continue
        examples.append(Example(str(record["id"]), record["messages"], list(record["tools"] or []), answer,
                                record["stratum"]))
        groups.append((record["request_hash"], record["stratum"]))
    if len(examples) < min_examples:
        raise InvalidRequest(
            f"task {task!r} has {len(examples)} usable captured call(s); fine-tuning needs at least {min_examples}. "
            "Capture more of its calls (successful LLM answers or accepted SLM answers), or lower --min-examples."
        )
    validation = stratified_split(groups, val_fraction, seed)
    data = TaskData(task=task, dropped=dict(curator.stats.dropped))
    for example, (group, _) in zip(examples, groups, strict=True):
        (data.validation if group in validation else data.train).append(example)
    return data


def encode(runtime: Any, example: Example, max_length: int) -> tuple[list[int], list[int]] | None:
    """``(input_ids, labels)`` for one example; the labels mask every prompt token.

    Returns None when the example does not fit in ``max_length`` tokens with its whole answer.
    """
    prompt, target = runtime.training_tokens(example.messages, example.tools, example.answer)
    if len(prompt) + len(target) > max_length:
        return None
    return prompt + target, [IGNORE] * len(prompt) + target
