"""LoRA adapters on one loaded llama.cpp model: loaded once each, switched per call.

``slm-agents finetune`` writes an adapter per task as a llama.cpp GGUF LoRA file. A runtime given
``lora_path=`` (or a per-call ``lora_path``, or the policy's ``task_adapters`` through the router)
runs that call with the adapter on the one shared base model: the base weights are never loaded
twice. Switching adapters changes the weights, so the cached prompt prefix, computed under the
previous adapter, is dropped.

A few llama-cpp-python low-level calls are used (``llama_adapter_lora_init``,
``llama_set_adapters_lora``); the extra pins ``llama-cpp-python<0.4`` for them.
"""

from __future__ import annotations

import contextvars
import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest

__all__ = ["AdapterSet", "task_adapter", "current_task_adapter"]

_TASK_ADAPTER: contextvars.ContextVar[str | None] = contextvars.ContextVar("slm_agents_task_adapter", default=None)


@contextmanager
def task_adapter(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Run the SLM calls inside the block with this adapter (the routers use it per task).

    A runtime's explicit ``lora_path`` (per call or at construction) wins over it.
    """
    token = _TASK_ADAPTER.set(os.fspath(path) if path else None)
    try:
        yield
    finally:
        _TASK_ADAPTER.reset(token)


def current_task_adapter() -> str | None:
    """The adapter :func:`task_adapter` set for the running step, if any."""
    return _TASK_ADAPTER.get()


class AdapterSet:
    """The adapters loaded on one model, and which one its context runs with.

    :meth:`load` is thread-safe (a runtime built while the model decodes loads its adapter);
    :meth:`use` runs on the decode thread.
    """

    def __init__(self, llm: Any):
        self._llm = llm
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.active: tuple[str, float] | None = None

    def load(self, path: str | os.PathLike[str]) -> Any:
        """Load the adapter in ``path`` once (later calls return the same handle).

        Raises:
            InvalidRequest: the file is missing, is not a GGUF LoRA adapter, or was made for
                another base model.
        """
        key = str(Path(path).resolve())
        with self._lock:
            return self._loaded.get(key) or self._load(path, key)

    def _load(self, path: str | os.PathLike[str], key: str) -> Any:
        if not Path(key).is_file():
            raise InvalidRequest(f"lora_path {path}: no such file; pass the adapter.gguf that slm-agents finetune wrote")
        with open(key, "rb") as f:
            if f.read(4) != b"GGUF":
                raise InvalidRequest(f"lora_path {path}: not a GGUF file; pass the adapter.gguf that "
                                     "slm-agents finetune wrote (or convert a peft adapter with llama.cpp)")
        import llama_cpp

        handle = llama_cpp.llama_adapter_lora_init(self._llm._model.model, key.encode("utf-8"))
        if not handle:
            raise InvalidRequest(
                f"lora_path {path}: llama.cpp could not load it as a LoRA adapter for this model. It is "
                "corrupt, not an adapter, or was trained for another base model (its tensor names or "
                "shapes do not match); train one for this model with slm-agents finetune"
            )
        self._loaded[key] = handle
        return handle

    def use(self, path: str | os.PathLike[str] | None, scale: float = 1.0) -> bool:
        """Run the context with this adapter (None: the base model); True when that changed."""
        want = (str(Path(path).resolve()), float(scale)) if path else None
        if want == self.active:
            return False
        import llama_cpp

        ctx = self._llm._ctx.ctx
        if want is None:
            llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            handle = self.load(want[0])
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
            scales = (ctypes.c_float * 1)(want[1])
            if llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales) != 0:
                raise InvalidRequest(f"llama.cpp refused to apply the LoRA adapter {want[0]}")
        self.active = want
        self._llm.reset()  # the cached prefix was computed with other weights
        return True

    @property
    def count(self) -> int:
        return len(self._loaded)
