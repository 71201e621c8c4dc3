"""`trace`: the forward pass on the meta device, checked against a real CPU forward of the same
tiny checkpoints (shapes, dtypes) and against torch's FlopCounterMode (FLOPs)."""

from __future__ import annotations

import json

import pytest

import checkpoints
from conftest import imported_by
import hostile

SEQ = 8


def _reference_outputs(folder, batch: int, seq: int) -> dict[str, dict]:
    """What forward hooks see on a real CPU forward of the checkpoint's own model."""
    import torch

    model = checkpoints.reference_model(folder).eval()

    seen = checkpoints.record_module_outputs(model)
    torch.manual_seed(0)
    with torch.no_grad():
        model(input_ids=torch.randint(0, model.config.vocab_size, (batch, seq)))
    return seen


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_dir", "bert_dir"])
def test_every_output_shape_matches_a_real_cpu_forward(fixture, request, cli):
    folder = request.getfixturevalue(fixture)
    result = cli("trace", folder, "--seq", SEQ, "--batch", 2, "--json")
    assert result.code == 0, result.err
    traced = json.loads(result.out)["modules"]
    reference = _reference_outputs(folder, 2, SEQ)
    assert [m["path"] for m in traced] == [path for path, _ in checkpoints.reference_model(folder).named_modules()]
    for module in traced:
        expected = reference.get(module["path"], {"calls": 0, "outputs": []})
        assert (module["path"], module["calls"], module["outputs"]) == (
            module["path"],
            expected["calls"],
            expected["outputs"],
        )
    assert sum(1 for m in traced if m["calls"]) == len(reference) > 10


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_dir", "bert_dir"])
def test_flops_are_flopcountermode_s_on_the_same_meta_model(fixture, request, cli):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from llm_anatomy.hf import skeleton

    folder = request.getfixturevalue(fixture)
    traced = json.loads(cli("trace", folder, "--seq", SEQ, "--json").out)
    model = skeleton.meta_model(str(folder / "config.json")).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(input_ids=torch.zeros((1, SEQ), dtype=torch.long, device="meta"))
    assert traced["total_flops"] == counter.get_total_flops() > 0
    root = type(model).__name__
    counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    for module in traced["modules"]:
        key = f"{root}.{module['path']}" if module["path"] else root
        assert module["flops"] == counts.get(key, 0), module["path"]
    assert traced["params"] == sum(p.numel() for p in model.parameters())


