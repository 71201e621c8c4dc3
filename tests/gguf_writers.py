"""Tiny GGUF files as llama.cpp's convert_hf_to_gguf.py writes them, for every architecture
transformers' GGUF loader maps: the metadata keys its model classes write (TextModel's
set_gguf_parameters and each architecture's additions) from a tiny transformers config,
and tensors named by gguf's TensorNameMap, transformed as the converter transforms them."""

from __future__ import annotations

import os

# general.architecture -> (transformers config class, tiny settings). Sizes differ from every
# class default, so a field the loader drops shows as a difference.
TINY = {
    "llama": ("LlamaConfig", dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6)),
    "qwen2": ("Qwen2Config", dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6)),
    "qwen2moe": ("Qwen2MoeConfig", dict(vocab_size=128, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, shared_expert_intermediate_size=48, num_experts=4, num_experts_per_tok=2, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6)),
    "qwen3": ("Qwen3Config", dict(vocab_size=128, hidden_size=64, intermediate_size=96, head_dim=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6)),
    "qwen3moe": ("Qwen3MoeConfig", dict(vocab_size=128, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, norm_topk_prob=True, head_dim=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6)),
    "phi3": ("Phi3Config", dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, original_max_position_embeddings=256, rms_norm_eps=1e-6, pad_token_id=0)),
    "gemma2": ("Gemma2Config", dict(vocab_size=128, hidden_size=64, intermediate_size=96, head_dim=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, sliding_window=64, attn_logit_softcapping=40.0, final_logit_softcapping=20.0)),
    "gemma3": ("Gemma3TextConfig", dict(vocab_size=128, hidden_size=64, intermediate_size=96, head_dim=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, sliding_window=64)),
    "nemotron": ("NemotronConfig", dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, norm_eps=1e-6)),
    "starcoder2": ("Starcoder2Config", dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, norm_epsilon=1e-6)),
    "stablelm": ("StableLmConfig", dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, layer_norm_eps=1e-6, use_parallel_residual=False, use_qkv_bias=True)),
    "falcon": ("FalconConfig", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, layer_norm_epsilon=1e-6)),
    "bloom": ("BloomConfig", dict(vocab_size=128, hidden_size=64, n_layer=2, n_head=4, layer_norm_epsilon=1e-6)),
    "gpt2": ("GPT2Config", dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=256, n_ctx=256, layer_norm_epsilon=1e-6)),
    "mamba": ("MambaConfig", dict(vocab_size=128, hidden_size=64, state_size=8, num_hidden_layers=2, conv_kernel=3, expand=2, time_step_rank=8, layer_norm_epsilon=1e-6)),
    "t5": ("T5Config", dict(vocab_size=128, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_heads=4, relative_attention_num_buckets=16, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", decoder_start_token_id=0)),
    "lfm2": ("Lfm2Config", dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, norm_eps=1e-6, conv_L_cache=3, block_auto_adjust_ff_dim=False, layer_types=["conv", "full_attention", "conv", "full_attention"])),
    "gpt-oss": ("GptOssConfig", dict(vocab_size=128, hidden_size=64, intermediate_size=32, head_dim=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=256, rms_norm_eps=1e-6, sliding_window=64)),
}


def tiny_config(arch: str):
    import transformers

    class_name, settings = TINY[arch]
    return getattr(transformers, class_name)(**settings)


def _find(hparams: dict, keys: list[str]):
    return next((hparams[k] for k in keys if hparams.get(k) is not None), None)


