"""Tiny GGUF files as llama.cpp's convert_hf_to_gguf.py writes them, for every architecture
transformers' GGUF loader maps: the metadata keys its model classes write (TextModel's
set_gguf_parameters and each architecture's additions) from a tiny transformers config,
and tensors named by gguf's TensorNameMap, transformed as the converter transforms them."""

from __future__ import annotations

import os

import checkpoints

# general.architecture -> (transformers config class, tiny settings). Sizes differ from every
# class default, so a field the loader drops shows as a difference.
TINY = {
    "llama": (
        "LlamaConfig",
        dict(
            **checkpoints.TINY_DECODER,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
        ),
    ),
    "qwen2": (
        "Qwen2Config",
        dict(
            **checkpoints.TINY_DECODER,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
        ),
    ),
    "qwen2moe": (
        "Qwen2MoeConfig",
        dict(
            **checkpoints.TINY_DECODER,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=48,
            num_experts=4,
            num_experts_per_tok=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
        ),
    ),
    "qwen3": (
        "Qwen3Config",
        dict(
            **checkpoints.TINY_DECODER,
            head_dim=32,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
        ),
    ),
    "qwen3moe": (
        "Qwen3MoeConfig",
        dict(
            **checkpoints.TINY_DECODER,
            moe_intermediate_size=32,
            num_experts=4,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            head_dim=32,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
        ),
    ),
    "phi3": (
        "Phi3Config",
        dict(
            **checkpoints.TINY_DECODER,
            max_position_embeddings=256,
            original_max_position_embeddings=256,
            rms_norm_eps=1e-6,
            pad_token_id=0,
        ),
    ),
    "gemma2": (
        "Gemma2Config",
        dict(
            **checkpoints.TINY_DECODER,
            head_dim=32,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            sliding_window=64,
            attn_logit_softcapping=40.0,
            final_logit_softcapping=20.0,
        ),
    ),
    "gemma3": (
        "Gemma3TextConfig",
        dict(
            **checkpoints.TINY_DECODER,
            head_dim=32,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            sliding_window=64,
        ),
    ),
    "nemotron": (
        "NemotronConfig",
        dict(
            **checkpoints.TINY_DECODER,
            max_position_embeddings=256,
            norm_eps=1e-6,
        ),
    ),
    "starcoder2": (
        "Starcoder2Config",
        dict(
            **checkpoints.TINY_DECODER,
            max_position_embeddings=256,
            norm_epsilon=1e-6,
        ),
    ),
    "stablelm": (
        "StableLmConfig",
        dict(
            **checkpoints.TINY_DECODER,
            max_position_embeddings=256,
            layer_norm_eps=1e-6,
            use_parallel_residual=False,
            use_qkv_bias=True,
        ),
    ),
    "falcon": (
        "FalconConfig",
        dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, layer_norm_epsilon=1e-6),
    ),
    "bloom": ("BloomConfig", dict(vocab_size=128, hidden_size=64, n_layer=2, n_head=4, layer_norm_epsilon=1e-6)),
    "gpt2": (
        "GPT2Config",
        dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=256, n_ctx=256, layer_norm_epsilon=1e-6),
    ),
    "mamba": (
        "MambaConfig",
        dict(
            vocab_size=128,
            hidden_size=64,
            state_size=8,
            num_hidden_layers=2,
            conv_kernel=3,
            expand=2,
            time_step_rank=8,
            layer_norm_epsilon=1e-6,
        ),
    ),
    "t5": (
        "T5Config",
        dict(
            vocab_size=128,
            d_model=64,
            d_kv=16,
            d_ff=96,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=16,
            layer_norm_epsilon=1e-6,
            feed_forward_proj="gated-gelu",
            decoder_start_token_id=0,
        ),
    ),
    "lfm2": (
        "Lfm2Config",
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            norm_eps=1e-6,
            conv_L_cache=3,
            block_auto_adjust_ff_dim=False,
            layer_types=["conv", "full_attention", "conv", "full_attention"],
        ),
    ),
    "minimax-m2": (
        "MiniMaxM2Config",
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=32,
            head_dim=16,
            rotary_dim=8,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=4,
            num_experts_per_tok=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            scoring_func="sigmoid",
            use_routing_bias=True,
            bos_token_id=1,
            eos_token_id=2,
        ),
    ),
    # Gemma-4 E2B's layout in small: sliding and full layers with their own head sizes, the last
    # two layers reusing earlier layers' KV, per-layer inputs; rope bases off the class defaults.
    "gemma4": (
        "Gemma4TextConfig",
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            global_head_dim=32,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            sliding_window=64,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
            num_kv_shared_layers=2,
            hidden_size_per_layer_input=8,
            vocab_size_per_layer_input=128,
            final_logit_softcapping=20.0,
            eos_token_id=[1, 106, 50],
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0},
                "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 500000.0},
            },
        ),
    ),
    # Gemma-4 26B-A4B's and 31B's layout in small: a MoE block beside each MLP, full layers whose
    # keys are their values with their own KV head count, double-wide MLPs, no per-layer inputs.
    "gemma4-moe": (
        "Gemma4TextConfig",
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            global_head_dim=32,
            num_global_key_value_heads=1,
            attention_k_eq_v=True,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            sliding_window=64,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
            num_kv_shared_layers=2,
            hidden_size_per_layer_input=0,
            use_double_wide_mlp=True,
            enable_moe_block=True,
            num_experts=4,
            top_k_experts=2,
            moe_intermediate_size=32,
            eos_token_id=[1, 106, 50],
        ),
    ),
    "gpt-oss": (
        "GptOssConfig",
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=32,
            head_dim=16,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=4,
            num_experts_per_tok=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            sliding_window=64,
        ),
    ),
}


