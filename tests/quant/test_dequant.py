"""Quantized weights shown as the loader gives them: tiny FP8 and MXFP4 checkpoints written with
safetensors, held element by element to transformers' own dequantization (from_pretrained on
the CPU dequantizes both, Fp8Dequantize / _dequantize_fp8_weight, convert_moe_packed_tensors)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from llm_anatomy.locate import open_catalog
from llm_anatomy.quant.logical import logical_catalog
from llm_anatomy.decode.stream import BLOCK_ELEMS, Reader
from llm_anatomy.decode.elements import ElementReader

BLOCK = 32


def _fp8_blocks(weight, block):
    """Block FP8 as DeepSeek-V3 stores it: e4m3 values and one float32 weight_scale_inv per block."""
    rows, cols = weight.shape
    padded = torch.zeros(-(-rows // block[0]) * block[0], -(-cols // block[1]) * block[1])
    padded[:rows, :cols] = weight.float()
    tiles = padded.unflatten(0, (-1, block[0])).unflatten(-1, (-1, block[1]))
    scale = tiles.abs().amax(dim=(1, 3)) / 448
    quantized = (tiles / scale[:, None, :, None]).flatten(2, 3).flatten(0, 1)[:rows, :cols].to(torch.float8_e4m3fn)
    return quantized, scale


def _save(folder, tensors, config):
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def llama_fp8(tmp_path_factory):
    """A tiny Llama saved by transformers, its linear weights then stored as block FP8."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        dtype="bfloat16",
    )
    folder = tmp_path_factory.mktemp("llama-fp8")
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    model.save_pretrained(folder.parent / "llama-bf16")  # the model before quantization, for diff
    stored = {}
    for name, tensor in load_file(str(folder / "model.safetensors")).items():
        if name.endswith("proj.weight"):
            stored[name], stored[name[: -len("weight")] + "weight_scale_inv"] = _fp8_blocks(tensor, (BLOCK, BLOCK))
        else:
            stored[name] = tensor
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "fp8",
        "weight_block_size": [BLOCK, BLOCK],
        "activation_scheme": "dynamic",
    }
    return _save(folder, stored, config)


