"""slm-agents-finetune without training: data, rendering, label masks, tensor names, errors, promotion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from slm_agents.capture import CaptureStore
from slm_agents.cli import cli
from slm_agents.errors import InvalidRequest
from slm_agents.policy import EscalationPolicy
from slm_agents_finetune.data import IGNORE, encode, load_task
from slm_agents_finetune.gguf_lora import SUPPORTED_ARCHITECTURES, _permute, gguf_tensor_name, write_adapter
from slm_agents_finetune.pipeline import prepare_output, promote
from slm_agents_finetune.support_desk import TOOLS, capture, conversations, eval_cases
from slm_agents_finetune.train import TrainConfig


@pytest.fixture(scope="module")
def runtime() -> Any:
    from slm_agents.runtimes.llamacpp import LlamaCppRuntime

    return LlamaCppRuntime(n_threads=1)


@pytest.fixture
def db() -> Database:
    store = CaptureStore(Database(memory=True), redactor=None)
    capture(store, 40, seed=3)
    store.flush()
    return store.db


# --- data ------------------------------------------------------------------------------------------
def test_the_task_splits_into_train_and_validation_with_text_answers_kept(db: Database) -> None:
    data = load_task(db, "support", min_examples=10)
    assert len(data.train) + len(data.validation) == 40 and data.validation
    counts = data.counts()
    assert counts["train_kinds"].get("text", 0) > 0  # answers after a tool result are training data too
    assert not {e.id for e in data.train} & {e.id for e in data.validation}


def test_too_few_examples_says_how_many_there_are_and_are_needed(db: Database) -> None:
    with pytest.raises(InvalidRequest, match=r"has 40 usable .* at least 100"):
        load_task(db, "support", min_examples=100)


@pytest.mark.parametrize("task", ["", "   ", "no-such-task"])
def test_an_empty_or_unknown_task_is_refused(db: Database, task: str) -> None:
    with pytest.raises(InvalidRequest):
        load_task(db, task, min_examples=1)


# --- training text = inference text ---------------------------------------------------------------
def test_the_training_prompt_is_byte_for_byte_what_the_runtime_sends(runtime: Any, monkeypatch: Any) -> None:
    step = next(s for s in conversations(10, seed=1) if s.kind == "answer")
    sent: list[str] = []
    original = runtime._tokenize
    monkeypatch.setattr(runtime, "_tokenize", lambda text: sent.append(text) or original(text))
    runtime.complete(step.messages, TOOLS, "auto", max_tokens=4)
    rendered = runtime.render_prompt(step.messages, TOOLS, "auto")
    # the whole prompt is one of the texts tokenized (the prefix cache also tokenizes its key's probe)
    assert rendered in sent and max(sent, key=len) == rendered
    prompt_ids, _ = runtime.training_tokens(step.messages, TOOLS, step.answer)
    assert prompt_ids == original(rendered)


def test_the_target_is_what_the_grammar_decodes_plus_the_end_of_turn(runtime: Any) -> None:
    step = next(iter(conversations(1, seed=2)))
    text = runtime.render_answer(step.answer)
    assert text.startswith("<tool_call>\n{\"name\": ") and text.endswith("\n</tool_call><|im_end|>")
    from slm_agents.toolcalls import normalize_tools, parse_tool_calls

    calls, invalid = parse_tool_calls(text.removesuffix("<|im_end|>"), normalize_tools(TOOLS))
    assert invalid == [] and calls[0]["function"]["name"] == step.answer["tool_calls"][0]["function"]["name"]


def test_the_label_mask_covers_exactly_the_answer_tokens(runtime: Any, db: Database) -> None:
    example = load_task(db, "support", min_examples=10).train[0]
    ids, labels = encode(runtime, example, 4096)
    prompt, target = runtime.training_tokens(example.messages, example.tools, example.answer)
    assert ids == prompt + target and len(labels) == len(ids)
    assert labels[: len(prompt)] == [IGNORE] * len(prompt)
    assert labels[len(prompt):] == target and IGNORE not in target
    assert target[-1] == runtime.llama.token_eos()
    assert encode(runtime, example, len(prompt)) is None  # too long for max_length: left out


# --- the GGUF adapter --------------------------------------------------------------------------------
def test_tensor_names_follow_llama_cpp() -> None:
    assert gguf_tensor_name(0, "self_attn.o_proj") == "blk.0.attn_output.weight"
    assert gguf_tensor_name(11, "mlp.down_proj") == "blk.11.ffn_down.weight"
    with pytest.raises(InvalidRequest, match="no llama.cpp tensor name"):
        gguf_tensor_name(0, "lm_head")


def test_q_and_k_rows_are_permuted_as_llama_cpp_stores_them() -> None:
    """The inverse of what transformers does when it loads a llama GGUF."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rows = np.arange(12 * 3, dtype=np.float32).reshape(12, 3)
    undone = LlamaTensorProcessor(config={})._reverse_permute_weights(_permute(rows, 3), 3, 3)
    assert np.array_equal(undone, rows) and not np.array_equal(_permute(rows, 3), rows)


