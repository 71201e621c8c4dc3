"""Memory: weights in each precision, the KV cache with GQA, MLA and sliding windows,
and the --context / --batch / --kv-dtype options."""

import pytest

from llm_anatomy import replicas
from llm_anatomy.analysis.architecture import derive
from llm_anatomy.analysis.memory import KVCacheRow, estimate, kv_cache, weight_table
from llm_anatomy.core.dtypes import DTYPES

LLAMA_2_7B = replicas.published_config("Llama-2-7b-chat-hf")


def test_llama2_7b_kv_cache_per_token_and_at_full_context():
    cache = kv_cache(derive(LLAMA_2_7B), "fp16", (4096,), (1, 8))
    assert cache.bytes_per_token == 512 * 1024
    assert cache.rows == (KVCacheRow(4096, 1, 2 * 1024**3, False), KVCacheRow(4096, 8, 16 * 1024**3, False))
    assert cache.formula == (
        "per token = num_hidden_layers 32 x 2 (K and V) x num_key_value_heads 32 x head_dim 128 x 2 bytes (fp16) = 524,288 bytes",
        "cache = per token x context x batch",
    )


def test_gqa_divides_the_cache_by_the_group_size():
    gqa = derive(replicas.published_config("Llama-2-70b-hf"))
    assert kv_cache(gqa, "fp16", (1,), (1,)).bytes_per_token == 320 * 1024
    assert (
        kv_cache(derive(replicas.published_config("Meta-Llama-3-8B")), "bf16", (1,), (1,)).bytes_per_token == 128 * 1024
    )


def test_sliding_window_caps_the_cache():
    mistral = derive(replicas.published_config("Mistral-7B-v0.1"))
    cache = kv_cache(mistral, "bf16", (4096, 32768), (1,))
    assert [row.nbytes for row in cache.rows] == [512 * 1024**2, 512 * 1024**2]
    assert cache.formula[1:] == (
        "32 of 32 layers use sliding_window 4096 and keep at most 4096 tokens",
        "cache = 4,096 bytes x (0 x context + 32 x min(context, 4096)) x batch",
    )


def test_gemma2_alternating_sliding_layers():
    config = {
        "model_type": "gemma2",
        "hidden_size": 2304,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "sliding_window": 4096,
        "max_position_embeddings": 8192,
        "vocab_size": 256000,
    }
    arch = derive(config)
    assert arch.sliding_layers == tuple(range(0, 26, 2))
    per_layer = 2 * 4 * 256 * 2
    cache = kv_cache(arch, "bf16", (8192,), (1,))
    assert cache.rows[0].nbytes == per_layer * (13 * 8192 + 13 * 4096)


def test_qwen2_window_off_unless_use_sliding_window():
    config = {
        "model_type": "qwen2",
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "sliding_window": 32768,
        "max_window_layers": 21,
        "use_sliding_window": False,
        "vocab_size": 151936,
    }
    assert (derive(config).sliding_window, derive(config).sliding_layers) == (None, ())
    assert derive({**config, "use_sliding_window": True}).sliding_layers == (21, 22, 23)


def test_layer_types_list_wins():
    config = {
        "hidden_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "sliding_window": 8,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
        "vocab_size": 10,
    }
    assert derive(config).sliding_layers == (0, 2)


def test_mla_caches_the_latent():
    """DeepSeek-V2-Lite: 27 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes."""
    config = {
        "model_type": "deepseek_v2",
        "hidden_size": 2048,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "kv_lora_rank": 512,
        "q_lora_rank": None,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
        "vocab_size": 102400,
        "torch_dtype": "bfloat16",
    }
    cache = kv_cache(derive(config), "bf16", (1,), (1,))
    assert cache.bytes_per_token == 27 * 576 * 2
    assert (
        cache.formula[0]
        == "per token = num_hidden_layers 27 x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes (bf16) = 31,104 bytes"
    )


