"""`trace` inside attention, decoding over a KV cache, mixtures of experts and --node, each
checked against a real CPU forward of tiny random models of the family (transformers
save_pretrained, then from_pretrained and forward hooks, output_attentions, past_key_values)."""

from __future__ import annotations

import json

import pytest

import checkpoints
import hostile


def _family(folder, config_class: str, model_class: str, **fields) -> str:
    """A tiny random model of a family, saved with save_pretrained (weights and config)."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = getattr(transformers, config_class)(**fields)
    model = getattr(transformers, model_class)(config)
    model.save_pretrained(folder)
    return folder


FAMILIES = {
    "mixtral": (
        "MixtralConfig",
        "MixtralForCausalLM",
        dict(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=4,
            num_experts_per_tok=2,
        ),
    ),
    "qwen2_moe": (
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        dict(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=48,
            moe_intermediate_size=24,
            shared_expert_intermediate_size=40,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_experts=4,
            num_experts_per_tok=2,
        ),
    ),
    "deepseek_v3": (
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        dict(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=48,
            moe_intermediate_size=16,
            num_hidden_layers=2,
            first_k_dense_replace=1,
            num_attention_heads=4,
            num_key_value_heads=4,
            n_routed_experts=4,
            num_experts_per_tok=2,
            n_group=1,
            topk_group=1,
            q_lora_rank=16,
            kv_lora_rank=16,
            qk_rope_head_dim=8,
            qk_nope_head_dim=8,
            v_head_dim=12,
        ),
    ),
    "gpt_oss": (
        "GptOssConfig",
        "GptOssForCausalLM",
        dict(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            num_local_experts=4,
            num_experts_per_tok=2,
            sliding_window=4,
        ),
    ),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        dict(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention"],
        ),
    ),
}
MOE = ("mixtral", "qwen2_moe", "deepseek_v3", "gpt_oss")
# Sliding-window families beyond gemma3 and gpt_oss, for the KV cache only: Gemma 2 alternates
# sliding and full layers without layer_types; Mistral slides on every layer.
SLIDING = {
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        dict(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            sliding_window=4,
        ),
    ),
    "mistral": (
        "MistralConfig",
        "MistralForCausalLM",
        dict(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            sliding_window=4,
        ),
    ),
}


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    built: dict[str, object] = {}

    def get(name: str):
        if name not in built:
            config_class, model_class, fields = FAMILIES.get(name) or SLIDING[name]
            built[name] = _family(tmp_path_factory.mktemp(name), config_class, model_class, **fields)
        return built[name]

    return get


def _real_forward(folder, batch: int, seq: int, context: int = 0, attentions: bool = False):
    """Module outputs (forward hooks) and the KV cache of a real CPU forward: over input_ids
    [batch, seq], or one token per sequence after a real prefill of `context`. A mixture of
    experts runs transformers' batched_mm experts, routed by the real router. attentions:
    eager attention, whose weights (the scores after softmax) the output carries; else the
    attention transformers picks, as on the meta device."""
    import torch

    options = {"attn_implementation": "eager"} if attentions else {}
    model = checkpoints.reference_model(folder, experts_implementation="batched_mm", **options).eval()

    torch.manual_seed(0)
    with torch.no_grad():
        cache = (
            model(input_ids=torch.randint(0, 100, (batch, context)), use_cache=True).past_key_values
            if context
            else None
        )
        seen = checkpoints.record_module_outputs(model)
        kwargs = {"cache": cache} if cache is not None else {}
        output = model(
            input_ids=torch.randint(0, 100, (batch, 1 if context else seq)),
            output_attentions=attentions,
            use_cache=True,
            **kwargs,
        )
    return seen, output


def _json(cli, folder, *args):
    result = cli("trace", folder, *args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_output_shape_matches_a_real_cpu_forward(name, family, cli):
    folder = family(name)
    traced = _json(cli, folder, "--seq", 6, "--batch", 2)
    seen, _ = _real_forward(folder, 2, 6)
    for module in traced["modules"]:
        expected = seen.get(module["path"], {"calls": 0, "outputs": []})
        assert (module["path"], module["calls"], module["outputs"]) == (
            module["path"],
            expected["calls"],
            expected["outputs"],
        )
    assert sum(1 for m in traced["modules"] if m["calls"]) == len(seen)


@pytest.mark.parametrize("name", ["llama", *sorted(FAMILIES)])
def test_attention_shapes_match_eager_attention_and_the_kv_cache(name, family, llama_dir, cli):
    """q has the config's query heads, k and v what the cache holds (GQA: fewer KV heads), and
    the scores the shape eager attention returns as its attention weights."""
    folder = llama_dir if name == "llama" else family(name)
    traced = _json(cli, folder, "--seq", 6, "--batch", 2)
    _, output = _real_forward(folder, 2, 6, attentions=True)
    calls = traced["attention"]
    assert len(calls) == len(output.attentions) == 2
    for call, weights, layer in zip(calls, output.attentions, output.past_key_values.layers):
        assert call["scores"]["shape"] == list(weights.shape)
        assert call["query"]["shape"][:3] == list(weights.shape[:3])
        if name != "deepseek_v3":  # MLA caches the compressed latent, not k and v
            assert call["key"]["shape"][-2] == weights.shape[-1]
            assert [call["key"]["shape"][1], call["value"]["shape"][1]] == [layer.keys.shape[1], layer.values.shape[1]]
    assert traced["attention_flops"] == sum(c["flops"] for c in calls) > 0


def test_gqa_is_visible_on_the_llama_3_8b_layout(tmp_path, cli):
    from llm_anatomy.replicas import published_config, write_layout

    write_layout(str(tmp_path), published_config("Meta-Llama-3-8B"))
    out = cli("trace", tmp_path, "--seq", 16, "--node", "model.layers.0.self_attn").out
    assert "├── (q: 32 heads)                                     [1, 32, 16, 128]  bfloat16\n" in out
    assert "├── (k: 8 KV heads)                                   [1, 8, 16, 128]   bfloat16\n" in out
    assert (
        "└── (scores = q k^T; softmax; x v)                    [1, 32, 16, 16]   bfloat16    4.19 M     16.00 KiB\n"
        in out
    )


def _held(layers) -> int:
    """Bytes of the storages a real cache's keys and values are views of, each counted once."""
    storages = {
        t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
        for layer in layers
        for t in (layer.keys, layer.values)
    }
    return sum(storages.values())


