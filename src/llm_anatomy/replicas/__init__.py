"""Write layout replicas of published checkpoints: the exact tensor names, shapes, dtypes,
shard split, index and config, with data that is all zero (sparse files that take no
disk) or random. Used by `demo`, the benchmarks and the tests; nothing is downloaded."""

from __future__ import annotations

import json
import os
import random
import struct
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Iterable

TORCH_DTYPE_TO_SAFETENSORS = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}
BYTES_PER_ELEMENT = {"F16": 2, "BF16": 2, "F32": 4, "I32": 4, "U32": 4, "U8": 1, "F8_E4M3": 1}


@dataclass(frozen=True)
class TensorSpec:
    """data: the bytes of a tensor whose content the layout needs (bitsandbytes' JSON quant
    state), else empty: the tensor is zero or random like the rest."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes = b""

    @property
    def nbytes(self) -> int:
        n = BYTES_PER_ELEMENT[self.dtype]
        for d in self.shape:
            n *= d
        return n


def published_config(name: str) -> dict[str, Any]:
    """A config shipped with the package (layouts/NAME.json)."""
    return json.loads(resources.files(__package__).joinpath(f"{name}.json").read_text())


def _dense_mlp(prefix: str, dtype: str, inter: int, hidden: int) -> list[TensorSpec]:
    return [
        TensorSpec(prefix + "gate_proj.weight", dtype, (inter, hidden)),
        TensorSpec(prefix + "up_proj.weight", dtype, (inter, hidden)),
        TensorSpec(prefix + "down_proj.weight", dtype, (hidden, inter)),
    ]


def _layer_norms(prefix: str, dtype: str, hidden: int) -> list[TensorSpec]:
    return [
        TensorSpec(prefix + "input_layernorm.weight", dtype, (hidden,)),
        TensorSpec(prefix + "post_attention_layernorm.weight", dtype, (hidden,)),
    ]


def llama_family_specs(config: dict[str, Any]) -> list[TensorSpec]:
    """Tensors of a Llama / Mistral / Mixtral checkpoint in module order, as save_pretrained writes them."""
    dtype = TORCH_DTYPE_TO_SAFETENSORS[config.get("torch_dtype") or config.get("dtype") or "float32"]
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    inter = config["intermediate_size"]
    experts = config.get("num_local_experts")
    specs = [TensorSpec("model.embed_tokens.weight", dtype, (vocab, hidden))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        specs += [
            TensorSpec(p + "self_attn.q_proj.weight", dtype, (heads * head_dim, hidden)),
            TensorSpec(p + "self_attn.k_proj.weight", dtype, (kv_heads * head_dim, hidden)),
            TensorSpec(p + "self_attn.v_proj.weight", dtype, (kv_heads * head_dim, hidden)),
            TensorSpec(p + "self_attn.o_proj.weight", dtype, (hidden, heads * head_dim)),
        ]
        if experts:
            specs.append(TensorSpec(p + "block_sparse_moe.gate.weight", dtype, (experts, hidden)))
            for e in range(experts):
                q = f"{p}block_sparse_moe.experts.{e}."
                specs += [
                    TensorSpec(q + "w1.weight", dtype, (inter, hidden)),
                    TensorSpec(q + "w2.weight", dtype, (hidden, inter)),
                    TensorSpec(q + "w3.weight", dtype, (inter, hidden)),
                ]
        else:
            specs += _dense_mlp(p + "mlp.", dtype, inter, hidden)
        specs += _layer_norms(p, dtype, hidden)
    specs.append(TensorSpec("model.norm.weight", dtype, (hidden,)))
    if not config.get("tie_word_embeddings", False):
        specs.append(TensorSpec("lm_head.weight", dtype, (vocab, hidden)))
    return specs


def _deepseek_layer(p: str, config: dict[str, Any], dtype: str, moe: bool) -> list[TensorSpec]:
    """One DeepSeek-V2/V3 decoder layer: multi-head latent attention, then a dense MLP or experts."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    rope, nope, v = config["qk_rope_head_dim"], config["qk_nope_head_dim"], config["v_head_dim"]
    q_rank, kv_rank = config.get("q_lora_rank"), config["kv_lora_rank"]
    a = p + "self_attn."
    if q_rank:
        specs = [
            TensorSpec(a + "q_a_proj.weight", dtype, (q_rank, hidden)),
            TensorSpec(a + "q_a_layernorm.weight", dtype, (q_rank,)),
            TensorSpec(a + "q_b_proj.weight", dtype, (heads * (nope + rope), q_rank)),
        ]
    else:
        specs = [TensorSpec(a + "q_proj.weight", dtype, (heads * (nope + rope), hidden))]
    specs += [
        TensorSpec(a + "kv_a_proj_with_mqa.weight", dtype, (kv_rank + rope, hidden)),
        TensorSpec(a + "kv_a_layernorm.weight", dtype, (kv_rank,)),
        TensorSpec(a + "kv_b_proj.weight", dtype, (heads * (nope + v), kv_rank)),
        TensorSpec(a + "o_proj.weight", dtype, (hidden, heads * v)),
    ]
    if moe:
        experts, size = config["n_routed_experts"], config["moe_intermediate_size"]
        for e in range(experts):
            specs += _dense_mlp(f"{p}mlp.experts.{e}.", dtype, size, hidden)
        specs += _dense_mlp(p + "mlp.shared_experts.", dtype, size * config["n_shared_experts"], hidden)
        specs.append(TensorSpec(p + "mlp.gate.weight", dtype, (experts, hidden)))
        if config.get("topk_method") == "noaux_tc":  # V3 selects experts with a bias, stored as F32
            specs.append(TensorSpec(p + "mlp.gate.e_score_correction_bias", "F32", (experts,)))
    else:
        specs += _dense_mlp(p + "mlp.", dtype, config["intermediate_size"], hidden)
    return specs + _layer_norms(p, dtype, hidden)


