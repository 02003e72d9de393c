"""The arguments every face takes, checked once: one parameter shape across faces.

LangChain's ``ChatSLM``/``ChatSLMRouter``/``SLMRoutingMiddleware`` and LlamaIndex's
``SLM``/``RouterLLM`` take the same names with the same defaults (``slm=``, ``llm=``,
``policy=`` plus policy fields as keywords, ``shadow=``, ``task=``, ``capture=``,
``temperature``, ``model_path``/``base_url``/``model``) and check them here, so a bad argument
raises the same :class:`~slm_agents.errors.InvalidRequest` (a ``ValueError``) in every face,
with a message that says what to pass instead.

Example:
    >>> resolve_policy(None, confidence_threshold=0.7).confidence_threshold
    0.7
    >>> runtime_choice(model="qwen2.5:0.5b")
    Traceback (most recent call last):
    ...
    slm_agents.errors.InvalidRequest: model='qwen2.5:0.5b' names a model on an OpenAI-compatible server: pass base_url= too (or set OPENAI_BASE_URL); for a local GGUF file pass model_path=
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidRequest
from .policy import EscalationPolicy

if TYPE_CHECKING:
    from .runtimes.base import Runtime

__all__ = ["POLICY_FIELDS", "resolve_policy", "split_policy_fields", "check_sampling", "runtime_choice",
           "build_runtime", "bad_argument"]  # fmt: skip

#: The :class:`EscalationPolicy` fields a face also takes as keywords (``confidence_threshold=0.6``).
POLICY_FIELDS = frozenset(f.name for f in dataclasses.fields(EscalationPolicy))


def bad_argument(name: str, expected: str, value: Any) -> InvalidRequest:
    """The error for ``name=value`` when ``name=`` takes ``expected``."""
    return InvalidRequest(f"{name}= takes {expected}, got {type(value).__name__}")


def reject_unknown(owner: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """Raise for keyword arguments ``owner`` does not take (a misspelt policy field would otherwise
    be ignored silently). What a router takes is named in the message.

    Raises:
        InvalidRequest: ``given`` holds names not in ``accepted``.

    Example:
        >>> try:
        ...     reject_unknown("ChatSLMRouter", ["slm", "confidence_treshold"], ["slm", "llm"])
        ... except InvalidRequest as e:
        ...     print(str(e).split(";")[0])
        ChatSLMRouter got unknown argument(s) confidence_treshold
    """
    unknown = set(given) - set(accepted)
    if unknown:
        raise InvalidRequest(
            f"{owner} got unknown argument(s) {', '.join(sorted(unknown))}; it takes slm=, llm=, "
            "policy= (and EscalationPolicy fields as keywords), shadow=, task=, capture="
        )


def split_policy_fields(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(policy field overrides, the other keywords)`` of a face's keyword arguments."""
    overrides = {k: v for k, v in kwargs.items() if k in POLICY_FIELDS}
    rest = {k: v for k, v in kwargs.items() if k not in POLICY_FIELDS}
    return overrides, rest


def resolve_policy(policy: Any = None, **overrides: Any) -> EscalationPolicy:
    """``policy`` (default :meth:`EscalationPolicy.from_env`) with the non-None policy-field ``overrides``.

    Raises:
        InvalidRequest: ``policy`` is not an :class:`EscalationPolicy`, or an override is not a
            policy field or has a bad value.
    """
    if policy is None:
        policy = EscalationPolicy.from_env()
    if not isinstance(policy, EscalationPolicy):
        raise bad_argument("policy", "an slm_agents EscalationPolicy (or None for EscalationPolicy.from_env())",
                           policy)  # fmt: skip
    unknown = set(overrides) - POLICY_FIELDS
    if unknown:
        raise InvalidRequest(
            f"unknown policy field(s) {', '.join(sorted(unknown))}; EscalationPolicy takes: "
            f"{', '.join(sorted(POLICY_FIELDS))}"
        )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return policy
    try:
        return dataclasses.replace(policy, **overrides)
    except InvalidRequest:
        raise
    except (TypeError, ValueError) as e:
        raise InvalidRequest(f"bad policy field: {e}") from e


def check_sampling(*, temperature: Any = None, max_tokens: Any = None) -> None:
    """``temperature`` (None or >= 0) and ``max_tokens`` (None or a positive int), as every face takes them.

    Example:
        >>> check_sampling(temperature=-1)
        Traceback (most recent call last):
        ...
        slm_agents.errors.InvalidRequest: temperature= must be 0 or more (0.0 is greedy), got -1
    """
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or temperature < 0):  # fmt: skip
        raise InvalidRequest(f"temperature= must be 0 or more (0.0 is greedy), got {temperature!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0):
        raise InvalidRequest(f"max_tokens= must be a positive whole number, got {max_tokens!r}")


def runtime_choice(
    model_path: str | os.PathLike[str] | None = None, base_url: str | None = None, model: str | None = None
) -> Literal["local", "server"]:
    """Which runtime ``model_path=``/``base_url=``/``model=`` ask for: the same rule in every face.

    ``"local"`` (llama.cpp in-process; the packaged model when ``model_path`` is None) or
    ``"server"`` (an OpenAI-compatible endpoint: ``base_url`` or ``$OPENAI_BASE_URL``, with
    ``model``). A model name is never dropped silently in favour of the local default.

    Raises:
        InvalidRequest: both a file and a server, a server without a model name, or a model name
            without a server.
    """
    if model_path is not None and (base_url is not None or model is not None):
        raise InvalidRequest("pass model_path= (a local GGUF file) or base_url= and model= (a server), not both")
    if base_url is not None and not model:
        raise InvalidRequest("base_url= needs model= too: the name the server serves the model under")
    if model is not None and base_url is None and not os.environ.get("OPENAI_BASE_URL"):
        raise InvalidRequest(
            f"model={model!r} names a model on an OpenAI-compatible server: pass base_url= too (or set "
            "OPENAI_BASE_URL); for a local GGUF file pass model_path="
        )
    return "server" if model is not None else "local"


def build_runtime(
    model_path: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    model: str | None = None,
    *,
    api_key: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    **local_options: Any,
) -> Runtime:
    """The runtime :func:`runtime_choice` picks, built the same way for every face.

    A server (:class:`~slm_agents.runtimes.openai_compat.OpenAICompatRuntime`) gets ``api_key``,
    ``timeout`` (default 60 s) and ``max_retries``; a local model
    (:class:`~slm_agents.runtimes.llamacpp.LlamaCppRuntime`) gets ``timeout`` (default: none) and
    ``local_options`` (``n_ctx``, ``lora_path``, sampling defaults, llama.cpp load options).
    Options left None are the runtime's defaults.
    """
    if runtime_choice(model_path, base_url, model) == "server":
        from .runtimes.openai_compat import OpenAICompatRuntime

        return OpenAICompatRuntime(model or "", base_url=base_url, api_key=api_key, timeout=timeout or 60.0,
                                   max_retries=2 if max_retries is None else max_retries)
    from .runtimes.llamacpp import LlamaCppRuntime

    options = {k: v for k, v in local_options.items() if v is not None}
    return LlamaCppRuntime(model_path, timeout=timeout, **options)