@pytest.mark.parametrize("name", ["llama", "gpt2", "gemma3", "mixtral", "deepseek_v3"])
def test_decode_kv_cache_equals_a_real_past_key_values(name, family, llama_dir, gpt2_dir, cli):
    folder = {"llama": llama_dir, "gpt2": gpt2_dir}.get(name) or family(name)
    traced = _json(cli, folder, "--decode", "--context", 5, "--batch", 3)
    seen, output = _real_forward(folder, 3, 1, context=5)
    _, weighed = _real_forward(folder, 3, 1, context=5, attentions=True)
    real = [
        {
            "kind": type(layer).__name__,
            "keys": {"shape": list(layer.keys.shape), "dtype": str(layer.keys.dtype).removeprefix("torch.")},
            "values": {"shape": list(layer.values.shape), "dtype": str(layer.values.dtype).removeprefix("torch.")},
            "held_bytes": _held([layer]),
        }
        for layer in output.past_key_values.layers
    ]
    assert [{k: v for k, v in layer.items() if k != "bytes"} for layer in traced["cache_layers"]] == real
    assert (traced["mode"], traced["seq"], traced["context"]) == ("decode", 1, 5)
    for module in traced["modules"]:
        expected = seen.get(module["path"], {"calls": 0, "outputs": []})
        assert (module["path"], module["outputs"]) == (module["path"], expected["outputs"])
    for call, weights in zip(traced["attention"], weighed.attentions, strict=True):
        assert call["scores"]["shape"] == list(weights.shape)


