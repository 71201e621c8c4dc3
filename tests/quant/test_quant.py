"""Quantized checkpoints counted as the models they are: layout replicas of published
quantized repos (exact names, dtypes, shapes and config.json; zero sparse data) must count
exactly the unquantized model's parameters, with the bytes really stored."""

import json

import pytest

from conftest import imported_by
from llm_anatomy import replicas
from llm_anatomy.analysis.summary import summarize
from llm_anatomy.locate import open_catalog

# (replica, its layout, total parameters, the scheme in words, quantized weights, their stored bytes)
PUBLISHED = [
    # TheBloke/Llama-2-7B-GPTQ: qweight [in/8, out], qzeros [in/128, out/8], scales [in/128, out], g_idx [in]
    (
        "Llama-2-7B-GPTQ",
        replicas.quantized_specs,
        6_738_415_616,
        "GPTQ 4 bit, group 128, symmetric, act-order off",
        224,
        3_369_041_920,
    ),
    # TheBloke/Llama-2-7B-AWQ: qweight [in, out/8], qzeros [in/128, out/8], scales [in/128, out]
    (
        "Llama-2-7B-AWQ",
        replicas.quantized_specs,
        6_738_415_616,
        "AWQ 4 bit, group 128, zero point, GEMM",
        224,
        3_364_487_168,
    ),
    # Fine-grained FP8 as DeepSeek-V3 / Qwen3-FP8 store it, on Llama-3-8B
    (
        "Meta-Llama-3-8B-FP8-block",
        replicas.quantized_specs,
        8_030_261_248,
        "FP8 E4M3, 128x128 blocks (weight_scale_inv)",
        224,
        6_981_025_792,
    ),
    # openai/gpt-oss-20b: MXFP4 experts
    (
        "gpt-oss-20b",
        replicas.gpt_oss_specs,
        20_914_757_184,
        "MXFP4: 4-bit E2M1 values in blocks of 32 sharing one E8M0 scale",
        48,
        10_152_345_600,
    ),
    # mlx-community/Llama-3.2-1B-Instruct-4bit: the tied embedding quantized too
    (
        "Llama-3.2-1B-Instruct-4bit",
        replicas.quantized_specs,
        1_235_814_400,
        "MLX affine 4 bit, group 64 (scales and biases)",
        113,
        695_107_584,
    ),
]


