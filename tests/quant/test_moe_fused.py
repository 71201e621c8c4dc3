"""Mixture-of-experts parameters transformers 5 fuses on load: `values --style torch` prints
what from_pretrained holds in `experts.gate_up_proj` / `experts.down_proj`, read from the
stored per-expert tensors (safetensors, as save_pretrained writes them) or stacked ones
(GGUF), reading only the elements shown."""

import os

import pytest

import checkpoints
import gguf_writers
from llm_anatomy.io.sources import LocalFile
from llm_anatomy.hf.conversions import BY_MODEL_TYPE, Fuse, Rename

MOE = {
    "mixtral": ("MixtralConfig", dict(num_local_experts=4)),
    "qwen2_moe": ("Qwen2MoeConfig", dict(num_experts=4, moe_intermediate_size=24, shared_expert_intermediate_size=40)),
    "qwen3_moe": ("Qwen3MoeConfig", dict(num_experts=4, moe_intermediate_size=24)),
    "phimoe": ("PhimoeConfig", dict(num_local_experts=4)),
}


def tiny_moe(folder: str, model_type: str, dtype: str = "float32") -> str:
    """A tiny random MoE decoder saved with save_pretrained: one matrix per expert on disk."""
    import torch
    import transformers

    class_name, settings = MOE[model_type]
    config = getattr(transformers, class_name)(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts_per_tok=2,
        **settings,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return checkpoints._save(model.to(getattr(torch, dtype)), folder)


def test_conversion_table_is_transformers_own():
    """Each row equals what transformers' get_checkpoint_conversion_mapping gives that model type."""
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping

    for model_type, rows in BY_MODEL_TYPE.items():
        theirs = []
        for transform in get_checkpoint_conversion_mapping(model_type):
            operations = [(type(op).__name__, op.dim) for op in getattr(transform, "operations", [])]
            theirs.append((type(transform).__name__, transform.source_patterns, transform.target_patterns, operations))
        ours = []
        for row in rows:
            if isinstance(row, Rename):
                ours.append(("WeightRenaming", [row.source], [row.target], []))
            else:
                assert isinstance(row, Fuse)
                operations = [("MergeModulelist", 0)] + ([("Concatenate", 1)] if len(row.sources) > 1 else [])
                ours.append(("WeightConverter", list(row.sources), [row.target], operations))
        assert ours == theirs, model_type


@pytest.mark.parametrize("model_type", sorted(MOE))
def test_values_torch_style_of_fused_experts_equals_transformers(model_type, tmp_path, cli, capsys):
    import torch

    folder = tiny_moe(str(tmp_path / model_type), model_type)
    capsys.readouterr()
    model = checkpoints.reference_model(folder)
    assert any(name.endswith("experts.gate_up_proj") for name, _ in model.named_parameters())
    result = cli("values", folder, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == checkpoints.printed_parameters(model)
    experts = cli("values", folder, "--style", "torch", "--filter", "*.experts.*", "--full", "--precision", "8")
    torch.set_printoptions(precision=8, threshold=float("inf"))
    try:
        assert experts.out == checkpoints.printed_parameters(model, lambda name: ".experts." in name)
    finally:
        torch.set_printoptions(profile="default")


def test_fused_experts_in_the_dtype_from_pretrained_gives(tmp_path, cli, capsys):
    folder = tiny_moe(str(tmp_path / "m"), "mixtral", dtype="bfloat16")
    capsys.readouterr()
    result = cli("values", folder, "--style", "torch", "--filter", "*.experts.*")
    assert result.code == 0, result.err
    assert result.out == checkpoints.printed_parameters(
        checkpoints.reference_model(folder), lambda name: ".experts." in name
    )
    assert "dtype=torch.bfloat16" in result.out


def test_params_torch_style_names_the_fused_experts_dtype_and_bytes(tmp_path, cli, capsys):
    folder = tiny_moe(str(tmp_path / "m"), "qwen2_moe")
    capsys.readouterr()
    result = cli("params", folder, "--style", "torch", "--json", "--filter", "model.layers.0.mlp.experts.*")
    import json

    rows = {row["name"]: (row["shape"], row["dtype"], row["nbytes"]) for row in json.loads(result.out)["tensors"]}
    assert rows == {
        "model.layers.0.mlp.experts.gate_up_proj": ([4, 48, 32], "F32", 4 * 48 * 32 * 4),
        "model.layers.0.mlp.experts.down_proj": ([4, 32, 24], "F32", 4 * 32 * 24 * 4),
    }


def test_only_the_shown_expert_elements_are_read(tmp_path, cli, capsys, monkeypatch):
    folder = tiny_moe(str(tmp_path / "m"), "mixtral")
    capsys.readouterr()
    reads = []
    real_read = LocalFile.read

    def counting(self, offset, length, what):
        if what.startswith("data of "):
            reads.append(length)
        return real_read(self, offset, length, what)

    monkeypatch.setattr(LocalFile, "read", counting)
    result = cli("values", folder, "model.layers.0.mlp.experts.gate_up_proj", "--style", "torch")
    assert result.code == 0, result.err
    # [4, 96, 32]: each expert's rows 0-2 (its w1) and 93-95 (its w3), three columns at each end
    # of a 32-column row: at most those six rows of each expert, never a whole expert matrix.
    assert 0 < sum(reads) <= 4 * 6 * 32 * 4
    assert all(length <= 3 * 32 * 4 for length in reads)


@pytest.mark.parametrize("arch", ["qwen2moe", "qwen3moe"])
def test_gguf_stacked_experts_equal_transformers_gguf_loading(arch, tmp_path, cli):
    """ffn_gate_exps and ffn_up_exps (one quantized) into gate_up_proj, as transformers' GGUF
    loader copies them; given the original config, as its own GGUF config gets the experts'
    size wrong (docs/formats.md)."""
    import transformers

    path, config = gguf_writers.whole_model(
        str(tmp_path), arch, types={"blk.0.ffn_gate_exps": "Q8_0", "blk.1.ffn_up_exps": "Q4_0"}
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=os.path.basename(path), config=config)
    result = cli("values", path, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == checkpoints.printed_parameters(model)