@pytest.fixture(scope="module")
def gpt_oss_mxfp4(tmp_path_factory):
    """A tiny gpt-oss saved by transformers, its experts then stored as MXFP4 blocks and scales
    (random codes, exponents around 2 ** 0 and the extremes 0, 254 and 255 (inf) too)."""
    from transformers import GptOssConfig, GptOssForCausalLM

    torch.manual_seed(0)
    config = GptOssConfig(
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=128,
        num_local_experts=4,
        num_experts_per_tok=2,
        dtype="bfloat16",
        layer_types=["full_attention"],
    )
    folder = tmp_path_factory.mktemp("gpt-oss-mxfp4")
    GptOssForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    stored = {}
    for name, tensor in load_file(str(folder / "model.safetensors")).items():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            experts, columns, rows = tensor.shape
            stored[name + "_blocks"] = torch.randint(0, 256, (experts, rows, columns // 32, 16), dtype=torch.uint8)
            scales = torch.randint(118, 136, (experts, rows, columns // 32), dtype=torch.uint8)
            scales[0, :2, :2] = torch.tensor([[0, 255], [254, 1]], dtype=torch.uint8)
            stored[name + "_scales"] = scales
        else:
            stored[name] = tensor
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    }
    return _save(folder, stored, config)


def _loaded(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder))


def every_value(folder, name, model_dtype="BF16", block_elems=BLOCK_ELEMS):
    """(values read element by element as `values` reads them, values streamed as stats and diff read them), float64."""
    catalog = logical_catalog(open_catalog(str(folder)), lambda: model_dtype)
    tensor = catalog.by_name[name]
    with ElementReader() as reader:
        shown = np.array(reader.read(tensor, range(tensor.numel)), np.float64).reshape(tensor.shape)
    reader = Reader(block_elems=block_elems)
    try:
        streamed = np.concatenate([block.copy() for block in reader.blocks(tensor)]).reshape(tensor.shape)
    finally:
        reader.close()
    return shown, streamed


def _same(values, reference):
    """Every element equal, NaN where the reference has NaN (a NaN's sign aside: torch prints none), -0.0 kept."""
    expected = reference.to(torch.float64).numpy()
    assert values.shape == expected.shape
    assert np.array_equal(values, expected, equal_nan=True)
    numbers = ~np.isnan(expected)
    assert np.array_equal(np.signbit(values[numbers]), np.signbit(expected[numbers]))


@pytest.mark.parametrize("model", ["llama_fp8", "gpt_oss_mxfp4"])
def test_torch_style_prints_what_from_pretrained_loads(request, model, cli):
    """Every parameter of the model transformers loads on the CPU (dequantized to bfloat16), printed by torch."""
    folder = request.getfixturevalue(model)
    reference = "".join(f"{p}\n" for p in _loaded(folder).parameters())
    assert cli("values", folder, "--style", "torch").out == reference


def test_fp8_every_element_equals_transformers(llama_fp8):
    from transformers.integrations.finegrained_fp8 import Fp8Dequantize

    stored = load_file(str(llama_fp8 / "model.safetensors"))
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"):
        reference = Fp8Dequantize(None)._dequantize_one(
            stored[name], stored[name + "_scale_inv"], output_dtype=torch.bfloat16
        )
        for values in every_value(llama_fp8, name):
            _same(values, reference)


def test_fp8_blocks_that_do_not_divide_the_weight(tmp_path):
    """Blocks of 32 x 48 over a 70 x 100 weight: the last row and column of blocks are short
    (transformers' _dequantize_fp8_weight; its loader's Fp8Dequantize refuses such a grid)."""
    from transformers.integrations.finegrained_fp8 import _dequantize_fp8_weight

    torch.manual_seed(1)
    weight, scale = _fp8_blocks(torch.randn(70, 100), (32, 48))
    weight[0, :4] = torch.tensor([float("nan"), -0.0, 448, -448]).to(torch.float8_e4m3fn)
    folder = _save(
        tmp_path,
        {"w.weight": weight, "w.weight_scale_inv": scale},
        {"quantization_config": {"quant_method": "fp8", "weight_block_size": [32, 48]}},
    )
    reference = _dequantize_fp8_weight(weight.clone(), scale, [32, 48], torch.float32).to(torch.bfloat16)
    for values in every_value(folder, "w.weight"):
        _same(values, reference)


@pytest.mark.parametrize("scale_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("scale_shape", [(48, 1), (1,), (3, 4)], ids=["channel", "tensor", "block"])
def test_fp8_weight_scale_as_compressed_tensors_dequantizes(tmp_path, scale_dtype, scale_shape):
    """compressed-tensors' weight_scale (per channel, per tensor, per 16x16 block): the fp8 value
    cast to the scale's dtype times the scale, then the model's dtype (its _dequantize)."""
    torch.manual_seed(2)
    weight = (torch.randn(48, 64) * 50).to(torch.float8_e4m3fn)
    scale = (torch.rand(scale_shape) * 0.02 + 1e-3).to(scale_dtype)
    config = {
        "quantization_config": {"quant_method": "compressed-tensors", "format": "float-quantized"},
        "dtype": "float16",
    }
    folder = _save(tmp_path, {"w.weight": weight, "w.weight_scale": scale}, config)
    grid = (
        scale.reshape(-1, 1)
        if scale_shape == (48, 1)
        else scale.repeat_interleave(16, 0).repeat_interleave(16, 1)
        if scale_shape == (3, 4)
        else scale
    )
    reference = (weight.to(scale_dtype) * grid).to(torch.float16)
    catalog = logical_catalog(open_catalog(str(folder)), lambda: "F16")
    assert catalog.by_name["w.weight"].loaded == "F16"
    with ElementReader() as reader:
        shown = np.array(reader.read(catalog.by_name["w.weight"], range(48 * 64))).reshape(48, 64)
    _same(shown, reference)
    reader = Reader()
    _same(np.concatenate([b.copy() for b in reader.blocks(catalog.by_name["w.weight"])]).reshape(48, 64), reference)
    reader.close()


def test_mxfp4_every_element_equals_convert_moe_packed_tensors(gpt_oss_mxfp4):
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    stored = load_file(str(gpt_oss_mxfp4 / "model.safetensors"))
    for name in ("model.layers.0.mlp.experts.gate_up_proj", "model.layers.0.mlp.experts.down_proj"):
        reference = convert_moe_packed_tensors(stored[name + "_blocks"], stored[name + "_scales"], dtype=torch.bfloat16)
        assert torch.isinf(reference).any() or name.endswith("down_proj")  # the 255 exponent
        for values in every_value(gpt_oss_mxfp4, name):
            _same(values, reference)


def test_values_of_an_index_reads_the_dequantized_elements(gpt_oss_mxfp4, llama_fp8, cli):
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    stored = load_file(str(gpt_oss_mxfp4 / "model.safetensors"))
    name = "model.layers.0.mlp.experts.down_proj"
    reference = convert_moe_packed_tensors(stored[name + "_blocks"], stored[name + "_scales"], dtype=torch.bfloat16)
    out = cli("values", gpt_oss_mxfp4, f"{name}[1, :3, -2:]").out
    assert out == f"{name}[1, :3, -2:]  [3, 2]  MXFP4\n{reference[1, :3, -2:]}\n"
    loaded = _loaded(llama_fp8)
    out = cli("values", llama_fp8, "model.layers.0.mlp.up_proj.weight").out
    assert (
        out == f"model.layers.0.mlp.up_proj.weight  [96, 64]  FP8\n{loaded.model.layers[0].mlp.up_proj.weight.data}\n"
    )


def test_stored_tensors_stay_reachable(llama_fp8, cli):
    stored = load_file(str(llama_fp8 / "model.safetensors"))
    name = "model.layers.0.self_attn.k_proj.weight"
    assert (
        cli("values", llama_fp8, name + "_scale_inv").out
        == f"{name}_scale_inv  [1, 2]  F32\n{stored[name + '_scale_inv']}\n"
    )
    assert cli("values", llama_fp8, name, "--stored").out == f"{name}  [32, 64]  F8_E4M3\n{stored[name]}\n"
    listed = cli("values", llama_fp8, "--filter", "model.layers.0.self_attn.k_*", "--edgeitems", "1").out
    assert [line for line in listed.splitlines() if line.startswith("model.")] == [f"{name}  [32, 64]  FP8"]


def _broken(tmp_path, drop=None, scale=None):
    torch.manual_seed(3)
    weight, good = _fp8_blocks(torch.randn(64, 64), (32, 32))
    tensors = {
        "model.layers.0.mlp.up_proj.weight": weight,
        "model.layers.0.mlp.up_proj.weight_scale_inv": good if scale is None else scale,
    }
    if drop:
        del tensors[drop]
    return _save(tmp_path, tensors, {"quantization_config": {"quant_method": "fp8", "weight_block_size": [32, 32]}})


def test_missing_scale_is_one_line_in_values_and_a_finding_in_summary(tmp_path, cli):
    folder = _broken(tmp_path, drop="model.layers.0.mlp.up_proj.weight_scale_inv")
    result = cli("values", folder, "model.layers.0.mlp.up_proj.weight")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {folder}/model.safetensors: tensor model.layers.0.mlp.up_proj.weight: expected model.layers.0.mlp.up_proj.weight_scale_inv or"
        " model.layers.0.mlp.up_proj.weight_scale beside it (FP8 E4M3, 32x32 blocks (weight_scale_inv)), found none;"
        " its values cannot be dequantized without it; check that every shard was downloaded\n"
    )
    assert (
        "model.layers.0.mlp.up_proj.weight: expected model.layers.0.mlp.up_proj.weight_scale_inv beside it (FP8 E4M3, 32x32 blocks (weight_scale_inv)), found missing;"
        in cli("summary", folder).out
    )


def test_scale_grid_that_does_not_match_the_blocks_is_one_line(tmp_path, cli):
    folder = _broken(tmp_path, scale=torch.ones(2, 3))
    result = cli("values", folder, "model.layers.0.mlp.up_proj.weight[0, :4]")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {folder}/model.safetensors: tensor model.layers.0.mlp.up_proj.weight_scale_inv: expected shape [2, 2],"
        " one scale per 32x32 block of model.layers.0.mlp.up_proj.weight's 64x64 (FP8 E4M3, 32x32 blocks (weight_scale_inv)), found shape [2, 3];"
        " its weight cannot be dequantized; check quantization_config in config.json\n"
    )
    assert (
        "model.layers.0.mlp.up_proj.weight_scale_inv: expected shape [2, 2] (FP8 E4M3, 32x32 blocks (weight_scale_inv)), found [2, 3];"
        in cli("summary", folder).out
    )


def test_stats_are_those_of_the_loaded_weights(llama_fp8, gpt_oss_mxfp4, cli):
    """stats of a quantized model: every figure of every weight as torch computes it in float64
    on the weights from_pretrained loads (MXFP4 with its inf left out, as stats leaves it out)."""
    for folder, label, quantized in (
        (llama_fp8, "FP8", ("proj.weight",)),
        (gpt_oss_mxfp4, "MXFP4", ("experts.gate_up_proj", "experts.down_proj")),
    ):
        loaded = dict(_loaded(folder).named_parameters())
        rows = json.loads(cli("stats", folder, "--json").out)["rows"]
        assert {r["name"] for r in rows} == set(loaded)
        for row in rows:
            values = loaded[row["name"]].detach().to(torch.float64).flatten()
            finite = values[torch.isfinite(values)]
            assert row["dtype"] == (label if row["name"].endswith(quantized) else "BF16")
            assert (row["numel"], row["inf"], row["min"], row["max"]) == (
                values.numel(),
                int(torch.isinf(values).sum()),
                finite.min().item(),
                finite.max().item(),
            )
            assert row["mean"] == pytest.approx(finite.mean().item(), rel=1e-12, abs=1e-15)
            assert row["std"] == pytest.approx(finite.std(correction=0).item(), rel=1e-12)
            assert row["l2"] == pytest.approx(finite.norm().item(), rel=1e-12)


def test_diff_against_the_unquantized_model_is_the_quantization_error(llama_fp8, cli):
    """diff bf16 fp8: per weight, ||B - A|| / ||A||, cosine and max |B - A| as torch computes
    them in float64 on the original weights and the ones from_pretrained dequantizes."""
    original = llama_fp8.parent / "llama-bf16"
    a = dict(_loaded(original).named_parameters())
    b = dict(_loaded(llama_fp8).named_parameters())
    result = cli("diff", original, llama_fp8, "--json")
    report = json.loads(result.out)
    assert result.code == 0 and report["only_in_a"] == report["only_in_b"] == []
    changes = {row["name"]: row for row in report["tensors"]}
    quantized = [n for n in a if n.endswith("proj.weight")]
    assert len(quantized) == 7 and all(not changes[n]["identical"] for n in quantized)
    assert all(changes[n]["identical"] for n in a if n not in quantized)
    for name in quantized:
        x, y = a[name].detach().double().flatten(), b[name].detach().double().flatten()
        row = changes[name]
        assert (row["dtype_a"], row["dtype_b"]) == ("BF16", "FP8")
        assert row["relative"] == pytest.approx(((y - x).norm() / x.norm()).item(), rel=1e-12)
        assert row["cosine"] == pytest.approx((x @ y / (x.norm() * y.norm())).item(), rel=1e-12)
        assert row["max_abs_diff"] == (y - x).abs().max().item()
    assert cli("diff", llama_fp8, llama_fp8, "--json").out.count('"identical": true') == len(a)


def test_api_parameters_are_the_loaded_weights(gpt_oss_mxfp4, llama_fp8):
    """get_parameter(...)[index], numpy() and print(p) of a quantized weight: the dequantized values."""
    import llm_anatomy

    for folder in (gpt_oss_mxfp4, llama_fp8):
        loaded = dict(_loaded(folder).named_parameters())
        model = llm_anatomy.open(str(folder))
        for name, parameter in model.named_parameters():
            reference = loaded[name].detach()
            assert (str(parameter), parameter.dtype, tuple(parameter.shape)) == (
                str(loaded[name]),
                str(reference.dtype),
                tuple(reference.shape),
            )
            _same(parameter.numpy().astype(np.float64), reference)
        weight = model.get_parameter(
            "model.layers.0.mlp.experts.down_proj" if folder == gpt_oss_mxfp4 else "model.layers.0.mlp.down_proj.weight"
        )
        _same(
            weight[1, :3, -2:].astype(np.float64) if weight.ndim == 3 else weight[1:3, -2:].astype(np.float64),
            loaded[weight.name].detach()[1, :3, -2:] if weight.ndim == 3 else loaded[weight.name].detach()[1:3, -2:],
        )


@pytest.mark.slow  # subprocesses read gpt-oss and FP8 replicas under a memory watch (~5 s)
def test_published_layouts_stay_small_in_memory(published, tmp_path):
    """values of gpt-oss-20b's and block-FP8 Llama-3-8B's replicas read only what they print;
    stats of a gpt-oss layer (experts of gpt-oss-20b's size, 2 of them) streams them; all
    within the hostile harness's memory bound."""
    from hostile import MAX_RSS_BYTES, run_cli

    from llm_anatomy import replicas

    name = "model.layers.23.mlp.experts.gate_up_proj"
    outcome = run_cli("values", published("gpt-oss-20b", replicas.gpt_oss_specs), name, timeout=60)
    assert (outcome.code, outcome.err) == (0, "") and outcome.max_rss < MAX_RSS_BYTES
    assert outcome.out.startswith(f"{name}  [32, 2880, 5760]  MXFP4\ntensor([[[0., 0., 0.,  ..., 0., 0., 0.],\n")
    assert outcome.out.endswith("         [0., 0., 0.,  ..., 0., 0., 0.]]], dtype=torch.bfloat16)\n")
    outcome = run_cli(
        "values",
        published("Meta-Llama-3-8B-FP8-block", replicas.quantized_specs),
        "--filter",
        "model.layers.31.*",
        timeout=60,
    )
    assert (outcome.code, outcome.err) == (0, "") and outcome.max_rss < MAX_RSS_BYTES
    assert outcome.out.startswith("model.layers.31.input_layernorm.weight  [4096]  BF16\n")
    assert (
        "\nmodel.layers.31.mlp.down_proj.weight  [4096, 14336]  FP8\ntensor([[0., 0., 0.,  ..., 0., 0., 0.],\n"
        in outcome.out
    )
    config = dict(replicas.published_config("gpt-oss-20b"), num_hidden_layers=1, num_local_experts=2, vocab_size=1024)
    replicas.write_layout(str(tmp_path), config, replicas.gpt_oss_specs(config))
    outcome = run_cli("stats", tmp_path, "--filter", "*experts.*_proj", "--json", timeout=120)
    assert (outcome.code, outcome.err) == (0, "") and outcome.max_rss < MAX_RSS_BYTES
    rows = json.loads(outcome.out)["rows"]
    assert [(r["name"], r["dtype"], r["numel"], r["zeros"]) for r in rows] == [
        ("model.layers.0.mlp.experts.down_proj", "MXFP4", 2 * 2880 * 2880, 2 * 2880 * 2880),
        ("model.layers.0.mlp.experts.gate_up_proj", "MXFP4", 2 * 2880 * 5760, 2 * 2880 * 5760),
    ]


def test_mxfp4_scales_that_do_not_match_the_blocks_are_one_line(tmp_path, cli):
    name = "model.layers.0.mlp.experts.down_proj"
    tensors = {
        name + "_blocks": torch.zeros(2, 4, 2, 16, dtype=torch.uint8),
        name + "_scales": torch.full((2, 4, 3), 127, dtype=torch.uint8),
    }
    folder = _save(tmp_path, tensors, {"quantization_config": {"quant_method": "mxfp4"}})
    result = cli("values", folder, name)
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {folder}/model.safetensors: tensor {name}_scales: expected shape [2, 4, 2], one scale per block of 32 values of {name}_blocks"
        " (MXFP4: 4-bit E2M1 values in blocks of 32 sharing one E8M0 scale), found shape [2, 4, 3]; its weight cannot be dequantized; check quantization_config in config.json\n"
    )
    assert (
        f"{name}_scales: expected shape [2, 4, 2] (MXFP4: 4-bit E2M1 values in blocks of 32 sharing one E8M0 scale), found [2, 4, 3];"
        in cli("summary", folder).out
    )
    stats = cli("stats", folder)
    assert stats.code == 1 and f"tensor {name}_scales: expected shape [2, 4, 2]" in stats.out + stats.err