def test_decode_totals_show_the_attention_term_growing_with_the_context(llama_dir, cli):
    short = _json(cli, llama_dir, "--decode", "--context", 10)
    long = _json(cli, llama_dir, "--decode", "--context", 110)
    layers, heads, head_dim = 2, 4, 16
    assert long["attention_flops"] - short["attention_flops"] == layers * 2 * heads * 100 * 2 * head_dim
    assert long["total_flops"] - long["attention_flops"] == short["total_flops"] - short["attention_flops"]
    assert short["flops_per_token"] == short["total_flops"]
    # every weight but the embedding (128 x 64) and the five norms of 64: 78,144 - 8,192 - 320
    assert short["weight_macs_per_token"] == long["weight_macs_per_token"] == 69_632
    out = cli("trace", llama_dir, "--decode", "--context", 10).out
    assert (
        "attention (q k^T and scores x v, counted 5,632): 2 layers x 2 x batch 1 x heads 4 x queries 1 x keys 11 x (head_dim 16 + 16) = 5,632; it grows linearly with the context"
        in out
    )


def test_kv_cache_after_the_forward_equals_summary(llama_dir, gpt2_dir, cli):
    for folder in (llama_dir, gpt2_dir):
        traced = _json(cli, folder, "--seq", 12, "--batch", 3)
        assert sum(layer["bytes"] for layer in traced["cache_layers"]) == traced["kv_cache"]["bytes"]
        decoded = _json(cli, folder, "--decode", "--context", 11, "--batch", 3)
        assert (
            sum(layer["bytes"] for layer in decoded["cache_layers"])
            == decoded["kv_cache"]["bytes"]
            == traced["kv_cache"]["bytes"]
        )


@pytest.mark.parametrize("name", ["gemma3", "gpt_oss", *SLIDING])
def test_sliding_window_kv_cache_is_what_a_real_cache_holds(name, family, cli):
    """Window 4. Decoding a real CPU cache token by token, each sliding-window layer shows its
    last 3 tokens (DynamicSlidingWindowLayer keeps window - 1) as views of the 4 it concatenated:
    what `summary` counts at each context (min(context, window)) and what trace holds after a
    decoding step. A prefill's cache still holds all its tokens until the next step: trace says
    so and shows it."""
    import torch

    folder = family(name)
    contexts = range(2, 9)
    rows = json.loads(cli("summary", folder, "--context", ",".join(map(str, contexts)), "--batch", 2, "--json").out)[
        "memory"
    ]["kv_cache"]["rows"]
    model = checkpoints.reference_model(folder).eval()
    held = {}
    with torch.no_grad():
        output = model(input_ids=torch.randint(0, 100, (2, contexts[0])), use_cache=True)
        held[contexts[0]] = _held(output.past_key_values.layers)
        for context in contexts[1:]:
            output = model(input_ids=torch.randint(0, 100, (2, 1)), cache=output.past_key_values, use_cache=True)
            held[context] = _held(output.past_key_values.layers)
        prefill = model(input_ids=torch.randint(0, 100, (2, 7)), use_cache=True).past_key_values
    assert [row["nbytes"] for row in rows] == [held[c] for c in contexts]
    assert [
        layer.keys.shape[-2] for layer in prefill.layers if type(layer).__name__ == "DynamicSlidingWindowLayer"
    ] != []
    for context in contexts[1:]:
        decoded = _json(cli, folder, "--decode", "--context", context - 1, "--batch", 2)
        assert (
            sum(layer["held_bytes"] for layer in decoded["cache_layers"])
            == decoded["kv_cache"]["bytes"]
            == held[context]
        )
    traced = _json(cli, folder, "--seq", 7, "--batch", 2, "--device", "h100 sxm")
    assert (
        sum(layer["held_bytes"] for layer in traced["cache_layers"])
        == _held(prefill.layers)
        > traced["kv_cache"]["bytes"]
        == held[7]
    )
    assert (
        traced["roofline"]["decode"]["bytes"] == traced["weight_bytes"] + held[7]
    )  # the next step reads what decoding holds
    out = cli("trace", folder, "--seq", 7, "--batch", 2).out
    assert (
        "DynamicSlidingWindowLayer keys [2, 2, 3, 8] values [2, 2, 3, 8] float32 (views of the last 3 of 7 tokens held)"
        in out
    )
    assert "until the first decoding step, these layers still hold the prefill's tokens" in out
    assert (
        "until the first decoding step" not in cli("trace", folder, "--seq", 4, "--batch", 2).out
    )  # the window: as summary


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert", "no_dtype", "gemma3", "gpt_oss", "deepseek_v3", *SLIDING])
def test_trace_s_kv_cache_row_is_summary_s(name, family, llama_dir, gpt2_dir, bert_dir, llama_bf16_dir, tmp_path, cli):
    """One computation for both (memory.kv_cache_of): sliding windows capped alike (window 4,
    7 tokens), MLA's latent, an encoder's note, and the dtype when config.json names none
    (bf16, the stored weights', where the default would be fp16)."""
    folders = {"llama": llama_dir, "gpt2": gpt2_dir, "bert": bert_dir}
    if name == "no_dtype":
        folders[name] = checkpoints.with_config(
            llama_bf16_dir, tmp_path / "no_dtype", lambda c: [c.pop(k, None) for k in ("dtype", "torch_dtype")]
        )
    folder = folders.get(name) or family(name)
    memory = json.loads(cli("summary", folder, "--context", 7, "--batch", 2, "--json").out)["memory"]
    expected = (
        {
            "bytes": memory["kv_cache"]["rows"][0]["nbytes"],
            "dtype": memory["kv_cache"]["dtype"],
            "context": 7,
            "batch": 2,
        }
        if memory["kv_cache"]
        else None
    )
    for args in (("--seq", 7), ("--decode", "--context", 6))[
        : 1 if name == "bert" else 2
    ]:  # an encoder does not decode
        traced = _json(cli, folder, *args, "--batch", 2)
        assert (traced["kv_cache"], traced["kv_cache_note"]) == (expected, memory["kv_cache_note"])
    if name == "no_dtype":
        assert expected["dtype"] == "bf16"