def test_meta_flops_are_a_real_cpu_forward_s_plus_attention(llama_dir, cli):
    """On the CPU, sdpa runs a fused kernel FlopCounterMode has no formula for, so a real CPU
    forward counts the projections only; on the meta device sdpa decomposes into the two
    matmuls (Q K^T and scores V, 2 x B x heads x N x N x head_dim FLOPs each) and they count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    traced = json.loads(cli("trace", llama_dir, "--seq", SEQ, "--json").out)
    model = checkpoints.reference_model(llama_dir).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(input_ids=torch.ones((1, SEQ), dtype=torch.long))
    layers, heads, head_dim = 2, 4, 16
    assert traced["total_flops"] == counter.get_total_flops() + layers * 2 * (2 * 1 * heads * SEQ * SEQ * head_dim)


def test_trace_text_of_tiny_llama(llama_dir, cli):
    result = cli("trace", llama_dir, "--seq", SEQ)
    assert result.code == 0, result.err
    assert result.out == EXPECTED_LLAMA
    assert result.err == ""


EXPECTED_LLAMA = f"""\
LlamaForCausalLM forward on input_ids [1, 8] (meta device, transformers {checkpoints.TRANSFORMERS_VERSION})
module                                                  input          output         dtype       FLOPs  output bytes
LlamaForCausalLM                                        [1, 8]         [1, 8, 128]    float32    1.15 M      4.00 KiB
├── model: LlamaModel                                   [1, 8]         [1, 8, 64]     float32    1.02 M      2.00 KiB
│   ├── embed_tokens: Embedding                         [1, 8]         [1, 8, 64]     float32         -      2.00 KiB
│   ├── layers: ModuleList  2 x LlamaDecoderLayer       (not called)
│   │   └── 0-1: LlamaDecoderLayer (each)               [1, 8, 64] +3  [1, 8, 64]     float32  507.90 K      2.00 KiB
│   │       ├── self_attn: LlamaAttention               [1, 8, 64] +3  [1, 8, 64]     float32  212.99 K      2.00 KiB
│   │       │   ├── q_proj: Linear                      [1, 8, 64]     [1, 8, 64]     float32   65.54 K      2.00 KiB
│   │       │   ├── k_proj: Linear                      [1, 8, 64]     [1, 8, 32]     float32   32.77 K      1.00 KiB
│   │       │   ├── v_proj: Linear                      [1, 8, 64]     [1, 8, 32]     float32   32.77 K      1.00 KiB
│   │       │   ├── o_proj: Linear                      [1, 8, 64]     [1, 8, 64]     float32   65.54 K      2.00 KiB
│   │       │   ├── (q: 4 heads)                                       [1, 4, 8, 16]  float32
│   │       │   ├── (k: 2 KV heads)                                    [1, 2, 8, 16]  float32
│   │       │   ├── (v: 2 KV heads)                                    [1, 2, 8, 16]  float32
│   │       │   └── (scores = q k^T; softmax; x v)                     [1, 4, 8, 8]   float32   16.38 K      1.00 KiB
│   │       ├── mlp: LlamaMLP                           [1, 8, 64]     [1, 8, 64]     float32  294.91 K      2.00 KiB
│   │       │   ├── gate_proj: Linear                   [1, 8, 64]     [1, 8, 96]     float32   98.30 K      3.00 KiB
│   │       │   ├── up_proj: Linear                     [1, 8, 64]     [1, 8, 96]     float32   98.30 K      3.00 KiB
│   │       │   ├── down_proj: Linear                   [1, 8, 96]     [1, 8, 64]     float32   98.30 K      2.00 KiB
│   │       │   └── act_fn: SiLUActivation              [1, 8, 96]     [1, 8, 96]     float32         -      3.00 KiB
│   │       ├── input_layernorm: LlamaRMSNorm           [1, 8, 64]     [1, 8, 64]     float32         -      2.00 KiB
│   │       └── post_attention_layernorm: LlamaRMSNorm  [1, 8, 64]     [1, 8, 64]     float32         -      2.00 KiB
│   ├── norm: LlamaRMSNorm                              [1, 8, 64]     [1, 8, 64]     float32         -      2.00 KiB
│   └── rotary_emb: LlamaRotaryEmbedding                [1, 8, 64] +1  [1, 8, 16] +1  float32         -      1.00 KiB
└── lm_head: Linear                                     [1, 8, 64]     [1, 8, 128]    float32  131.07 K      4.00 KiB
prefill: 1,146,880 FLOPs (1.15 M) for 1 x 8 tokens, as torch's FlopCounterMode counts them (matrix products only: norms, activations and softmax count 0)
  matrix products with the weights: 1,114,112 = 2 x 69,632 multiply-adds per token x 8 tokens; the 2 x parameters rule: 2 x 78,144 x 8 tokens = 1,250,304 (1.25 M); weights / rule = 0.891
  attention (q k^T and scores x v, counted 32,768): 2 layers x 2 x batch 1 x heads 4 x queries 8 x keys 8 x (head_dim 16 + 16) = 32,768; it grows with the square of the length
