"""bitsandbytes weights dequantized as bitsandbytes dequantizes them: real checkpoints quantized
on the CPU through transformers (BitsAndBytesConfig) and by bitsandbytes.functional itself,
every element compared, read element by element (values) and streamed (stats, diff)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from test_bnb import bnb  # noqa: F401  (the session's bitsandbytes checkpoints)
from test_dequant import every_value

QUANTIZED = (
    "q_proj.weight",
    "k_proj.weight",
    "v_proj.weight",
    "o_proj.weight",
    "gate_proj.weight",
    "up_proj.weight",
    "down_proj.weight",
)


def _every_value(folder, name):
    return every_value(folder, name, "F16", block_elems=100)  # pieces that cut across the 64-value blocks


def _same(values, reference, signed_zeros=True):
    expected = reference.detach().to(torch.float64).numpy()
    assert values.shape == expected.shape
    assert np.array_equal(values, expected)
    signs_compared = slice(None) if signed_zeros else expected != 0
    assert np.array_equal(np.signbit(values)[signs_compared], np.signbit(expected)[signs_compared])


def _reference_4bit(stored, name):
    """bitsandbytes' own dequantization of one weight from its saved quant state: the nested
    absmax through dequantize_blockwise, then its reference 4-bit formula (blocks over the
    flattened weight). Its CPU kernel (0.50) indexes blocks per row instead, which differs when a
    row's length is not a multiple of the block size: the formula is what its CUDA kernel and
    its quantizer follow."""
    import bitsandbytes.functional as F
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute

    state = F.QuantState.from_dict(
        {k[len(name) + 1 :]: v for k, v in stored.items() if k.startswith(name + ".")}, torch.device("cpu")
    )
    absmax = state.absmax
    if state.nested:
        absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
    code = F.get_4bit_type(state.quant_type, device="cpu")
    return _dequantize_4bit_compute(
        stored[name].reshape(-1), absmax.float(), code, state.blocksize, state.shape, state.dtype
    )


@pytest.mark.parametrize("mode", ["nf4", "fp4"])
def test_4bit_every_element_equals_bitsandbytes(bnb, mode):
    stored = load_file(f"{bnb[mode]}/model.safetensors")
    names = [n for n in stored if n.endswith(QUANTIZED)]
    assert len(names) == 14
    for name in names:
        for values in _every_value(bnb[mode], name):
            _same(values, _reference_4bit(stored, name))


@pytest.mark.parametrize("mode", ["nf4", "fp4", "int8"])
def test_every_element_equals_transformers_dequantize(bnb, mode):
    """model.dequantize() on the CPU: the weights whose rows hold whole 64-value blocks (all of
    int8's), where bitsandbytes' CPU kernel and its formula agree."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(bnb[mode], device_map="cpu")
    model.dequantize()
    for name, parameter in model.named_parameters():
        if name.endswith(QUANTIZED) and (mode == "int8" or parameter.shape[-1] % 64 == 0):
            for values in _every_value(bnb[mode], name):
                # fp4's code 8 ("-0") is +0.0 in bitsandbytes' table, which its formula (above) and
                # we follow; its CPU kernel (0.50.2) writes -0.0 for it. Every other sign agrees.
                _same(values, parameter, signed_zeros=mode != "fp4")


@pytest.mark.parametrize(
    "shape, dtype, blocksize, double",
    [((33, 17), torch.float16, 64, True), ((5, 7, 9), torch.bfloat16, 128, False), ((3, 100), torch.float32, 32, True)],
)
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_4bit_odd_shapes_and_block_sizes(tmp_path, shape, dtype, blocksize, double, quant_type):
    """bitsandbytes.functional.quantize_4bit saved as Params4bit saves it (weight, then each
    entry of quant_state.as_dict(packed=True) under weight.): an odd count, a last block cut short."""
    import bitsandbytes.functional as F

    torch.manual_seed(1)
    packed, state = F.quantize_4bit(
        torch.randn(shape).to(dtype), blocksize=blocksize, quant_type=quant_type, compress_statistics=double
    )
    stored = {"w.weight": packed, **{f"w.weight.{k}": v for k, v in state.as_dict(packed=True).items()}}
    save_file(stored, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "quantization_config": {
                    "quant_method": "bitsandbytes",
                    "load_in_4bit": True,
                    "bnb_4bit_quant_type": quant_type,
                    "bnb_4bit_use_double_quant": double,
                }
            }
        )
    )
    reference = F.dequantize_4bit(packed, state) if shape[-1] % blocksize == 0 else _reference_4bit(stored, "w.weight")
    assert tuple(reference.shape) == shape
    for values in _every_value(tmp_path, "w.weight"):
        _same(values, reference)


