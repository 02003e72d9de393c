"""The call-or-answer decision of ``tool_choice="auto"``, made as a step of its own.

Left to itself, a small model asked in ``"auto"`` mode almost never starts a tool call: the first
token of a text answer is always more likely than the ``<`` of ``<tool_call>``. So the runtime
decides first and decodes second. The decision is a calibrated probability ``p_call`` from a few
signals that are cheap at the first assistant position:

* ``model``: the model's own log-odds of starting a call: the probability mass of the first
  tokens that begin ``<tool_call>``, read from the logits the prompt evaluation computed anyway
  (no extra forward pass);
* ``after_tool``: the turn follows a tool result (such turns usually answer);
* ``overlap`` and ``overlap_share``: how many of the request's content words a bound tool's
  name, description, parameter names and enum values cover (a request naming an action a bound
  tool performs usually calls);
* ``slots``: the share of the best-matching tool's required parameters whose values the request
  visibly holds (a number for a number, an e-mail address for an ``email``/``to`` field, an enum
  value, a capitalised name or a quoted string for a string);
* ``chat``: every word of the request is a greeting, a thank-you or a stop word;
* ``imperative``: the request opens with an action verb (send, book, track, convert, ...);
* ``entity``: it holds something a tool acts on: a number, an e-mail address, a code or an id;
* ``live``: it asks about the present (now, today, current, latest), which a model cannot know.

A :class:`DecisionCalibration` (a logistic model over those signals) turns them into ``p_call``;
the runtime calls when ``p_call >= threshold``. One is shipped for the default model, fitted on the
development set in ``bench/data/decision_dev.jsonl`` (``bench/auto_decision.py --fit``); any
other model gets the generic one until ``slm-agents calibrate --decision`` fits its own.

Example:
    >>> tools = [{"type": "function", "function": {"name": "get_weather",
    ...     "description": "Current weather in a city", "parameters": {"type": "object",
    ...     "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    >>> f = request_features([{"role": "user", "content": "What's the weather in Paris?"}], tools)
    >>> f["overlap"] >= 1, f["slots"], f["after_tool"]
    (True, 1.0, 0.0)
    >>> cal = DecisionCalibration.generic()
    >>> p = cal.p_call({**f, "model": -4.0})
    >>> p > cal.threshold
    True
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from .errors import InvalidRequest
from .types import Message

__all__ = [
    "FEATURES",
    "DecisionCalibration",
    "Decision",
    "decide",
    "request_features",
    "calibration_for",
    "fit_calibration",
    "balanced_accuracy",
    "fit_threshold",
    "MISS_COST",
]

#: The signals a calibration weighs, in order.
FEATURES: tuple[str, ...] = ("model", "after_tool", "overlap", "overlap_share", "slots", "chat", "imperative",
                             "entity", "live")

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9']*|\d+(?:[.,]\d+)?")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)?")
_QUOTED = re.compile(r"[\"“'‘][^\"”'’]{2,}[\"”'’]")
_PROPER = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")
_LIVE = re.compile(r"\b(now|today|tonight|tomorrow|current|currently|latest|this week|yet)\b", re.I)
_CODE = re.compile(r"\b(?:[A-Z]{2,5}|[A-Za-z]*\d[A-Za-z0-9-]*)\b")
_IMPERATIVE = re.compile(
    r"^\W*(?:please\s+|can you\s+|could you\s+|would you\s+)?(?:send|email|write|set|start|stop|add|put|play|"
    r"turn|switch|book|reserve|order|find|search|look|track|cancel|reset|open|create|schedule|convert|translate|"
    r"define|compute|calculate|get|give|check|show|list|remind|delete|remove|update|change|make|call)\b", re.I)

_STOP = frozenset({
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "below", "both", "but", "by", "can", "could", "did", "do", "does",
    "doing", "down", "during", "each", "few", "for", "from", "further", "get", "got", "had", "has", "have",
    "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "itself", "just", "let", "lets", "like", "me", "more", "most", "my", "myself", "no", "nor", "not",
    "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "please",
    "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very",
    "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "would", "you", "your", "yours", "yourself", "hi", "hello", "hey", "thanks", "thank", "ok", "okay",
    "yes", "yeah", "sure", "tell", "know", "think", "want", "need", "really", "much", "many", "one", "two",
    "three", "current", "currently", "given", "new", "use", "using", "value", "values", "name", "names",
    "type", "types", "id", "ids", "string", "number", "data", "info", "information", "specified", "specify"
})

_CHAT = frozenset({
    "hi", "hello", "hey", "thanks", "thank", "bye", "goodbye", "cheers", "great", "cool", "nice", "lol",
    "ok", "okay", "good", "morning", "evening"
})


_TIME = frozenset({"today", "tonight", "tomorrow", "yesterday", "week", "weekend", "day", "yet", "now"})


def _stem(word: str) -> str:
    """A crude stem: lower case, common English suffixes off, at most 5 letters kept."""
    w = word.lower().strip("'")
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "ed", "es", "ly", "s"):
        if len(w) - len(suffix) >= 3 and w.endswith(suffix):
            w = w[: -len(suffix)]
            break
    return w[:5]


def _content_stems(text: str) -> list[str]:
    out = []
    for raw in _WORD.findall(_CAMEL.sub(" ", text)):
        low = raw.lower()
        if low in _STOP or len(low) < 3 or low[0].isdigit():
            continue
        out.append(_stem(low))
    return out


@lru_cache(maxsize=512)
def _tool_vocabulary(frozen_fn: str) -> tuple[frozenset[str], tuple[tuple[str, str, tuple[str, ...]], ...]]:
    """A tool's stems (name, description, parameter names and descriptions, enum values) and its
    required parameters as ``(name, type, enum values)``."""
    fn = json.loads(frozen_fn)
    words = [fn.get("name", "").replace("_", " ").replace(".", " ").replace("-", " "), fn.get("description") or ""]
    params = fn.get("parameters") or {}
    props = params.get("properties") or {}
    for pname, spec in props.items():
        words.append(pname.replace("_", " "))
        if isinstance(spec, dict):
            words.append(str(spec.get("description") or ""))
            words.extend(str(v) for v in spec.get("enum") or [] if isinstance(v, str))
    required: list[tuple[str, str, tuple[str, ...]]] = []
    for pname in params.get("required") or []:
        found = props.get(pname)
        schema: dict[str, Any] = found if isinstance(found, dict) else {}
        kind = schema.get("type")
        enum = tuple(str(v).lower() for v in schema.get("enum") or [])
        required.append((str(pname).lower(), kind if isinstance(kind, str) else "string", enum))
    return frozenset(_content_stems(" ".join(words))), tuple(required)


def _slot_filled(name: str, kind: str, enum: tuple[str, ...], text: str) -> bool:
    low = text.lower()
    if enum:
        return any(v and v in low for v in enum)
    if kind in ("integer", "number"):
        return bool(_NUMBER.search(text))
    if kind == "boolean":
        return True
    if kind in ("array", "object"):
        return bool(_content_stems(text))
    if "mail" in name or name in ("to", "recipient", "cc"):
        return bool(_EMAIL.search(text)) or bool(_PROPER.search(text))
    if any(k in name for k in ("date", "time", "when", "day")):
        return bool(_NUMBER.search(text)) or bool(
            re.search(r"\b(today|tomorrow|tonight|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
                      r"next|noon|morning|afternoon|evening|am|pm|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|"
                      r"nov|dec)\w*", low))
    return bool(_PROPER.search(text) or _QUOTED.search(text) or _NUMBER.search(text) or _EMAIL.search(text)
                or len(_content_stems(text)) >= 2)


def _is_tool_result(message: Message) -> bool:
    """A tool's result: a ``tool`` message, or a ReAct ``Observation:`` turn."""
    from .runtimes._prompt import text_of

    role = message.get("role")
    return role == "tool" or (role == "user" and text_of(message.get("content")).lstrip().startswith("Observation:"))


