"""End to end on the real default model: capture -> finetune (a couple of steps) -> llama.cpp serves it.

Kept to a few steps so CI stays short; bench/finetune.py measures a real run (200 examples).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slm_agents.capture import CaptureStore
from slm_agents.cli import cli
from slm_agents.errors import InvalidRequest
from slm_agents.policy import EscalationPolicy
from slm_agents.routing import run_routed
from slm_agents_finetune.support_desk import TOOLS, capture, eval_cases

CARD_KEYS = {"task", "base_model", "data", "hyperparameters", "training", "adapter", "validation", "beats_base"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("finetune")
    db = where / "capture.db"
    store = CaptureStore(db, redactor=None)
    capture(store, 24, seed=5)
    store.close()
    out = where / "run"
    result = CliRunner().invoke(cli, [
        "finetune", "--db", str(db), "--task", "support", "-o", str(out), "--max-steps", "2", "--batch-size", "2",
        "--max-length", "1024", "--min-examples", "8", "--val-fraction", "0.2", "--lr", "1e-3", "--no-progress",
        "--promote", "--policy", str(where / "policy.json"),
    ])
    assert result.exit_code == 0, result.output
    return {"out": out, "output": result.output, "db": db, "policy": where / "policy.json"}


def test_the_run_writes_adapter_peft_checkpoint_and_a_complete_card(run: dict[str, Any]) -> None:
    out = run["out"]
    assert (out / "adapter.gguf").stat().st_size > 100_000
    assert (out / "peft" / "adapter_config.json").is_file()
    assert (out / "checkpoints" / "epoch-1" / "state.pt").is_file()
    card = json.loads((out / "card.json").read_text())
    assert set(card) == CARD_KEYS
    assert card["data"]["train"] > 0 and card["data"]["validation"] > 0
    assert card["training"]["steps"] == 2 and len(card["training"]["loss_curve"]) == 2
    assert len(card["base_model"]["sha256"]) == 64 and card["hyperparameters"]["rank"] == 16
    for side in ("base", "tuned"):
        assert 0.0 <= card["validation"][side]["readiness"] <= 1.0
    assert "base -> tuned" in run["output"] and "readiness" in (out / "card.md").read_text()


def test_llama_cpp_loads_the_adapter_and_it_changes_the_output(run: dict[str, Any]) -> None:
    from slm_agents.runtimes.llamacpp import LlamaCppRuntime, loaded_models

    base = LlamaCppRuntime(n_threads=1)
    before = len(loaded_models())
    tuned = LlamaCppRuntime(n_threads=1, lora_path=run["out"] / "adapter.gguf")
    assert len(loaded_models()) == before  # no second base model: the adapter is switched on the shared one
    case = eval_cases(1, seed=9)[0]

    def logits(rt: Any) -> list[float]:
        import numpy as np

        rt.complete(case.messages, TOOLS, "required", max_tokens=1)
        import llama_cpp

        with rt.lock:
            row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(rt.llama._ctx.ctx, -1),
                                        shape=(rt.llama.n_vocab(),))
            return row.copy().tolist()

    a, b, a_again = logits(base), logits(tuned), logits(base)
    assert a == a_again  # switching back to the base gives the base's numbers
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) > 1e-3
    assert tuned.complete(case.messages, TOOLS, "auto", max_tokens=64).model.endswith("+lora:run")
    # the identity a prefix-cache key includes: the adapter now active on the shared context
    assert tuned.active_adapter == (str((run["out"] / "adapter.gguf").resolve()), 1.0)
    tuned.complete(case.messages, TOOLS, "auto", max_tokens=4, lora_path="")  # per call: the base weights
    assert tuned.active_adapter is None


def test_a_corrupt_adapter_names_the_file(tmp_path: Path) -> None:
    from slm_agents.runtimes.llamacpp import LlamaCppRuntime

    bad = tmp_path / "adapter.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(InvalidRequest, match=str(bad)):
        LlamaCppRuntime(n_threads=1, lora_path=bad)
    with pytest.raises(InvalidRequest, match="not a GGUF"):
        (tmp_path / "x.gguf").write_text("hello")
        LlamaCppRuntime(n_threads=1, lora_path=tmp_path / "x.gguf")


def test_the_router_runs_a_promoted_task_with_its_adapter(run: dict[str, Any]) -> None:
    from slm_agents.runtimes.llamacpp import LlamaCppRuntime

    card = json.loads((run["out"] / "card.json").read_text())
    policy = EscalationPolicy.load(run["policy"]) if run["policy"].exists() else EscalationPolicy()
    if not card["beats_base"]:  # two steps may not win; the router must then keep the base
        assert "not promoted" in run["output"] and policy.task_adapters == {}
        policy.task_adapters["support"] = str(run["out"] / "adapter.gguf")
    rt = LlamaCppRuntime(n_threads=1)
    case = eval_cases(1, seed=3)[0]
    out = run_routed(policy, case.messages, TOOLS, "auto", task="support",
                     slm=lambda: rt.complete(case.messages, TOOLS, "auto", max_tokens=64), llm=None)
    assert out.slm is not None and "+lora:run" in out.slm.model
    other = run_routed(policy, case.messages, TOOLS, "auto", task="other",
                       slm=lambda: rt.complete(case.messages, TOOLS, "auto", max_tokens=64), llm=None)
    assert other.slm is not None and "+lora" not in other.slm.model


def test_an_existing_output_without_force_changes_nothing(run: dict[str, Any]) -> None:
    before = (run["out"] / "adapter.gguf").stat().st_mtime_ns
    result = CliRunner().invoke(cli, ["finetune", "--db", str(run["db"]), "--task", "support", "-o", str(run["out"]),
                                      "--min-examples", "8"])
    assert result.exit_code != 0 and "--force" in result.output and "Traceback" not in result.output
    assert (run["out"] / "adapter.gguf").stat().st_mtime_ns == before


def test_every_file_of_the_run_is_0600_and_every_folder_0700(run: dict[str, Any]) -> None:
    import os
    import stat

    # the adapter and checkpoints are weights trained on captured data (was: 0644 files in 0755 folders)
    modes = {str(p.relative_to(run["out"])): stat.S_IMODE(p.stat().st_mode) for p in run["out"].rglob("*")}
    assert modes and stat.S_IMODE(os.stat(run["out"]).st_mode) == 0o700
    assert {k: m for k, m in modes.items() if m != (0o700 if (run["out"] / k).is_dir() else 0o600)} == {}
