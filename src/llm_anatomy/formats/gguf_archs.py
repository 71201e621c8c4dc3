"""GGUF metadata -> transformers config: one row per `general.architecture` that transformers'
own GGUF loader maps (transformers.integrations.ggml.GGUF_CONFIG_MAPPING).

Each row names the config class transformers builds and which `{arch}.KEY` metadata fills
which config field. The fields follow transformers' table, corrected where llama.cpp's
converter writes a key transformers ignores or misnames (docs/formats.md lists each one):
those keys set fields that change the model's shapes or its numerics, and a config that
drops them builds a different model from the one in the file."""

from __future__ import annotations

from collections import namedtuple


class Arch(namedtuple("Arch", "model_type class_name fields constants tensor_flags")):
    """model_type and class_name: what config.json would say; fields: (GGUF key after "{arch}.",
    config field), the first key present filling a field; constants: fields set whatever the
    metadata says (as transformers sets them); tensor_flags: (config field, tensor name, value
    when that tensor is present), for settings the converter writes only as the presence of a tensor."""

    __slots__ = ()


# What llama.cpp writes for a decoder (TextModel.set_gguf_parameters) and the field it came from.
DECODER = (
    ("context_length", "max_position_embeddings"),
    ("block_count", "num_hidden_layers"),
    ("feed_forward_length", "intermediate_size"),
    ("embedding_length", "hidden_size"),
    ("rope.freq_base", "rope_theta"),
    ("attention.head_count", "num_attention_heads"),
    ("attention.head_count_kv", "num_key_value_heads"),
    ("attention.layer_norm_rms_epsilon", "rms_norm_eps"),
    ("attention.key_length", "head_dim"),  # written when the HF config names head_dim
    ("vocab_size", "vocab_size"),
)


def _renamed(fields: tuple[tuple[str, str], ...], key: str, field: str) -> tuple[tuple[str, str], ...]:
    """fields with KEY filling FIELD instead of the field DECODER gives it."""
    return tuple((k, field if k == key else f) for k, f in fields)


EXPERTS = (("expert_count", "num_experts"), ("expert_used_count", "num_experts_per_tok"))
LOCAL_EXPERTS = (("expert_count", "num_local_experts"), ("expert_used_count", "num_experts_per_tok"))
SLIDING = (("attention.sliding_window", "sliding_window"),)
T5_FIELDS = (
    ("context_length", "n_positions"),
    ("block_count", "num_layers"),
    ("feed_forward_length", "d_ff"),
    ("embedding_length", "d_model"),
    ("attention.key_length", "d_kv"),
    ("attention.head_count", "num_heads"),
    ("attention.layer_norm_epsilon", "layer_norm_epsilon"),
    ("attention.relative_buckets_count", "relative_attention_num_buckets"),
    ("decoder_start_token_id", "decoder_start_token_id"),
    ("vocab_size", "vocab_size"),
)