def _last_user_text(messages: Sequence[Message]) -> str:
    from .runtimes._prompt import text_of

    for m in reversed(messages):
        if m.get("role") == "user" and not _is_tool_result(m):
            return text_of(m.get("content"))
    return ""


def request_features(messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The request-side signals of the decision (everything but ``model``).

    Args:
        messages: The conversation, OpenAI format.
        tools: The bound tools, OpenAI format (normalised).
    """
    after_tool = 1.0 if messages and _is_tool_result(messages[-1]) else 0.0
    text = _last_user_text(messages)
    stems = set(_content_stems(text))
    best, best_share, slots = 0, 0.0, 0.0
    for tool in tools:
        fn = tool.get("function", tool)
        vocab, required = _tool_vocabulary(json.dumps(fn, sort_keys=True, ensure_ascii=False))
        hits = len(stems & vocab)
        filled = sum(_slot_filled(n, k, e, text) for n, k, e in required) / len(required) if required else 1.0
        if (hits, filled) > (best, slots):
            best, slots = hits, filled
        if stems:
            best_share = max(best_share, hits / len(stems))
    words = [w.lower() for w in _WORD.findall(text)]
    # Time words are neutral in small talk: "How are you today?" asks nothing about live data.
    chat = 1.0 if all(w.strip("'") in _CHAT or w.strip("'") in _STOP or w in _TIME for w in words) else 0.0
    return {
        "imperative": 1.0 if _IMPERATIVE.search(text) else 0.0,
        "entity": 1.0 if _NUMBER.search(text) or _EMAIL.search(text) or _CODE.search(text) else 0.0,
        "live": 1.0 if _LIVE.search(text) and not chat else 0.0,
        "after_tool": after_tool,
        "overlap": float(min(best, 4)),
        "overlap_share": best_share,
        "slots": slots if best else 0.0,
        "chat": chat,
    }


@dataclass
class DecisionCalibration:
    """A logistic model from the decision's signals to ``p_call``, and the threshold to call at.

    Attributes:
        weights: One weight per name in :data:`FEATURES` (missing names weigh 0).
        bias: The intercept.
        threshold: Call when ``p_call >= threshold``.
        margin: Decisions with ``|p_call - threshold| < margin`` are uncertain (the routers
            escalate them with reason ``uncertain_decision``).
        model_neutral: The ``model`` signal to assume where the model's own cannot be read (a
            ReAct step, whose first tokens are the same thought either way): the midpoint of
            the two classes' means in the fitting data.
        model: What the calibration was fitted for (a GGUF file name or ``"generic"``).
        fitted_on: Where it was fitted (a data set name and size), for the record.

    Example:
        >>> cal = DecisionCalibration(weights={"after_tool": -4.0}, bias=1.0)
        >>> round(cal.p_call({"after_tool": 1.0}), 3)
        0.047
    """

    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    threshold: float = 0.5
    margin: float = 0.1
    model_neutral: float = -5.0
    model: str = "generic"
    fitted_on: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise InvalidRequest(f"unknown decision feature(s) {sorted(unknown)}; known: {', '.join(FEATURES)}")
        for name, value in (("threshold", self.threshold), ("margin", self.margin)):
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InvalidRequest(f"decision {name} must be between 0 and 1, got {value!r}")

    def logit(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * float(features.get(k, 0.0)) for k, w in self.weights.items())

    def p_call(self, features: dict[str, float]) -> float:
        """The calibrated probability that this turn should call a tool."""
        z = self.logit(features)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionCalibration:
        if not isinstance(data, dict):
            raise InvalidRequest("a decision calibration is a JSON object with weights, bias and threshold")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def generic(cls) -> DecisionCalibration:
        """For models nobody calibrated: leans on the request signals, trusts the model a little."""
        return cls(weights=dict(_GENERIC_WEIGHTS), bias=_GENERIC_BIAS, model="generic",
                   fitted_on="hand-set; fit your own with slm-agents calibrate --decision")


# Hand-set, before any fit: a request matching a tool's words with its arguments present calls,
# a turn after a tool result or chit-chat answers.
_GENERIC_WEIGHTS = {"model": 0.3, "after_tool": -5.0, "overlap": 1.2, "overlap_share": 2.0, "slots": 1.5,
                    "chat": -2.0, "imperative": 1.0, "entity": 0.5, "live": 0.5}
_GENERIC_BIAS = -1.0

# Fitted with `python bench/auto_decision.py --fit` on bench/data/decision_dev.jsonl (201 cases, 27 tool
# families). The default model's own start-of-call probability separates the classes poorly (balanced
# accuracy 0.65 alone) and made the grouped cross-validation worse (0.85 with it, 0.87 without), so the
# fit keeps the request signals only; a larger model fitted with `slm-agents calibrate --decision`
# gets a weight on it.
_SHIPPED: dict[str, dict[str, Any]] = {
    "smollm2-135m-instruct": {
        "weights": {"after_tool": -3.5956, "overlap": 0.3378, "overlap_share": 0.1508, "slots": 0.9804,
                    "chat": -0.6794, "imperative": 0.6178, "entity": 1.0468, "live": 0.5307},
        "bias": -0.7594, "threshold": 0.443, "margin": 0.124, "model_neutral": -4.5216,
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf", "fitted_on": "decision_dev.jsonl (201 cases)",
    },
}


@dataclass(frozen=True)
class Decision:
    """One call-or-answer decision: the calibrated ``p_call`` against the threshold it was held to."""

    p_call: float
    threshold: float
    features: dict[str, float]

    @property
    def calls(self) -> bool:
        return self.p_call >= self.threshold

    def stamp(self, completion: Any) -> None:
        """Record the decision on a :class:`~slm_agents.types.Completion`."""
        completion.decision = "call" if self.calls else "answer"
        completion.p_call = self.p_call
        completion.decision_confidence = self.p_call if self.calls else 1.0 - self.p_call
        completion.decision_threshold = self.threshold


def decide(messages: list[Message], tools: list[dict[str, Any]], calibration: DecisionCalibration,
           threshold: float | None = None, *, model_signal: float | None = None) -> Decision:
    """Decide from the request alone (and the model's start-of-call log-odds when one has it).

    Runtimes that cannot read the model's first-token logits (a remote server) pass no
    ``model_signal``; the calibration's ``model_neutral`` stands in, so a calibration fitted on the
    request signals only (the shipped one for the default model) decides exactly as in process.

    Example:
        >>> tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        ...     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
        >>> d = decide([{"role": "user", "content": "Weather in Paris now?"}], tools, calibration_for("x"))
        >>> d.calls, d.threshold
        (True, 0.5)
    """
    features = {**request_features(messages, tools),
                "model": calibration.model_neutral if model_signal is None else model_signal}
    held = calibration.threshold if threshold is None else float(threshold)
    return Decision(calibration.p_call(features), held, features)


def shipped_calibration(model_name: str) -> DecisionCalibration | None:
    """The calibration shipped for this model (matched on its file or server name), if there is one."""
    key = model_name.lower()
    for name, data in _SHIPPED.items():
        if name in key:
            return DecisionCalibration.from_dict(data)
    return None


def calibration_for(model_name: str) -> DecisionCalibration:
    """The shipped calibration for a GGUF file name (case-insensitive), else the generic one."""
    return shipped_calibration(model_name) or DecisionCalibration.generic()


def balanced_accuracy(pairs: Iterable[tuple[bool, bool]]) -> float:
    """Mean of the recall on "should call" and on "should not call"; ``pairs`` are (truth, decided)."""
    tp = fn = tn = fp = 0
    for truth, decided in pairs:
        if truth:
            tp, fn = tp + decided, fn + (not decided)
        else:
            tn, fp = tn + (not decided), fp + decided
    parts = [x for x in ((tp / (tp + fn)) if tp + fn else None, (tn / (tn + fp)) if tn + fp else None)
             if x is not None]
    return sum(parts) / len(parts) if parts else 0.0


#: A missed call costs twice an unneeded one. In ``"auto"`` mode a turn that should have called
#: a tool and answered instead gives the user an answer made up without the tool's data, which
#: no grammar or schema check can catch; an unneeded call is a well-formed call of a bound tool,
#: whose result the model then answers from (one extra tool round-trip). Any cost from 1.5 to 3
#: gives the same threshold on the development set (``bench/auto_decision.py``).
MISS_COST = 2.0


def fit_calibration(
    rows: Sequence[tuple[dict[str, float], bool]],
    *,
    model: str = "generic",
    fitted_on: str = "",
    l2: float = 0.05,
    steps: int = 3000,
    features: Sequence[str] = FEATURES,
    miss_cost: float = MISS_COST,
) -> DecisionCalibration:
    """Fit a :class:`DecisionCalibration` by class-balanced L2 logistic regression.

    Args:
        rows: ``(features, should_call)`` per case.
        model: Recorded in the result.
        fitted_on: Recorded in the result.
        l2: Weight decay (keeps the fit from trusting one signal too much).
        steps: Gradient steps (plain gradient descent; the data are small).
        features: Which signals to weigh.
        miss_cost: What a missed call costs against an unneeded one (see :func:`fit_threshold`).

    The threshold is then fitted with :func:`fit_threshold`, and the margin set to the half-width
    around it in which the fitted decisions are wrong at least a third of the time (at least 0.05).

    Raises:
        InvalidRequest: fewer than 4 rows, or only one class.
    """
    if len(rows) < 4 or len({bool(y) for _, y in rows}) < 2:
        raise InvalidRequest("a decision calibration needs at least 4 cases, with and without an expected call")
    names = list(features)
    xs = [[float(f.get(k, 0.0)) for k in names] for f, _ in rows]
    ys = [1.0 if y else 0.0 for _, y in rows]
    n_pos = sum(ys)
    n_neg = len(ys) - n_pos
    sample_w = [0.5 / n_pos if y else 0.5 / n_neg for y in ys]
    w = [0.0] * len(names)
    b = 0.0
    lr = 0.5
    for _ in range(steps):
        gw = [l2 * wi for wi in w]
        gb = 0.0
        for x, y, sw in zip(xs, ys, sample_w, strict=True):
            z = b + sum(wi * xi for wi, xi in zip(w, x, strict=True))
            p = 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))
            g = (p - y) * sw
            gb += g
            for i, xi in enumerate(x):
                gw[i] += g * xi
        b -= lr * gb
        w = [wi - lr * gi for wi, gi in zip(w, gw, strict=True)]
    cal = DecisionCalibration(weights={k: round(v, 4) for k, v in zip(names, w, strict=True)}, bias=round(b, 4),
                              model=model, fitted_on=fitted_on)
    probs = [cal.p_call(f) for f, _ in rows]
    truth = [bool(y) for _, y in rows]
    means = [statistics.fmean(f.get("model", 0.0) for f, y in rows if bool(y) is side) for side in (True, False)]
    cal.model_neutral = round((means[0] + means[1]) / 2, 4)
    cal.threshold = fit_threshold(probs, truth, miss_cost=miss_cost)
    cal.margin = _fit_margin(probs, truth, cal.threshold)
    return cal



def fit_threshold(probs: Sequence[float], truth: Sequence[bool], *, miss_cost: float = MISS_COST) -> float:
    """The ``p_call`` threshold with the least expected cost per class: ``miss_cost * FNR + FPR``.

    With ``miss_cost=1`` this is the threshold of best balanced accuracy. Ties go to the
    threshold nearest 0.5.

    Example:
        >>> fit_threshold([0.2, 0.35, 0.6, 0.9], [False, True, False, True], miss_cost=1.0)
        0.35
    """
    if miss_cost <= 0:
        raise InvalidRequest(f"miss_cost must be positive, got {miss_cost!r}")
    n_pos = sum(1 for y in truth if y) or 1
    n_neg = sum(1 for y in truth if not y) or 1
    best_t, best_cost = 0.5, math.inf
    for t in sorted({round(p, 3) for p in probs} | {0.5}):
        missed = sum(1 for p, y in zip(probs, truth, strict=True) if y and p < t) / n_pos
        unneeded = sum(1 for p, y in zip(probs, truth, strict=True) if not y and p >= t) / n_neg
        cost = miss_cost * missed + unneeded
        if cost < best_cost - 1e-9 or (abs(cost - best_cost) <= 1e-9 and abs(t - 0.5) < abs(best_t - 0.5)):
            best_t, best_cost = t, cost
    return min(max(best_t, 0.01), 0.99)


def _fit_margin(probs: Sequence[float], truth: Sequence[bool], threshold: float) -> float:
    """The widest band around the threshold whose decisions are wrong >= 1/3 of the time."""
    by_distance = sorted(zip((abs(p - threshold) for p in probs), probs, truth, strict=True))
    margin, wrong = 0.05, 0
    for seen, (distance, p, y) in enumerate(by_distance, 1):
        wrong += (p >= threshold) != y
        if seen >= 5 and wrong / seen >= 1 / 3:
            margin = max(margin, distance)
    return round(min(margin, 0.45), 3)