@pytest.mark.parametrize("name", MOE)
def test_moe_flops_are_flopcountermode_s_with_top_k_experts_per_token(name, family, cli):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from llm_anatomy.hf import skeleton

    folder = family(name)
    traced = _json(cli, folder, "--seq", 5, "--batch", 2)
    model = skeleton.meta_model(str(folder / "config.json"), experts_implementation="batched_mm").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(input_ids=torch.zeros((2, 5), dtype=torch.long, device="meta"))
    assert traced["total_flops"] == counter.get_total_flops()
    assert traced["experts"] == {"top_k": 2, "experts": 4}
    config = model.config
    experts = next(m for m in traced["modules"] if m["path"].endswith("mlp.experts"))
    hidden = config.hidden_size
    inner = getattr(config, "moe_intermediate_size", None) or config.intermediate_size
    # gate and up (2 x inner outputs), then down, for 2 x 5 tokens x top-2 experts each
    assert experts["flops"] == 2 * 5 * 2 * (2 * hidden * 2 * inner + 2 * inner * hidden)


def test_moe_text_says_how_experts_are_counted(family, cli):
    out = cli("trace", family("mixtral"), "--seq", 4).out
    assert (
        "experts: each token runs its router's top 2 of 4 experts, counted as run (transformers' batched_mm experts); the meta device has no values to route by, so these are the expected FLOPs: exact per token, whichever experts are picked"
        in out
    )


def test_node_traces_one_subtree(llama_dir, cli):
    whole = _json(cli, llama_dir, "--seq", 8)
    part = _json(cli, llama_dir, "--seq", 8, "--node", "model.layers.1.mlp")
    assert [m["path"] for m in part["modules"]] == [
        "model.layers.1.mlp",
        "model.layers.1.mlp.gate_proj",
        "model.layers.1.mlp.up_proj",
        "model.layers.1.mlp.down_proj",
        "model.layers.1.mlp.act_fn",
    ]
    assert part["modules"] == [m for m in whole["modules"] if m["path"].startswith("model.layers.1.mlp")]
    assert part["attention"] == [] and part["node"] == "model.layers.1.mlp"
    text = cli("trace", llama_dir, "--seq", 8, "--node", "model.layers.1.mlp").out
    assert text.splitlines()[:3] == [
        f"model.layers.1.mlp of LlamaForCausalLM forward on input_ids [1, 8] (meta device, transformers {checkpoints.TRANSFORMERS_VERSION})",
        "module                      input       output      dtype       FLOPs  output bytes",
        "mlp: LlamaMLP               [1, 8, 64]  [1, 8, 64]  float32  294.91 K      2.00 KiB",
    ]