ARCHITECTURES = {
    "llama": Arch("llama", "LlamaForCausalLM", DECODER + (("rope.dimension_count", "head_dim"),), {}, ()),
    "mistral": Arch("mistral", "MistralForCausalLM", DECODER + (("rope.dimension_count", "head_dim"),), {}, ()),
    "qwen2": Arch("qwen2", "Qwen2ForCausalLM", DECODER, {}, ()),
    "qwen2moe": Arch(
        "qwen2_moe",
        "Qwen2MoeForCausalLM",
        DECODER
        + EXPERTS
        + (
            ("expert_feed_forward_length", "moe_intermediate_size"),
            ("expert_shared_feed_forward_length", "shared_expert_intermediate_size"),
        ),
        {},
        (),
    ),
    "qwen3": Arch("qwen3", "Qwen3ForCausalLM", DECODER, {}, ()),
    "qwen3moe": Arch(
        "qwen3_moe",
        "Qwen3MoeForCausalLM",
        DECODER + EXPERTS + (("expert_feed_forward_length", "moe_intermediate_size"),),
        {"norm_topk_prob": True},
        (),
    ),
    "gpt-oss": Arch("gpt_oss", "GptOssForCausalLM", DECODER + LOCAL_EXPERTS + SLIDING, {}, ()),
    "phi3": Arch(
        "phi3",
        "Phi3ForCausalLM",
        DECODER + (("rope.scaling.original_context_length", "original_max_position_embeddings"),),
        {},
        (),
    ),
    "gemma2": Arch(
        "gemma2",
        "Gemma2ForCausalLM",
        DECODER
        + SLIDING
        + (
            ("attn_logit_softcapping", "attn_logit_softcapping"),
            ("final_logit_softcapping", "final_logit_softcapping"),
        ),
        {},
        (),
    ),
    "gemma3": Arch(
        "gemma3_text",
        "Gemma3ForCausalLM",
        DECODER + SLIDING + (("final_logit_softcapping", "final_logit_softcapping"),),
        {},
        (),
    ),
    "nemotron": Arch(
        "nemotron", "NemotronForCausalLM", _renamed(DECODER, "attention.layer_norm_rms_epsilon", "norm_eps"), {}, ()
    ),
    "starcoder2": Arch(
        "starcoder2", "Starcoder2ForCausalLM", DECODER + (("attention.layer_norm_epsilon", "norm_epsilon"),), {}, ()
    ),
    "stablelm": Arch(
        "stablelm",
        "StableLmForCausalLM",
        DECODER + (("attention.layer_norm_epsilon", "layer_norm_eps"),),
        {},
        (
            ("use_qkv_bias", "blk.0.attn_q.bias", True),
            ("use_parallel_residual", "blk.0.ffn_norm.weight", False),
        ),
    ),
    "falcon": Arch(
        "falcon",
        "FalconForCausalLM",
        (
            ("context_length", "max_position_embeddings"),
            ("block_count", "num_hidden_layers"),
            ("embedding_length", "hidden_size"),
            ("rope.freq_base", "rope_theta"),
            ("attention.head_count", "num_attention_heads"),
            ("attention.head_count_kv", "num_kv_heads"),
            ("attention.layer_norm_epsilon", "layer_norm_epsilon"),
            ("vocab_size", "vocab_size"),
        ),
        {"tie_word_embeddings": True},
        (("new_decoder_architecture", "blk.0.attn_norm_2.weight", True),),
    ),
    "bloom": Arch(
        "bloom",
        "BloomForCausalLM",
        (
            ("block_count", "n_layer"),
            ("embedding_length", "hidden_size"),
            ("attention.head_count", "n_head"),
            ("attention.layer_norm_epsilon", "layer_norm_epsilon"),
            ("vocab_size", "vocab_size"),
        ),
        {"tie_word_embeddings": True},
        (),
    ),
    "gpt2": Arch(
        "gpt2",
        "GPT2LMHeadModel",
        (
            ("block_count", "n_layer"),
            ("context_length", "n_positions"),
            ("context_length", "n_ctx"),
            ("embedding_length", "n_embd"),
            ("attention.head_count", "n_head"),
            ("attention.layer_norm_epsilon", "layer_norm_epsilon"),
            ("vocab_size", "vocab_size"),
        ),
        {},
        (),
    ),
    "mamba": Arch(
        "mamba",
        "MambaForCausalLM",
        (
            ("vocab_size", "vocab_size"),
            ("embedding_length", "hidden_size"),
            ("attention.layer_norm_rms_epsilon", "layer_norm_epsilon"),
            ("block_count", "num_hidden_layers"),
            ("ssm.conv_kernel", "conv_kernel"),
            ("ssm.state_size", "state_size"),
            ("ssm.time_step_rank", "time_step_rank"),
            ("ssm.inner_size", "intermediate_size"),
        ),
        {},
        (),
    ),
    # llama.cpp runs T5 with a gated GELU (Flan-T5's), which the converter does not write down.
    "t5": Arch("t5", "T5ForConditionalGeneration", T5_FIELDS, {"feed_forward_proj": "gated-gelu"}, ()),
    "t5encoder": Arch("t5", "T5EncoderModel", T5_FIELDS, {"feed_forward_proj": "gated-gelu"}, ()),
    "minimax-m2": Arch(
        "minimax_m2",
        "MiniMaxM2ForCausalLM",
        DECODER
        + LOCAL_EXPERTS
        + (
            ("rope.dimension_count", "rotary_dim"),
            ("expert_gating_func", "scoring_func"),
        ),
        {"use_routing_bias": True},
        (),
    ),
    # Gemma-4's per-layer settings (layer pattern, global KV heads, double-wide MLPs), rope bases
    # and MoE switch are derived from arrays and tensors in derived_config.GEMMA4; transformers
    # sets the three end-of-generation ids of Gemma-4's vocabulary, where GGUF stores one.
    "gemma4": Arch(
        "gemma4_text",
        "Gemma4ForCausalLM",
        (
            ("context_length", "max_position_embeddings"),
            ("block_count", "num_hidden_layers"),
            ("feed_forward_length", "intermediate_size"),
            ("embedding_length", "hidden_size"),
            ("attention.head_count", "num_attention_heads"),
            ("attention.head_count_kv", "num_key_value_heads"),
            ("attention.layer_norm_rms_epsilon", "rms_norm_eps"),
            ("attention.key_length", "global_head_dim"),  # the full layers'; transformers' only head size
            ("attention.key_length_swa", "head_dim"),  # the sliding layers'
            ("attention.sliding_window", "sliding_window"),
            ("final_logit_softcapping", "final_logit_softcapping"),
            ("attention.shared_kv_layers", "num_kv_shared_layers"),
            ("embedding_length_per_layer_input", "hidden_size_per_layer_input"),
            ("expert_count", "num_experts"),
            ("expert_used_count", "top_k_experts"),
            ("expert_feed_forward_length", "moe_intermediate_size"),
            ("vocab_size", "vocab_size"),
        ),
        {"eos_token_id": [1, 106, 50]},
        (),
    ),
    "lfm2": Arch(
        "lfm2",
        "Lfm2ForCausalLM",
        _renamed(DECODER, "attention.layer_norm_rms_epsilon", "norm_eps") + (("shortconv.l_cache", "conv_L_cache"),),
        {"block_auto_adjust_ff_dim": False},
        (),
    ),
}

