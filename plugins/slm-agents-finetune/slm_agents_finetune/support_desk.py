"""A development workload: a support-desk agent with five tools and a scripted teacher.

The cookbook recipe, the benchmark and the tests capture its calls the way a deployed agent's
would be captured (route ``llm``: the teacher's answers, task ``support``), then fine-tune on them.
About a quarter of the steps answer in text after a tool result.

Two disjoint sets of phrasings exist: ``"train"`` (what gets captured) and ``"heldout"`` (worded
differently, with other values, used only to evaluate), so a gain must generalise beyond the
wording it was trained on. Nothing here was tuned on any held-out evaluation set of the project.

Example:
    >>> steps = list(conversations(4, phrasing="heldout", seed=1))
    >>> {s.kind for s in steps} <= {"call", "answer"} and all(s.messages for s in steps)
    True
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["SYSTEM", "TOOLS", "Step", "conversations", "capture", "eval_cases"]

SYSTEM = "You are the support assistant of Acme Shop. Use the tools to help customers, then answer briefly."


def _tool(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": props, "required": required}}}


TOOLS: list[dict[str, Any]] = [
    _tool("lookup_order", "Look up the status of an order by its id", {"order_id": {"type": "string"}}, ["order_id"]),
    _tool("track_shipment", "Track a parcel by its tracking number",
          {"tracking_number": {"type": "string"}}, ["tracking_number"]),
    _tool("request_refund", "Start a refund for an order", {
        "order_id": {"type": "string"},
        "reason": {"type": "string", "enum": ["damaged", "wrong_item", "late", "changed_mind"]}},
        ["order_id", "reason"]),
    _tool("reset_password", "Send a password reset link to the account's email", {"email": {"type": "string"}},
          ["email"]),
    _tool("create_ticket", "Open a support ticket for a problem the other tools cannot solve", {
        "summary": {"type": "string"}, "priority": {"type": "string", "enum": ["low", "normal", "high"]}},
        ["summary", "priority"]),
]

# (tool, [phrasings]) per set; {slots} are filled from the value pools below.
_PHRASINGS: dict[str, dict[str, list[str]]] = {
    "train": {
        "lookup_order": ["Where is my order {order_id}?", "What's the status of order {order_id}?",
                         "Can you check order {order_id} for me?", "has my order {order_id} shipped yet",
                         "Any news on order {order_id}?"],
        "track_shipment": ["Track parcel {tracking_number} please", "Where is package {tracking_number}?",
                           "tracking number {tracking_number}, where is it now?",
                           "Can you track {tracking_number}?"],
        "request_refund": ["I want a refund for order {order_id}, it arrived {reason_text}.",
                           "Refund order {order_id} please: {reason_text}.",
                           "Order {order_id} came {reason_text}, I'd like my money back."],
        "reset_password": ["I forgot my password, my email is {email}", "Reset the password for {email}",
                           "Can't log in. Account email: {email}", "please send a reset link to {email}"],
        "create_ticket": ["{problem} Please open a ticket, it's {priority_text}.",
                          "Open a {priority} priority ticket: {problem}",
                          "{problem} Can you raise a ticket? Priority {priority}."],
    },
    "heldout": {
        "lookup_order": ["I ordered something, number {order_id}. What's happening with it?",
                         "status of {order_id}?", "Could you tell me if {order_id} is on its way?"],
        "track_shipment": ["My courier gave me {tracking_number}, where's the parcel?",
                           "follow shipment {tracking_number}"],
        "request_refund": ["Please give me my money back for {order_id} because it arrived {reason_text}",
                           "{order_id}: it came {reason_text}. Refund, please."],
        "reset_password": ["Locked out of my account ({email}), help me reset it",
                           "my login email {email} needs a new password"],
        "create_ticket": ["Please file a {priority} priority issue: {problem}",
                          "{problem} I need a ticket for this, {priority_text}."],
    },
}

_REASONS = {"damaged": ["damaged", "broken"], "wrong_item": ["as the wrong item", "with the wrong product"],
            "late": ["two weeks late", "very late"], "changed_mind": ["fine but I changed my mind"]}
_PROBLEMS = {
    "train": ["The checkout page crashes when I pay.", "My coupon code is rejected.", "The app logs me out constantly.",
              "I was charged twice for one order."],
    "heldout": ["Images on the product pages do not load.", "The invoice PDF is blank."],
}
_PRIORITY_TEXT = {"low": "not urgent", "normal": "fairly important", "high": "urgent"}
_RESULTS = {
    "lookup_order": lambda a, r: (json.dumps({"order_id": a["order_id"], "status": r.choice(["shipped", "processing"]),
                                              "eta": f"2026-12-{r.randint(5, 28):02d}"}),
                                  "Your order {order_id} is {status}; expected delivery {eta}."),
    "track_shipment": lambda a, r: (json.dumps({"location": r.choice(["Lyon hub", "Berlin depot", "out for delivery"]),
                                                "eta": f"2026-12-{r.randint(5, 28):02d}"}),
                                    "Your parcel is at {location} and should arrive on {eta}."),
    "request_refund": lambda a, r: (json.dumps({"refund_id": f"RF-{r.randint(1000, 9999)}", "status": "approved"}),
                                    "Your refund {refund_id} is approved."),
    "reset_password": lambda a, r: (json.dumps({"sent": True}), "I sent a password reset link to your email."),
    "create_ticket": lambda a, r: (json.dumps({"ticket": f"T-{r.randint(100, 999)}"}),
                                   "I opened ticket {ticket}; the team will get back to you."),
}


@dataclass
class Step:
    """One model call of the agent and the teacher's answer to it."""

    kind: str  # "call" or "answer"
    messages: list[dict[str, Any]]
    answer: dict[str, Any]