# Variants: TINY keys that are written as another general.architecture.
VARIANT_OF = {"gemma4-moe": "gemma4"}


def gguf_arch(key: str) -> str:
    """The general.architecture a TINY key is written as."""
    return VARIANT_OF.get(key, key)


def tiny_config(arch: str):
    import transformers

    class_name, settings = TINY[arch]
    return getattr(transformers, class_name)(**settings)


def hparams_of(arch: str, config) -> dict:
    """What the converter reads: config.json as transformers saves CONFIG, with the settings as the
    original names them (Gemma-4's global_head_dim is folded into per_layer_config on load)."""
    return {**config.to_dict(), **TINY[arch][1]}


def _find(hparams: dict, keys: list[str]):
    return next((hparams[k] for k in keys if hparams.get(k) is not None), None)


def text_model_metadata(writer, hparams: dict) -> None:
    """convert_hf_to_gguf's TextModel.set_gguf_parameters, for the settings tiny configs use."""
    block_count = _find(hparams, ["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
    writer.add_block_count(block_count)
    for add, keys in (
        (
            writer.add_context_length,
            [
                "max_position_embeddings",
                "n_ctx",
                "n_positions",
                "max_length",
                "max_sequence_length",
                "model_max_length",
            ],
        ),
        (writer.add_embedding_length, ["hidden_size", "n_embd", "dim"]),
        (
            writer.add_feed_forward_length,
            ["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"],
        ),
        (writer.add_head_count, ["num_attention_heads", "n_head", "n_heads"]),
        (writer.add_head_count_kv, ["num_key_value_heads", "n_kv_heads"]),
    ):
        value = _find(hparams, keys)
        if value is not None:
            add(value)
    rope = hparams.get("rope_parameters") or {}
    if rope.get("full_attention", rope).get("rope_theta") is not None:
        writer.add_rope_freq_base(rope.get("full_attention", rope)["rope_theta"])
    if rope.get("sliding_attention", {}).get("rope_theta") is not None:
        writer.add_rope_freq_base_swa(rope["sliding_attention"]["rope_theta"])
    for add, keys in (
        (writer.add_layer_norm_rms_eps, ["rms_norm_eps", "norm_eps"]),
        (writer.add_layer_norm_eps, ["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"]),
        (writer.add_expert_count, ["num_local_experts", "num_experts", "n_routed_experts"]),
        (writer.add_expert_used_count, ["num_experts_per_tok", "num_experts_per_token", "top_k_experts"]),
    ):
        value = _find(hparams, keys)
        if value is not None:
            add(value)
    if hparams.get("head_dim") is not None:
        writer.add_key_length(hparams["head_dim"])
        writer.add_value_length(hparams["head_dim"])


def _llama(writer, h):
    text_model_metadata(writer, h)
    writer.add_vocab_size(h["vocab_size"])
    writer.add_rope_dimension_count(h.get("head_dim") or h["hidden_size"] // h["num_attention_heads"])


def _qwen2moe(writer, h):
    text_model_metadata(writer, h)
    writer.add_expert_feed_forward_length(h["moe_intermediate_size"])
    writer.add_expert_shared_feed_forward_length(h["shared_expert_intermediate_size"])


def _qwen3moe(writer, h):
    text_model_metadata(writer, h)
    writer.add_expert_feed_forward_length(h["moe_intermediate_size"])


def _phi3(writer, h):
    rope = h["rope_parameters"]
    writer.add_context_length(h["max_position_embeddings"])
    writer.add_rope_scaling_orig_ctx_len(
        rope.get("original_max_position_embeddings", h.get("original_max_position_embeddings"))
    )
    writer.add_embedding_length(h["hidden_size"])
    writer.add_feed_forward_length(h["intermediate_size"])
    writer.add_block_count(h["num_hidden_layers"])
    writer.add_head_count(h["num_attention_heads"])
    writer.add_head_count_kv(h["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(h["rms_norm_eps"])
    writer.add_rope_dimension_count(
        int(rope.get("partial_rotary_factor", 1.0) * h["hidden_size"]) // h["num_attention_heads"]
    )
    writer.add_rope_freq_base(rope["rope_theta"])
    writer.add_sliding_window(h.get("sliding_window") or 0)


def _gemma2(writer, h):
    writer.add_context_length(h["max_position_embeddings"])
    writer.add_embedding_length(h["hidden_size"])
    writer.add_block_count(h["num_hidden_layers"])
    writer.add_feed_forward_length(h["intermediate_size"])
    writer.add_head_count(h["num_attention_heads"])
    writer.add_head_count_kv(h["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(h["rms_norm_eps"])
    writer.add_key_length(h["head_dim"])
    writer.add_value_length(h["head_dim"])
    writer.add_attn_logit_softcapping(h["attn_logit_softcapping"])
    writer.add_final_logit_softcapping(h["final_logit_softcapping"])
    writer.add_sliding_window(h["sliding_window"])


def _gemma3(writer, h):
    text_model_metadata(writer, h)
    writer.add_context_length(h["max_position_embeddings"])
    writer.add_head_count(h["num_attention_heads"])
    writer.add_layer_norm_rms_eps(h["rms_norm_eps"])
    writer.add_key_length(h["head_dim"])
    writer.add_value_length(h["head_dim"])
    rope = h["rope_parameters"]
    writer.add_rope_freq_base(rope.get("full_attention", rope).get("rope_theta", 1_000_000.0))
    if h.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(h["final_logit_softcapping"])
    writer.add_sliding_window(h["sliding_window"])
    writer.add_head_count_kv(h["num_key_value_heads"])


def _gemma4(writer, h):
    """Gemma4Model.set_gguf_parameters: Gemma3Model's keys, then the full layers' head size as
    key_length (the sliding layers' as key_length_swa), the layer pattern, the KV-shared layer
    count and the per-layer input size; per-layer arrays for double-wide MLPs and global KV heads."""
    _gemma3(writer, h)
    writer.add_shared_kv_layers(h["num_kv_shared_layers"])
    writer.add_embedding_length_per_layer_input(h.get("hidden_size_per_layer_input") or 0)
    swa = [t == "sliding_attention" for t in h["layer_types"]]
    writer.add_sliding_window_pattern(swa)
    writer.add_key_length(h["global_head_dim"])
    writer.add_value_length(h["global_head_dim"])
    writer.add_key_length_swa(h["head_dim"])
    writer.add_value_length_swa(h["head_dim"])
    if h.get("moe_intermediate_size") is not None:
        writer.add_expert_feed_forward_length(h["moe_intermediate_size"])
    first_shared = h["num_hidden_layers"] - h["num_kv_shared_layers"]
    if h.get("use_double_wide_mlp"):
        writer.add_feed_forward_length(
            [h["intermediate_size"] * (1 if i < first_shared else 2) for i in range(h["num_hidden_layers"])]
        )
    if h.get("num_global_key_value_heads") is not None:
        writer.add_head_count_kv([h["num_key_value_heads"] if s else h["num_global_key_value_heads"] for s in swa])
    writer.add_rope_dimension_count(h["global_head_dim"])
    writer.add_rope_dimension_count_swa(int(h["head_dim"] * h.get("partial_rotary_factor", 1.0)))
    writer.add_eos_token_id(1)  # SpecialVocab writes one id (the tokenizer's eos); the config lists three


def _nemotron(writer, h):
    text_model_metadata(writer, h)
    writer.add_vocab_size(h["vocab_size"])
    writer.add_layer_norm_eps(h["norm_eps"])
    writer.add_rope_dimension_count(
        int(h["rope_parameters"]["partial_rotary_factor"] * h["hidden_size"]) // h["num_attention_heads"]
    )


def _stablelm(writer, h):
    writer.add_context_length(h["max_position_embeddings"])
    writer.add_embedding_length(h["hidden_size"])
    writer.add_block_count(h["num_hidden_layers"])
    writer.add_feed_forward_length(h["intermediate_size"])
    writer.add_rope_dimension_count(
        int(h["rope_parameters"]["partial_rotary_factor"] * (h["hidden_size"] // h["num_attention_heads"]))
    )
    writer.add_head_count(h["num_attention_heads"])
    writer.add_head_count_kv(h["num_key_value_heads"])
    writer.add_parallel_residual(h.get("use_parallel_residual", True))
    writer.add_layer_norm_eps(h["layer_norm_eps"])


def _falcon(writer, h):
    writer.add_context_length(2048)
    writer.add_tensor_data_layout("jploski")
    writer.add_embedding_length(h["hidden_size"])
    writer.add_feed_forward_length(4 * h["hidden_size"])
    writer.add_block_count(h["num_hidden_layers"])
    writer.add_head_count(h["num_attention_heads"])
    writer.add_head_count_kv(h.get("num_kv_heads") or 1)
    writer.add_layer_norm_eps(h["layer_norm_epsilon"])


def _bloom(writer, h):
    writer.add_context_length(h.get("seq_length", h["hidden_size"]))
    writer.add_embedding_length(h["hidden_size"])
    writer.add_feed_forward_length(4 * h["hidden_size"])
    writer.add_block_count(h["n_layer"])
    writer.add_head_count(h["n_head"])
    writer.add_head_count_kv(h["n_head"])
    writer.add_layer_norm_eps(h["layer_norm_epsilon"])


def _gpt2(writer, h):
    writer.add_block_count(h["n_layer"])
    writer.add_context_length(h["n_ctx"])
    writer.add_embedding_length(h["n_embd"])
    writer.add_feed_forward_length(4 * h["n_embd"])
    writer.add_head_count(h["n_head"])
    writer.add_layer_norm_eps(h["layer_norm_epsilon"])


def _mamba(writer, h):
    writer.add_context_length(2**20)
    writer.add_embedding_length(h["hidden_size"])
    writer.add_feed_forward_length(0)
    writer.add_head_count(0)
    writer.add_block_count(h["num_hidden_layers"])
    writer.add_ssm_conv_kernel(h["conv_kernel"])
    writer.add_ssm_inner_size(h["intermediate_size"])
    writer.add_ssm_state_size(h["state_size"])
    writer.add_ssm_time_step_rank(h["time_step_rank"])
    writer.add_layer_norm_rms_eps(h["layer_norm_epsilon"])


def _t5(writer, h):
    writer.add_context_length(h.get("n_positions", 512))
    writer.add_embedding_length(h["d_model"])
    writer.add_feed_forward_length(h["d_ff"])
    writer.add_block_count(h["num_layers"])
    writer.add_head_count(h["num_heads"])
    writer.add_key_length(h["d_kv"])
    writer.add_value_length(h["d_kv"])
    writer.add_layer_norm_eps(h["layer_norm_epsilon"])
    writer.add_relative_attn_buckets_count(h["relative_attention_num_buckets"])
    writer.add_layer_norm_rms_eps(h["layer_norm_epsilon"])
    writer.add_decoder_start_token_id(h["decoder_start_token_id"])


def _lfm2(writer, h):
    h = dict(h, num_key_value_heads=[h["num_key_value_heads"] if t != "conv" else 0 for t in h["layer_types"]])
    text_model_metadata(writer, h)
    writer.add_vocab_size(h["vocab_size"])
    writer.add_shortconv_l_cache(h["conv_L_cache"])
    writer.add_layer_norm_rms_eps(h["norm_eps"])


def _gpt_oss(writer, h):
    text_model_metadata(writer, h)
    writer.add_sliding_window(h["sliding_window"])
    writer.add_expert_feed_forward_length(h["intermediate_size"])


# convert_hf_to_gguf's ExpertGatingFuncType, written by TextModel from the config's scoring_func.
GATING_FUNC = {"softmax": "SOFTMAX", "sigmoid": "SIGMOID"}


def _minimax_m2(writer, h):
    text_model_metadata(writer, h)
    import gguf

    writer.add_expert_gating_func(gguf.ExpertGatingFuncType[GATING_FUNC[h["scoring_func"]]])
    writer.add_expert_feed_forward_length(h["intermediate_size"])
    writer.add_rope_dimension_count(h["rotary_dim"])


METADATA = {
    "llama": _llama,
    "qwen2": text_model_metadata,
    "qwen2moe": _qwen2moe,
    "qwen3": text_model_metadata,
    "qwen3moe": _qwen3moe,
    "phi3": _phi3,
    "gemma2": _gemma2,
    "gemma3": _gemma3,
    "nemotron": _nemotron,
    "starcoder2": text_model_metadata,
    "stablelm": _stablelm,
    "falcon": _falcon,
    "bloom": _bloom,
    "gpt2": _gpt2,
    "mamba": _mamba,
    "t5": _t5,
    "lfm2": _lfm2,
    "gpt-oss": _gpt_oss,
    "minimax-m2": _minimax_m2,
    "gemma4": _gemma4,
}


def write_gguf(
    path: str, arch: str, hparams: dict, tensors: dict, name: str | None = None, tokens: int | None = None
) -> str:
    """A GGUF with the metadata llama.cpp writes for ARCH from HPARAMS (a config's to_dict()),
    and TENSORS ({gguf name: numpy array}) as given; TOKENS: a vocabulary of that many tokens."""
    import gguf

    writer = gguf.GGUFWriter(path, arch)
    if name is not None:
        writer.add_name(name)
    METADATA[arch](writer, hparams)
    for key, add in (
        ("bos_token_id", writer.add_bos_token_id),
        ("eos_token_id", writer.add_eos_token_id),
        ("pad_token_id", writer.add_pad_token_id),
    ):
        if isinstance(hparams.get(key), int):
            add(hparams[key])
    if tokens:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list([f"<t{i}>" for i in range(tokens)])
    for tensor_name, array in tensors.items():
        if isinstance(array, tuple):  # (quantized bytes, GGML type)
            writer.add_tensor(tensor_name, array[0], raw_dtype=array[1])
        else:
            writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# Settings the converter writes only as the presence of a tensor: (name, shape, when).
FLAG_TENSORS = {
    "stablelm": (
        ("blk.0.ffn_norm.weight", (64,), lambda c: not c.use_parallel_residual),
        ("blk.0.attn_q.bias", (64,), lambda c: c.use_qkv_bias),
    ),
    "gemma4-moe": (
        ("blk.1.attn_k.weight", (32, 64), lambda c: c.attention_k_eq_v),
    ),  # the first full layer: keys, no values
}


def embedding_only(folder: str, arch: str, **kwargs) -> tuple[str, object]:
    """The tiny ARCH as GGUF metadata plus its embedding matrix (and output, unless tied): what a config needs."""
    import numpy as np

    config = tiny_config(arch)
    hparams = hparams_of(arch, config)
    hidden = _find(hparams, ["hidden_size", "n_embd", "d_model"])
    tensors = {"token_embd.weight": np.zeros((hparams["vocab_size"], hidden), np.float32)}
    for tensor_name, shape, needed in FLAG_TENSORS.get(arch, ()):
        if needed(config):
            tensors[tensor_name] = np.zeros(shape, np.float32)
    if not config.tie_word_embeddings:
        tensors["output.weight"] = np.zeros((hparams["vocab_size"], hidden), np.float32)
    os.makedirs(folder, exist_ok=True)
    kwargs.setdefault("tokens", hparams["vocab_size"])
    return write_gguf(os.path.join(folder, f"tiny-{arch}.gguf"), gguf_arch(arch), hparams, tensors, **kwargs), config


# ---------------------------------------------------------------- transformers' name table

NAME_TABLE = os.path.join(os.path.dirname(__file__), os.pardir, "src", "llm_anatomy", "hf", "gguf_names.json")


def _templated(gguf_name: str, hf_name: str) -> tuple[str, str] | None:
    """('blk.1.attn_q', 'model.layers.1.self_attn.q_proj') -> ('blk.{bid}.attn_q', 'model.layers.{bid}.self_attn.q_proj')."""
    import re

    match = re.search(r"(^|\.)blk\.(\d+)\.", gguf_name)
    if match is None:
        return gguf_name, hf_name
    bid = match.group(2)
    hf_match = re.search(rf"\.{bid}\.", hf_name)
    if hf_match is None:
        return None
    return (
        gguf_name[: match.start(2)] + "{bid}" + gguf_name[match.end(2) :],
        hf_name[: hf_match.start() + 1] + "{bid}" + hf_name[hf_match.end() - 1 :],
    )


def transformers_name_table(arch: str) -> dict[str, str]:
    """GGUF tensor name -> transformers parameter name, as transformers' GGUF loader maps them
    (gguf's TensorNameMap for the architecture applied to the model it builds), with {bid} for
    the block number; GGUF tensors it loads into one fused parameter are left out."""
    import tempfile

    import torch
    import transformers
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor, get_gguf_hf_weights_map

    with tempfile.TemporaryDirectory() as folder:
        path, _ = embedding_only(folder, arch)
        config = open_config(path)
    with torch.device("meta"):
        model = getattr(transformers, config["architectures"][0])._from_config(
            transformers.AutoConfig.for_model(**config)
        )
    processor = TENSOR_PROCESSORS.get(gguf_arch(arch), TensorProcessor)(config=config)
    mapping = get_gguf_hf_weights_map(model, processor)
    targets = [hf for hf in mapping.values()]
    table: dict[str, str] = {}
    for gguf_name, hf_name in mapping.items():
        if targets.count(hf_name) > 1:
            continue  # several GGUF tensors fused into one parameter
        moe_pattern = getattr(processor, "GGUF_MOE_WEIGHTS_PATTERN", None)
        if moe_pattern is not None and moe_pattern.fullmatch(gguf_name + ".weight"):
            gguf_name += ".weight"  # stacked experts: transformers maps the file's NAME.weight through NAME
        templated = _templated(gguf_name, hf_name)
        assert templated is not None, (gguf_name, hf_name)
        key, value = templated
        assert table.get(key, value) == value, (key, value, table[key])
        table[key] = value
    return dict(sorted(table.items()))


def open_config(path: str) -> dict:
    from llm_anatomy.locate import open_catalog

    return open_catalog(path).config


def name_tables() -> dict[str, dict[str, str]]:
    """general.architecture -> its table; a variant's rows join its architecture's."""
    tables: dict[str, dict[str, str]] = {}
    for key in sorted(TINY):
        table = tables.setdefault(gguf_arch(key), {})
        for gguf_name, hf_name in transformers_name_table(key).items():
            assert table.setdefault(gguf_name, hf_name) == hf_name, (key, gguf_name)
    return {arch: dict(sorted(table.items())) for arch, table in tables.items()}


if __name__ == "__main__":  # regenerate the packaged table: python tests/gguf_writers.py
    import json

    with open(NAME_TABLE, "w", encoding="utf-8") as handle:
        json.dump(name_tables(), handle, indent=1, sort_keys=True)
        handle.write("\n")


# ---------------------------------------------------------------- whole models, converted as llama.cpp converts them


def _permute(weights, n_head: int, n_head_kv: int):
    """convert_hf_to_gguf's LlamaModel.permute: q and k rows in llama.cpp's rotary layout."""
    if n_head_kv and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _llama_tensor(hf_name, data, config):
    if hf_name.endswith("q_proj.weight"):
        return _permute(data, config.num_attention_heads, config.num_attention_heads)
    if hf_name.endswith("k_proj.weight"):
        return _permute(data, config.num_attention_heads, config.num_key_value_heads)
    return data


def _norm_plus_one(hf_name, data, config):
    return data + 1 if hf_name.endswith("norm.weight") else data


def _gpt2_tensor(hf_name, data, config):
    return data.transpose(1, 0) if hf_name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")) else data


def _bloom_tensor(hf_name, data, config):
    """BloomModel.modify_tensors: fused qkv rows from (head, q/k/v) order to q/k/v, then head."""
    n_head, n_embed = config.n_head, config.hidden_size
    if hf_name.endswith("query_key_value.weight"):
        qkv = data.reshape(n_head, 3, n_embed // n_head, n_embed)
        return torch_cat([qkv[:, i].reshape(-1, n_embed) for i in range(3)])
    if hf_name.endswith("query_key_value.bias"):
        qkv = data.reshape(n_head, 3, n_embed // n_head)
        return torch_cat([qkv[:, i].reshape(n_embed) for i in range(3)])
    return data


def _mamba_tensor(hf_name, data, config):
    if hf_name.endswith(".A_log"):
        return -data.exp()
    return data.squeeze() if hf_name.endswith("conv1d.weight") else data


def _lfm2_tensor(hf_name, data, config):
    return data.squeeze(1) if "conv.conv" in hf_name else data


def _stacked_experts(hf_name, data, config):
    """Qwen2MoeModel.modify_tensors stacks the experts' gate and up matrices into ffn_gate_exps
    and ffn_up_exps ([experts, inter, hidden]): transformers 5 holds them fused as gate_up_proj."""
    if hf_name.endswith("mlp.experts.gate_up_proj"):
        gate, up = data.chunk(2, dim=1)
        return {"ffn_gate_exps.weight": gate, "ffn_up_exps.weight": up}
    if hf_name.endswith("mlp.e_score_correction_bias"):  # MiniMax-M2's routing bias (a buffer)
        return {"exp_probs_b.bias": data}
    return data


# Gemma4Model.filter_tensors and modify_tensors: the layer scalar (a buffer) and the stacked
# experts named NAME.weight, the router's scales renamed; norms are stored as they are.
GEMMA4_RENAMED = {
    ".layer_scalar": "layer_output_scale.weight",
    ".experts.gate_up_proj": "ffn_gate_up_exps.weight",
    ".experts.down_proj": "ffn_down_exps.weight",
    ".router.scale": "ffn_gate_inp.scale",
    ".router.per_expert_scale": "ffn_down_exps.scale",
}


def _gemma4_tensor(hf_name, data, config):
    return next(({name: data} for suffix, name in GEMMA4_RENAMED.items() if hf_name.endswith(suffix)), data)


def _gemma4_rope_freqs(h):
    """Gemma4Model.generate_extra_tensors: the full layers' proportional rope as frequency factors,
    1 for the rotated pairs and 1e30 for the rest."""
    import numpy as np

    rotated = int(h["global_head_dim"] * h["rope_parameters"]["full_attention"]["partial_rotary_factor"] / 2)
    return {"rope_freqs.weight": np.array([1.0] * rotated + [1e30] * (h["global_head_dim"] // 2 - rotated), np.float32)}


# general.architecture -> tensors the converter adds that no transformers weight gives: {name: array}.
EXTRA_TENSORS = {"gemma4": _gemma4_rope_freqs}


def torch_cat(parts):
    import torch

    return torch.cat(parts)


# general.architecture -> what the converter's modify_tensors does to a transformers tensor.
CONVERTED = {
    "llama": _llama_tensor,
    "gemma2": _norm_plus_one,
    "gemma3": _norm_plus_one,
    "nemotron": _norm_plus_one,
    "gpt2": _gpt2_tensor,
    "bloom": _bloom_tensor,
    "mamba": _mamba_tensor,
    "lfm2": _lfm2_tensor,
    "qwen2moe": _stacked_experts,
    "qwen3moe": _stacked_experts,
    "minimax-m2": _stacked_experts,
    "gemma4": _gemma4_tensor,
}


def whole_model(folder: str, arch: str, seed: int = 0, types: dict | None = None) -> tuple[str, object]:
    """The tiny ARCH with random weights, converted to GGUF as llama.cpp converts it: names by
    gguf's TensorNameMap, the converter's value transforms; TYPES: {GGUF name prefix: GGML type}
    for tensors to quantize (others F32)."""
    import gguf
    import torch
    import transformers

    config = tiny_config(arch)
    torch.manual_seed(seed)
    from llm_anatomy.formats.gguf_archs import ARCHITECTURES

    model = getattr(transformers, ARCHITECTURES[gguf_arch(arch)].class_name)(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    arch_id = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == gguf_arch(arch))
    names = gguf.get_tensor_name_map(arch_id, config.num_hidden_layers)
    tied = {alias for alias in model.state_dict() if alias not in dict(model.named_parameters())}
    tensors = {}
    for hf_name, value in model.state_dict().items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias")) or names.get_name(
            hf_name.partition(".")[2], try_suffixes=(".weight", ".bias")
        )
        converted = CONVERTED.get(gguf_arch(arch), lambda n, d, c: d)(hf_name, value.detach().float(), config)
        if isinstance(converted, dict):  # one fused parameter as several GGUF tensors, or a name the map does not give
            block = hf_name.split(".")[2]
            converted = {f"blk.{block}.{part}": data for part, data in converted.items()}
        elif name is None or hf_name in tied:
            continue  # buffers (rotary frequencies), tied weights
        else:  # llama.cpp names stacked experts (transformers' down_proj, no suffix) NAME.weight
            converted = {name + ".weight" if name.endswith("_exps") else name: converted}
        for name, data in converted.items():
            array = (
                data.squeeze().contiguous().numpy() if data.numel() > 1 else data.reshape(1).numpy()
            )  # ModelBase.prepare_tensors drops unit dimensions
            kind = next((t for prefix, t in (types or {}).items() if name.startswith(prefix + ".")), "F32")
            if kind == "F32":
                tensors[name] = array
            else:
                qtype = gguf.GGMLQuantizationType[kind]
                tensors[name] = (gguf.quants.quantize(array, qtype), qtype)
    os.makedirs(folder, exist_ok=True)
    for name, data in EXTRA_TENSORS.get(gguf_arch(arch), lambda h: {})(hparams_of(arch, config)).items():
        tensors[name] = data
    return write_gguf(
        os.path.join(folder, f"tiny-{arch}.gguf"),
        gguf_arch(arch),
        hparams_of(arch, config),
        tensors,
        tokens=config.vocab_size,
    ), config