# Fields GGUF stores as a number that transformers names: llama.cpp's ExpertGatingFuncType, and
# transformers' own default for a number it does not know.
VALUE_NAMES = {"scoring_func": ({0: "none", 1: "softmax", 2: "sigmoid"}, "softmax")}

# (general.architecture, general.name test, row to use instead), as transformers decides: llama.cpp
# writes Mistral as "llama" (transformers takes it for Mistral only when the name is exactly
# "mistral") and UMT5 as "t5" (when the name contains "umt5").
RENAMED = (
    ("llama", lambda name: name == "mistral", "mistral"),
    ("t5", lambda name: "umt5" in name.lower(), "umt5"),
    ("t5encoder", lambda name: "umt5" in name.lower(), "umt5encoder"),
)
ARCHITECTURES["umt5"] = ARCHITECTURES["t5"]._replace(model_type="umt5", class_name="UMT5ForConditionalGeneration")
ARCHITECTURES["umt5encoder"] = ARCHITECTURES["t5"]._replace(model_type="umt5", class_name="UMT5EncoderModel")

TOKEN_FIELDS = (
    ("tokenizer.ggml.bos_token_id", "bos_token_id"),
    ("tokenizer.ggml.eos_token_id", "eos_token_id"),
    ("tokenizer.ggml.unknown_token_id", "unk_token_id"),
    ("tokenizer.ggml.padding_token_id", "pad_token_id"),
)
RENAMED_ROWS = {"umt5", "umt5encoder"}  # rows no file names in general.architecture