def _values(r: random.Random, phrasing: str) -> dict[str, str]:
    held = phrasing == "heldout"
    reason = r.choice(list(_REASONS))
    priority = r.choice(list(_PRIORITY_TEXT))
    return {
        "order_id": (f"B{r.randint(10000, 99999)}" if held else f"A{r.randint(1000, 9999)}"),
        "tracking_number": (f"ZX{r.randint(100000, 999999)}" if held else f"1Z{r.randint(10**7, 10**8 - 1)}"),
        "email": f"{r.choice(['li', 'sam', 'ana', 'omar', 'jo', 'kim'] if not held else ['pat', 'eve', 'raj'])}"
                 f"{r.randint(1, 99)}@{r.choice(['mail.com', 'shop.net'] if not held else ['post.org'])}",
        "reason": reason, "reason_text": r.choice(_REASONS[reason]),
        "priority": priority, "priority_text": _PRIORITY_TEXT[priority],
        "problem": r.choice(_PROBLEMS["heldout" if held else "train"]),
    }


def _arguments(name: str, v: dict[str, str]) -> dict[str, Any]:
    return {"lookup_order": {"order_id": v["order_id"]}, "track_shipment": {"tracking_number": v["tracking_number"]},
            "request_refund": {"order_id": v["order_id"], "reason": v["reason"]},
            "reset_password": {"email": v["email"]},
            "create_ticket": {"summary": v["problem"].rstrip("."), "priority": v["priority"]}}[name]


def conversations(n: int, *, phrasing: str = "train", seed: int = 0, answer_share: float = 0.25) -> Iterator[Step]:
    """``n`` agent steps: requests needing a call and, for about ``answer_share``, the answer after it."""
    if phrasing not in _PHRASINGS:
        raise ValueError(f"phrasing is 'train' or 'heldout', got {phrasing!r}")
    r = random.Random(f"{phrasing}:{seed}")
    made = 0
    while made < n:
        name = r.choice(list(_PHRASINGS[phrasing]))
        v = _values(r, phrasing)
        text = r.choice(_PHRASINGS[phrasing][name]).format(**v)
        args = _arguments(name, v)
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        call_id = f"call_{made}"
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        yield Step("call", messages, {"role": "assistant", "content": None, "tool_calls": [call]})
        made += 1
        if made < n and r.random() < answer_share / (1 - answer_share):
            result, template = _RESULTS[name](args, r)
            fields = {**args, **json.loads(result)}
            after = [*messages, {"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": call_id, "content": result}]
            yield Step("answer", after, {"role": "assistant", "content": template.format(**fields)})
            made += 1


def capture(store: Any, n: int, *, seed: int = 0, task: str = "support") -> int:
    """Log ``n`` teacher steps into a :class:`~slm_agents.capture.CaptureStore` (route ``llm``)."""
    for step in conversations(n, phrasing="train", seed=seed):
        store.log({"messages": step.messages, "tools": TOOLS, "tool_choice": "auto", "route": "llm",
                   "task": task, "model": "scripted-teacher", "content": step.answer.get("content"),
                   "tool_calls": step.answer.get("tool_calls"),
                   "finish_reason": "tool_calls" if step.kind == "call" else "stop", "valid": True})
    return n


def eval_cases(n: int, *, seed: int = 0, task: str = "support") -> list[Any]:
    """``n`` held-out evaluation cases (different phrasings and values from the captured ones)."""
    from slm_agents.evaluate import EvalCase

    cases = []
    for i, step in enumerate(conversations(n, phrasing="heldout", seed=seed)):
        expected = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                    for c in step.answer.get("tool_calls") or []]
        cases.append(EvalCase(messages=step.messages, tools=TOOLS, expected=expected, task=task, id=f"heldout-{i}"))
    return cases