@pytest.mark.parametrize(
    ("node", "found"),
    [
        ("model.layers.2", "ModuleList has no attribute `2`"),
        ("model.mlp", "LlamaModel has no attribute `mlp`"),
        ("decoder", "LlamaForCausalLM has no attribute `decoder`"),
    ],
)
def test_a_bad_node_is_get_submodule_s_error(llama_dir, node, found):
    import torch

    model = checkpoints.reference_model(llama_dir)
    with pytest.raises(AttributeError) as raised:
        model.get_submodule(node)
    assert str(raised.value) == found
    outcome = hostile.run_cli(
        "trace", llama_dir, "--seq", 4, "--node", node, timeout=300
    )  # torch and transformers import first
    hostile.assert_refused(
        outcome,
        codes=(2,),
        message=f"llm-anatomy: {llama_dir.name}: expected --node naming a submodule (a path as named_modules() prints it), found {found}; see `llm-anatomy tree` for the paths",
    )
    del torch


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--decode", "--seq", "4"),
            "llm-anatomy: trace: expected --seq for a prefill or --context for a decoding step, found --decode with --seq; use --decode --context C",
        ),
        (
            ("--context", "4"),
            "llm-anatomy: trace: expected --context with --decode, found --context alone; add --decode (a prefill's length is --seq)",
        ),
        (
            ("--decode", "--context", str(2**40)),
            "llm-anatomy: {model}: expected --batch and --context whose attention scores (batch x 4 heads x tokens x tokens) fit torch's sizes (at most 2**60 elements), found 1 x 4 x 1099511627777 x 1099511627777; choose a shorter --context or a smaller --batch",
        ),
    ],
)
def test_bad_decode_options_are_usage_errors(llama_dir, args, message):
    outcome = hostile.run_cli("trace", llama_dir, *args, timeout=60)  # a hang bound: refused before torch is imported
    hostile.assert_refused(outcome, codes=(2,), message=message.format(model=llama_dir.name))


def test_an_encoder_does_not_decode(bert_dir):
    outcome = hostile.run_cli("trace", bert_dir, "--decode", "--context", "4", timeout=60)
    hostile.assert_refused(
        outcome,
        codes=(2,),
        message=f"llm-anatomy: {bert_dir.name}: expected --decode on a model that generates with a KV cache, found model_type bert, an encoder; trace it without --decode",
    )


def test_live_bytes_counts_each_storage_once_until_its_last_tensor_is_freed():
    """The peak-memory instrument on ops whose lifetimes are known: views share their base's
    bytes, a freed tensor's bytes come back, tensors that existed before are not counted."""
    import torch

    from llm_anatomy.analysis.trace_probes import LiveBytes

    weight = torch.empty(1000, device="meta")
    live = LiveBytes([weight], [weight])
    with live:
        a = torch.empty(100, device="meta")  # 400 bytes
        view = a.view(10, 10).t()  # no new bytes
        b = a * 2  # 800 live
        del a, view
        c = b + 1  # a freed: 800 live again
        d = weight[torch.zeros(3, dtype=torch.long, device="meta")]  # a gather of weight rows: not counted
        e = weight.view(10, 100).sum(0)  # the index tensor freed: b, c and e, 1200 live
    assert live.peak() == 400 + 400 + 400
    assert live.peak(leaving_out=[e.untyped_storage()._cdata]) == 400 + 400 + 24  # b, c and the index tensor
    del b, c, d, e
    assert live.live == 0