@pytest.mark.parametrize("name, specs, total, words, weights, nbytes", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_quantized_counts(published, name, specs, total, words, weights, nbytes):
    folder = published(name, specs)
    summary = summarize(open_catalog(str(folder)))
    assert summary.total_params == total
    assert summary.findings == ()
    assert (summary.quant.description, summary.quant.weights, summary.quant.nbytes) == (words, weights, nbytes)
    assert summary.total_nbytes == sum(s.nbytes for s in specs(replicas.published_config(name)))  # every stored byte
    assert summary.memory.weights[0].nbytes == summary.total_nbytes


def test_gpt_oss_active_beside_its_model_card(published, cli):
    """Active by our rule (embeddings included, as for Mixtral) and as OpenAI counts (3.61B)."""
    folder = published("gpt-oss-20b", replicas.gpt_oss_specs)
    summary = summarize(open_catalog(str(folder)))
    assert (summary.moe.total, summary.moe.active, summary.quant.active_convention) == (
        20_914_757_184,
        4_187_440_704,
        3_608_307_264,
    )
    out = cli("summary", folder).out
    assert (
        "  without the embedding table (the output head kept), as gpt-oss's model card counts: 3,608,307,264 active (3.61B)\n"
        in out
    )
    assert (
        "  48 quantized weights: 19,110,297,600 parameters as unquantized, 9.46 GiB stored, 4.25 bits per weight (scales, zeros and indices included)\n"
        in out
    )


def test_gptq_summary_text_and_json(published, cli):
    folder = published("Llama-2-7B-GPTQ", replicas.quantized_specs)
    out = cli("summary", folder).out
    assert out.startswith("Llama-2-7B-GPTQ: 6,738,415,616 parameters (6.74B), 3.63 GiB in GPTQ, F16\n")
    assert "Quantization: GPTQ 4 bit, group 128, symmetric, act-order off (quant_method gptq)\n" in out
    assert (
        "  224 quantized weights: 6,476,005,376 parameters as unquantized, 3.14 GiB stored, 4.16 bits per weight (scales, zeros and indices included)\n"
        in out
    )
    quant = json.loads(cli("summary", folder, "--json").out)["quant"]
    assert quant["method"] == "gptq" and quant["params"] == 6_476_005_376 and quant["nbytes"] == 3_369_041_920


def test_quantized_summary_stays_header_only(published):
    code, loaded, out = imported_by("summary", published("Llama-3.2-1B-Instruct-4bit", replicas.quantized_specs))
    assert (code, loaded) == (0, [])
    assert out.startswith("Llama-3.2-1B-Instruct-4bit: 1,235,814,400 parameters (1.24B)")


def _small(tmp_path, name, change_config=None, drop=None, reshape=None):
    """A 2-layer replica of a published quantized layout, edited to disagree with itself."""
    config = dict(replicas.published_config(name), num_hidden_layers=2, vocab_size=1024)
    specs = (replicas.gpt_oss_specs if name == "gpt-oss-20b" else replicas.quantized_specs)(config)
    if change_config:
        change_config(config)
    specs = [
        replicas.TensorSpec(s.name, s.dtype, reshape.get(s.name, s.shape) if reshape else s.shape)
        for s in specs
        if s.name != drop
    ]
    replicas.write_layout(str(tmp_path), config, specs)
    return summarize(open_catalog(str(tmp_path)))


def test_wrong_group_size_is_a_finding_not_a_wrong_count(tmp_path):
    right = _small(tmp_path / "right", "Llama-2-7B-GPTQ")
    wrong = _small(tmp_path / "wrong", "Llama-2-7B-GPTQ", lambda c: c["quantization_config"].update(group_size=64))
    assert wrong.total_params == right.total_params == 2 * 202_383_360 + 2 * 1024 * 4096 + 4096
    assert [f.line() for f in wrong.findings] == [  # qzeros and scales disagree each in their own way: two findings
        "model.layers.0.mlp.down_proj.qzeros (and 13 more like it): expected shape [172, 512] (GPTQ 4 bit, group 64, symmetric, act-order off), found [86, 512];"
        " the count uses the packed tensor's shape; check quantization_config in config.json",
        "model.layers.0.mlp.down_proj.scales (and 13 more like it): expected shape [172, 4096] (GPTQ 4 bit, group 64, symmetric, act-order off), found [86, 4096];"
        " the count uses the packed tensor's shape; check quantization_config in config.json",
    ]


def test_missing_scales_is_a_finding(tmp_path):
    summary = _small(tmp_path, "Llama-3.2-1B-Instruct-4bit", drop="model.layers.1.mlp.down_proj.scales")
    assert summary.total_params == 1024 * 2048 + 2 * 60_821_504 + 2048
    assert [f.line() for f in summary.findings] == [
        "model.layers.1.mlp.down_proj.weight: expected model.layers.1.mlp.down_proj.scales beside it (MLX affine 4 bit, group 64 (scales and biases)), found missing;"
        " the count uses the packed tensor's shape; check quantization_config in config.json"
    ]


def test_packed_shape_that_does_not_divide_is_a_finding(tmp_path):
    summary = _small(tmp_path, "Llama-2-7B-GPTQ", lambda c: c["quantization_config"].update(bits=3))
    assert summary.findings[0].line() == (
        "model.layers.0.mlp.down_proj.qweight (and 13 more like it): expected GPTQ 3 bit, group 128, symmetric, act-order off,"
        " found qweight rows 1376 words of 32 bits holding 3-bit values (not a whole number); those tensors are counted as stored elements; check quantization_config in config.json"
    )


def test_unknown_quant_method_counts_stored_elements(tmp_path):
    summary = _small(tmp_path, "Llama-2-7B-GPTQ", lambda c: c["quantization_config"].update(quant_method="hqq"))
    stored = sum(
        s.nbytes // replicas.BYTES_PER_ELEMENT[s.dtype]
        for s in replicas.quantized_specs(
            dict(replicas.published_config("Llama-2-7B-GPTQ"), num_hidden_layers=2, vocab_size=1024)
        )
    )
    assert summary.total_params == stored
    assert summary.quant.description == "hqq (not a scheme llm-anatomy reads)"
    assert [f.line() for f in summary.findings if f.kind == "quant_unknown"] == [
        "config.json: expected a quant_method llm-anatomy reads (gptq, awq, fp8, fbgemm_fp8, compressed-tensors, mxfp4, bitsandbytes, or MLX's quantization),"
        " found quant_method 'hqq'; parameters are counted as stored elements: packed values count as one each"
    ]


def test_params_lists_logical_weights_and_stored_on_request(published, cli):
    folder = published("Llama-2-7B-GPTQ", replicas.quantized_specs)
    out = cli("params", folder, "--filter", "model.layers.0.self_attn.q_proj.*").out
    assert out == (
        "name                                    shape         dtype      params     bytes  file\n"
        "model.layers.0.self_attn.q_proj.weight  [4096, 4096]  GPTQ   16,777,216  8.33 MiB  model.safetensors\n"
        "1 tensor, 16,777,216 parameters, 8.33 MiB in 1 file\n"
        "quantized: GPTQ 4 bit, group 128, symmetric, act-order off; 1 logical weights stand for 4 stored tensors (params as unquantized, bytes as stored): `--stored` lists the stored tensors\n"
    )
    stored = cli("params", folder, "--filter", "model.layers.0.self_attn.q_proj.*", "--stored").out
    assert [line.replace(", ", ",").split()[:3] for line in stored.splitlines()[1:5]] == [
        ["model.layers.0.self_attn.q_proj.g_idx", "[4096]", "I32"],
        ["model.layers.0.self_attn.q_proj.qweight", "[512,4096]", "I32"],
        ["model.layers.0.self_attn.q_proj.qzeros", "[32,512]", "I32"],
        ["model.layers.0.self_attn.q_proj.scales", "[32,4096]", "F16"],
    ]
    listing = json.loads(cli("params", folder, "--json").out)
    assert listing["total"] == {"tensors": 291, "numel": 6_738_415_616, "nbytes": 3_893_862_400}
    q = next(t for t in listing["tensors"] if t["name"] == "model.layers.0.self_attn.q_proj.weight")
    assert q["stored"] == [
        "model.layers.0.self_attn.q_proj.qweight",
        "model.layers.0.self_attn.q_proj.qzeros",
        "model.layers.0.self_attn.q_proj.scales",
        "model.layers.0.self_attn.q_proj.g_idx",
    ]
    assert len(listing["stored_tensors"]) == 291 + 224 * 3
    assert sum(t["nbytes"] for t in listing["stored_tensors"]) == 3_893_862_400


def test_mxfp4_experts_have_transformers_shapes(published, cli):
    """GptOssExperts.gate_up_proj is [experts, hidden, 2 x expert_dim]; down_proj [experts, expert_dim, hidden]."""
    out = cli(
        "params", published("gpt-oss-20b", replicas.gpt_oss_specs), "--filter", "model.layers.0.mlp.experts.*_proj"
    ).out
    assert [line.split()[:5] for line in out.splitlines()[1:3]] == [
        ["model.layers.0.mlp.experts.down_proj", "[32,", "2880,", "2880]", "MXFP4"],
        ["model.layers.0.mlp.experts.gate_up_proj", "[32,", "2880,", "5760]", "MXFP4"],
    ]


def test_params_of_quantized_model_stays_header_only(published):
    code, loaded, out = imported_by("params", published("Llama-2-7B-AWQ", replicas.quantized_specs))
    assert (code, loaded) == (0, [])
    assert "291 tensors, 6,738,415,616 parameters" in out


def test_tree_without_config_shows_logical_weights(tmp_path, published, cli):
    """Without config.json the tree comes from the names: each quantized weight is one parameter."""
    (tmp_path / "model.safetensors").symlink_to(
        published("Llama-2-7B-GPTQ", replicas.quantized_specs) / "model.safetensors"
    )
    out = cli("tree", tmp_path).out
    assert out.splitlines()[1].split() == ["(root)", "-", "6,738,415,616"]
    assert "qweight" not in out and "q_proj" in out


def test_values_of_a_scheme_without_a_dequantizer_is_one_line(published, cli, monkeypatch):
    """A scheme whose dequantizer is not in quant.logical.DEQUANTIZERS: one line, the stored tensors still shown."""
    from llm_anatomy.quant import logical

    monkeypatch.delitem(logical.DEQUANTIZERS, "awq", raising=False)
    folder = published("Llama-2-7B-AWQ", replicas.quantized_specs)
    result = cli("values", folder, "model.layers.0.mlp.up_proj.weight[0]")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {folder}/model.safetensors: tensor model.layers.0.mlp.up_proj.qweight: expected a quantization scheme whose values llm-anatomy dequantizes,"
        " found AWQ 4 bit, group 128, zero point, GEMM, not dequantized yet; its stored tensors are shown by their own names (`llm-anatomy params --stored` lists them)\n"
    )
    assert cli("values", folder, "model.layers.0.mlp.up_proj.scales[0, :2]").out.endswith(
        "\ntensor([0., 0.], dtype=torch.float16)\n"
    )