def test_an_architecture_without_a_mapping_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no GGUF LoRA tensor mapping for the 'gpt2'"):
        write_adapter({}, {"num_attention_heads": 2}, "gpt2", 32, tmp_path / "a.gguf")
    assert "llama" in SUPPORTED_ARCHITECTURES and not (tmp_path / "a.gguf").exists()


def test_write_adapter_writes_llama_cpp_metadata_and_shapes(tmp_path: Path) -> None:
    import gguf

    r, n_in, n_out = 2, 8, 4
    state = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.ones((r, n_in), np.float32),
             "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": np.ones((n_out, r), np.float32)}
    assert write_adapter(state, {"num_attention_heads": 2}, "llama", 16, tmp_path / "a.gguf") == 1
    reader = gguf.GGUFReader(str(tmp_path / "a.gguf"))
    fields = {name: reader.fields[name] for name in ("general.type", "adapter.type", "adapter.lora.alpha")}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == 16.0
    shapes = {t.name: list(t.shape) for t in reader.tensors}
    assert shapes == {"blk.0.attn_q.weight.lora_a": [n_in, r], "blk.0.attn_q.weight.lora_b": [r, n_out]}


# --- output folder, config, promotion ---------------------------------------------------------------
def test_an_existing_output_folder_is_refused_without_force(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    with pytest.raises(InvalidRequest, match="--force"):
        prepare_output(tmp_path / "run", force=False, resume=False)
    assert (tmp_path / "run" / "keep.txt").exists()
    out = prepare_output(tmp_path / "run", force=True, resume=False)
    assert out.exists() and not any(out.iterdir())
    with pytest.raises(InvalidRequest, match="--resume"):
        prepare_output(tmp_path / "fresh", force=False, resume=True)
    with pytest.raises(InvalidRequest, match="parent folder"):
        prepare_output(tmp_path / "missing" / "run", force=False, resume=False)


@pytest.mark.parametrize("bad", [{"rank": 0}, {"lr": -1.0}, {"precision": "fp8"}, {"targets": ("lm_head",)}])
def test_bad_hyperparameters_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        TrainConfig(**bad)


def card(tmp_path: Path, base: float, tuned: float) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "adapter.gguf").write_bytes(b"GGUF")
    (run / "card.json").write_text(json.dumps({
        "task": "support", "validation": {"base": {"readiness": base}, "tuned": {"readiness": tuned}},
        "beats_base": tuned > base}))
    return run