def test_values_print_as_torch_prints_the_dequantized_weight(bnb, cli):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(bnb["nf4"], device_map="cpu")
    model.dequantize()
    weight = model.model.layers[0].self_attn.q_proj.weight.detach()
    out = cli("values", bnb["nf4"], "model.layers.0.self_attn.q_proj.weight[:2, :6]").out
    assert out == f"model.layers.0.self_attn.q_proj.weight[:2, :6]  [2, 6]  BNB4\n{weight[:2, :6]}\n"
    stored = cli("values", bnb["nf4"], "model.layers.0.self_attn.q_proj.weight[:2, :6]", "--stored").out
    assert stored.startswith("model.layers.0.self_attn.q_proj.weight[:2, :6]  [2, 1]  U8\n")


def test_stats_and_diff_are_those_of_the_dequantized_weights(bnb, cli):
    """stats of the int8 model and diff fp16 -> int8: as torch computes them in float64 on the
    weights transformers' dequantize() gives."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(bnb["int8"], device_map="cpu")
    model.dequantize()
    loaded = dict(model.named_parameters())
    rows = {r["name"]: r for r in json.loads(cli("stats", bnb["int8"], "--json").out)["rows"]}
    assert set(rows) == set(loaded)
    original = dict(AutoModelForCausalLM.from_pretrained(bnb["fp16"]).named_parameters())
    changes = {r["name"]: r for r in json.loads(cli("diff", bnb["fp16"], bnb["int8"], "--json").out)["tensors"]}
    for name, parameter in loaded.items():
        values = parameter.detach().double().flatten()
        row = rows[name]
        assert (row["dtype"], row["numel"], row["min"], row["max"]) == (
            "BNB8" if name.endswith(QUANTIZED) else "F16",
            values.numel(),
            values.min().item(),
            values.max().item(),
        )
        assert row["std"] == pytest.approx(values.std(correction=0).item(), rel=1e-12)
        x = original[name].detach().double().flatten()
        assert changes[name]["identical"] == (not name.endswith(QUANTIZED))
        if name.endswith(QUANTIZED):
            assert changes[name]["relative"] == pytest.approx(((values - x).norm() / x.norm()).item(), rel=1e-12)
            assert changes[name]["max_abs_diff"] == (values - x).abs().max().item()


def _edited(bnb, tmp_path, edit):
    """The nf4 checkpoint with its tensors changed by edit(dict of tensors)."""
    stored = load_file(f"{bnb['nf4']}/model.safetensors")
    edit(stored)
    save_file(stored, str(tmp_path / "model.safetensors"))
    with open(f"{bnb['nf4']}/config.json") as handle:
        (tmp_path / "config.json").write_text(handle.read())
    return tmp_path


def test_missing_absmax_is_one_line_in_values(bnb, tmp_path, cli):
    folder = _edited(bnb, tmp_path, lambda stored: stored.pop("model.layers.0.mlp.up_proj.weight.absmax"))
    result = cli("values", folder, "model.layers.0.mlp.up_proj.weight")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {folder}/model.safetensors: tensor model.layers.0.mlp.up_proj.weight: expected model.layers.0.mlp.up_proj.weight.absmax beside it"
        " (bitsandbytes 4 bit nf4, block 64, double quant), found none; its values cannot be dequantized without it; check that every shard was downloaded\n"
    )


def test_state_without_nested_offset_is_one_line_in_values(bnb, tmp_path, cli):
    name = "model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4"

    def edit(stored):
        state = json.loads(bytes(stored[name].tolist()))
        del state["nested_offset"]
        stored[name] = torch.tensor(list(json.dumps(state).encode()), dtype=torch.uint8)

    folder = _edited(bnb, tmp_path, edit)
    result = cli("values", folder, "model.layers.0.mlp.up_proj.weight[0]")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {folder}/model.safetensors: tensor model.layers.0.mlp.up_proj.weight: expected a quant state with a positive whole nested_blocksize"
        " and a number as nested_offset (bitsandbytes 4 bit nf4, block 64, double quant), found nested_blocksize 256, nested_offset None;"
        " its weight cannot be dequantized; check quantization_config in config.json\n"
    )
