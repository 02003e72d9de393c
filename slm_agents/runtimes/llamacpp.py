"""In-process llama.cpp (llama-cpp-python) runtime for GGUF models.

Prompts are rendered with the model's own chat template; tool calls and JSON output are decoded
under a GBNF grammar built from the JSON schemas, so every call parses, names a bound tool and
satisfies its schema. One loaded model is shared per process (keyed by file and load options)
behind a lock; a step that repeats a prefix (system prompt and tools) of an earlier step resumes
from its evaluated KV state, live in the context or kept in the model's prefix cache
(``prefix_cache_bytes``, see ``_kv_cache``), instead of evaluating it again.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..decision import DecisionCalibration, calibration_for, request_features
from ..errors import ContextOverflow, GenerationError, GenerationTimeout, InvalidRequest, missing_extra
from ..models import ModelInfo, info_from_metadata, resolve_model_path
from ..toolcalls import (
    CALL_OPEN,
    GrammarLimits,
    ToolCallStreamParser,
    ToolChoice,
    json_grammar,
    parse_tool_calls,
    react_grammars,
    tool_call_grammar,
)
from ..types import Completion, Message, StreamChunk, Usage
from ._batch import DEFAULT_SLOTS, BatchEngine, Job, LlamaBackend, Ticket, multi_sequence_context
from ._kv_cache import PrefixCache, common_prefix_len
from ._llama_decode import SamplerSlot, Sampling, build_sampler, carry_history
from ._lora import AdapterSet, current_task_adapter
from ._prompt import ChatTemplate
from .base import BaseRuntime, Request, iterate_in_thread, prepare_request

__all__ = ["LlamaCppRuntime", "loaded_models"]


@dataclass
class _LoadedModel:
    llm: Any
    lock: threading.Lock
    info: ModelInfo
    template: ChatTemplate
    add_bos: bool
    bos_text: str
    n_vocab: int
    call_start_ids: list[int] = field(default_factory=list)  # first tokens that begin a tool call
    adapters: AdapterSet | None = None  # LoRA adapters loaded on this model, switched per call
    cache: PrefixCache = field(default_factory=PrefixCache)  # evaluated prefixes, shared by its runtimes
    kv_bytes_per_token: int = 0
    n_ctx: int = 0  # KV cells of each slot: the longest prompt + answer of one request
    engine: BatchEngine | None = None  # decodes its requests, several at once

    @property
    def batch(self) -> BatchEngine:
        assert self.engine is not None
        return self.engine


@dataclass
class _Plan:
    grammar: str | None
    keep: bool  # keep the grammar after the first token
    with_tools: bool = False
    stops: list[str] = field(default_factory=list)
    decide: bool = False  # "auto": decide call-or-answer first, then decode under that branch's grammar
    answer_grammar: str = ""  # the grammar of the answer branch when deciding (default: no tag first)


@dataclass
class _Call:
    """One request, ready to decode: what is decided before the model is locked."""

    req: Request
    opts: dict[str, Any]
    plan: _Plan
    tool_format: str
    tokens: list[int]
    stable: int  # leading tokens that repeat across steps (system prompt + tools): the cache key
    max_tokens: int
    stops: list[str]
    deadline: float | None
    started: float
    sampling: Sampling
    adapter: str | None
    adapter_scale: float


@dataclass
class _Progress:
    """What one call has generated so far."""

    with_tools: bool  # the answer may be a tool call (parsed, with log-probabilities)
    stops: list[str]
    hold: int  # characters held back from streaming: a stop string may still begin there
    parser: ToolCallStreamParser | None
    decoder: Any
    text: str = ""
    emitted: int = 0
    out_tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    ttft: float | None = None
    finish: str = "stop"


# First token of a text answer with tool_choice="none": anything but the start of a tag.
_NO_CALL_GRAMMAR = "root ::= [^<] .*\n"

# Per-call options this runtime takes beyond the shared sampling keys.
_EXTRA_KEYS = frozenset({"decision_threshold", "tool_format", "lora_path", "lora_scale"})
_TOOL_FORMATS = ("hermes", "react")

_models: dict[tuple[Any, ...], _LoadedModel] = {}
_models_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Free models while llama_cpp is still importable (its __del__ fails at interpreter teardown)."""
    with _models_lock:
        for loaded in _models.values():
            if loaded.engine is not None:
                loaded.engine.close()
            with loaded.lock:
                loaded.llm.close()
        _models.clear()


def _call_start_ids(llm: Any) -> list[int]:
    """The tokens a tool call can begin with: those spelling a prefix of ``<tool_call>\\n``."""
    ids: set[int] = set()
    for end in range(1, len(CALL_OPEN) + 1):
        toks = llm.tokenize(CALL_OPEN[:end].encode("utf-8"), add_bos=False, special=True)
        if len(toks) == 1:
            ids.add(toks[0])
    return sorted(ids)


# Bytes per element of llama.cpp's KV cache types (ggml_type: f32, f16, q4_0, q4_1, q5_0, q5_1,
# q8_0, bf16); quantized types store blocks of 32 values.
_KV_TYPE_BYTES = {0: 4.0, 1: 2.0, 2: 18 / 32, 3: 20 / 32, 6: 22 / 32, 7: 24 / 32, 8: 34 / 32, 30: 2.0}