def test_roofline_bounds_use_the_device_s_published_numbers(llama_dir, cli):
    traced = _json(cli, llama_dir, "--seq", 8, "--device", "h100 sxm")
    roof = traced["roofline"]
    assert roof["device"] == {
        "name": "H100-SXM",
        "peak_flops": 989.4e12,
        "bandwidth": 3350e9,
        "precision": "bf16",
        "source": "NVIDIA H100 datasheet",
    }
    assert traced["weight_bytes"] == traced["params"] * 4  # float32
    moved = traced["weight_bytes"] + sum(layer["held_bytes"] for layer in traced["cache_layers"])
    assert roof["prefill"] == {
        "flops": traced["total_flops"],
        "bytes": moved,
        "seconds_compute": traced["total_flops"] / 989.4e12,
        "seconds_memory": moved / 3350e9,
        "seconds": moved / 3350e9,
        "limit": "memory",
    }
    assert roof["decode"]["flops"] == traced["flops_per_token"] and roof["decode_context"] == 8
    # q_proj: 2 x 8 tokens x 64 x 64 FLOPs over its 64 x 64 fp32 weights, its input and output (8 x 64 fp32 each)
    assert roof["intensity"]["model.layers.0.self_attn.q_proj"] == {
        "flops": 65536,
        "bytes": 4096 * 4 + 2048 + 2048,
        "flops_per_byte": 3.2,
    }
    # the attention core: q (4 heads) and k, v (2 KV heads) in, the output (q's size) out; the scores stay on chip
    assert roof["intensity"]["model.layers.0.self_attn/attention"]["bytes"] == (512 + 256 + 256 + 512) * 4


def test_roofline_text_names_the_numbers_it_used(llama_dir, cli):
    # 2 x 69,632 matrix weights + attention 2 layers x 2 x 4 heads x 8 keys x (16 + 16) = 143,360 FLOPs;
    # 78,144 fp32 weights and a cache of 2 layers x K and V x 2 KV heads x 8 tokens x 16 x 4 bytes
    out = cli("trace", llama_dir, "--decode", "--context", 7, "--device", "RTX4090").out
    assert out.splitlines()[1].endswith("FLOPs  output bytes  FLOP/B")
    assert out.splitlines()[-3:] == [
        "roofline on RTX-4090: 165.20 TFLOP/s dense bf16, 1.01 TB/s (NVIDIA Ada Lovelace whitepaper); ridge 163.9 FLOP/byte: a module whose FLOP/B (FLOPs / (weight + input + output bytes)) is below it is memory-bound",
        "  lower bounds, not predictions: no kernel beats either roof, real ones reach neither",
        "  decoding step >= 314 ns (memory-bound; 1 new token, 1 per sequence, over 7 cached): the larger of 143,360 FLOPs / 165.20 TFLOP/s = 0.868 ns and (weights 312.58 KB + KV cache 4.10 KB) = 316.67 KB / 1.01 TB/s = 314 ns",
    ]


def test_an_unknown_device_is_a_usage_error_naming_the_known_ones(llama_dir):
    outcome = hostile.run_cli("trace", llama_dir, "--device", "TPU-v5", timeout=60)
    hostile.assert_refused(
        outcome,
        codes=(2,),
        message="llm-anatomy: trace: expected --device naming one of H100-SXM, H100-PCIe, H200, A100-80GB, L40S, RTX-4090, RTX-3090, MI300X, MI325X, M2-Max, M3-Max, M4-Max, found 'TPU-v5'; pick the closest, or compare two",
    )


def test_a_damaged_or_forged_cache_entry_is_traced_again(llama_dir, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "cache"))
    first = cli("trace", llama_dir, "--seq", 3)
    (entry,) = (tmp_path / "cache" / "traces").iterdir()
    data = json.loads(entry.read_text())
    for damage in (
        {"modules": [["", "X", -1, 1, [], [], 0, 0]]},
        {"modules": [["", "X", 1, 1, [99], [], 0, 0]]},
        {"metas": [[[1, True], "float32"]]},
        {"peak": "lots"},
        {"cache": [["DynamicLayer", [[1, True], "float32"], [[1], "float32"]]]},
        {"param_dtype": None},
    ):
        entry.write_text(json.dumps({**data, **damage}))
        again = cli("trace", llama_dir, "--seq", 3)
        assert (again.code, again.out, again.err) == (0, first.out, "")
        assert json.loads(entry.read_text()) == data  # written afresh
