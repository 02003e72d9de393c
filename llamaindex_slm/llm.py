"""``SLM``: a LlamaIndex ``FunctionCallingLLM`` run by a local small model through the core runtimes."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from slm_agents.arguments import build_runtime, check_sampling, runtime_choice
from slm_agents.errors import InvalidRequest
from slm_agents.runtimes.base import SAMPLING_KEYS
from slm_agents.types import Completion, StreamChunk

from ._react import react_tools
from ._utils import (
    completion_to_response,
    keep_first_tool_call,
    resolve_tool_choice,
    to_openai_messages,
    tool_selections,
    tools_to_openai,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from slm_agents.runtimes.base import Runtime

__all__ = ["SLM"]


class _StreamAssembler:
    """Turns the core's stream chunks into cumulative LlamaIndex ``ChatResponse`` objects."""

    def __init__(self) -> None:
        self.text = ""
        self.calls: dict[int, dict[str, Any]] = {}

    def feed(self, chunk: StreamChunk) -> ChatResponse:
        if chunk.completion is not None:  # the last chunk: the whole, validated answer
            return completion_to_response(chunk.completion, delta=chunk.content or "")
        self.text += chunk.content
        for delta in chunk.tool_calls:
            call = self.calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["arguments"] += delta.arguments
        blocks: list[Any] = [TextBlock(text=self.text)] if self.text else []
        blocks += [
            ToolCallBlock(tool_call_id=c["id"], tool_name=c["name"], tool_kwargs=c["arguments"])
            for _, c in sorted(self.calls.items())
            if c["name"]
        ]
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks), delta=chunk.content)