FLOPs per generated token at 8 tokens of context: 143,360 (143.36 K; prefill / tokens, each query counted against all 8 keys as the meta device's attention does; --decode --context 8 measures it)
peak activation memory: 18,752 bytes (18.31 KiB) held at once by the tensors this forward creates at batch 1, 8 tokens (weights and the KV cache not included; attention as the math kernel runs it, scores materialized)
KV cache after this forward: 4,096 bytes (4.00 KiB) held by 2 x DynamicLayer keys [1, 2, 8, 16] values [1, 2, 8, 16] float32
  `summary` computes 4,096 bytes (4.00 KiB, fp32) for 1 x 8 tokens
"""


def test_depth_and_kv_cache_agree_with_summary(llama_dir, cli):
    out = cli("trace", llama_dir, "--seq", 100, "--batch", 3, "--depth", 2).out
    summary = json.loads(cli("summary", llama_dir, "--context", 100, "--batch", 3, "--json").out)
    traced = json.loads(cli("trace", llama_dir, "--seq", 100, "--batch", 3, "--json").out)
    assert (
        traced["kv_cache"]["bytes"] == 2 * 2 * 2 * 16 * 4 * 100 * 3
    )  # K and V x layers x KV heads x head_dim x fp32 x tokens
    assert str(traced["kv_cache"]["bytes"]) in json.dumps(summary)
    assert "layers: ModuleList" in out and "0-1: LlamaDecoderLayer" not in out


def test_bert_has_no_kv_cache(bert_dir, cli):
    traced = json.loads(cli("trace", bert_dir, "--seq", SEQ, "--json").out)
    assert traced["kv_cache"] is None and "encoder" in traced["kv_cache_note"]


def test_default_seq_is_the_context_or_2048(gpt2_dir, cli):
    assert json.loads(cli("trace", gpt2_dir, "--json").out)["seq"] == 64  # n_positions


@pytest.mark.slow  # a fresh interpreter imports torch and transformers (~8 s)
def test_unbuildable_config_is_one_line(llama_bf16_dir, tmp_path):
    folder = checkpoints.with_config(
        llama_bf16_dir, tmp_path / "unknown", lambda c: c.update(model_type="not-a-model-type")
    )
    outcome = hostile.run_cli("trace", folder, "--seq", 4, timeout=120)  # torch and transformers import first
    hostile.assert_refused(outcome, codes=(1,))
    assert outcome.err.startswith(
        f"llm-anatomy: {folder}/config.json: expected a config whose forward pass transformers can run on the meta device, found ValueError: "
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--seq", str(10**12)),
            "llm-anatomy: {model}: expected --batch and --seq whose attention scores (batch x 4 heads x tokens x tokens) fit torch's sizes (at most 2**60 elements), found 1 x 4 x 1000000000000 x 1000000000000; choose a shorter --seq or a smaller --batch",
        ),
        (
            ("--seq", "2", "--batch", str(2**55)),
            "llm-anatomy: {model}: expected --batch and --seq whose activations (batch x tokens x vocab_size 128) fit torch's sizes (at most 2**60 elements), found 36028797018963968 x 2 x 128; choose a shorter --seq or a smaller --batch",
        ),
        (("--seq", "0"), None),
        (("--batch", "-3"), None),
    ],
)
def test_absurd_sizes_are_refused(llama_dir, args, message):
    outcome = hostile.run_cli("trace", llama_dir, *args)
    hostile.assert_refused(outcome, codes=(2,), message=message and message.format(model=llama_dir.name))


def test_a_repeated_trace_comes_from_the_cache_without_torch(llama_dir, cli):
    """Nor summary (its patterns take milliseconds to compile: the KV cache row is computed
    without it), the roofline (only for --device) or importlib.util."""
    first = cli("trace", llama_dir, "--seq", 5, "--batch", 2)
    code, loaded, out = imported_by(
        "trace",
        str(llama_dir),
        "--seq",
        "5",
        "--batch",
        "2",
        modules=(
            "torch",
            "transformers",
            "numpy",
            "llm_anatomy.analysis.summary",
            "llm_anatomy.analysis.roofline",
            "importlib.util",
        ),
    )
    assert (code, loaded, out) == (0, [], first.out)
    other_length = cli("trace", llama_dir, "--seq", 6, "--batch", 2, "--json")
    assert json.loads(other_length.out)["modules"][0]["outputs"][0]["shape"] == [2, 6, 128]


# Every weight matrix in a block type: the dtype most parameters are stored in is no float.
ALL_BLOCKS = {
    f"blk.{layer}.{name}": "Q8_0"
    for layer in range(4)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
} | {"token_embd": "Q8_0"}


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_quantized_gguf_kv_cache_is_the_one_transformers_fills_in_summary_and_trace(arch, tmp_path, cli):
    """summary and trace give one KV cache for a quantized GGUF (they said fp16 and float32):
    transformers' GGUF loader loads it in float32, so the cache it fills holds float32 keys and
    values, byte for byte the figure both commands print (docs/kv-cache.md)."""
    import os

    import torch
    import transformers

    import gguf_writers

    path, _ = gguf_writers.whole_model(str(tmp_path), arch, types=ALL_BLOCKS)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=os.path.basename(path))
    with torch.no_grad():
        cache = model(input_ids=torch.zeros((2, 7), dtype=torch.long), use_cache=True).past_key_values
    held = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    assert {layer.keys.dtype for layer in cache.layers} == {torch.float32}
    memory = json.loads(cli("summary", path, "--context", 7, "--batch", 2, "--json").out)["memory"]
    assert memory["kv_cache"]["dtype"] == "fp32"
    assert memory["kv_cache"]["rows"] == [{"context": 7, "batch": 2, "nbytes": held, "beyond_context": False}]
    traced = json.loads(cli("trace", path, "--seq", 7, "--batch", 2, "--json").out)
    assert traced["kv_cache"] == {"bytes": held, "dtype": "fp32", "context": 7, "batch": 2}
    text = cli("summary", path, "--context", 7, "--batch", 2).out
    assert "\nKV cache (fp32): " in text
    assert (
        f"  `summary` computes {held:,} bytes ({held / 1024:.2f} KiB, fp32) for 2 x 7 tokens\n"
        in cli("trace", path, "--seq", 7, "--batch", 2).out
    )


def test_an_encoder_has_flops_per_input_token_and_no_decoding_step(bert_dir, cli):
    """BERT generates nothing: no "per generated token", no `--decode` to point to (it is
    refused for encoders), and no decoding-step bound under --device."""
    out = cli("trace", bert_dir, "--seq", SEQ, "--depth", 0, "--device", "h100").out
    per_token = [line for line in out.splitlines() if line.startswith("FLOPs per")]
    assert per_token == [
        "FLOPs per token of an input of 8 tokens: 30,976 (30.98 K; prefill / tokens, each query counted against all 8 keys; an encoder generates no tokens)"
    ]
    assert "--decode" not in out and "decoding step" not in out
    assert (
        json.loads(cli("trace", bert_dir, "--seq", SEQ, "--device", "h100", "--json").out)["roofline"]["decode"] is None
    )


def test_depth_shows_the_layers_of_a_module_list_it_hides(bert_dir, llama_dir, cli):
    """A ModuleList is never called itself: cut by --depth, its row shows its layers' cells
    (each) instead of "(not called)" over nothing."""
    bert = cli("trace", bert_dir, "--seq", SEQ, "--depth", 2).out.splitlines()
    assert (
        bert[10]
        == "│   └── layer: ModuleList  2 x BertLayer (each)  [1, 8, 32]  [1, 8, 32]     float32  122.88 K      1.00 KiB"
    )
    assert "(not called)" not in "\n".join(bert)
    llama = cli("trace", llama_dir, "--seq", SEQ, "--depth", 2).out.splitlines()
    assert (
        llama[5]
        == "│   ├── layers: ModuleList  2 x LlamaDecoderLayer (each)  [1, 8, 64] +3  [1, 8, 64]     float32  507.90 K      2.00 KiB"
    )
    # Unfolded below, the ModuleList is shown as it is: not called, its layers under it.
    assert "│   ├── layers: ModuleList  2 x LlamaDecoderLayer       (not called)" in EXPECTED_LLAMA