def _kv_bytes_per_token(llm: Any) -> int:
    """Bytes of attention KV cache one token takes in this model's context (all layers, K and V)."""
    import llama_cpp

    model = llm._model.model
    metadata = llm.metadata
    arch = metadata.get("general.architecture", "")
    n_head = max(1, llama_cpp.llama_model_n_head(model))
    head = llama_cpp.llama_model_n_embd(model) // n_head
    k = int(metadata.get(f"{arch}.attention.key_length", head))
    v = int(metadata.get(f"{arch}.attention.value_length", head))
    n_kv = llama_cpp.llama_model_n_head_kv(model) * llama_cpp.llama_model_n_layer(model)
    params = llm.context_params
    return round(n_kv * (k * _KV_TYPE_BYTES.get(params.type_k, 2.0) + v * _KV_TYPE_BYTES.get(params.type_v, 2.0)))


def loaded_models() -> list[ModelInfo]:
    """The models this process has loaded (each loaded once, shared by every runtime)."""
    with _models_lock:
        return [m.info for m in _models.values()]


def _load(path: Path, options: dict[str, Any], chat_template: str | None, slots: int) -> _LoadedModel:
    key = (str(path.resolve()), tuple(sorted(options.items())), slots)
    with _models_lock:
        found = _models.get(key)
        if found is not None:
            return found
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise missing_extra("llama-cpp-python", "llamacpp") from e
        try:
            llm = Llama(model_path=str(path), **options)
        except (ValueError, RuntimeError) as e:
            raise GenerationError(
                f"llama.cpp could not load {path}: {e}. Check that it is a GGUF file this llama-cpp-python supports."
            ) from e
        metadata = dict(llm.metadata)
        bos_id, eos_id = llm.token_bos(), llm.token_eos()
        bos_text = llm._model.token_get_text(bos_id) if bos_id >= 0 else ""
        eos_text = llm._model.token_get_text(eos_id) if eos_id >= 0 else ""
        source = chat_template or metadata.get("tokenizer.chat_template")
        loaded = _LoadedModel(
            llm=llm,
            lock=threading.Lock(),
            info=info_from_metadata(path, metadata),
            template=ChatTemplate(source, bos_text, eos_text),
            add_bos=bool(llm._model.add_bos_token()),
            bos_text=bos_text,
            n_vocab=llm.n_vocab(),
        )
        loaded.call_start_ids = _call_start_ids(llm)
        loaded.adapters = AdapterSet(llm)
        loaded.kv_bytes_per_token = _kv_bytes_per_token(llm)
        loaded.n_ctx = multi_sequence_context(llm, slots)
        backend = LlamaBackend(llm, loaded.adapters, loaded.n_ctx)
        loaded.engine = BatchEngine(backend, loaded.lock, slots, loaded.cache)
        _models[key] = loaded
        return loaded


