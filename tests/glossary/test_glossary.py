"""The glossary data: both languages for every entry, coverage of the families' fields
(checked against transformers' own config classes), aliases that resolve."""

import json
import re

import pytest

from llm_anatomy import glossary
from llm_anatomy.analysis.explain import OPAQUE_OBJECTS

CJK = re.compile(r"[\u4e00-\u9fff]")

# The fields the glossary promises, by family (issue 3).
REQUIRED = {
    "Llama": [
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
        "vocab_size",
        "rms_norm_eps",
        "rope_theta",
        "rope_scaling",
        "pretraining_tp",
        "torch_dtype",
        "tie_word_embeddings",
        "hidden_act",
    ],
    "RoPE scaling": [
        "rope_scaling.rope_type",
        "rope_scaling.factor",
        "rope_scaling.original_max_position_embeddings",
        "rope_scaling.low_freq_factor",
        "rope_scaling.high_freq_factor",
        "rope_scaling.beta_fast",
        "rope_scaling.beta_slow",
        "rope_parameters",
        "rope_parameters.rope_theta",
    ],
    "Mistral": ["sliding_window"],
    "Mixtral": [
        "num_local_experts",
        "num_experts_per_tok",
        "router_aux_loss_coef",
        "output_router_logits",
        "router_jitter_noise",
    ],
    "Qwen": [
        "head_dim",
        "use_sliding_window",
        "max_window_layers",
        "num_experts",
        "moe_intermediate_size",
        "shared_expert_intermediate_size",
        "decoder_sparse_step",
        "mlp_only_layers",
        "norm_topk_prob",
    ],
    "Gemma": [
        "query_pre_attn_scalar",
        "attn_logit_softcapping",
        "final_logit_softcapping",
        "hidden_activation",
        "sliding_window_pattern",
        "rope_local_base_freq",
    ],
    "Phi-3": [
        "original_max_position_embeddings",
        "embd_pdrop",
        "resid_pdrop",
        "rope_scaling.long_factor",
        "rope_scaling.short_factor",
    ],
    "GPT-2": [
        "n_embd",
        "n_layer",
        "n_head",
        "n_positions",
        "n_ctx",
        "n_inner",
        "activation_function",
        "layer_norm_epsilon",
    ],
    "BERT": [
        "type_vocab_size",
        "layer_norm_eps",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "position_embedding_type",
    ],
    "DeepSeek": [
        "kv_lora_rank",
        "q_lora_rank",
        "qk_rope_head_dim",
        "qk_nope_head_dim",
        "v_head_dim",
        "n_routed_experts",
        "n_shared_experts",
        "first_k_dense_replace",
        "moe_layer_freq",
        "routed_scaling_factor",
        "topk_method",
        "n_group",
        "topk_group",
        "scoring_func",
    ],
    "tokens and generation": [
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "max_length",
        "do_sample",
        "temperature",
        "top_k",
        "top_p",
        "repetition_penalty",
        "num_beams",
    ],
}

TRANSFORMERS_CONFIGS = [
    "LlamaConfig",
    "MistralConfig",
    "MixtralConfig",
    "Qwen2Config",
    "Qwen2MoeConfig",
    "Qwen3Config",
    "Qwen3MoeConfig",
    "GemmaConfig",
    "Gemma2Config",
    "Gemma3TextConfig",
    "Gemma4TextConfig",
    "Phi3Config",
    "GPT2Config",
    "BertConfig",
    "DeepseekV2Config",
    "DeepseekV3Config",
]


def _entries():
    data = glossary.load()["fields"]
    for path, entry in data.items():
        yield path, entry
        for value, value_entry in entry.get("values", {}).items():
            yield f"{path}={value}", value_entry


@pytest.mark.parametrize("path, entry", list(_entries()))
def test_every_entry_in_both_languages(path, entry):
    assert set(entry) - {"values"} == set(glossary.LANGUAGES)
    assert entry["en"].strip() and entry["en"].endswith(".") and not CJK.search(entry["en"])
    assert CJK.search(entry["zh"]) and entry["zh"].endswith("。")


@pytest.mark.parametrize("family", REQUIRED)
def test_required_fields(family):
    assert [path for path in REQUIRED[family] if glossary.entry(path) is None] == []


def _paths(config, prefix=""):
    for key, value in config.items():
        yield prefix + key
        if isinstance(value, dict) and key not in OPAQUE_OBJECTS:
            yield from _paths(value, prefix + key + ".")


@pytest.mark.parametrize("name", TRANSFORMERS_CONFIGS)
def test_covers_every_field_transformers_writes(name):
    """Every field of the family's config, as transformers itself writes config.json."""
    import transformers

    config = getattr(transformers, name)().to_dict()
    assert [path for path in _paths(config) if glossary.entry(path) is None] == []


def test_rope_types_explained():
    values = glossary.entry("rope_scaling.rope_type")["values"]
    assert {"default", "linear", "dynamic", "yarn", "llama3", "longrope"} <= set(values)


def test_aliases():
    assert glossary.entry("rope_parameters.factor") is glossary.entry("rope_scaling.factor")
    assert glossary.entry("rope_scaling.type") is glossary.entry("rope_scaling.rope_type")
    assert glossary.entry("rope_parameters.full_attention.rope_type") is glossary.entry("rope_scaling.rope_type")
    assert glossary.entry("text_config.hidden_size") is glossary.entry("hidden_size")
    assert glossary.entry("no_such_field") is None
    fields = glossary.load()["fields"]
    for source, target in glossary.load()["aliases"].items():
        assert target == "" or target in fields or any(path.startswith(target) for path in fields), source


def test_value_explanation_appended():
    assert glossary.explain("torch_dtype", "bfloat16", "en").endswith(
        "float32's range but fewer mantissa bits; the usual training precision of recent LLMs."
    )
    assert (
        glossary.explain("hidden_act", "silu", "zh")
        == "前馈网络中使用的激活函数。silu（swish），即 x * sigmoid(x)；在 Llama 类模型中用作门控，与上投影相乘（SwiGLU）。"
    )
    assert glossary.explain("hidden_act", "mish", "en") == "The activation function inside the feed-forward network."


def test_file_is_one_json_document():
    with open(glossary.GLOSSARY_FILE, encoding="utf-8") as handle:
        assert set(json.load(handle)) == {"about", "aliases", "fields"}