def test_mlx_modules_with_their_own_bits(tmp_path, cli):
    """mlx-lm's mixed recipes: a module's own bits under its path in `quantization`, false when left as is."""
    config = dict(replicas.published_config("Llama-3.2-1B-Instruct-4bit"), num_hidden_layers=2, vocab_size=1024)
    own = {"model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 8}, "model.layers.1.self_attn.q_proj": False}
    specs = [s for s in replicas.quantized_specs(config) if not s.name.startswith(tuple(own))]
    specs += replicas.QUANTIZED_PARTS["mlx"](
        "model.layers.0.mlp.down_proj", 2048, 8192, "BF16", {"group_size": 64, "bits": 8}
    )
    specs += [replicas.TensorSpec("model.layers.1.self_attn.q_proj.weight", "BF16", (2048, 2048))]
    for key in ("quantization", "quantization_config"):
        config[key] = {**config[key], **own}
    replicas.write_layout(str(tmp_path), config, specs)
    summary = summarize(open_catalog(str(tmp_path)))
    assert (summary.total_params, summary.findings) == (1024 * 2048 + 2 * 60_821_504 + 2048, ())
    assert (summary.quant.description, summary.quant.weights) == (
        "MLX affine 4 bit, group 64 (scales and biases); MLX affine 8 bit, group 64 (scales and biases) in 1 weight",
        14,
    )
    rows = [
        line.split()
        for line in cli("params", tmp_path, "--filter", "model.layers.*.mlp.down_proj.weight").out.splitlines()[1:3]
    ]
    assert [row[:4] for row in rows] == [
        ["model.layers.0.mlp.down_proj.weight", "[2048,", "8192]", "MLX"],
        ["model.layers.1.mlp.down_proj.weight", "[2048,", "8192]", "MLX"],
    ]
    assert (
        cli("params", tmp_path, "--filter", "model.layers.1.self_attn.q_proj.weight").out.splitlines()[1].split()[3]
        == "BF16"
    )


def test_gpt_oss_attention_sinks_are_attention(published, cli):
    """self_attn.sinks ([heads], one logit per head joining the softmax) counted with attention, not as "other"."""
    summary = summarize(open_catalog(str(published("gpt-oss-20b", replicas.gpt_oss_specs))))
    attention = next(c for c in summary.components if c.name == "attention")
    assert (attention.params, attention.tensors) == (637_203_456, 24 * 9)
    assert [c.name for c in summary.components] == [
        "embeddings",
        "attention",
        "experts",
        "router",
        "norms",
        "output head",
    ]


@pytest.mark.slow  # writes DeepSeek-V3's 671B layout as a block-FP8 replica (~20 s)
def test_deepseek_v3_in_block_fp8_counts_as_in_bf16(tmp_path):
    """DeepSeek-V3 as published (its linear layers block FP8 with weight_scale_inv): the same
    671B total, 37.6B active and multi-token-prediction layer as the BF16 layout."""
    config = replicas.published_config("DeepSeek-V3")
    config["quantization_config"] = {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    }
    specs = replicas.quantized_specs(config, replicas.deepseek_specs)
    replicas.write_layout(str(tmp_path), config, specs, max_shard_bytes=10**13)
    summary = summarize(open_catalog(str(tmp_path)))
    mtp = {c.name: c for c in summary.not_counted}["multi-token prediction"]
    assert (summary.total_params, summary.moe.active, mtp.params) == (671_026_404_352, 37_552_282_624, 13_463_426_304)
    assert summary.quant.description == "FP8 E4M3, 128x128 blocks (weight_scale_inv)"
    assert summary.quant.weights == sum(s.dtype == "F8_E4M3" for s in specs)
    assert summary.findings == ()


# ---------------------------------------------------------------- hostile settings and shapes (hostile-2026-12 R6)

TINY_LLAMA = dict(
    num_hidden_layers=1,
    vocab_size=256,
    hidden_size=256,
    intermediate_size=512,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    bos_token_id=1,
    eos_token_id=2,
)


def _tiny(folder, name, change_config=None, reshape=None):
    """A one-layer, 256-wide replica of a published quantized layout, its config or one shape edited."""
    config = dict(replicas.published_config(name), **TINY_LLAMA)
    specs = replicas.quantized_specs(config)
    if change_config:
        change_config(config)
    specs = [replicas.TensorSpec(s.name, s.dtype, (reshape or {}).get(s.name, s.shape)) for s in specs]
    replicas.write_layout(str(folder), config, specs)
    return folder


def _every_command_answers(cli, folder, weight):
    """params lists the stored tensors; summary, tree, values, stats and diff answer without a traceback."""
    params = cli("params", folder)
    assert (params.code, params.err) == (0, "")
    for args in (
        ("summary",),
        ("tree",),
        ("values", f"{weight}[:2]"),
        ("values", "--filter", "*.q_proj.*", "--json"),
        ("stats", "--filter", "*.q_proj.*"),
        ("diff", folder, folder),
    ):
        result = cli(args[0], *args[1:]) if args[0] == "diff" else cli(args[0], folder, *args[1:])
        assert result.code == 0 and "Traceback" not in result.err, (args, result.err)
    return params.out, cli("summary", folder).out


BAD_BLOCK_SIZES = [[0, 0], [128], "abc", 128, [[1], [2]], {"a": 1}, [-1, 128], [1.5, 2.5], [True, True]]


@pytest.mark.parametrize("block", BAD_BLOCK_SIZES, ids=[json.dumps(b) for b in BAD_BLOCK_SIZES])
def test_bad_fp8_weight_block_size_is_one_finding_in_every_command(block, tmp_path, cli):
    """FP8 quantization_config.weight_block_size must be two positive integers; anything else
    was a ZeroDivisionError, IndexError, TypeError or KeyError in every command, params included."""
    folder = _tiny(
        tmp_path / "fp8",
        "Meta-Llama-3-8B-FP8-block",
        lambda c: c["quantization_config"].update(weight_block_size=block),
    )
    params, summary = _every_command_answers(cli, folder, "model.layers.0.self_attn.q_proj.weight")
    assert (
        "model.layers.0.self_attn.q_proj.weight            [256, 256]  F8_E4M3   65,536   64.00 KiB  model.safetensors\n"
        in params
    )
    assert (
        "model.layers.0.self_attn.q_proj.weight_scale_inv  [2, 2]      F32            4        16 B  model.safetensors\n"
        in params
    )
    assert (
        f"  config.json: expected quantization settings llm-anatomy can read (quant_method 'fp8'), found weight_block_size {block!r} in its quantization settings, "
        "not a list of two positive integers; those tensors are counted as stored elements; check quantization_config in config.json\n"
    ) in summary


def test_one_dimensional_gptq_qweight_is_one_finding_in_every_command(tmp_path, cli):
    """A GPTQ qweight of rank 1 was `not enough values to unpack` in params, values, stats, diff and summary."""
    folder = _tiny(tmp_path / "gptq", "Llama-2-7B-GPTQ", reshape={"model.layers.0.self_attn.q_proj.qweight": (8192,)})
    params, summary = _every_command_answers(cli, folder, "model.layers.0.self_attn.q_proj.qweight")
    assert (
        "model.layers.0.self_attn.q_proj.qweight         [8192]      I32      8,192   32.00 KiB  model.safetensors\n"
        in params
    )
    assert (
        "  model.layers.0.self_attn.q_proj.qweight: expected GPTQ 4 bit, group 128, symmetric, act-order off, found a qweight of shape [8192], "
        "not of 2 dimensions; those tensors are counted as stored elements; check quantization_config in config.json\n"
    ) in summary
