"""`config --explain` of quantized checkpoints: every field the quantizers write into
quantization_config (or MLX's quantization) has an explanation in English and Chinese."""

import json

import pytest

from llm_anatomy import replicas

# quantization_config as the quantizers write it where transformers has no config class that
# writes the whole of it: published repos' config.json, verbatim.
PUBLISHED = {
    # TheBloke/Llama-2-7B-GPTQ (AutoGPTQ)
    "autogptq": {
        "bits": 4,
        "group_size": 128,
        "damp_percent": 0.01,
        "desc_act": False,
        "sym": True,
        "true_sequential": True,
        "model_name_or_path": None,
        "model_file_base_name": "model",
        "quant_method": "gptq",
        "static_groups": False,
        "is_marlin_format": False,
    },
    # a GPT-QModel 2.x checkpoint
    "gptqmodel": {
        "bits": 4,
        "checkpoint_format": "gptq",
        "desc_act": True,
        "group_size": 128,
        "lm_head": False,
        "meta": {
            "damp_auto_increment": 0.0025,
            "damp_percent": 0.01,
            "mse": 0.0,
            "quantizer": ["gptqmodel:2.2.0"],
            "static_groups": False,
            "true_sequential": True,
            "uri": "https://github.com/modelcloud/gptqmodel",
            "v2": False,
            "v2_alpha": 0.25,
        },
        "pack_dtype": "int32",
        "quant_method": "gptq",
        "sym": True,
    },
    # TheBloke/Llama-2-7B-AWQ (AutoAWQ)
    "autoawq": {
        "quant_method": "awq",
        "zero_point": True,
        "group_size": 128,
        "bits": 4,
        "version": "gemm",
        "modules_to_not_convert": None,
    },
    # deepseek-ai/DeepSeek-V3
    "deepseek-fp8": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    },
    # openai/gpt-oss-20b
    "mxfp4": {
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
        "quant_method": "mxfp4",
    },
    # RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8 (llm-compressor, compressed-tensors FP8)
    "ct-fp8": {
        "config_groups": {
            "group_0": {
                "input_activations": {
                    "actorder": None,
                    "block_structure": None,
                    "dynamic": False,
                    "group_size": None,
                    "num_bits": 8,
                    "observer": "minmax",
                    "observer_kwargs": {},
                    "strategy": "tensor",
                    "symmetric": True,
                    "type": "float",
                },
                "output_activations": None,
                "targets": ["Linear"],
                "weights": {
                    "actorder": None,
                    "block_structure": None,
                    "dynamic": False,
                    "group_size": None,
                    "num_bits": 8,
                    "observer": "minmax",
                    "observer_kwargs": {},
                    "strategy": "channel",
                    "symmetric": True,
                    "type": "float",
                },
            }
        },
        "format": "float-quantized",
        "global_compression_ratio": 1.24,
        "ignore": ["lm_head"],
        "kv_cache_scheme": None,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
    },
    # RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16 (compressed-tensors pack-quantized)
    "ct-w4a16": {
        "config_groups": {
            "group_0": {
                "input_activations": None,
                "output_activations": None,
                "targets": ["Linear"],
                "weights": {
                    "actorder": "group",
                    "block_structure": None,
                    "dynamic": False,
                    "group_size": 128,
                    "num_bits": 4,
                    "observer": "minmax",
                    "observer_kwargs": {},
                    "strategy": "group",
                    "symmetric": True,
                    "type": "int",
                    "scale_dtype": None,
                    "zp_dtype": None,
                },
            }
        },
        "format": "pack-quantized",
        "global_compression_ratio": None,
        "ignore": ["lm_head"],
        "kv_cache_scheme": None,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
        "sparsity_config": {},
        "transform_config": {},
        "version": "0.10.3",
    },
}

TRANSFORMERS_CLASSES = [
    "GPTQConfig",
    "AwqConfig",
    "FineGrainedFP8Config",
    "FbgemmFp8Config",
    "Mxfp4Config",
    "BitsAndBytesConfig",
]


def _explained(tmp_path, cli, config, *args):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    replicas.write_safetensors_layout(str(tmp_path / "model.safetensors"), [replicas.TensorSpec("w", "F32", (1,))])
    result = cli("config", tmp_path, "--explain", *args)
    assert result.code == 0, result.err
    return result.out


def _without_entry(out):
    lines = out.splitlines()
    return [lines[i - 1].strip() for i, line in enumerate(lines) if line.strip() == "(no glossary entry)"]


@pytest.mark.parametrize("name", TRANSFORMERS_CLASSES)
def test_every_field_transformers_writes(tmp_path, cli, name):
    from transformers.utils import quantization_config

    q = getattr(quantization_config, name)(**({"bits": 4} if name == "GPTQConfig" else {})).to_dict()
    for lang in ("en", "zh"):
        assert _without_entry(_explained(tmp_path, cli, {"quantization_config": q}, "--lang", lang)) == []


@pytest.mark.parametrize("name", PUBLISHED)
def test_every_field_published_repos_write(tmp_path, cli, name):
    for lang in ("en", "zh"):
        assert _without_entry(_explained(tmp_path, cli, {"quantization_config": PUBLISHED[name]}, "--lang", lang)) == []