class LlamaCppRuntime(BaseRuntime):
    """A GGUF model run in-process by llama-cpp-python.

    Args:
        model_path: Any GGUF file; the packaged SmolLM2-135M-Instruct Q4_1 when None.
        n_ctx: Context length of one request (prompt + answer); each of the ``slots`` has it.
        n_threads: CPU threads for decoding (default: every core).
        n_batch: Prompt-evaluation batch size (tokens per decode). Under 3, a prompt may have to
            be cut into one-token chunks, and greedy answers then depend on what a request
            resumed from (see ``slots``).
        n_gpu_layers: Layers to offload when llama.cpp was built with a GPU backend.
        chat_template: A Jinja template to use instead of the one in the GGUF.
        temperature: Default sampling temperature (0 is greedy; overridable per call).
        top_p: Default nucleus sampling.
        top_k: Default top-k.
        min_p: Default min-p.
        repeat_penalty: Default repetition penalty (1.0 is off).
        max_tokens: Default cap on generated tokens.
        seed: Default sampling seed.
        timeout: Default limit, in seconds, on one call's generation; None for none.
        auto_decision: How ``tool_choice="auto"`` chooses between a call and a text answer.
            ``"calibrated"`` (the default) decides first, from the model's own probability of
            starting a call and the conversation (see :mod:`slm_agents.decision`), then decodes
            that branch; ``"model"`` lets the first sampled token decide (small models then
            almost never call).
        decision_calibration: A :class:`~slm_agents.decision.DecisionCalibration` (or its dict)
            for this model; default: the one shipped for the model, else the generic one.
        decision_threshold: Call when the calibrated ``p_call`` is at or above this (default: the
            calibration's own threshold); overridable per call.
        lora_path: A LoRA adapter in llama.cpp's GGUF format (what ``slm-agents finetune``
            writes) to run every call with, on the shared base model (loaded once, switched per
            call without reloading the base); overridable per call (``lora_path=""``: the base
            weights). Without it, a router step
            runs with the adapter the policy maps its task to (``task_adapters``).
        lora_scale: The adapter's strength (1.0 as trained).
        prefix_cache_bytes: Memory for evaluated prompt prefixes (system prompt + tools) kept to
            resume from, so an agent's nodes with different prompts do not evaluate theirs again
            at every switch; least recently used first out. The cache belongs to the loaded model
            and is shared by its runtimes: None keeps its capacity (128 MiB when first loaded:
            14 prefixes of 400 tokens on the default model), 0 turns it off. See :meth:`stats`.
        slots: Requests on the loaded model decoded together, each in its own sequence with its
            own sampler and grammar (concurrent steps: a LangGraph fan-out, ``batch()``, agents
            in threads); more wait for a free slot. Each slot holds ``n_ctx`` tokens of KV (92 MB
            at 4096 on the default model, see :meth:`stats`); greedy answers are the same bits
            whatever a request is batched with. Part of the model-sharing key; 1 decodes one
            request at a time.
        repetition_guard: Stop generating when the output falls into a loop (the same block of
            tokens repeated, as small models do in long arrays); the answer is reported
            truncated (``finish_reason="length"``). None turns it off.
        grammar_limits: Caps on strings and arrays that a tool's schema leaves unbounded
            (:class:`~slm_agents.toolcalls.GrammarLimits`, or a dict of its fields; default 512
            characters and 64 items). A schema's own ``maxLength``/``maxItems`` always win.
        **llama_kwargs: Passed to ``llama_cpp.Llama`` (part of the model-sharing key).

    Example:
        >>> rt = LlamaCppRuntime()
        >>> tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        ...     "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
        >>> c = rt.complete([{"role": "user", "content": "Weather in Paris?"}], tools, "required")
        >>> c.parsed_tool_calls()[0]["name"]
        'get_weather'
    """

    name = "llamacpp"
    constrained_tool_calls = True  # decoded under the tools' grammar
    tool_formats = _TOOL_FORMATS  # "react": ReAct text steps (LlamaIndex ReActAgent) under the tools' grammar

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        chat_template: str | None = None,
        temperature: float = 0.0,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        max_tokens: int = 512,
        seed: int | None = None,
        timeout: float | None = None,
        auto_decision: str = "calibrated",
        decision_calibration: DecisionCalibration | dict[str, Any] | None = None,
        decision_threshold: float | None = None,
        repetition_guard: int | None = 32,
        grammar_limits: GrammarLimits | dict[str, int] | None = None,
        lora_path: str | os.PathLike[str] | None = None,
        lora_scale: float = 1.0,
        prefix_cache_bytes: int | None = None,
        slots: int = DEFAULT_SLOTS,
        **llama_kwargs: Any,
    ):
        self.model_path = resolve_model_path(model_path)
        self.defaults: dict[str, Any] = {
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "min_p": min_p,
            "repeat_penalty": repeat_penalty,
            "max_tokens": max_tokens,
            "seed": seed,
            "timeout": timeout,
        }
        options = {
            "n_ctx": n_ctx,
            "n_threads": n_threads or os.cpu_count() or 1,
            "n_batch": n_batch,
            "n_gpu_layers": n_gpu_layers,
            "verbose": False,
            **llama_kwargs,
        }
        if not isinstance(slots, int) or slots < 1:
            raise InvalidRequest(f"slots={slots!r}; use 1 or more (requests decoded together)")
        self._loaded = _load(self.model_path, options, chat_template, slots)
        if auto_decision not in ("calibrated", "model"):
            raise InvalidRequest(f"auto_decision={auto_decision!r}; use 'calibrated' or 'model'")
        self.auto_decision = auto_decision
        if isinstance(decision_calibration, dict):
            decision_calibration = DecisionCalibration.from_dict(decision_calibration)
        self.decision_calibration = decision_calibration or calibration_for(self.model_path.name)
        if decision_threshold is not None:
            self.decision_calibration = DecisionCalibration.from_dict(
                {**self.decision_calibration.to_dict(), "threshold": decision_threshold})
        if repetition_guard is not None and repetition_guard < 8:
            raise InvalidRequest("repetition_guard is the shortest loop span to stop, in tokens: use 8 or more")
        self.repetition_guard = repetition_guard
        if isinstance(grammar_limits, dict):
            grammar_limits = GrammarLimits(**grammar_limits)
        self.grammar_limits = grammar_limits or GrammarLimits()
        self.lora_path = os.fspath(lora_path) if lora_path else None
        self.lora_scale = float(lora_scale)
        if self.lora_path:  # neither waits for the model to go quiet
            self._adapters.load(self.lora_path)  # a bad file fails here, naming itself
        if prefix_cache_bytes is not None:
            if prefix_cache_bytes < 0:
                raise InvalidRequest("prefix_cache_bytes must be 0 (no prefix cache) or a number of bytes")
            self._loaded.cache.capacity_bytes = int(prefix_cache_bytes)

    # -- facts --------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.model_path.name

    @property
    def info(self) -> ModelInfo:
        """What the GGUF says about the model (context length, quantization, template...)."""
        return self._loaded.info

    @property
    def n_ctx(self) -> int:
        return self._loaded.n_ctx

    @property
    def llama(self) -> Any:
        """The shared ``llama_cpp.Llama`` (take :attr:`lock` before using it directly; the decode
        thread holds it while requests run, so that waits for a quiet moment, and decoding from a
        second thread slows both: llama.cpp's worker threads belong to the calling thread)."""
        return self._loaded.llm

    @property
    def lock(self) -> threading.Lock:
        return self._loaded.lock

    @property
    def _adapters(self) -> AdapterSet:
        assert self._loaded.adapters is not None
        return self._loaded.adapters

    @property
    def active_adapter(self) -> tuple[str, float] | None:
        """The LoRA adapter ``(resolved path, scale)`` the shared model's context runs with now
        (None: the base weights). A cached prompt prefix is only valid under the adapter it was
        computed with, so a prefix-cache key includes it."""
        return self._adapters.active

    def _adapter_for(self, opts: dict[str, Any]) -> tuple[str | None, float]:
        """The adapter a call runs with: per call, else the runtime's, else the routed task's."""
        path = (opts["lora_path"] or None) if "lora_path" in opts else (self.lora_path or current_task_adapter())
        return path, float(opts.get("lora_scale", self.lora_scale))

    def render_prompt(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None
    ) -> str:
        """The exact prompt text the model would see for this request."""
        req = prepare_request(messages, tools, tool_choice, {})
        return self._loaded.template.render(req.messages, req.tools, req.choice)

    def render_answer(self, message: Message) -> str:
        """The exact text this runtime generates for an assistant ``message`` (tool calls as the
        grammar decodes them), with the end-of-turn token: a training target that matches
        inference. ``slm-agents finetune`` trains on ``render_prompt(...) + render_answer(...)``."""
        return self._loaded.template.render_answer(message)

    def training_tokens(
        self, messages: list[Message], tools: list[dict] | None, answer: Message, tool_choice: Any = "auto"
    ) -> tuple[list[int], list[int]]:
        """Token ids of one training example: ``(prompt, target)``.

        The prompt is tokenized exactly as a call with these messages is at inference; the
        target (:meth:`render_answer`) follows it, so a loss on the target tokens alone teaches
        the model the answer to this very prompt.
        """
        prompt = self.render_prompt(messages, tools, tool_choice if tools else None)
        target = self._loaded.llm.tokenize(self.render_answer(answer).encode("utf-8"), add_bos=False, special=True)
        return self._tokenize(prompt), list(target)

    def score_decision(
        self, messages: list[Message], tools: list[dict] | None, *, decision_threshold: float | None = None
    ) -> dict[str, Any]:
        """The ``"auto"`` call-or-answer decision for this request, without generating an answer.

        Evaluates the prompt (reusing the cached prefix) and returns ``{"p_call", "calls",
        "threshold", "features"}``: what :meth:`complete` would decide with ``tool_choice="auto"``.
        ``slm-agents calibrate --decision`` and ``bench/auto_decision.py`` fit calibrations on
        the ``features``.
        """
        req = prepare_request(messages, tools, "auto", {})
        if not req.tools:
            raise InvalidRequest("score_decision needs tools: without tools there is nothing to decide")
        loaded = self._loaded
        tokens = self._tokenize(loaded.template.render(req.messages, req.tools, req.choice))
        if len(tokens) >= loaded.n_ctx:
            raise ContextOverflow(f"the prompt takes {len(tokens)} tokens but the context holds {loaded.n_ctx}",
                                  tokens=len(tokens), n_ctx=loaded.n_ctx)
        cal = self.decision_calibration
        threshold = cal.threshold if decision_threshold is None else float(decision_threshold)
        features = request_features(req.messages, req.tools)
        adapter, adapter_scale = self._adapter_for({})
        slot = SamplerSlot(None)
        scorer = _Decider(slot, None, None, loaded, cal, threshold, features)
        slot.current = _Scorer(scorer)
        job = Job(tokens, sampler=slot, on_token=lambda token, ctx, idx: (True, []),
                  adapter=_adapter_key(adapter, adapter_scale), stable=self._stable_prefix_len(req, req.tools, tokens))
        for _ in loaded.batch.submit(job).results():
            pass
        return {"p_call": scorer.p_call, "calls": scorer.calls, "threshold": threshold,
                "features": {**features, "model": scorer.features_seen["model"]}}

    def stats(self) -> dict[str, Any]:
        """Memory and prefix-cache figures of the loaded model this runtime shares.

        Keys: ``model_bytes`` (weights), ``n_ctx`` (per request), ``kv_bytes_per_token``,
        ``kv_bytes_per_slot`` (one request's KV cells: ``n_ctx`` tokens), ``kv_bytes`` (all slots),
        ``slots`` (requests decoded at once), ``slots_busy``, ``batch_steps``,
        ``batch_mean`` / ``batch_peak`` (requests per batched decode), ``cache_capacity_bytes``,
        ``cache_bytes`` (held now), ``cache_entries``, ``cache_hits`` / ``cache_misses`` (steps
        whose system prompt and tools were / were not evaluated already), ``cache_restores`` (hits
        served from the cache rather than the live context), ``cache_evictions``, ``hit_rate``
        (None before the first step).

        Example:
            >>> s = LlamaCppRuntime().stats()
            >>> s["kv_bytes_per_slot"] == s["n_ctx"] * s["kv_bytes_per_token"]
            True
        """
        import llama_cpp

        loaded = self._loaded  # read without the lock: the figures of a busy model are a moment's
        per_slot = loaded.n_ctx * loaded.kv_bytes_per_token
        return {
            "model_bytes": int(llama_cpp.llama_model_size(loaded.llm._model.model)),
            "n_ctx": loaded.n_ctx,
            "kv_bytes_per_token": loaded.kv_bytes_per_token,
            "kv_bytes_per_slot": per_slot,
            "kv_bytes": per_slot * len(loaded.batch.slots),
            **loaded.batch.stats(),
            **loaded.cache.stats(),
        }

    def clear_prefix_cache(self) -> None:
        """Forget every evaluated prefix, cached and live: the next step evaluates its whole prompt
        (benchmarks use it to measure a cold start). It does not wait for running requests: the
        slots they hold are forgotten as they finish."""
        self._loaded.cache.clear()
        self._loaded.llm.reset()  # a direct user of `llama` starts cold too
        self._loaded.batch.forget_soon()

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes for this model."""
        return len(self._tokenize(text))

    # -- generation ---------------------------------------------------------------------------
    def stream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Iterator[StreamChunk]:
        """Generate, yielding text and tool-call deltas; the last chunk holds the Completion."""
        req = prepare_request(messages, tools, tool_choice, sampling, extra_keys=_EXTRA_KEYS)
        return self._generate(req)

    def complete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion:
        """Generate to the end and return the :class:`Completion` (no per-token chunks are built)."""
        return self._complete(prepare_request(messages, tools, tool_choice, sampling, extra_keys=_EXTRA_KEYS))

    def _complete(self, req: Request, ticket: Ticket | None = None) -> Completion:
        last = None
        for last in self._generate(req, stream=False, ticket=ticket):  # noqa: B007 - only the final chunk matters
            pass
        assert last is not None and last.completion is not None
        return last.completion

    def _tokenize(self, text: str) -> list[int]:
        loaded = self._loaded
        add_bos = loaded.add_bos and not (loaded.bos_text and text.startswith(loaded.bos_text))
        return loaded.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _plan(self, req: Request) -> _Plan:
        """How to decode this request: grammar, when to drop it, extra stops."""
        fmt = req.sampling.get("response_format") or {}
        if req.tools and req.sampling.get("tool_format") == "react":
            return self._react_plan(req)
        if req.tools and req.choice.mode != "none":
            if fmt.get("type") in ("json_object", "json_schema"):
                raise InvalidRequest("response_format JSON cannot be combined with tools here; pass tool_choice='none'")
            # Small models asked for "one or more" calls tend to repeat the same call, so several
            # calls per answer need an explicit parallel_tool_calls=True.
            parallel = bool(req.sampling.get("parallel_tool_calls", False))
            grammar = tool_call_grammar(req.tools, req.choice, parallel=parallel, limits=self.grammar_limits)
            if req.choice.mode == "auto" and self.auto_decision == "calibrated":
                # Decide first (see _Decider), then decode the call under the forced-call grammar.
                forced = tool_call_grammar(req.tools, ToolChoice("required"), parallel=parallel,
                                           limits=self.grammar_limits)
                return _Plan(forced, keep=False, with_tools=True, decide=True)
            # "auto": the grammar decides the first token (a call or text); text then runs free.
            return _Plan(grammar, keep=req.choice.mode == "required", with_tools=True)
        # JSON output (with tool_choice="none" when tools are bound, as the error above says)
        if fmt.get("type") == "json_object":
            return _Plan(json_grammar(limits=self.grammar_limits), keep=True)
        if fmt.get("type") == "json_schema":
            return _Plan(json_grammar(fmt["json_schema"]["schema"], limits=self.grammar_limits), keep=True)
        if req.tools:  # tool_choice="none": tools are in the prompt, but the answer is text
            return _Plan(_NO_CALL_GRAMMAR, keep=False, with_tools=False, stops=["<tool_call>"])
        if any(m.get("role") == "tool" or m.get("tool_calls") for m in req.messages):
            # Tool results are in the history as tagged turns; small models imitate the tags.
            return _Plan(_NO_CALL_GRAMMAR, keep=False, stops=["<tool_call>"])
        return _Plan(None, keep=True)

    def _react_plan(self, req: Request) -> _Plan:
        """A ReAct step (``tool_format="react"``): text in LlamaIndex's ReActAgent format, whose
        action names a bound tool with arguments valid under its schema. The caller's prompt
        describes the tools, so they are not rendered again; the answer stays text."""
        call, answer = react_grammars(req.tools, req.choice, limits=self.grammar_limits)
        stops = ["Observation:"]
        if req.choice.mode == "none":
            return _Plan(answer, keep=True, stops=stops)
        if req.choice.mode == "required":
            return _Plan(call, keep=True, stops=stops)
        if self.auto_decision == "model":  # the thought decides: text up to "Action:" or "Answer:"
            return _Plan(None, keep=True, stops=stops)
        return _Plan(call, keep=True, stops=stops, decide=True, answer_grammar=answer)

    async def acomplete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion:
        """Async twin of :meth:`complete`. Cancelling it (a timeout, a cancelled graph node) frees
        the request's slot at the next token instead of decoding the answer to its end."""
        req = prepare_request(messages, tools, tool_choice, sampling, extra_keys=_EXTRA_KEYS)
        ticket = Ticket()
        try:
            return await asyncio.to_thread(self._complete, req, ticket)
        except asyncio.CancelledError:
            ticket.cancel()
            raise

    async def astream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`stream`. Leaving it early (``aclose``, a cancelled task) frees
        the request's slot at once, even while it still waits for one."""
        req = prepare_request(messages, tools, tool_choice, sampling, extra_keys=_EXTRA_KEYS)
        ticket = Ticket()
        # on leaving, cancel first: the worker thread waits on the request's queue
        make = lambda: self._generate(req, ticket=ticket)  # noqa: E731
        async with aclosing(iterate_in_thread(make, on_leave=ticket.cancel)) as chunks:
            async for chunk in chunks:
                yield chunk

    def _generate(self, req: Request, stream: bool = True, ticket: Ticket | None = None) -> Iterator[StreamChunk]:
        """One call, in named steps: prepare it (prompt, plan, limits, sampler), hand it to the
        model's batch engine, which decodes it beside the other requests and runs
        :meth:`_on_token` for each token it samples, and pass on the text it makes safe to show;
        then build the :class:`Completion`."""
        start = time.perf_counter()
        call = self._prepare(req, start)
        progress = self._start_progress(call)
        slot, decider = self._sampler_slot(call)

        def on_token(token: int, ctx: Any, idx: int) -> tuple[bool, list[StreamChunk]]:
            return self._on_token(call, progress, slot, token, ctx, idx, stream)

        job = Job(call.tokens, sampler=slot, on_token=on_token,
                  adapter=_adapter_key(call.adapter, call.adapter_scale), stable=call.stable)
        if ticket is not None:
            ticket.attach(job)
        self._loaded.batch.submit(job)
        try:
            for chunks in job.results(call.deadline, call.opts.get("timeout")):
                yield from chunks
        finally:
            job.cancel()  # the reader left early (or the request ended): free the slot
        progress.text += progress.decoder.decode(b"", final=True)
        if stream:
            yield from self._emit_ready(progress, final=True)
        completion = self._completion(call, progress, decider, start)
        yield StreamChunk(finish_reason=completion.finish_reason, completion=completion)

    def _on_token(self, call: _Call, progress: _Progress, slot: SamplerSlot, token: int, ctx: Any, idx: int,
                  stream: bool) -> tuple[bool, list[StreamChunk]]:
        """A sampled token, on the engine's thread: add it to the answer; ``(finished, chunks to
        stream)``."""
        if progress.ttft is None:
            progress.ttft = (time.perf_counter() - call.started) * 1000
        if self._take_token(call, progress, slot, token, ctx, idx):
            return True, []
        chunks = list(self._emit_ready(progress)) if stream else []
        return self._limit_reached(call, progress), chunks

    def _prepare(self, req: Request, start: float) -> _Call:
        """Everything decided before the model is locked: options, prompt tokens, plan, limits."""
        opts = {**self.defaults, **req.sampling}
        loaded = self._loaded
        tool_format = opts.get("tool_format", "hermes")
        if tool_format not in _TOOL_FORMATS:
            raise InvalidRequest(f"tool_format={tool_format!r}; use 'hermes' (tool calls) or 'react' (ReAct text)")
        shown_tools = [] if tool_format == "react" else req.tools
        prompt = loaded.template.render(req.messages, shown_tools, req.choice)
        plan = self._plan(req)
        tokens = self._tokenize(prompt)
        n_ctx = loaded.n_ctx
        if len(tokens) >= n_ctx:
            raise ContextOverflow(
                f"the prompt takes {len(tokens)} tokens but the context holds {n_ctx}; "
                "raise n_ctx= on the runtime or shorten the conversation",
                tokens=len(tokens), n_ctx=n_ctx,
            )
        stops = [opts["stop"]] if isinstance(opts.get("stop"), str) else list(opts.get("stop") or [])
        adapter, adapter_scale = self._adapter_for(opts)
        return _Call(
            req=req,
            opts=opts,
            plan=plan,
            tool_format=tool_format,
            tokens=tokens,
            stable=self._stable_prefix_len(req, shown_tools, tokens),
            max_tokens=min(int(opts["max_tokens"] or n_ctx), n_ctx - len(tokens)),
            stops=stops + plan.stops,
            deadline=start + opts["timeout"] if opts.get("timeout") else None,
            started=start,
            sampling=Sampling(opts, default_seed=loaded.llm._seed),
            adapter=adapter,
            adapter_scale=adapter_scale,
        )

    def _stable_prefix_len(self, req: Request, shown_tools: list[dict], tokens: list[int]) -> int:
        """How many leading prompt tokens repeat across an agent's steps: the system prompt and
        the tool definitions, as rendered ahead of the conversation (the prefix-cache key)."""
        head: list[Message] = []
        for m in req.messages:
            if m.get("role") not in ("system", "developer"):
                break
            head.append(m)
        probe = self._loaded.template.render([*head, {"role": "user", "content": ""}], shown_tools, req.choice)
        return common_prefix_len(self._tokenize(probe), tokens)

    @staticmethod
    def _start_progress(call: _Call) -> _Progress:
        with_tools = call.plan.with_tools
        return _Progress(
            with_tools=with_tools,
            stops=list(call.stops),
            hold=max((len(s) for s in call.stops), default=1) - 1,
            parser=ToolCallStreamParser() if with_tools else None,
            decoder=codecs.getincrementaldecoder("utf-8")(errors="replace"),
        )

    def _sampler_slot(self, call: _Call) -> tuple[SamplerSlot, _Decider | None]:
        """The sampler the first token is drawn with: the plan's grammar, or for an ``"auto"``
        step a :class:`_Decider` that decides call-or-answer first."""
        llm = self._loaded.llm
        plan = call.plan
        if not plan.decide:
            return SamplerSlot(build_sampler(llm, call.sampling, plan.grammar)), None
        cal = self.decision_calibration
        threshold = float(call.opts.get("decision_threshold", cal.threshold))
        slot = SamplerSlot(None)
        decider = _Decider(
            slot, lambda grammar: build_sampler(llm, call.sampling, grammar), plan.grammar, self._loaded,
            cal, threshold, request_features(call.req.messages, call.req.tools),
            answer_grammar=plan.answer_grammar or _NO_CALL_GRAMMAR,
            read_model=call.tool_format != "react",  # a ReAct step starts with "Thought:" either way
        )
        slot.current = decider
        return slot, decider

    def _take_token(self, call: _Call, progress: _Progress, slot: SamplerSlot, token: int, ctx: Any, idx: int) -> bool:
        """Add one sampled token to the answer; True when the answer ends here (end of turn or a
        stop string)."""
        import llama_cpp

        llm = self._loaded.llm
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            return True
        if progress.with_tools:
            progress.logprobs.append(self._token_logprob(llama_cpp, ctx.ctx, idx, token))
        progress.out_tokens.append(token)
        progress.text += progress.decoder.decode(llm._model.detokenize([token]))
        if len(progress.out_tokens) == 1 and not call.plan.keep:
            self._after_first_token(call, progress, slot)
        cut = _find_stop(progress.text, progress.stops, progress.emitted)
        if cut is not None:
            progress.text = progress.text[:cut]
            return True
        return False

    def _after_first_token(self, call: _Call, progress: _Progress, slot: SamplerSlot) -> None:
        """A grammar that admitted text or a call has done its job at the first token: a call
        stays under it; text runs free (and a later tag stops it)."""
        if progress.with_tools and progress.text.lstrip().startswith("<"):
            call.plan.keep = True  # the answer is a tool call: stay under the grammar
            return
        free = build_sampler(self._loaded.llm, call.sampling, None)
        carry_history(free, progress.out_tokens)  # repeat/frequency/presence penalties see them
        slot.current = free
        if progress.with_tools:
            progress.with_tools, progress.parser = False, None
            progress.stops.append("<tool_call>")
            progress.hold = max(progress.hold, len("<tool_call>") - 1)

    def _limit_reached(self, call: _Call, progress: _Progress) -> bool:
        """True at max_tokens or in a loop (the answer is truncated); raises past the timeout."""
        n_out = len(progress.out_tokens)
        if n_out >= call.max_tokens:
            progress.finish = "length"
            return True
        guard = self.repetition_guard
        if guard and n_out >= guard and _looping(progress.out_tokens, guard):
            progress.finish = "length"  # a loop would only run on to max_tokens
            return True
        if call.deadline is not None and time.perf_counter() > call.deadline:
            raise GenerationTimeout(
                f"generation passed its {call.opts['timeout']}s timeout after {n_out} tokens; "
                "raise timeout= or lower max_tokens="
            )
        return False

    def _emit_ready(self, progress: _Progress, final: bool = False) -> Iterator[StreamChunk]:
        """Stream the text no stop string can still claim (all of it when ``final``)."""
        end = len(progress.text) if final else max(progress.emitted, len(progress.text) - progress.hold)
        if end > progress.emitted:
            yield from self._emit(progress.text[progress.emitted : end], progress.parser)
            progress.emitted = end

    def _completion(self, call: _Call, progress: _Progress, decider: _Decider | None, start: float) -> Completion:
        """The answer as a :class:`Completion`: tool calls parsed and validated, usage, timing,
        confidence and the ``"auto"`` decision."""
        text, finish = progress.text, progress.finish
        message: dict[str, Any] = {"role": "assistant", "content": text}
        invalid: list[dict[str, Any]] = []
        confidence = None
        if progress.with_tools and "<tool_call>" in text:
            parser = progress.parser
            valid, invalid = parse_tool_calls(text, call.req.tools, ids=parser.ids if parser else None)
            message["content"] = None
            if valid:
                message["tool_calls"] = valid
                if finish != "length":
                    finish = "tool_calls"
            confidence = _confidence(progress.logprobs)
        adapter = call.adapter
        completion = Completion(
            message=message,
            finish_reason=finish,
            usage=Usage(len(call.tokens), len(progress.out_tokens)),
            latency_ms=(time.perf_counter() - start) * 1000,
            ttft_ms=progress.ttft,
            confidence=confidence,
            model=self.model_name + (f"+lora:{Path(adapter).parent.name}" if adapter else ""),
            runtime=self.name,
            invalid_tool_calls=invalid,
        )
        if decider is not None and decider.p_call is not None:
            completion.decision = "call" if decider.calls else "answer"
            completion.p_call = decider.p_call
            completion.decision_confidence = decider.p_call if decider.calls else 1.0 - decider.p_call
            completion.decision_threshold = decider.threshold
        return completion

    def _token_logprob(self, llama_cpp: Any, ctx: Any, idx: int, token: int) -> float:
        import numpy as np

        ptr = llama_cpp.llama_get_logits_ith(ctx, idx)
        logits = np.ctypeslib.as_array(ptr, shape=(self._loaded.n_vocab,))
        top = float(logits.max())
        lse = top + math.log(float(np.exp(logits - top).sum()))
        return float(logits[token]) - lse

    @staticmethod
    def _emit(piece: str, parser: ToolCallStreamParser | None) -> Iterator[StreamChunk]:
        if not piece:
            return
        if parser is None:
            yield StreamChunk(content=piece)
            return
        content, deltas = parser.feed(piece)
        if content or deltas:
            yield StreamChunk(content=content, tool_calls=deltas)