class SLM(FunctionCallingLLM):
    """A LlamaIndex LLM (with function calling) run by a small local model.

    By default it runs the packaged SmolLM2-135M-Instruct GGUF in-process (llama.cpp); pass
    ``model_path=`` for any other GGUF, ``base_url=`` and ``model=`` for an OpenAI-compatible
    server (llama-server, Ollama, vLLM, LM Studio), or ``runtime=`` for any core runtime (e.g.
    ``FakeRuntime`` in tests). The runtime is built on first use, so importing and constructing
    are cheap. Tool calls are decoded under a grammar on the local runtime: they always parse,
    name a bound tool and satisfy its schema.

    Args:
        model_path: A GGUF file (default: the packaged SmolLM2-135M-Instruct).
        base_url: An OpenAI-compatible endpoint ending in ``/v1``; needs ``model``.
        model: The model name the server serves.
        api_key: For the server (default ``OPENAI_API_KEY`` or none); never serialized.
        runtime: Any core :class:`~slm_agents.runtimes.Runtime`; overrides the three above.
        temperature: Sampling temperature (default None: the runtime's, 0.0 (greedy) on local
            llama.cpp; the same default as ``ChatSLM``).
        max_tokens: Cap on generated tokens (default 512); also ``metadata.num_output``.
        n_ctx: Context to allocate for an in-process model (default 4096).
        context_window: Override ``metadata.context_window`` (default: for an in-process model
            the smaller of the GGUF's trained context and ``n_ctx``; otherwise 3900).
        timeout: Seconds one call may take (default None: no limit on the local runtime, 60 on
            a server).
        parallel_tool_calls: Allow several calls per answer when the caller allows them
            (default None: the runtime decides; the local runtime makes one, since small models
            repeat calls). ``allow_parallel_tool_calls=False`` always means one.
        additional_kwargs: Other sampling options for every call (``top_p``, ``seed``, ``stop``...).
        lora_path: A LoRA adapter (``adapter.gguf`` from ``slm-agents finetune``) to run every call
            with, on the shared base model (default None: the base; routers use the policy's
            ``task_adapters``).
        lora_scale: The adapter's strength (default 1.0).
        prefix_cache_bytes: Memory for an in-process model's evaluated prompt prefixes (system
            prompt + tools), so agents with different prompts on one model resume theirs instead
            of evaluating them again; 0 turns the cache off (default None: the loaded model's,
            128 MiB). See the tuning section of docs/runtimes.md.
        slots: Requests an in-process model decodes together (concurrent ``achat`` calls,
            agents in threads); each slot holds ``n_ctx`` tokens of KV (default None: the
            runtime's, 4). See the concurrency section of docs/runtimes.md.
        react_grammar: When a ReActAgent drives the model (its prompt lists the tools), decide
            call-or-answer first and decode the step in ReAct format under a grammar of those
            tools, so ``Action``/``Action Input`` always name a tool with valid arguments
            (default True; local runtimes only).

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> from slm_agents import FakeRuntime
        >>> llm = SLM(runtime=FakeRuntime(["Paris."]))
        >>> llm.chat([ChatMessage(role="user", content="Capital of France?")]).message.content
        'Paris.'
    """

    model_path: str | None = Field(default=None, description="GGUF file; None runs the packaged default model.")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (ending in /v1).")
    model: str | None = Field(default=None, description="Model name the server serves.")
    temperature: float | None = Field(default=None, description="Sampling temperature (None: the runtime's).")
    max_tokens: int = Field(default=512, gt=0, description="Cap on generated tokens.")
    n_ctx: int = Field(default=4096, gt=0, description="Context allocated for an in-process model.")
    context_window: int | None = Field(default=None, description="Override for metadata.context_window.")
    timeout: float | None = Field(default=None, description="Seconds one call may take.")
    parallel_tool_calls: bool | None = Field(default=None, description="Allow several tool calls per answer.")
    additional_kwargs: dict[str, Any] = Field(default_factory=dict, description="Other sampling options.")
    lora_path: str | None = Field(
        default=None, description="LoRA adapter (adapter.gguf from slm-agents finetune) run on the shared base model.")
    lora_scale: float = Field(default=1.0, description="The adapter's strength.")
    prefix_cache_bytes: int | None = Field(
        default=None, description="Memory for evaluated prompt prefixes of an in-process model (0: off).")
    slots: int | None = Field(
        default=None, description="Requests an in-process model decodes together (default: the runtime's, 4).")
    react_grammar: bool = Field(
        default=True, description="Decode ReActAgent steps under a grammar of the tools its prompt lists.")

    _runtime: Any = PrivateAttr(default=None)
    _api_key: str | None = PrivateAttr(default=None)
    _build_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _context: int | None = PrivateAttr(default=None)

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        runtime: Runtime | None = None,
        **kwargs: Any,
    ) -> None:
        if runtime is None:
            runtime_choice(model_path, base_url, model)  # the rule of every face: a model name is never dropped
        check_sampling(temperature=kwargs.get("temperature"), max_tokens=kwargs.get("max_tokens"))
        unknown = set(kwargs.get("additional_kwargs") or {}) - SAMPLING_KEYS
        if unknown:
            raise InvalidRequest(
                f"unknown sampling option(s) {', '.join(sorted(unknown))} in additional_kwargs; "
                f"supported: {', '.join(sorted(SAMPLING_KEYS))}"
            )
        super().__init__(
            model_path=os.fspath(model_path) if model_path is not None else None,
            base_url=base_url,
            model=model,
            **kwargs,
        )
        self._runtime = runtime
        self._api_key = api_key

    @classmethod
    def class_name(cls) -> str:
        return "SLM"

    # -- runtime ------------------------------------------------------------------------------
    @property
    def runtime(self) -> Runtime:
        """The core runtime (built on first use; an in-process model is loaded once per process)."""
        if self._runtime is None:
            with self._build_lock:
                if self._runtime is None:
                    self._runtime = self._build_runtime()
        return self._runtime

    def _build_runtime(self) -> Runtime:
        return build_runtime(
            self.model_path, self.base_url, self.model, api_key=self._api_key, timeout=self.timeout,
            n_ctx=self.n_ctx, temperature=self.temperature, max_tokens=self.max_tokens,
            lora_path=self.lora_path, lora_scale=self.lora_scale, prefix_cache_bytes=self.prefix_cache_bytes,
            slots=self.slots,
        )

    @property
    def metadata(self) -> LLMMetadata:
        """Context window, output budget and capabilities (chat, function calling)."""
        return LLMMetadata(
            context_window=self._context_window(),
            num_output=self.max_tokens,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model or self.runtime.model_name,
        )

    def _context_window(self) -> int:
        if self.context_window is not None:
            return self.context_window
        if self._context is None:
            runtime = self.runtime
            allocated = getattr(runtime, "n_ctx", None)
            info = getattr(runtime, "info", None)
            trained = getattr(info, "context_length", 0) or 0
            if isinstance(allocated, int) and allocated > 0:
                self._context = min(trained, allocated) if trained else allocated
            else:
                self._context = DEFAULT_CONTEXT_WINDOW
        return self._context

    # -- request translation ------------------------------------------------------------------
    def _request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> tuple[list, list | None, Any, dict]:
        tools = tools_to_openai(kwargs.get("tools")) or None
        tool_choice = kwargs.get("tool_choice") if tools else None
        sampling: dict[str, Any] = {"max_tokens": self.max_tokens}
        if self.temperature is not None:
            sampling["temperature"] = self.temperature
        if self.timeout is not None:
            sampling["timeout"] = self.timeout
        sampling.update(self.additional_kwargs)
        sampling.update({k: v for k, v in kwargs.items() if k in SAMPLING_KEYS and v is not None})
        if not tools:
            sampling.pop("parallel_tool_calls", None)
        oai = to_openai_messages(messages)
        if not tools and self.react_grammar and "react" in getattr(self.runtime, "tool_formats", ()):
            # A ReActAgent step: its prompt lists the tools; decode the step under their grammar.
            tools = react_tools(oai) or None
            if tools:
                tool_choice, sampling["tool_format"] = "auto", "react"
        return oai, tools, tool_choice, sampling

    def _complete(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Completion:
        oai, tools, choice, sampling = self._request(messages, kwargs)
        return self.runtime.complete(oai, tools, choice, **sampling)

    async def _acomplete(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Completion:
        oai, tools, choice, sampling = self._request(messages, kwargs)
        return await self.runtime.acomplete(oai, tools, choice, **sampling)

    # -- chat ---------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return completion_to_response(self._complete(messages, kwargs))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return completion_to_response(await self._acomplete(messages, kwargs))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        oai, tools, choice, sampling = self._request(messages, kwargs)
        runtime = self.runtime

        def gen() -> ChatResponseGen:
            assembler = _StreamAssembler()
            for chunk in runtime.stream(oai, tools, choice, **sampling):
                yield assembler.feed(chunk)

        return gen()

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        oai, tools, choice, sampling = self._request(messages, kwargs)
        runtime = self.runtime

        async def gen() -> ChatResponseAsyncGen:
            assembler = _StreamAssembler()
            async for chunk in runtime.astream(oai, tools, choice, **sampling):
                yield assembler.feed(chunk)

        return gen()

    # -- completion ---------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self.chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await achat_to_completion_decorator(self.achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self.stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self.astream_chat)(prompt, **kwargs)

    # -- function calling ---------------------------------------------------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Messages plus the tools as OpenAI dicts, ``tool_choice`` (``tool_required`` makes it
        ``"required"``; a tool name or OpenAI dict passes through) and ``parallel_tool_calls``."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        specs = tools_to_openai(tools)
        out: dict[str, Any] = {"messages": messages, "tools": specs or None, **kwargs}
        if specs:
            out["tool_choice"] = resolve_tool_choice(tool_choice, tool_required)
            if not allow_parallel_tool_calls:
                out["parallel_tool_calls"] = False
            elif self.parallel_tool_calls is not None:
                out["parallel_tool_calls"] = self.parallel_tool_calls
        return out

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:
            return keep_first_tool_call(response)
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The response's tool calls as ``ToolSelection`` objects, each with its call id."""
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but the model made none.")
        return selections