def test_mlx_quantization_with_modules_of_their_own(tmp_path, cli):
    own = {
        "group_size": 64,
        "bits": 4,
        "mode": "affine",
        "model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 6},
        "model.layers.1.self_attn.q_proj": False,
    }
    out = _explained(tmp_path, cli, {"quantization": own, "quantization_config": own})
    assert _without_entry(out) == []
    lines = out.splitlines()
    at = lines.index("  quantization.model.layers.0.mlp.down_proj = {...}")
    assert (
        lines[at + 1]
        == "      MLX: a module with quantization settings of its own (mlx-lm's mixed-precision recipes): its bits and group_size, or false when it is left unquantized."
    )
    assert lines[at + 2 : at + 4] == [
        "    quantization.model.layers.0.mlp.down_proj.group_size = 64",
        "        How many consecutive weights along a row (the input dimension) share one scale and zero point; -1 means one group for the whole row.",
    ]
    assert lines[lines.index("  quantization.model.layers.1.self_attn.q_proj = false") + 1] == lines[at + 1]
    assert (
        lines[lines.index('  quantization.mode = "affine"') + 1]
        == "      MLX: the quantization mode: affine (a scale and a bias per group) or a floating-point block format (mxfp4, nvfp4, mxfp8)."
    )
    zh = _explained(tmp_path, cli, {"quantization": own}, "--lang", "zh").splitlines()
    assert (
        zh[zh.index("  quantization.model.layers.1.self_attn.q_proj = false") + 1]
        == "      MLX：有自己量化设置的模块（mlx-lm 的混合精度方案）：它的 bits 和 group_size；为 false 表示该模块不量化。"
    )


def test_bitsandbytes_lines(tmp_path, cli):
    from transformers import BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True).to_dict()
    lines = _explained(tmp_path, cli, {"quantization_config": q}).splitlines()
    assert lines[lines.index('  quantization_config.bnb_4bit_quant_type = "nf4"') + 1] == (
        "      bitsandbytes 4 bit: the table of the 16 values a 4-bit code stands for, before the block's absmax scales it."
        " nf4 (NormalFloat4): the 16 values sit at the quantiles of a normal distribution, which suits normally distributed weights."
    )
    assert lines[lines.index("  quantization_config.bnb_4bit_use_double_quant = true") + 1] == (
        "      bitsandbytes 4 bit: whether the per-block absmax scales are themselves quantized to 8 bits (one float32 scale per 256 of them), which saves about 0.37 bits per weight."
    )
    assert lines[lines.index('  quantization_config.quant_method = "bitsandbytes"') + 1] == (
        "      The quantization method, which decides how the stored tensors are read."
        " bitsandbytes: 4-bit nf4/fp4 codes with one absmax per block of 64 (load_in_4bit), or 8-bit integers with one absmax per row (load_in_8bit)."
    )
    zh = _explained(tmp_path, cli, {"quantization_config": q}, "--lang", "zh").splitlines()
    assert (
        zh[zh.index("  quantization_config.llm_int8_threshold = 6.0") + 1]
        == "      LLM.int8()：数值超过此阈值的输入特征视为离群值，以 16 位相乘（论文取 6.0）；属于运行时设置，与存储的权重无关。"
    )


def test_gptq_awq_fp8_mxfp4_lines(tmp_path, cli):
    lines = _explained(tmp_path / "gptq", cli, {"quantization_config": PUBLISHED["gptqmodel"]}).splitlines()
    assert lines[lines.index("  quantization_config.desc_act = true") + 1] == (
        "      GPTQ act-order: whether the columns were quantized in order of decreasing activation size; the checkpoint then carries g_idx, the group of each input column."
    )
    assert lines[lines.index("    quantization_config.meta.damp_percent = 0.01") + 1] == (
        "        GPTQ: the dampening added to the diagonal of the Hessian before it is inverted, as a fraction of its mean (0.01 = 1%); a quantization-time setting."
    )
    lines = _explained(tmp_path / "awq", cli, {"quantization_config": PUBLISHED["autoawq"]}).splitlines()
    assert (
        lines[lines.index("  quantization_config.zero_point = true") + 1]
        == "      AWQ: true for asymmetric quantization with a zero point stored per group (qzeros), false for symmetric."
    )
    lines = _explained(
        tmp_path / "fp8", cli, {"quantization_config": PUBLISHED["deepseek-fp8"]}, "--lang", "zh"
    ).splitlines()
    assert (
        lines[lines.index('  quantization_config.quant_method = "fp8"') + 1]
        == "      量化方法，决定如何读取存储的张量。FP8：8 位浮点权重（E4M3），每个块或每个张量有一个 float32 缩放系数（weight_scale_inv）。"
    )
    lines = _explained(tmp_path / "mxfp4", cli, {"quantization_config": PUBLISHED["mxfp4"]}).splitlines()
    assert lines[
        lines.index(
            '  quantization_config.modules_to_not_convert = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens...'
        )
        + 1
    ] == (
        "      Modules left unquantized, stored in the model's own dtype (typically the output head; gpt-oss also keeps attention, routers and embeddings); * matches any part of a name."
    )


def test_compressed_tensors_lines(tmp_path, cli):
    lines = _explained(tmp_path, cli, {"quantization_config": PUBLISHED["ct-w4a16"]}).splitlines()
    assert lines[lines.index("    quantization_config.config_groups.group_0 = {...}") + 1] == (
        "        compressed-tensors: one group of quantization settings: the modules it targets and how their weights and activations are quantized."
    )
    assert lines[lines.index('        quantization_config.config_groups.group_0.weights.strategy = "group"') + 1] == (
        "            compressed-tensors: what shares one scale: tensor, channel (each output row), group (group_size consecutive inputs of a row),"
        " block (block_structure tiles) or token (each token, for activations)."
    )
    assert lines[lines.index('  quantization_config.format = "pack-quantized"') + 1] == (
        "      The storage format of the quantized weights: for GPTQ its checkpoint layout, for AWQ its kernel layout, for compressed-tensors how the values are packed."
        " pack-quantized: integer values packed eight 4-bit (or four 8-bit) to an int32 word (weight_packed), with weight_scale and weight_shape."
    )
