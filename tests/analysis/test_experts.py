"""Experts stacked in a GGUF ([experts, rows, columns], llama.cpp's ffn_*_exps) against a transformers
checkpoint that stores them one by one (save_pretrained, transformers 5 included): paired expert by
expert, each slice read in place and named, at F32 and Q8_0; two experts swapped are said so. The
real converter's Mixtral is in test_verify_real.py."""

import json
import os

import pytest

import gguf_writers

EXPERTS = [
    f"model.layers.{i}.mlp.experts.{e}.{p}_proj.weight"
    for i in (0, 1)
    for e in range(4)
    for p in ("down", "gate", "up")
]


def qwen2moe_pair(folder, types=None):
    """(the tiny Qwen2-MoE saved by save_pretrained, the GGUF gguf_writers.whole_model writes from the
    same weights: its experts stacked by GGUFWriter as Qwen2MoeModel.modify_tensors stacks them)."""
    import torch
    import transformers

    gguf_path, config = gguf_writers.whole_model(os.path.join(folder, "gguf"), "qwen2moe", types=types)
    torch.manual_seed(0)  # whole_model's seed and draws: the same weights
    model = transformers.Qwen2MoeForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    hf = os.path.join(folder, "hf")
    model.save_pretrained(hf)
    return hf, gguf_path


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return qwen2moe_pair(str(tmp_path_factory.mktemp("qwen2moe")))


def test_stacked_experts_pair_with_the_experts_one_by_one(pair, cli):
    hf, gguf_path = pair
    doc = json.loads(cli("verify", hf, gguf_path, "--json").out)
    assert (doc["verdict"], doc["only_in_a"], doc["only_in_b"], doc["findings"]) == ("pass", [], [], [])
    stacked = {
        t["a_name"]: (t["b_name"], t["status"]) for t in doc["tensors"] if t["transforms"] == ["experts_stacked"]
    }
    assert sorted(stacked) == sorted(EXPERTS)
    assert stacked["model.layers.1.mlp.experts.3.gate_proj.weight"] == ("blk.1.ffn_gate_exps.weight[3]", "identical")
    assert {status for _, status in stacked.values()} == {"identical"}
    row = next(line for line in cli("verify", hf, gguf_path).out.splitlines() if "experts.2.up_proj" in line)
    assert row.endswith("  experts stacked in one tensor: this expert's slice read")


def test_diff_pairs_them_too(pair, cli):
    hf, gguf_path = pair
    doc = json.loads(cli("diff", hf, gguf_path, "--json").out)
    assert (doc["only_in_a"], doc["only_in_b"], doc["compared"]) == ([], [], doc["a"]["tensors"])


def test_q8_0_experts_are_the_same_within_their_noise(tmp_path, cli):
    hf, gguf_path = qwen2moe_pair(str(tmp_path), types={"blk.0.ffn_gate_exps": "Q8_0"})
    doc = json.loads(cli("verify", hf, gguf_path, "--json").out)
    quantized = [t for t in doc["tensors"] if t["dtype_b"] == "Q8_0"]
    assert doc["verdict"] == "pass"
    assert [(t["a_name"], t["status"], t["noise"]) for t in quantized] == [
        (f"model.layers.0.mlp.experts.{e}.gate_proj.weight", "same", "Q8_0 rounding (per block of 32)")
        for e in range(4)
    ]


def test_two_experts_swapped_in_the_gguf_fail_by_name(pair, tmp_path, cli):
    """Experts 1 and 2 of layer 0's up matrices written in each other's place."""
    import shutil

    from llm_anatomy.locate import open_catalog

    hf, gguf_path = pair
    faulty = str(tmp_path / "swapped.gguf")
    shutil.copy(gguf_path, faulty)
    up = open_catalog(faulty).by_name["blk.0.ffn_up_exps.weight"]
    step = up.nbytes // 4
    with open(faulty, "r+b") as handle:
        handle.seek(up.offset + step)
        one, two = handle.read(step), handle.read(step)
        handle.seek(up.offset + step)
        handle.write(two + one)
    result = cli("verify", hf, faulty)
    assert (result.code, result.out.splitlines()[2:5]) == (
        3,
        [
            "verdict: fail",
            "  experts 1 and 2 of model.layers.0.mlp are swapped: 1 tensor of model.layers.0.mlp.experts.1 and model.layers.0.mlp.experts.2 (up_proj.weight) hold each other's values",
            "",
        ],
    )


@pytest.mark.parametrize("push, status", [(0.45, "same"), (0.7, "different")])
def test_k_quant_experts_are_checked_against_their_sub_blocks(push, status, tmp_path, cli):
    """A stacked Q4_K experts tensor (random super-blocks, as test_verify's kquant_pair makes them)
    against its experts one by one as floats within (or beyond) half a step of their codes: each
    expert's slice is bounded by its own sub-blocks' steps, not left unchecked."""
    import gguf
    import numpy as np
    from checkpoints import safetensors_file
    from test_verify import kquant_pair

    import torch

    a_path, b_path = kquant_pair(str(tmp_path), "Q4_K", push=push)
    original = np.array(gguf.GGUFReader(a_path).tensors[0].data).reshape(32, 256)
    raw = np.array(gguf.GGUFReader(b_path).tensors[0].data).reshape(4, 8, 144)
    writer = gguf.GGUFWriter(str(tmp_path / "stacked.gguf"), "qwen2moe")
    writer.add_tensor("blk.0.ffn_up_exps.weight", raw, raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    hf = tmp_path / "hf"
    hf.mkdir()
    safetensors_file(
        str(hf / "model.safetensors"),
        {
            f"model.layers.0.mlp.experts.{e}.up_proj.weight": torch.from_numpy(original[8 * e : 8 * e + 8].copy())
            for e in range(4)
        },
    )
    doc = json.loads(cli("verify", str(hf), str(tmp_path / "stacked.gguf"), "--json").out)
    assert [(t["b_name"], t["status"], t["noise"]) for t in doc["tensors"]] == [
        (f"blk.0.ffn_up_exps.weight[{e}]", status, "Q4_K rounding (per sub-block of 32, codes clamped)")
        for e in range(4)
    ]
