"""The :class:`Runtime` protocol every model backend satisfies, and shared helpers."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import InvalidRequest
from ..toolcalls import ToolChoice, normalize_tool_choice, normalize_tools
from ..types import Completion, Message, StreamChunk

if TYPE_CHECKING:
    from ..decision import Decision

__all__ = ["Runtime", "BaseRuntime", "Request", "SAMPLING_KEYS", "prepare_request"]

#: Sampling and output options every runtime understands.
SAMPLING_KEYS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "max_tokens",
        "stop",
        "seed",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "parallel_tool_calls",
        "timeout",
    }
)


@runtime_checkable
class Runtime(Protocol):
    """Where a model runs. Messages, tools and tool calls are OpenAI chat-format dicts.

    Sampling options (``temperature``, ``top_p``, ``top_k``, ``min_p``, ``max_tokens``, ``stop``,
    ``seed``, ``repeat_penalty``, ``presence_penalty``, ``frequency_penalty``,
    ``response_format``, ``parallel_tool_calls``, ``timeout``) are keyword arguments.
    """

    name: str

    @property
    def model_name(self) -> str: ...

    def complete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion: ...

    def stream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Iterator[StreamChunk]: ...

    async def acomplete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion: ...

    def astream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> AsyncIterator[StreamChunk]: ...


class Request:
    """A validated request: messages, normalised tools and tool_choice, sampling options."""

    __slots__ = ("messages", "tools", "choice", "sampling", "decision")

    def __init__(self, messages: list[Message], tools: list[dict], choice: ToolChoice, sampling: dict[str, Any],
                 decision: Decision | None = None):
        self.messages = messages
        self.tools = tools
        self.choice = choice
        self.sampling = sampling
        #: An ``"auto"`` request's call-or-answer decision, when the runtime made it before sending.
        self.decision = decision


def prepare_request(
    messages: Any, tools: Any, tool_choice: Any, sampling: dict[str, Any], *, extra_keys: frozenset[str] = frozenset()
) -> Request:
    """Validate and normalise a request; raise :class:`InvalidRequest` with the fix otherwise."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list of OpenAI-format message dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise InvalidRequest(
                f"message #{i} must be a dict with role system, user, assistant or tool; got {m!r:.80}"
            )
    unknown = set(sampling) - SAMPLING_KEYS - extra_keys
    if unknown:
        raise InvalidRequest(
            f"unknown option(s) {', '.join(sorted(unknown))}; supported: {', '.join(sorted(SAMPLING_KEYS | extra_keys))}"
        )
    norm_tools = normalize_tools(tools)
    choice = normalize_tool_choice(tool_choice, norm_tools)
    fmt = sampling.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise InvalidRequest(
                "response_format must be {'type': 'json_object'}, {'type': 'json_schema', 'json_schema': "
                "{'name': ..., 'schema': {...}}} or {'type': 'text'}"
            )
        if kind == "json_schema" and not isinstance((fmt.get("json_schema") or {}).get("schema"), dict):
            raise InvalidRequest("response_format json_schema needs {'json_schema': {'schema': {...}}}")
        if kind != "text" and choice.mode == "required":
            raise InvalidRequest("a forced tool call and a JSON response_format exclude each other; pick one")
    return Request(messages, norm_tools, choice, {k: v for k, v in sampling.items() if v is not None})


class BaseRuntime:
    """Builds ``complete`` on ``stream`` and the async twins on threads.

    Subclasses implement :meth:`stream`; a runtime with a native async client overrides
    :meth:`acomplete`/:meth:`astream` too.
    """

    name = "base"
    #: True when every tool-call delta this runtime streams is already known to be well-formed
    #: (grammar-constrained decoding); otherwise calls are only checked at the end of the answer.
    constrained_tool_calls = False

    @property
    def model_name(self) -> str:
        return ""

    def stream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Iterator[StreamChunk]:
        raise NotImplementedError

    def complete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion:
        """Run the model to the end and return the whole :class:`Completion`."""
        last: StreamChunk | None = None
        for chunk in self.stream(messages, tools, tool_choice, **sampling):
            last = chunk
        if last is None or last.completion is None:
            raise RuntimeError(f"{type(self).__name__}.stream() ended without a final chunk")
        return last.completion

    async def acomplete(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> Completion:
        """Async twin of :meth:`complete` (runs it on a worker thread)."""
        return await asyncio.to_thread(self.complete, messages, tools, tool_choice, **sampling)

    async def astream(
        self, messages: list[Message], tools: list[dict] | None = None, tool_choice: Any = None, **sampling: Any
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`stream`: the sync stream runs on a worker thread."""
        # aclosing: closing this generator early stops the worker now, not when the GC gets to it.
        async with aclosing(iterate_in_thread(lambda: self.stream(messages, tools, tool_choice, **sampling))) as it:
            async for chunk in it:
                yield chunk


_DONE = object()


async def iterate_in_thread(make_iter: Any, on_leave: Any = None) -> AsyncGenerator[Any, None]:
    """Drive a blocking iterator on a worker thread and yield its items to the event loop.

    Leaving the ``async for`` early stops the worker at its next item and closes the iterator;
    ``on_leave()`` runs first, before waiting for the worker (to wake one that waits on its own).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def pump() -> None:
        iterator = None
        try:
            iterator = make_iter()  # may raise (a stream() that validates before its generator)
            for item in iterator:
                if stop.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, (item, None))
        except BaseException as e:  # handed to the consumer, re-raised there
            loop.call_soon_threadsafe(queue.put_nowait, (_DONE, e))
            return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        loop.call_soon_threadsafe(queue.put_nowait, (_DONE, None))

    # the caller's context variables go along (a router's task adapter, tracing), as to_thread does
    worker = loop.run_in_executor(None, contextvars.copy_context().run, pump)
    try:
        while True:
            item, error = await queue.get()
            if item is _DONE:
                if error is not None:
                    raise error
                break
            yield item
    finally:
        stop.set()
        if on_leave is not None:
            on_leave()
        await asyncio.shield(worker)