class _Decider:
    """The first sampler of an ``"auto"`` answer: decides call-or-answer, then hands over.

    It reads the logits that evaluating the prompt produced (no extra forward pass), takes the
    model's log-odds of beginning a tool call (the mass of the tokens that spell a prefix of
    ``<tool_call>``), adds the request's signals, and asks the calibration for ``p_call``. Then it
    puts the branch's sampler in the slot: the forced-call grammar for a call, a first token that
    cannot open a tag for a text answer; and samples the first token with it.
    """

    def __init__(self, slot: SamplerSlot, make: Any, call_grammar: str | None, loaded: _LoadedModel,
                 calibration: DecisionCalibration, threshold: float, features: dict[str, float],
                 answer_grammar: str = _NO_CALL_GRAMMAR, read_model: bool = True):
        self.slot, self.make, self.call_grammar, self.loaded = slot, make, call_grammar, loaded
        self.answer_grammar, self.read_model = answer_grammar, read_model
        self.calibration, self.threshold, self.features = calibration, threshold, features
        self.p_call: float | None = None
        self.calls = False
        self.features_seen: dict[str, float] = {}

    def model_log_odds(self, ctx: Any, idx: int) -> float:
        import llama_cpp
        import numpy as np

        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, idx), shape=(self.loaded.n_vocab,))
        top = float(logits.max())
        total = float(np.exp(logits - top).sum())
        ids = self.loaded.call_start_ids
        mass = float(np.exp(logits[ids] - top).sum()) / total if ids else 0.0
        mass = min(max(mass, 1e-9), 1 - 1e-9)
        return math.log(mass / (1.0 - mass))

    def decide(self, ctx: Any, idx: int) -> None:
        model = self.model_log_odds(ctx, idx) if self.read_model else self.calibration.model_neutral
        self.features_seen = {**self.features, "model": model}
        self.p_call = self.calibration.p_call(self.features_seen)
        self.calls = self.p_call >= self.threshold

    def sample(self, ctx: Any, idx: int = -1) -> int:
        self.decide(ctx, idx)
        branch = self.make(self.call_grammar if self.calls else self.answer_grammar)
        self.slot.current = branch
        return int(branch.sample(ctx, idx))

    def close(self) -> None:  # the slot's sampler may be closed by its owner
        pass