def deepseek_specs(config: dict[str, Any]) -> list[TensorSpec]:
    """Tensors of a DeepSeek-V2/V3 checkpoint: MLA, dense first layers, routed and shared
    experts, and (V3) the multi-token-prediction layers stored after the last layer."""
    dtype = TORCH_DTYPE_TO_SAFETENSORS[config.get("torch_dtype") or "bfloat16"]
    hidden, vocab, layers = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    first_dense, every = config.get("first_k_dense_replace", 0), config.get("moe_layer_freq", 1)
    specs = [TensorSpec("model.embed_tokens.weight", dtype, (vocab, hidden))]
    for i in range(layers):
        specs += _deepseek_layer(f"model.layers.{i}.", config, dtype, i >= first_dense and i % every == 0)
    for i in range(layers, layers + config.get("num_nextn_predict_layers", 0)):
        p = f"model.layers.{i}."
        specs += [
            TensorSpec(p + "embed_tokens.weight", dtype, (vocab, hidden)),
            TensorSpec(p + "enorm.weight", dtype, (hidden,)),
            TensorSpec(p + "hnorm.weight", dtype, (hidden,)),
            TensorSpec(p + "eh_proj.weight", dtype, (hidden, 2 * hidden)),
        ]
        specs += _deepseek_layer(p, config, dtype, True)
        specs += [
            TensorSpec(p + "shared_head.norm.weight", dtype, (hidden,)),
            TensorSpec(p + "shared_head.head.weight", dtype, (vocab, hidden)),
        ]
    specs.append(TensorSpec("model.norm.weight", dtype, (hidden,)))
    specs.append(TensorSpec("lm_head.weight", dtype, (vocab, hidden)))
    return specs


# Quantized layouts: each published repo's stored tensors for one linear weight [out, in].
LINEAR = (
    ".q_proj.weight",
    ".k_proj.weight",
    ".v_proj.weight",
    ".o_proj.weight",
    ".gate_proj.weight",
    ".up_proj.weight",
    ".down_proj.weight",
)
LINEAR += (
    ".q_a_proj.weight",
    ".q_b_proj.weight",
    ".kv_a_proj_with_mqa.weight",
    ".kv_b_proj.weight",
)  # DeepSeek's latent attention


