"""The integer schemes dequantized exactly: GPTQ (2/3/4/8 bit, act-order on and off, v1 and v2
zeros), AWQ GEMM, MLX affine (2..8 bit, an embedding too) and compressed-tensors
pack-quantized. Each test writes a real safetensors file packed by an independent packer
(the published packing loops, or the reference library itself where it runs on CPU) and
compares every dequantized element, bit for bit, with the reference dequantization run in
torch (or mlx, or compressed-tensors)."""

import json
import os

import numpy as np
import pytest
import torch

from checkpoints import safetensors_file
from llm_anatomy.core.errors import AnatomyError
from llm_anatomy.locate import open_catalog
from llm_anatomy.quant import view
from llm_anatomy.quant.integer import LAYOUTS, values
from llm_anatomy.quant.integer.arrays import Box, dequantize_box, stripes
from llm_anatomy.decode.elements import ElementReader

TORCH_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}


def _write(folder, quantization, tensors, key="quantization_config"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"], key: quantization}, f)
    safetensors_file(os.path.join(folder, "model.safetensors"), tensors)
    return folder


def _fetch(info, start, length):
    with open(info.file, "rb") as f:
        f.seek(info.offset + start)
        return f.read(length)


def _dequantize(folder, name, rows=None, cols=None):
    """The logical weight `name` dequantized over a box (all of it by default), as stats
    computes it (numpy, by boxes) and as values computes it (plain Python, element by element):
    (its dtype, the values as float32), the two ways equal."""
    qview = view(open_catalog(str(folder)))
    weight = next(w for w in qview.weights if w.name == name)
    layout = LAYOUTS[qview.scheme](weight, qview.settings)
    (r0, r1), (c0, c1) = rows or (0, layout.out), cols or (0, layout.inner)
    if rows is cols is None:  # the whole weight, as stats and diff stream it
        box = np.concatenate(list(stripes(layout, _fetch))).astype(np.float32).reshape(layout.out, layout.inner)
    else:
        box = dequantize_box(layout, _fetch, Box((r0, r1), (c0, c1)))
    with ElementReader() as reader:
        each = values(layout, reader.read, [r * layout.inner + c for r in range(r0, r1) for c in range(c0, c1)])
    _same(box, torch.tensor(each, dtype=torch.float32).reshape(box.shape))
    return layout.dtype, box


def _same(values, reference):
    """Every element equal once widened to float32, NaN to NaN, -0.0 to -0.0 (torch prints the sign)."""
    expected = reference.float().numpy()
    assert values.dtype == np.float32 and values.shape == expected.shape
    assert np.array_equal(values, expected, equal_nan=True)
    assert np.array_equal(np.signbit(values), np.signbit(expected))


# ---------------------------------------------------------------- GPTQ


def gptq_pack_rows(intweight, bits):
    """AutoGPTQ's QuantLinear.pack loop (qlinear_cuda_old): rows of b-bit values into int32 rows;
    3-bit values are laid 10, then one split across words, then 10, one split, 10."""
    intweight = intweight.astype(np.uint32)
    qweight = np.zeros((intweight.shape[0] // 32 * bits, intweight.shape[1]), dtype=np.uint32)
    i = row = 0
    while row < qweight.shape[0]:
        if bits in (2, 4, 8):
            for j in range(i, i + 32 // bits):
                qweight[row] |= intweight[j] << (bits * (j - i))
            i += 32 // bits
            row += 1
        else:
            for j in range(i, i + 10):
                qweight[row] |= intweight[j] << (3 * (j - i))
            i += 10
            qweight[row] |= intweight[i] << 30
            row += 1
            qweight[row] |= (intweight[i] >> 2) & 1
            i += 1
            for j in range(i, i + 10):
                qweight[row] |= intweight[j] << (3 * (j - i) + 1)
            i += 10
            qweight[row] |= intweight[i] << 31
            row += 1
            qweight[row] |= (intweight[i] >> 1) & 0x3
            i += 1
            for j in range(i, i + 10):
                qweight[row] |= intweight[j] << (3 * (j - i) + 2)
            i += 10
            row += 1
    return torch.from_numpy(qweight.view(np.int32))


def gptq_checkpoint(folder, bits, group_size, act_order, v2=False, out=64, inner=256, seed=0, dtype=torch.float16):
    """A GPTQ layer as AutoGPTQ stores it, and its reference dequantization (gptqmodel's
    dequantize_weight: scales[g_idx] * (weight - zeros[g_idx]), transposed to [out, in])."""
    rng = np.random.default_rng(seed)
    maxq = 2**bits - 1
    groups = 1 if group_size == -1 else inner // group_size
    g_idx = np.arange(inner) // (inner if group_size == -1 else group_size)
    if act_order:
        g_idx = rng.permutation(g_idx)
    codes = rng.integers(0, maxq + 1, (inner, out))
    zeros = rng.integers(0 if v2 else 1, maxq + 1, (groups, out))  # v1 stores zero - 1: a zero of 0 cannot be stored
    scales = torch.from_numpy(rng.uniform(-0.05, 0.05, (groups, out))).to(dtype)
    stored_zeros = zeros if v2 else zeros - 1
    prefix = "model.layers.0.self_attn.q_proj"
    tensors = {
        f"{prefix}.qweight": gptq_pack_rows(codes, bits),
        f"{prefix}.qzeros": gptq_pack_rows(stored_zeros.T, bits).T.contiguous(),
        f"{prefix}.scales": scales,
        f"{prefix}.g_idx": torch.from_numpy(g_idx.astype(np.int32)),
    }
    config = {"quant_method": "gptq", "bits": bits, "group_size": group_size, "desc_act": act_order, "sym": True}
    if v2:
        config["checkpoint_format"] = "gptq_v2"
    _write(folder, config, tensors)
    g = torch.from_numpy(g_idx).long()
    reference = scales[g] * (torch.from_numpy(codes).to(torch.int16) - torch.from_numpy(zeros).to(torch.int16)[g])
    return f"{prefix}.weight", reference.T


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("group_size, act_order", [(64, False), (64, True), (-1, False), (32, True)])
def test_gptq_every_element(tmp_path, bits, group_size, act_order):
    name, reference = gptq_checkpoint(tmp_path, bits, group_size, act_order, seed=bits)
    dtype, values = _dequantize(tmp_path, name)
    assert dtype == "F16"
    _same(values, reference)


@pytest.mark.parametrize("bits", [3, 4])
def test_gptq_a_box_reads_what_it_needs(tmp_path, bits):
    """Rows and columns from the middle: words straddling 3-bit boundaries, act-order groups."""
    name, reference = gptq_checkpoint(tmp_path, bits, 32, act_order=True, seed=7)
    _, values = _dequantize(tmp_path, name, rows=(5, 41), cols=(11, 203))
    _same(values, reference[5:41, 11:203])


def test_gptq_v2_zeros_and_bfloat16_scales(tmp_path):
    name, reference = gptq_checkpoint(tmp_path, 4, 64, act_order=False, v2=True, dtype=torch.bfloat16)
    dtype, values = _dequantize(tmp_path, name)
    assert dtype == "BF16"
    _same(values, reference)


def test_gptq_group_index_out_of_range_is_one_error(tmp_path):
    name, _ = gptq_checkpoint(tmp_path, 4, 64, act_order=True)
    from safetensors.torch import load_file, save_file

    path = os.path.join(tmp_path, "model.safetensors")
    tensors = load_file(path)
    tensors["model.layers.0.self_attn.q_proj.g_idx"][7] = 9
    save_file(tensors, path)
    with pytest.raises(AnatomyError) as error:
        _dequantize(tmp_path, name)
    assert (
        error.value.line()
        == f"{path}: tensor model.layers.0.self_attn.q_proj.g_idx: expected group indices in 0..3, found 9; the checkpoint is corrupt; download it again"
    )


# ---------------------------------------------------------------- AWQ


def awq_pack(intweight):
    """AutoAWQ's WQLinear_GEMM packing: column 8*c + order[n] of each row goes to nibble n of word c."""
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    intweight = intweight.astype(np.uint32)
    packed = np.zeros((intweight.shape[0], intweight.shape[1] // 8), dtype=np.uint32)
    for col in range(packed.shape[1]):
        for n in range(8):
            packed[:, col] |= intweight[:, col * 8 + order[n]] << (n * 4)
    return torch.from_numpy(packed.view(np.int32))


def awq_checkpoint(folder, group_size, out=96, inner=256, seed=0):
    """An AWQ GEMM layer and AutoAWQ's dequantize_gemm: (iweight - izeros) * scales, per group of inputs."""
    rng = np.random.default_rng(seed)
    groups = inner // group_size
    codes, zeros = rng.integers(0, 16, (inner, out)), rng.integers(0, 16, (groups, out))
    scales = torch.from_numpy(rng.uniform(0, 0.05, (groups, out))).half()
    prefix = "model.layers.0.mlp.down_proj"
    tensors = {f"{prefix}.qweight": awq_pack(codes), f"{prefix}.qzeros": awq_pack(zeros), f"{prefix}.scales": scales}
    _write(
        folder,
        {"quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True, "version": "gemm"},
        tensors,
    )
    iweight, izeros = torch.from_numpy(codes).to(torch.int8), torch.from_numpy(zeros).to(torch.int8)
    reference = (iweight - izeros.repeat_interleave(group_size, dim=0)) * scales.repeat_interleave(group_size, dim=0)
    return f"{prefix}.weight", reference.T


@pytest.mark.parametrize("group_size", [32, 128])
def test_awq_every_element(tmp_path, group_size):
    name, reference = awq_checkpoint(tmp_path, group_size)
    dtype, values = _dequantize(tmp_path, name)
    assert dtype == "F16"
    _same(values, reference)
    _, box = _dequantize(tmp_path, name, rows=(3, 70), cols=(30, 100))  # rows that start and end mid-word
    _same(box, reference[3:70, 30:100])


def test_awq_gemv_is_refused_in_one_line(tmp_path):
    name, _ = awq_checkpoint(tmp_path, 32)
    config_path = os.path.join(tmp_path, "config.json")
    config = json.load(open(config_path))
    config["quantization_config"]["version"] = "gemv"
    json.dump(config, open(config_path, "w"))
    with pytest.raises(AnatomyError) as error:
        _dequantize(tmp_path, name)
    assert error.value.line().endswith(
        ": expected AWQ 4 bit, GEMM layout, found 4 bit, GEMV; llm-anatomy reads AWQ's GEMM layout only"
    )


# ---------------------------------------------------------------- MLX


def bit_stream(values, bits):
    """Rows of b-bit values as little-endian uint32 words, value k at bits [k*b, k*b + b), one bit at a time."""
    rows, count = values.shape
    words = np.zeros((rows, -(-count * bits // 32)), dtype=np.uint32)
    for k in range(count):
        for bit in range(bits):
            position = k * bits + bit
            words[:, position // 32] |= ((values[:, k].astype(np.uint32) >> bit) & 1) << (position % 32)
    return words


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_mlx_formula_every_element(tmp_path, bits, dtype):
    """w = scales * q + biases, each operation in the scales' dtype (mlx's CPU backend does so)."""
    rng = np.random.default_rng(bits)
    out, inner, group = 40, 256, 64
    codes = rng.integers(0, 2**bits, (out, inner))
    scales = torch.from_numpy(rng.uniform(-0.1, 0.1, (out, inner // group))).to(TORCH_DTYPES[dtype])
    biases = torch.from_numpy(rng.uniform(-1, 1, (out, inner // group))).to(TORCH_DTYPES[dtype])
    tensors = {
        "model.embed_tokens.weight": torch.from_numpy(bit_stream(codes, bits)),
        "model.embed_tokens.scales": scales,
        "model.embed_tokens.biases": biases,
    }
    _write(tmp_path, {"group_size": group, "bits": bits}, tensors, key="quantization")
    reference = scales.repeat_interleave(group, dim=1) * torch.from_numpy(codes) + biases.repeat_interleave(
        group, dim=1
    )
    got, values = _dequantize(tmp_path, "model.embed_tokens.weight")
    assert got == dtype
    _same(values, reference)
    _, box = _dequantize(tmp_path, "model.embed_tokens.weight", rows=(1, 39), cols=(13, 250))
    _same(box, reference[1:39, 13:250])


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
def test_mlx_against_mlx_itself(tmp_path, bits, group):
    mx = pytest.importorskip("mlx.core")
    rng = np.random.default_rng(bits * group)
    for dtype, mx_dtype in (("F16", mx.float16), ("BF16", mx.bfloat16), ("F32", mx.float32)):
        w = mx.array(rng.standard_normal((24, 256)).astype(np.float32)).astype(mx_dtype)
        packed, scales, biases = mx.quantize(w, group_size=group, bits=bits)
        reference = torch.from_numpy(
            np.array(mx.dequantize(packed, scales, biases, group_size=group, bits=bits).astype(mx.float32))
        )
        as_torch = {
            a: torch.from_numpy(np.array(v.astype(mx.float32))).to(TORCH_DTYPES[dtype])
            for a, v in (("scales", scales), ("biases", biases))
        }
        tensors = {
            "lm_head.weight": torch.from_numpy(np.array(packed)),
            **{f"lm_head.{a}": v for a, v in as_torch.items()},
        }
        folder = _write(tmp_path / dtype, {"group_size": group, "bits": bits}, tensors, key="quantization")
        got, values = _dequantize(folder, "lm_head.weight")
        assert got == dtype
        _same(values, reference)


# ---------------------------------------------------------------- compressed-tensors pack-quantized


def pack_quantized_checkpoint(folder, bits, strategy, group_size, symmetric, out=48, inner=256, seed=0):
    """A layer compressed by compressed-tensors itself, and its own decompression."""
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    args = QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric, strategy=strategy, group_size=group_size)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    torch.manual_seed(seed)
    groups = inner // group_size if strategy == "group" else 1
    state = {
        "weight": torch.randn(out, inner, dtype=torch.bfloat16),
        "weight_scale": (torch.rand(out, groups) * 0.1 + 0.01).to(torch.bfloat16),
    }
    if not symmetric:
        state["weight_zero_point"] = torch.randint(-(2 ** (bits - 1)), 2 ** (bits - 1), (out, groups), dtype=torch.int8)
    stored = PackedQuantizationCompressor.compress(state, scheme)
    reference = PackedQuantizationCompressor.decompress(stored, scheme)["weight"]
    prefix = "model.layers.0.mlp.up_proj"
    config = {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": args.model_dump(mode="json")}},
    }
    _write(folder, config, {f"{prefix}.{k}": v for k, v in stored.items()})
    return f"{prefix}.weight", reference


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("strategy, group_size", [("group", 32), ("group", 128), ("channel", None)])
@pytest.mark.parametrize("symmetric", [True, False])
def test_pack_quantized_against_compressed_tensors(tmp_path, bits, strategy, group_size, symmetric):
    name, reference = pack_quantized_checkpoint(tmp_path, bits, strategy, group_size, symmetric, seed=bits)
    dtype, values = _dequantize(tmp_path, name)
    assert dtype == "BF16"
    _same(values, reference)
    _, box = _dequantize(tmp_path, name, rows=(9, 33), cols=(5, 77))
    _same(box, reference[9:33, 5:77])


def test_pack_quantized_counts_the_unpacked_shape(tmp_path):
    name, _ = pack_quantized_checkpoint(tmp_path, 4, "group", 32, False)
    qview = view(open_catalog(str(tmp_path)))
    assert (qview.scheme, qview.description, qview.problems) == (
        "pack",
        "compressed-tensors pack-quantized int4, group 32, asymmetric",
        (),
    )
    (weight,) = qview.weights
    assert (weight.name, weight.shape, [p.name.rsplit(".", 1)[1] for p in weight.parts]) == (
        name,
        (48, 256),
        ["weight_packed", "weight_scale", "weight_zero_point", "weight_shape"],
    )


def test_pack_quantized_weight_shape_that_disagrees_is_one_error(tmp_path):
    name, _ = pack_quantized_checkpoint(tmp_path, 4, "channel", None, True)
    from safetensors.torch import load_file, save_file

    path = os.path.join(tmp_path, "model.safetensors")
    tensors = load_file(path)
    tensors["model.layers.0.mlp.up_proj.weight_shape"] = torch.tensor([48, 250])
    save_file(tensors, path)
    with pytest.raises(AnatomyError) as error:
        _dequantize(tmp_path, name)
    assert (
        error.value.line()
        == f"{path}: tensor model.layers.0.mlp.up_proj.weight_shape: expected [48, 256] (from the shapes of model.layers.0.mlp.up_proj.weight_packed and its scales), found [48, 250]; the checkpoint is corrupt; download it again"
    )


# ---------------------------------------------------------------- checkpoints that disagree with their config


def _edit_config(folder, **changes):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    config[next(k for k in ("quantization_config", "quantization") if k in config)].update(changes)
    with open(path, "w") as f:
        json.dump(config, f)


def test_gptq_group_size_that_disagrees_is_a_finding_and_one_error(tmp_path):
    """act-order's g_idx would still say each input's group, but the loader sizes scales by group_size."""
    name, _ = gptq_checkpoint(tmp_path, 4, 64, act_order=True)
    _edit_config(tmp_path, group_size=32)
    qview = view(open_catalog(str(tmp_path)))
    assert [p[:3] for p in qview.problems] == [
        (
            "model.layers.0.self_attn.q_proj.qzeros",
            "shape [8, 8] (GPTQ 4 bit, group 32, symmetric, act-order on)",
            "[4, 8]",
        ),
        (
            "model.layers.0.self_attn.q_proj.scales",
            "shape [8, 64] (GPTQ 4 bit, group 32, symmetric, act-order on)",
            "[4, 64]",
        ),
    ]
    with pytest.raises(AnatomyError) as error:
        _dequantize(tmp_path, name)
    path = os.path.join(tmp_path, "model.safetensors")
    assert (
        error.value.line()
        == f"{path}: tensor model.layers.0.self_attn.q_proj.scales: expected shape [8, 64] (GPTQ scales: one row per group of 32 inputs), found [4, 64]; the checkpoint is not what its quantization_config says"
    )


def test_mlx_packed_words_that_do_not_divide_are_a_finding(tmp_path):
    """3-bit codes in 7 words are 74.67 values a row: counted as stored, never dequantized."""
    tensors = {
        "lm_head.weight": torch.zeros(8, 7, dtype=torch.uint32),
        "lm_head.scales": torch.zeros(8, 2, dtype=torch.float16),
        "lm_head.biases": torch.zeros(8, 2, dtype=torch.float16),
    }
    _write(tmp_path, {"group_size": 32, "bits": 3}, tensors, key="quantization")
    qview = view(open_catalog(str(tmp_path)))
    assert [p[:3] for p in qview.problems] == [
        (
            "lm_head.weight",
            "MLX affine 3 bit, group 32 (scales and biases)",
            "packed columns 7 words of 32 bits holding 3-bit values (not a whole number)",
        )
    ]
    assert not qview.quantized


def test_awq_missing_zeros_is_one_error(tmp_path):
    name, _ = awq_checkpoint(tmp_path, 32)
    from safetensors.torch import load_file, save_file

    path = os.path.join(tmp_path, "model.safetensors")
    tensors = load_file(path)
    del tensors["model.layers.0.mlp.down_proj.qzeros"]
    save_file(tensors, path)
    with pytest.raises(AnatomyError) as error:
        _dequantize(tmp_path, name)
    assert (
        error.value.line()
        == f"{path}: tensor model.layers.0.mlp.down_proj.qweight: expected a tensor .qzeros beside it, found none; the checkpoint is incomplete; download it again"
    )


@pytest.mark.parametrize(
    "key, value, found",
    [
        ("bits", "4", "bits '4' in its quantization settings, not an integer 1..8"),
        ("bits", 0, "bits 0 in its quantization settings, not an integer 1..8"),
        ("group_size", 12.5, "group_size 12.5 in its quantization settings, not an integer"),
        ("desc_act", "yes", "desc_act 'yes' in its quantization settings, not true or false"),
    ],
)
def test_settings_of_the_wrong_kind_are_a_finding_not_a_traceback(tmp_path, cli, key, value, found):
    gptq_checkpoint(tmp_path, 4, 64, act_order=False)
    _edit_config(tmp_path, **{key: value})
    result = cli("summary", tmp_path)
    assert result.code == 0
    assert (
        f"  config.json: expected quantization settings llm-anatomy can read (quant_method 'gptq'), found {found}; those tensors are counted as stored elements; check quantization_config in config.json\n"
        in result.out
    )
    assert "quant_method llm-anatomy reads" not in result.out
    assert cli("params", tmp_path).code == 0


def test_mlx_modes_other_than_affine_are_refused_in_one_line(tmp_path):
    tensors = {
        "lm_head.weight": torch.zeros(8, 4, dtype=torch.uint32),
        "lm_head.scales": torch.zeros(8, 1, dtype=torch.float16),
        "lm_head.biases": torch.zeros(8, 1, dtype=torch.float16),
    }
    _write(tmp_path, {"group_size": 32, "bits": 4, "mode": "mxfp4"}, tensors, key="quantization")
    assert view(open_catalog(str(tmp_path))).description == "MLX mxfp4 4 bit, group 32"
    with pytest.raises(AnatomyError) as error:
        _dequantize(tmp_path, "lm_head.weight")
    assert error.value.line().endswith(
        "tensor lm_head.weight: expected MLX affine quantization with a positive group size, found mode mxfp4, group size 32; llm-anatomy dequantizes MLX's affine mode only"
    )


def test_mlx_mixed_quantization_reads_each_module_at_its_own_bits(tmp_path):
    """mlx-lm's mixed recipes store a module's own bits and group size under its path in `quantization`."""
    rng = np.random.default_rng(3)
    tensors, references = {}, {}
    for name, bits, group in (("model.layers.0.mlp.down_proj", 4, 64), ("model.layers.0.mlp.up_proj", 6, 32)):
        codes = rng.integers(0, 2**bits, (16, 128))
        scales, biases = (torch.from_numpy(rng.uniform(-0.1, 0.1, (16, 128 // group))).half() for _ in range(2))
        tensors |= {
            f"{name}.weight": torch.from_numpy(bit_stream(codes, bits)),
            f"{name}.scales": scales,
            f"{name}.biases": biases,
        }
        references[f"{name}.weight"] = scales.repeat_interleave(group, dim=1) * torch.from_numpy(
            codes
        ) + biases.repeat_interleave(group, dim=1)
    _write(
        tmp_path,
        {"group_size": 64, "bits": 4, "model.layers.0.mlp.up_proj": {"group_size": 32, "bits": 6}},
        tensors,
        key="quantization",
    )
    qview = view(open_catalog(str(tmp_path)))
    assert qview.problems == () and [(w.name, w.shape) for w in qview.weights] == [
        (n, (16, 128)) for n in sorted(references)
    ]
    for name, reference in references.items():
        _same(_dequantize(tmp_path, name)[1], reference)


# ---------------------------------------------------------------- a tiny Llama stored quantized: values, stats, diff


def _minmax(weight, bits, groups_of_inputs):
    """Asymmetric min-max quantization of a float [out, in] weight, one scale and zero per
    (output, group): codes [out, in], scales and zeros [out, groups] (zeros in 1..maxq)."""
    maxq = 2**bits - 1
    w = weight.float()
    count = int(groups_of_inputs.max()) + 1
    codes = torch.empty_like(w)
    scales, zeros = torch.empty(w.shape[0], count), torch.empty(w.shape[0], count)
    for g in range(count):
        cols = (groups_of_inputs == g).nonzero().flatten()
        lo, hi = w[:, cols].amin(1).clamp(max=0), w[:, cols].amax(1).clamp(min=0)
        scale = ((hi - lo) / maxq).clamp(min=1e-6)
        zero = torch.round(-lo / scale).clamp(1, maxq)
        codes[:, cols] = torch.clamp(torch.round(w[:, cols] / scale[:, None]) + zero[:, None], 0, maxq)
        scales[:, g], zeros[:, g] = scale, zero
    return codes.long(), scales, zeros.long()


def _gptq(prefix, weight, bits=4, group=32, act_order=True, seed=0):
    out, inner = weight.shape
    g_idx = torch.arange(inner) // group
    if act_order:
        g_idx = g_idx[torch.from_numpy(np.random.default_rng(seed).permutation(inner))]
    codes, scales, zeros = _minmax(weight, bits, g_idx)
    scales = scales.half()
    stored = {
        f"{prefix}.qweight": gptq_pack_rows(codes.T.numpy(), bits),
        f"{prefix}.qzeros": gptq_pack_rows((zeros - 1).numpy(), bits).T.contiguous(),
        f"{prefix}.scales": scales.T.contiguous(),
        f"{prefix}.g_idx": g_idx.int(),
    }
    return stored, (scales.T[g_idx] * (codes.T - zeros.T[g_idx])).T  # gptqmodel's dequantize_weight, as [out, in]


def _awq(prefix, weight, group=32, **_):
    g = torch.arange(weight.shape[1]) // group
    codes, scales, zeros = _minmax(weight, 4, g)
    scales = scales.half()
    stored = {
        f"{prefix}.qweight": awq_pack(codes.T.numpy()),
        f"{prefix}.qzeros": awq_pack(zeros.T.numpy()),
        f"{prefix}.scales": scales.T.contiguous(),
    }
    return stored, ((codes.T - zeros.T[g]) * scales.T[g]).T


def _mlx(prefix, weight, bits=4, group=32, **_):
    g = torch.arange(weight.shape[1]) // group
    codes, scales, zeros = _minmax(weight, bits, g)
    scales, biases = scales.to(weight.dtype), (-scales * zeros).to(weight.dtype)
    stored = {
        f"{prefix}.weight": torch.from_numpy(bit_stream(codes.numpy(), bits)),
        f"{prefix}.scales": scales,
        f"{prefix}.biases": biases,
    }
    return stored, scales[:, g] * codes + biases[:, g]


def _pack(prefix, weight, group=32):
    """compressed-tensors' own compressor and decompression, with min-max scales and zero points."""
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**PACK_ARGS))
    _, scales, zeros = _minmax(weight, 4, torch.arange(weight.shape[1]) // group)
    state = {"weight": weight, "weight_scale": scales.to(weight.dtype), "weight_zero_point": (zeros - 8).to(torch.int8)}
    stored = PackedQuantizationCompressor.compress(state, scheme)
    return {f"{prefix}.{k}": v for k, v in stored.items()}, PackedQuantizationCompressor.decompress(stored, scheme)[
        "weight"
    ]


PACK_ARGS = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 32}
SCHEME_WRITERS = {
    # scheme: (writer, its quantization config, the model's dtype, the embedding quantized too)
    "gptq": (
        _gptq,
        {"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": True, "sym": False},
        torch.float16,
        False,
    ),
    "gptq-3bit": (
        lambda p, w: _gptq(p, w, bits=3, act_order=False),
        {"quant_method": "gptq", "bits": 3, "group_size": 32, "desc_act": False, "sym": False},
        torch.float16,
        False,
    ),
    "awq": (
        _awq,
        {"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": True, "version": "gemm"},
        torch.float16,
        False,
    ),
    "mlx": (_mlx, {"group_size": 32, "bits": 4}, torch.bfloat16, True),
    "pack": (
        _pack,
        {
            "quant_method": "compressed-tensors",
            "format": "pack-quantized",
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": PACK_ARGS}},
        },
        torch.bfloat16,
        False,
    ),
}


@pytest.fixture(scope="module", params=list(SCHEME_WRITERS))
def quantized_llama(request, tmp_path_factory):
    """(original folder, quantized folder, the model with its quantized weights replaced by the
    reference dequantization): a tiny Llama saved by transformers, its linear layers (and for
    MLX its embedding) then stored quantized."""
    base = tmp_path_factory.mktemp(request.param)
    return quantized_tiny_llama(base / "original", base / "quantized", request.param)


def quantized_tiny_llama(original, quantized, scheme):
    """The quantized_llama fixture's checkpoints for one scheme, written to the two folders
    (docs/quantized.md shows the GPTQ one's values)."""
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    writer, quantization, dtype, embedding = SCHEME_WRITERS[scheme]
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=96,
        dtype=str(dtype).split(".")[1],
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(original)
    stored = {}
    for name, tensor in load_file(str(original / "model.safetensors")).items():
        if name.endswith("proj.weight") or (embedding and name == "model.embed_tokens.weight"):
            parts, reference = writer(name[: -len(".weight")], tensor)
            stored.update(parts)
            model.get_parameter(name).data = reference.to(dtype)
        else:
            stored[name] = tensor
    key = "quantization" if scheme == "mlx" else "quantization_config"
    config = json.loads((original / "config.json").read_text())
    _write(quantized, quantization, stored, key=key)
    (quantized / "config.json").write_text(json.dumps({**config, key: quantization}))
    return original, quantized, model


def test_torch_style_prints_the_reference_parameters(quantized_llama, cli):
    _, folder, model = quantized_llama
    assert cli("values", folder, "--style", "torch").out == "".join(f"{p}\n" for p in model.parameters())


def test_values_of_a_quantized_weight_and_an_index(quantized_llama, cli):
    _, folder, model = quantized_llama
    reference = model.get_parameter("model.layers.0.mlp.down_proj.weight").detach()
    assert (
        cli("values", folder, "model.layers.0.mlp.down_proj.weight").out
        == f"model.layers.0.mlp.down_proj.weight  [64, 128]  {view(open_catalog(str(folder))).scheme.upper()}\n{reference}\n"
    )
    out = cli("values", folder, "model.layers.0.mlp.down_proj.weight[5:9, 30:100:7]").out
    assert out.endswith(f"\n{reference[5:9, 30:100:7]}\n")


def test_stats_are_those_of_the_reference(quantized_llama, cli):
    _, folder, model = quantized_llama
    rows = {row["name"]: row for row in json.loads(cli("stats", folder, "--json").out)["rows"]}
    for name, parameter in model.named_parameters():
        values, row = parameter.detach().double().flatten(), rows[name]
        assert (row["numel"], row["min"], row["max"]) == (values.numel(), values.min().item(), values.max().item())
        assert row["mean"] == pytest.approx(values.mean().item(), rel=1e-12, abs=1e-15)
        assert row["std"] == pytest.approx(values.std(correction=0).item(), rel=1e-12)


def test_diff_against_the_original_is_the_quantization_error(quantized_llama, cli):
    original, folder, model = quantized_llama
    from safetensors.torch import load_file

    before = load_file(str(original / "model.safetensors"))
    report = json.loads(cli("diff", original, folder, "--json").out)
    changes = {row["name"]: row for row in report["tensors"]}
    assert report["only_in_a"] == report["only_in_b"] == []
    for name, parameter in model.named_parameters():
        x, y = before[name].double().flatten(), parameter.detach().double().flatten()
        row = changes[name]
        if torch.equal(x, y):
            assert row["identical"]
            continue
        assert row["relative"] == pytest.approx(((y - x).norm() / x.norm()).item(), rel=1e-12)
        assert row["cosine"] == pytest.approx((x @ y / (x.norm() * y.norm())).item(), rel=1e-12)
        assert row["max_abs_diff"] == (y - x).abs().max().item()


def test_api_parameters_are_the_reference(quantized_llama):
    import llm_anatomy

    _, folder, model = quantized_llama
    reference = dict(model.named_parameters())
    opened = llm_anatomy.open(str(folder))
    for name, parameter in opened.named_parameters():
        assert (str(parameter), tuple(parameter.shape)) == (str(reference[name]), tuple(reference[name].shape))
        _same(parameter.numpy().astype(np.float32), reference[name].detach())


def test_values_of_a_quantized_weight_stay_light(tmp_path):
    """A few dequantized values are computed in plain Python: neither numpy nor torch is imported."""
    from conftest import imported_by

    name, reference = gptq_checkpoint(tmp_path, 3, 64, act_order=True)
    code, loaded, out = imported_by("values", tmp_path, name)
    assert (code, loaded) == (0, [])
    assert out == f"{name}  [64, 256]  GPTQ\n{reference}\n"
