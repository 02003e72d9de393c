"""Write a peft LoRA adapter as a llama.cpp GGUF LoRA adapter.

llama.cpp loads an adapter (``llama_adapter_lora_init``, ``Llama(lora_path=...)``) from a GGUF
file whose metadata says ``general.type = adapter``, ``adapter.type = lora`` and
``adapter.lora.alpha``, with two tensors per adapted base tensor: ``<base>.lora_a`` shaped
``(rank, n_in)`` and ``<base>.lora_b`` shaped ``(n_out, rank)`` (numpy order). The base tensor
names are llama.cpp's (``blk.N.attn_q.weight``). The reference for all of this is llama.cpp's
``convert_lora_to_gguf.py``; this is a small re-implementation for the architectures below.

llama.cpp stores the query and key projections of ``llama`` models with their rows permuted for
its rotary embedding (and transformers undoes that when it loads a GGUF), so the ``lora_b`` of
those two projections are permuted the same way here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from slm_agents.errors import InvalidRequest

__all__ = ["SUPPORTED_ARCHITECTURES", "TARGETS", "gguf_tensor_name", "write_adapter"]

#: Hugging Face module name -> llama.cpp tensor name, per layer.
TARGETS: dict[str, str] = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}

#: transformers ``model_type`` -> (llama.cpp architecture, whether q/k rows are permuted).
SUPPORTED_ARCHITECTURES: dict[str, tuple[str, bool]] = {
    "llama": ("llama", True),  # SmolLM, Llama 2/3, TinyLlama, Mistral-style llama GGUFs
    "mistral": ("llama", True),
    "qwen2": ("qwen2", False),
    "qwen3": ("qwen3", False),
}

_PEFT_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(.+)\.lora_([AB])\.weight$")


def gguf_tensor_name(layer: int, module: str) -> str:
    """llama.cpp's name of the base weight a LoRA on ``module`` of ``layer`` adapts.

    Example:
        >>> gguf_tensor_name(3, "self_attn.q_proj")
        'blk.3.attn_q.weight'
    """
    try:
        return f"blk.{layer}.{TARGETS[module]}.weight"
    except KeyError:
        raise InvalidRequest(
            f"no llama.cpp tensor name for the LoRA target {module!r}; targets that export: "
            f"{', '.join(m.split('.')[-1] for m in TARGETS)}"
        ) from None


def _permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's rotary row order for a q/k projection's output rows."""
    return rows.reshape(n_head, 2, rows.shape[0] // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def write_adapter(state: dict[str, Any], config: dict[str, Any], model_type: str, alpha: float,
                  path: str | Path, *, dtype: Any = np.float16) -> int:
    """Write the LoRA weights in ``state`` (a peft state dict) to ``path`` as a GGUF adapter.

    Args:
        state: ``get_peft_model_state_dict(model)``: ``...layers.N.<module>.lora_A.weight`` and
            ``lora_B`` tensors (torch or numpy).
        config: The base model's config (``num_attention_heads``, ``num_key_value_heads``).
        model_type: transformers' ``model_type`` of the base.
        alpha: ``lora_alpha`` (llama.cpp scales by alpha / rank, as peft does).
        path: The file to write (written whole to a temporary name first, then moved).
        dtype: Tensor type in the file.

    Returns:
        The number of adapted base tensors.

    Raises:
        InvalidRequest: an architecture or target module without a mapping.
    """
    import gguf

    if model_type not in SUPPORTED_ARCHITECTURES:
        raise InvalidRequest(
            f"no GGUF LoRA tensor mapping for the {model_type!r} architecture; supported: "
            f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}. The peft adapter in peft/ still works with servers "
            "that load peft adapters (vLLM --lora-modules)."
        )
    arch, permuted = SUPPORTED_ARCHITECTURES[model_type]
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        m = _PEFT_KEY.search(key)
        if m is None:
            continue
        layer, module, side = int(m.group(1)), m.group(2), m.group(3)
        array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, np.float32)
        pairs.setdefault(gguf_tensor_name(layer, module), {})[side] = array
    if not pairs:
        raise InvalidRequest("the peft state holds no LoRA weights (lora_A/lora_B); nothing to export")
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for name in sorted(pairs):
        a, b = pairs[name]["A"], pairs[name]["B"]
        if permuted and ".attn_q." in name:
            b = _permute(b, n_head)
        elif permuted and ".attn_k." in name:
            b = _permute(b, n_kv)
        writer.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=dtype))
        writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype=dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return len(pairs)