class _Scorer:
    """A sampler that only decides (for :meth:`LlamaCppRuntime.score_decision`); the token it
    returns is never evaluated."""

    def __init__(self, decider: _Decider):
        self.decider = decider

    def sample(self, ctx: Any, idx: int = -1) -> int:
        self.decider.decide(ctx, idx)
        return 0


def _adapter_key(path: str | None, scale: float) -> tuple[str | None, float]:
    """What the engine groups requests by: the adapter and its scale (any scale of no adapter is
    the base weights)."""
    return (path, float(scale)) if path else (None, 1.0)


def _looping(tokens: list[int], span: int) -> bool:
    """True when the last ``span`` tokens are one block of at most ``span // 3`` tokens repeated."""
    tail = tokens[-span:]
    last = tail[-1]
    for period in range(1, span // 3 + 1):
        if tail[-1 - period] != last:
            continue
        if all(tail[i] == tail[i + period] for i in range(span - period)):
            return True
    return False


def _find_stop(text: str, stops: list[str], emitted: int) -> int | None:
    if not stops:
        return None
    start = max(0, emitted - max(len(s) for s in stops))
    hits = [i for i in (text.find(s, start) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def _confidence(logprobs: list[float]) -> float | None:
    """Geometric-mean probability of the generated tokens."""
    if not logprobs:
        return None
    return math.exp(sum(logprobs) / len(logprobs))