def _gptq_parts(base: str, out: int, inner: int, dtype: str, q: dict[str, Any]) -> list[TensorSpec]:
    """AutoGPTQ: qweight [in*bits/32, out], qzeros [groups, out*bits/32], scales [groups, out], g_idx [in]."""
    bits, groups = q["bits"], inner // q["group_size"]
    return [
        TensorSpec(base + ".g_idx", "I32", (inner,)),
        TensorSpec(base + ".qweight", "I32", (inner * bits // 32, out)),
        TensorSpec(base + ".qzeros", "I32", (groups, out * bits // 32)),
        TensorSpec(base + ".scales", "F16", (groups, out)),
    ]


def _awq_parts(base: str, out: int, inner: int, dtype: str, q: dict[str, Any]) -> list[TensorSpec]:
    """AutoAWQ GEMM: qweight [in, out*bits/32], qzeros [groups, out*bits/32], scales [groups, out]."""
    bits, groups = q["bits"], inner // q["group_size"]
    return [
        TensorSpec(base + ".qweight", "I32", (inner, out * bits // 32)),
        TensorSpec(base + ".qzeros", "I32", (groups, out * bits // 32)),
        TensorSpec(base + ".scales", "F16", (groups, out)),
    ]


def _fp8_block_parts(base: str, out: int, inner: int, dtype: str, q: dict[str, Any]) -> list[TensorSpec]:
    """Fine-grained FP8 (DeepSeek-V3, Qwen3-FP8): weight F8_E4M3 [out, in], weight_scale_inv F32 per block."""
    b0, b1 = q["weight_block_size"]
    return [
        TensorSpec(base + ".weight", "F8_E4M3", (out, inner)),
        TensorSpec(base + ".weight_scale_inv", "F32", (-(-out // b0), -(-inner // b1))),
    ]


def _mlx_parts(base: str, out: int, inner: int, dtype: str, q: dict[str, Any]) -> list[TensorSpec]:
    """MLX affine: weight U32 [out, in*bits/32], scales and biases [out, in/group] in the model's dtype."""
    groups = inner // q["group_size"]
    return [
        TensorSpec(base + ".biases", dtype, (out, groups)),
        TensorSpec(base + ".scales", dtype, (out, groups)),
        TensorSpec(base + ".weight", "U32", (out, inner * q["bits"] // 32)),
    ]


def _bnb4_parts(base: str, out: int, inner: int, dtype: str, q: dict[str, Any]) -> list[TensorSpec]:
    """bitsandbytes 4 bit as transformers saves it (Params4bit's packed quant state): weight U8
    [n/2, 1], absmax per 64 values (U8 codes when double-quantized, with nested_absmax F32 per
    256 blocks and nested_quant_map [256]), quant_map [16], and the state as JSON bytes."""
    n, quant_type, double = out * inner, q["bnb_4bit_quant_type"], q["bnb_4bit_use_double_quant"]
    blocks = -(-n // 64)
    state = {"quant_type": quant_type, "blocksize": 64, "dtype": q["bnb_4bit_compute_dtype"], "shape": [out, inner]}
    if double:
        state.update(nested_blocksize=256, nested_dtype="float32", nested_offset=0.0021457672119140625)
    raw = json.dumps(state).encode()
    w = base + ".weight"
    specs = [
        TensorSpec(w, "U8", (-(-n // 2), 1)),
        TensorSpec(w + ".absmax", "U8" if double else "F32", (blocks,)),
        TensorSpec(w + ".quant_map", "F32", (16,)),
    ]
    if double:
        specs += [
            TensorSpec(w + ".nested_absmax", "F32", (-(-blocks // 256),)),
            TensorSpec(w + ".nested_quant_map", "F32", (256,)),
        ]
    return specs + [TensorSpec(f"{w}.quant_state.bitsandbytes__{quant_type}", "U8", (len(raw),), raw)]


QUANTIZED_PARTS = {
    "gptq": _gptq_parts,
    "awq": _awq_parts,
    "fp8": _fp8_block_parts,
    "mlx": _mlx_parts,
    "bitsandbytes": _bnb4_parts,
}


def quantized_specs(
    config: dict[str, Any], base: Callable[[dict[str, Any]], list[TensorSpec]] = llama_family_specs
) -> list[TensorSpec]:
    """A checkpoint (Llama-family unless base says otherwise) with its linear layers stored as
    config.json's quantization says (GPTQ, AWQ, block FP8, bitsandbytes 4 bit; MLX also
    quantizes the embedding), the rest as is."""
    mlx = config.get("quantization")
    q = mlx or config["quantization_config"]
    scheme = "mlx" if mlx else q["quant_method"]
    specs = []
    for spec in base(config):
        if spec.name.endswith(LINEAR) or (
            scheme == "mlx" and spec.name.endswith(("embed_tokens.weight", "lm_head.weight"))
        ):
            specs += QUANTIZED_PARTS[scheme](spec.name[: -len(".weight")], *spec.shape, spec.dtype, q)
        else:
            specs.append(spec)
    return specs


def gpt_oss_specs(config: dict[str, Any]) -> list[TensorSpec]:
    """openai/gpt-oss: attention with biases and sinks, a router with a bias, experts fused into
    gate_up_proj / down_proj stored as MXFP4 (_blocks U8 [experts, rows, in/32, 16], _scales U8
    [experts, rows, in/32]) with BF16 biases."""
    hidden, vocab, heads, kv = (
        config["hidden_size"],
        config["vocab_size"],
        config["num_attention_heads"],
        config["num_key_value_heads"],
    )
    head_dim, inter, experts = config["head_dim"], config["intermediate_size"], config["num_local_experts"]
    specs = [TensorSpec("model.embed_tokens.weight", "BF16", (vocab, hidden))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        specs += [TensorSpec(p + "input_layernorm.weight", "BF16", (hidden,))]
        for name, rows, cols in (
            ("q_proj", heads * head_dim, hidden),
            ("k_proj", kv * head_dim, hidden),
            ("v_proj", kv * head_dim, hidden),
            ("o_proj", hidden, heads * head_dim),
        ):
            specs += [
                TensorSpec(f"{p}self_attn.{name}.weight", "BF16", (rows, cols)),
                TensorSpec(f"{p}self_attn.{name}.bias", "BF16", (rows,)),
            ]
        specs += [
            TensorSpec(p + "self_attn.sinks", "BF16", (heads,)),
            TensorSpec(p + "post_attention_layernorm.weight", "BF16", (hidden,)),
        ]
        specs += [
            TensorSpec(p + "mlp.router.weight", "BF16", (experts, hidden)),
            TensorSpec(p + "mlp.router.bias", "BF16", (experts,)),
        ]
        for name, rows, cols in (("gate_up_proj", 2 * inter, hidden), ("down_proj", hidden, inter)):
            e = f"{p}mlp.experts.{name}"
            specs += [
                TensorSpec(e + "_blocks", "U8", (experts, rows, cols // 32, 16)),
                TensorSpec(e + "_scales", "U8", (experts, rows, cols // 32)),
                TensorSpec(e + "_bias", "BF16", (experts, rows)),
            ]
    specs += [TensorSpec("model.norm.weight", "BF16", (hidden,)), TensorSpec("lm_head.weight", "BF16", (vocab, hidden))]
    return specs


def split_shards(specs: list[TensorSpec], max_shard_bytes: int) -> list[list[TensorSpec]]:
    """Greedy split in module order, as transformers' save_pretrained does."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


def _fill_random(handle, nbytes: int, dtype: str, rng: random.Random) -> None:
    """Random normal-ish values (std 0.02 like an initialised model), written in 8 MiB blocks."""
    block_elems = 4 * 1024 * 1024
    pattern_code = {"F16": "e", "F32": "f"}.get(dtype)
    values = [rng.gauss(0.0, 0.02) for _ in range(4096)]
    if pattern_code:
        unit = struct.pack(f"<{len(values)}{pattern_code}", *values)
    else:  # BF16: the top half of each float32
        unit = b"".join(struct.pack("<f", v)[2:] for v in values)
    block = unit * (block_elems * BYTES_PER_ELEMENT[dtype] // len(unit))
    written = 0
    while written < nbytes:
        chunk = block[: nbytes - written]
        # rotate so tensors are not all identical
        shift = rng.randrange(0, len(unit), BYTES_PER_ELEMENT[dtype])
        handle.write(chunk[shift:] + chunk[:shift])
        written += len(chunk)


def write_safetensors_layout(path: str, specs: Iterable[TensorSpec], fill: str = "zero", seed: int = 0) -> int:
    """Write one safetensors file; fill 'zero' leaves a sparse hole. Returns its size."""
    specs = list(specs)
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in sorted(specs, key=lambda s: s.name):
        header[spec.name] = {
            "dtype": spec.dtype,
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep data 8-byte aligned, as the safetensors writer does
    rng = random.Random(seed)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        if fill == "random":
            for spec in sorted(specs, key=lambda s: s.name):
                _fill_random(handle, spec.nbytes, spec.dtype, rng)
        handle.truncate(8 + len(raw) + offset)
        for spec in specs:
            if spec.data:
                handle.seek(8 + len(raw) + header[spec.name]["data_offsets"][0])
                handle.write(spec.data[: spec.nbytes])
    return 8 + len(raw) + offset


def write_layout(
    folder: str,
    config: dict[str, Any],
    specs: list[TensorSpec] | None = None,
    max_shard_bytes: int = 10_000_000_000,
    fill: str = "zero",
) -> list[str]:
    """Write config.json, the shards and (when sharded) model.safetensors.index.json."""
    os.makedirs(folder, exist_ok=True)
    specs = specs if specs is not None else llama_family_specs(config)
    shards = split_shards(specs, max_shard_bytes)
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
    weight_map = {}
    for seed, (name, shard) in enumerate(zip(names, shards)):
        write_safetensors_layout(os.path.join(folder, name), shard, fill=fill, seed=seed)
        weight_map.update({spec.name: name for spec in shard})
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(s.nbytes for s in specs)},
            "weight_map": dict(sorted(weight_map.items())),
        }
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as handle:
            json.dump(index, handle, indent=2)
    return [os.path.join(folder, n) for n in names]