def text_model_metadata(writer, hparams: dict) -> None:
    """convert_hf_to_gguf's TextModel.set_gguf_parameters, for the settings tiny configs use."""
    block_count = _find(hparams, ["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
    writer.add_block_count(block_count)
    for add, keys in (
        (writer.add_context_length, ["max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"]),
        (writer.add_embedding_length, ["hidden_size", "n_embd", "dim"]),
        (writer.add_feed_forward_length, ["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"]),
        (writer.add_head_count, ["num_attention_heads", "n_head", "n_heads"]),
        (writer.add_head_count_kv, ["num_key_value_heads", "n_kv_heads"]),
    ):
        value = _find(hparams, keys)
        if value is not None:
            add(value)
    rope = hparams.get("rope_parameters") or {}
    rope = rope.get("full_attention", rope)
    if rope.get("rope_theta") is not None:
        writer.add_rope_freq_base(rope["rope_theta"])
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
    writer.add_rope_scaling_orig_ctx_len(rope.get("original_max_position_embeddings", h.get("original_max_position_embeddings")))
    writer.add_embedding_length(h["hidden_size"])
    writer.add_feed_forward_length(h["intermediate_size"])
    writer.add_block_count(h["num_hidden_layers"])
    writer.add_head_count(h["num_attention_heads"])
    writer.add_head_count_kv(h["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(h["rms_norm_eps"])
    writer.add_rope_dimension_count(int(rope.get("partial_rotary_factor", 1.0) * h["hidden_size"]) // h["num_attention_heads"])
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


def _nemotron(writer, h):
    text_model_metadata(writer, h)
    writer.add_vocab_size(h["vocab_size"])
    writer.add_layer_norm_eps(h["norm_eps"])
    writer.add_rope_dimension_count(int(h["rope_parameters"]["partial_rotary_factor"] * h["hidden_size"]) // h["num_attention_heads"])


def _stablelm(writer, h):
    writer.add_context_length(h["max_position_embeddings"])
    writer.add_embedding_length(h["hidden_size"])
    writer.add_block_count(h["num_hidden_layers"])
    writer.add_feed_forward_length(h["intermediate_size"])
    writer.add_rope_dimension_count(int(h["rope_parameters"]["partial_rotary_factor"] * (h["hidden_size"] // h["num_attention_heads"])))
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


METADATA = {
    "llama": _llama, "qwen2": text_model_metadata, "qwen2moe": _qwen2moe, "qwen3": text_model_metadata,
    "qwen3moe": _qwen3moe, "phi3": _phi3, "gemma2": _gemma2, "gemma3": _gemma3, "nemotron": _nemotron,
    "starcoder2": text_model_metadata, "stablelm": _stablelm, "falcon": _falcon, "bloom": _bloom,
    "gpt2": _gpt2, "mamba": _mamba, "t5": _t5, "lfm2": _lfm2, "gpt-oss": _gpt_oss,
}


def write_gguf(path: str, arch: str, hparams: dict, tensors: dict, name: str | None = None, tokens: int | None = None) -> str:
    """A GGUF with the metadata llama.cpp writes for ARCH from HPARAMS (a config's to_dict()),
    and TENSORS ({gguf name: numpy array}) as given; TOKENS: a vocabulary of that many tokens."""
    import gguf

    writer = gguf.GGUFWriter(path, arch)
    if name is not None:
        writer.add_name(name)
    METADATA[arch](writer, hparams)
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id), ("pad_token_id", writer.add_pad_token_id)):
        if isinstance(hparams.get(key), int):
            add(hparams[key])
    if tokens:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list([f"<t{i}>" for i in range(tokens)])
    for tensor_name, array in tensors.items():
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# Settings the converter writes only as the presence of a tensor: (name, shape, when).
FLAG_TENSORS = {
    "stablelm": (("blk.0.ffn_norm.weight", (64,), lambda c: not c.use_parallel_residual), ("blk.0.attn_q.bias", (64,), lambda c: c.use_qkv_bias)),
}


def embedding_only(folder: str, arch: str, **kwargs) -> tuple[str, object]:
    """The tiny ARCH as GGUF metadata plus its embedding matrix (and output, unless tied): what a config needs."""
    import numpy as np

    config = tiny_config(arch)
    hparams = config.to_dict()
    hidden = _find(hparams, ["hidden_size", "n_embd", "d_model"])
    tensors = {"token_embd.weight": np.zeros((hparams["vocab_size"], hidden), np.float32)}
    for tensor_name, shape, needed in FLAG_TENSORS.get(arch, ()):
        if needed(config):
            tensors[tensor_name] = np.zeros(shape, np.float32)
    if not config.tie_word_embeddings:
        tensors["output.weight"] = np.zeros((hparams["vocab_size"], hidden), np.float32)
    os.makedirs(folder, exist_ok=True)
    kwargs.setdefault("tokens", hparams["vocab_size"])
    return write_gguf(os.path.join(folder, f"tiny-{arch}.gguf"), arch, hparams, tensors, **kwargs), config