def test_promote_maps_the_task_only_when_the_tuned_model_beats_the_base(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    EscalationPolicy(llm_tasks={"research"}).save(policy)
    done, message = promote(card(tmp_path, 0.6, 0.4), policy)
    assert not done and "does not beat" in message and EscalationPolicy.load(policy).task_adapters == {}
    (tmp_path / "run" / "card.json").unlink()
    (tmp_path / "run" / "adapter.gguf").unlink()
    (tmp_path / "run").rmdir()
    done, message = promote(card(tmp_path, 0.1, 0.7), policy)
    loaded = EscalationPolicy.load(policy)
    assert done and loaded.adapter_for("support") == str((tmp_path / "run" / "adapter.gguf").resolve())
    assert loaded.llm_tasks == {"research"}  # the rest of the policy is kept


def test_the_commands_are_registered_and_documented_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    assert "finetune" in cli.commands and "promote" in cli.commands
    result = runner.invoke(cli, ["finetune", "--db", str(tmp_path / "none.db"), "--task", "support",
                                 "-o", str(tmp_path / "out"), "--min-examples", "5"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "no capture database" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"this is not sqlite at all\x00\xff" * 100, b"SQLite format 3\x00" + b"\x07" * 500])
def test_a_corrupt_capture_file_or_a_bad_run_folder_is_one_error_line(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    runner = CliRunner()
    for args in (["finetune", "--db", str(bad), "--task", "support", "-o", str(tmp_path / "out")],
                 ["promote", str(tmp_path), "--policy", str(tmp_path / "policy.json")]):
        result = runner.invoke(cli, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "bad.db" in runner.invoke(cli, ["finetune", "--db", str(bad), "--task", "t", "-o", str(tmp_path / "o")]).output


def test_heldout_cases_differ_from_the_captured_phrasings() -> None:
    train = {s.messages[-1]["content"] for s in conversations(200, seed=0)}
    held = eval_cases(40, seed=0)
    assert held and not {c.messages[-1]["content"] for c in held} & train


# --- training maths ----------------------------------------------------------------------------------

def _tiny_llama() -> Any:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config)


def test_gradient_checkpointing_changes_memory_not_the_training(tmp_path: Path) -> None:
    from slm_agents_finetune.train import train

    encoded = [([1, 5, 9, 13, 2, 7, 3], [IGNORE, IGNORE, IGNORE, IGNORE, 2, 7, 3]),
               ([1, 6, 10, 2, 8], [IGNORE, IGNORE, IGNORE, 2, 8]),
               ([1, 4, 11, 12, 14, 2, 9, 3], [IGNORE] * 5 + [2, 9, 3])]
    losses = {}
    for checkpointing in (False, True):
        config = TrainConfig(epochs=2, max_steps=3, batch_size=2, micro_batch=1, precision="fp32", dropout=0.0,
                             gradient_checkpointing=checkpointing)
        _, record = train(_tiny_llama(), encoded, config, tmp_path / str(checkpointing), progress=False)
        losses[checkpointing] = record.losses
    assert len(losses[True]) == 3 and losses[True][0] > 0
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_no_progress_also_hides_the_gguf_dequantization_bar(monkeypatch: Any, capsys: Any, tmp_path: Path) -> None:
    """--no-progress hides every bar, transformers' GGUF de-quantization one included: that module
    holds tqdm imported before load_base runs, so TQDM_DISABLE set then came too late."""
    import transformers
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from slm_agents_finetune.train import load_base

    def fake_from_pretrained(*_: Any, **__: Any) -> str:
        for _tensor in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
            pass
        return "model"

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    assert load_base(tmp_path / "m.gguf", progress=False) == "model"
    assert "de-quantizing" not in capsys.readouterr().err
    assert load_base(tmp_path / "m.gguf", progress=True) == "model"
    assert "de-quantizing" in capsys.readouterr().err  # with progress the bar shows, so the check sees it


def test_resume_after_max_steps_mid_epoch_continues_from_that_step(tmp_path: Path) -> None:
    """--max-steps stopping inside an epoch leaves a checkpoint; --resume trains the rest of that
    epoch, as an uninterrupted run does (it treated the cut epoch as finished and trained nothing)."""
    from slm_agents_finetune.train import train

    encoded = [([1, 5, 9, 13, 2, 7, 3], [IGNORE, IGNORE, IGNORE, IGNORE, 2, 7, 3]),
               ([1, 6, 10, 2, 8], [IGNORE, IGNORE, IGNORE, 2, 8]),
               ([1, 4, 11, 12, 14, 2, 9, 3], [IGNORE] * 5 + [2, 9, 3])]
    settings = {"epochs": 1, "batch_size": 1, "micro_batch": 1, "precision": "fp32", "dropout": 0.0}
    _, whole = train(_tiny_llama(), encoded, TrainConfig(**settings), tmp_path / "whole", progress=False)
    _, cut = train(_tiny_llama(), encoded, TrainConfig(**settings, max_steps=1), tmp_path / "cut", progress=False)
    assert (cut.steps, cut.epochs_done) == (1, 0) and (tmp_path / "cut" / "epoch-1" / "state.pt").is_file()
    _, resumed = train(_tiny_llama(), encoded, TrainConfig(**settings), tmp_path / "cut", resume=True, progress=False)
    assert (whole.steps, whole.epochs_done) == (3, 1)
    assert (resumed.steps, resumed.epochs_done) == (3, 1)
    assert resumed.losses == pytest.approx(whole.losses, rel=1e-4)


@pytest.mark.parametrize("options", [{"lr": float("nan")}, {"lr": float("inf")}, {"alpha": float("inf")},
                                     {"alpha": float("nan")}, {"dropout": float("nan")}, {"max_steps": 0}])
def test_train_config_refuses_nan_infinite_and_zero_steps(options):
    from slm_agents_finetune.train import TrainConfig

    # was: --lr nan reached torch (ValueError traceback); --alpha inf and --max-steps 0 trained and wrote a card
    with pytest.raises(InvalidRequest, match="finite|max-steps"):
        TrainConfig(**options)