def test_weight_table_precisions():
    rows = {row.label: row for row in weight_table(6_738_415_616, 13_476_831_232)}
    assert rows["stored"].bits_per_weight == 16
    assert (rows["fp32"].nbytes, rows["bf16/fp16"].nbytes, rows["int8"].nbytes, rows["int4"].nbytes) == (
        26_953_662_464,
        13_476_831_232,
        6_738_415_616,
        3_369_207_808,
    )
    # GGML block sizes and bytes per block (ggml.h): Q8_0 32/34, Q4_0 32/18, K-quants 256 per block.
    assert [(label, rows[label].nbytes) for label in list(rows)[5:]] == [
        ("Q8_0", 6_738_415_616 // 32 * 34),
        ("Q6_K", 6_738_415_616 // 256 * 210),
        ("Q5_K", 6_738_415_616 // 256 * 176),
        ("Q4_K", 6_738_415_616 // 256 * 144),
        ("Q4_0", 6_738_415_616 // 32 * 18),
        ("Q3_K", 6_738_415_616 // 256 * 110),
        ("Q2_K", 6_738_415_616 // 256 * 84),
    ]


def test_gguf_quant_types_come_from_the_dtypes_table(monkeypatch):
    from llm_anatomy.core.dtypes import DType

    monkeypatch.setitem(DTYPES, "Q4_K", DType("Q4_K", 144 * 8, None, "quant", block_size=256, block_bytes=144))
    rows = {row.label: row for row in weight_table(256_000, 512_000)}
    assert (rows["Q4_K"].bits_per_weight, rows["Q4_K"].nbytes) == (4.5, 144_000)


def test_defaults_follow_the_config():
    memory = estimate(
        derive(replicas.published_config("Meta-Llama-3-8B")), 10, 20, None
    )  # config.json's dtype: no weights asked
    assert memory.kv_cache.dtype == "bf16"
    without = {
        k: v for k, v in replicas.published_config("Meta-Llama-3-8B").items() if k not in ("dtype", "torch_dtype")
    }
    assert (
        estimate(derive(without), 10, 20, None).kv_cache.dtype == "fp32"
    )  # torch's default dtype, as transformers loads it
    assert [row.context for row in memory.kv_cache.rows] == [1024, 4096, 8192]


def test_effective_context_after_rope_scaling():
    llama31 = {
        **replicas.published_config("Meta-Llama-3-8B"),
        "max_position_embeddings": 131072,
        "rope_scaling": {
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
    }
    assert (derive(llama31).effective_context, derive(llama31).effective_context_source) == (
        131072,
        "max_position_embeddings 131072",
    )
    yarn = {
        **llama31,
        "max_position_embeddings": 32768,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
    }
    assert (derive(yarn).effective_context, derive(yarn).effective_context_source) == (
        131072,
        "original_max_position_embeddings 32768 x factor 4",
    )
    linear = {**llama31, "max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 2.0}}
    assert derive(linear).effective_context == 8192
    v5 = {
        **llama31,
        "max_position_embeddings": 4096,
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
    }
    assert derive(v5).effective_context == 8192
    unknown = {**llama31, "rope_scaling": {"rope_type": "warp", "factor": 2.0}}
    assert [f.line() for f in derive(unknown).findings] == [
        "config.json: expected a RoPE scaling type this tool knows (default, linear, dynamic, yarn, llama3, longrope, su, proportional), found 'warp'"
    ]


@pytest.fixture
def llama7b(published):
    return published("Llama-2-7b-chat-hf")


def test_cli_context_batch_and_kv_dtype(llama7b, cli):
    result = cli("summary", llama7b, "--context", "2048,4096", "--batch", "1,4", "--kv-dtype", "fp8")
    assert result.code == 0
    table = result.out.split("KV cache (fp8): 256.00 KiB per token\n")[1].splitlines()[:5]
    assert table == [
        "  context  batch    KV cache",
        "    2,048      1  512.00 MiB",
        "    2,048      4    2.00 GiB",
        "    4,096      1    1.00 GiB",
        "    4,096      4    4.00 GiB",
    ]


def test_cli_rejects_bad_context(llama7b, capsys):
    from llm_anatomy.cli.main import main

    with pytest.raises(SystemExit) as exit:
        main(["summary", str(llama7b), "--context", "4k"])
    assert exit.value.code == 2
    assert (
        capsys.readouterr().err
        == "llm-anatomy summary: error: argument --context: expected up to 64 whole numbers in 1..4,294,967,296 separated by commas, found 4k\n"
    )
