"""`summary`: parameter counts from the tensors, checked against transformers and against
the published figures; config-vs-tensor findings; tied weights; MoE total and active."""

import json

import pytest

from llm_anatomy import replicas
from llm_anatomy.analysis.summary import Count, role_of, summarize
from llm_anatomy.locate import open_catalog

import checkpoints
from conftest import imported_by

# transformers class prefix -> config overrides: one tiny model per family the role table covers.
FAMILIES = {
    "Mixtral": dict(num_local_experts=4, num_experts_per_tok=2),
    "Mistral": dict(num_key_value_heads=1, sliding_window=16),
    "Qwen2": dict(),
    "Qwen3": dict(head_dim=32),
    "Qwen2Moe": dict(
        moe_intermediate_size=32, shared_expert_intermediate_size=48, num_experts=4, num_experts_per_tok=2
    ),
    "Gemma2": dict(head_dim=32),
    "Phi3": dict(pad_token_id=0, eos_token_id=1, bos_token_id=1),
    "DeepseekV2": dict(
        moe_intermediate_size=32,
        n_routed_experts=4,
        n_shared_experts=2,
        num_experts_per_tok=2,
        first_k_dense_replace=1,
        num_key_value_heads=4,
        kv_lora_rank=16,
        q_lora_rank=None,
        qk_rope_head_dim=8,
        qk_nope_head_dim=16,
        v_head_dim=16,
    ),
    "DeepseekV3": dict(
        moe_intermediate_size=32,
        n_routed_experts=4,
        n_shared_experts=1,
        num_experts_per_tok=2,
        n_group=2,
        topk_group=1,
        num_hidden_layers=3,
        first_k_dense_replace=1,
        num_key_value_heads=4,
        kv_lora_rank=16,
        q_lora_rank=24,
        qk_rope_head_dim=8,
        qk_nope_head_dim=16,
        v_head_dim=16,
    ),
}


def _save_family(folder, family):
    import torch
    import transformers

    torch.manual_seed(0)
    config = getattr(transformers, f"{family}Config")(**{**checkpoints.TINY_DECODER, **FAMILIES[family]})
    model = getattr(transformers, f"{family}ForCausalLM")(config)
    model.save_pretrained(folder)
    return model


def _parameter_count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, params, kv_per_token",
    [
        ("Llama-2-7b-chat-hf", 6_738_415_616, 512 * 1024),
        ("Llama-2-70b-hf", 68_976_648_192, 320 * 1024),
        ("Meta-Llama-3-8B", 8_030_261_248, 128 * 1024),
    ],
)
def test_published_dense_figures(published, name, params, kv_per_token):
    summary = summarize(open_catalog(str(published(name))))
    assert summary.total_params == params
    assert summary.memory.kv_cache.bytes_per_token == kv_per_token
    assert summary.findings == ()
    assert [i.from_config == i.from_tensors for i in summary.implied] == [True] * len(summary.implied)


def test_llama2_7b_text(published, cli):
    result = cli("summary", published("Llama-2-7b-chat-hf"))
    assert result.code == 0, result.err
    assert result.out == (
        "Llama-2-7b-chat-hf: 6,738,415,616 parameters (6.74B), 12.55 GiB in F16\n"
        "\n"
        "By component:\n"
        "  component           params   share       bytes  tensors\n"
        "  embeddings     131,072,000    1.9%  250.00 MiB        1\n"
        "  attention    2,147,483,648   31.9%    4.00 GiB      128\n"
        "  mlp          4,328,521,728   64.2%    8.06 GiB       96\n"
        "  norms              266,240   <0.1%  520.00 KiB       65\n"
        "  output head    131,072,000    1.9%  250.00 MiB        1\n"
        "  total        6,738,415,616  100.0%   12.55 GiB      291\n"
        "\n"
        "By layer:\n"
        "  layers               params each         params       bytes\n"
        "  0-31            32 x 202,383,360  6,476,267,520   12.06 GiB\n"
        "  outside layers                      262,148,096  500.01 MiB\n"
        "\n"
        "By dtype:\n"
        "  dtype         params      bytes  tensors\n"
        "  F16    6,738,415,616  12.55 GiB      291\n"
        "\n"
        "Weight matrices, config.json vs tensors:\n"
        "  component      config.json        tensors\n"
        "  embeddings     131,072,000    131,072,000  ok\n"
        "  attention    2,147,483,648  2,147,483,648  ok\n"
        "  mlp          4,328,521,728  4,328,521,728  ok\n"
        "  output head    131,072,000    131,072,000  ok\n"
        "\n"
        "Weights memory:\n"
        "  precision     bits/weight     memory\n"
        "  stored (F16)        16.00  12.55 GiB\n"
        "  fp32                32.00  25.10 GiB\n"
        "  bf16/fp16           16.00  12.55 GiB\n"
        "  int8                 8.00   6.28 GiB\n"
        "  int4                 4.00   3.14 GiB\n"
        "  Q8_0                 8.50   6.67 GiB\n"
        "  Q6_K                 6.56   5.15 GiB\n"
        "  Q5_K                 5.50   4.31 GiB\n"
        "  Q4_K                 4.50   3.53 GiB\n"
        "  Q4_0                 4.50   3.53 GiB\n"
        "  Q3_K                 3.44   2.70 GiB\n"
        "  Q2_K                 2.62   2.06 GiB\n"
        "\n"
        "KV cache (fp16): 512.00 KiB per token\n"
        "  context  batch    KV cache\n"
        "    1,024      1  512.00 MiB\n"
        "    4,096      1    2.00 GiB\n"
        "  per token = num_hidden_layers 32 x 2 (K and V) x num_key_value_heads 32 x head_dim 128 x 2 bytes (fp16) = 524,288 bytes\n"
        "  cache = per token x context x batch\n"
    )


def test_mixtral_total_and_active(published):
    summary = summarize(open_catalog(str(published("Mixtral-8x7B-v0.1"))))
    assert summary.total_params == 46_702_792_704
    assert summary.moe.active == 12_879_925_248
    assert (round(summary.moe.total / 1e9, 1), round(summary.moe.active / 1e9, 1)) == (46.7, 12.9)
    assert (
        summary.moe.formula
        == "active = total 46,702,792,704 - routed experts 45,097,156,608 + 2 of 8 experts x 45,097,156,608 / 8 = 12,879,925,248"
    )
    assert summary.findings == ()


@pytest.mark.slow  # writes DeepSeek-V3's 671B layout replica (~9 s)
def test_deepseek_v3_figures(published):
    """DeepSeek-V3 (BF16 layout): 671B parameters (the model card's figure), 37.6B active
    (the card says 37B), the multi-token-prediction layer (13.5B; the card rounds to 14B)
    apart, MLA caching 576 values per layer and token."""
    summary = summarize(open_catalog(str(published("DeepSeek-V3", replicas.deepseek_specs))))
    mtp = {c.name: c for c in summary.not_counted}["multi-token prediction"]
    assert (summary.total_params, summary.moe.active, mtp.params) == (671_026_404_352, 37_552_282_624, 13_463_426_304)
    assert (round(summary.total_params / 1e9), round(summary.moe.active / 1e9), round(mtp.params / 1e9, 1)) == (
        671,
        38,
        13.5,
    )
    assert summary.memory.kv_cache.bytes_per_token == 61 * 576 * 2
    assert summary.findings == ()


@pytest.mark.parametrize("fixture", ["llama_dir", "llama_tied_dir", "llama_bf16_dir", "bert_dir", "gpt2_dir"])
def test_total_matches_model_parameters(fixture, request):
    """Tied weights once, buffers not counted: the same number transformers' parameters() gives."""
    folder = str(request.getfixturevalue(fixture))
    model = checkpoints.reference_model(folder)
    summary = summarize(open_catalog(folder))
    assert summary.total_params == _parameter_count(model)
    assert summary.findings == ()


@pytest.mark.parametrize("family", FAMILIES)
def test_families_match_transformers(family, tmp_path):
    """Roles cover each family's names: total as transformers counts it, config check clean."""
    model = _save_family(str(tmp_path), family)
    summary = summarize(open_catalog(str(tmp_path)))
    assert summary.total_params == _parameter_count(model)
    assert summary.findings == ()
    assert "other" not in [c.name for c in summary.components]


@pytest.mark.parametrize("variant", ("gemma4", "gemma4-moe"))
def test_gemma4_layers_that_differ(variant, tmp_path):
    """Gemma 4 as transformers saves it (per_layer_config, no global_head_dim): full layers with
    their own head size (and KV heads, the MoE variant's keys being its values), the last
    layers reusing earlier layers' keys and values (no k and v), and in the MoE variant a dense
    MLP beside the experts, twice as wide in the KV-sharing layers. The config check is clean,
    and the KV cache counts only the layers with a k_proj, each with its own width."""
    import torch
    import transformers

    import gguf_writers

    torch.manual_seed(0)
    model = transformers.Gemma4ForCausalLM(gguf_writers.tiny_config(variant))
    model.save_pretrained(str(tmp_path))
    assert "global_head_dim" not in json.loads((tmp_path / "config.json").read_text())
    summary = summarize(open_catalog(str(tmp_path)))
    assert summary.total_params == _parameter_count(model)
    assert summary.findings == ()
    assert [i.from_config == i.from_tensors for i in summary.implied] == [True] * len(summary.implied)
    caching = [
        layer.self_attn.k_proj.out_features for layer in model.model.layers if hasattr(layer.self_attn, "k_proj")
    ]
    assert len(caching) == 2
    assert summary.memory.kv_cache.bytes_per_token == sum(2 * width * 4 for width in caching)  # K and V, fp32


def test_moe_active_counts_experts_per_token(tmp_path):
    model = _save_family(str(tmp_path), "Mixtral")
    routed = sum(p.numel() for name, p in model.named_parameters() if ".experts." in name)
    total = _parameter_count(model)
    summary = summarize(open_catalog(str(tmp_path)))
    assert (summary.moe.total, summary.moe.routed, summary.moe.active) == (
        total,
        routed,
        total - routed + routed * 2 // 4,
    )


def test_deepseek_shared_experts_and_dense_layers(tmp_path):
    _save_family(str(tmp_path), "DeepseekV3")
    summary = summarize(open_catalog(str(tmp_path)))
    components = {c.name: c for c in summary.components}
    assert components["mlp"].params == 3 * 64 * 96  # layer 0 is dense (first_k_dense_replace 1)
    assert components["shared experts"].params == 2 * 3 * 64 * 32  # 1 shared expert in layers 1 and 2
    assert [(c.name, c.tensors) for c in summary.not_counted] == [("buffers", 2)]  # e_score_correction_bias is a buffer


def test_tied_fixture_counts_embedding_once(llama_tied_dir, cli):
    result = cli("summary", llama_tied_dir)
    assert (
        "  the output head is tied to model.embed_tokens.weight (tie_word_embeddings): stored and counted once"
        in result.out.splitlines()
    )
    assert "output head" not in result.out.split("By layer:")[0].replace("the output head is tied", "")
    assert [c.name for c in summarize(open_catalog(str(llama_tied_dir))).components] == [
        "embeddings",
        "attention",
        "mlp",
        "norms",
    ]


def test_tied_head_stored_twice_counted_once(tmp_path):
    config = {
        **checkpoints.TINY_DECODER,
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    specs = replicas.llama_family_specs(config) + [replicas.TensorSpec("lm_head.weight", "F32", (128, 64))]
    replicas.write_layout(str(tmp_path), config, specs)
    summary = summarize(open_catalog(str(tmp_path)))
    assert summary.tied == (
        "lm_head.weight repeats the tied model.embed_tokens.weight (tie_word_embeddings): counted once",
    )
    assert summary.total_params == sum(s.shape[0] * (s.shape[1] if len(s.shape) > 1 else 1) for s in specs) - 128 * 64
    assert summary.findings == ()


def _contradicting_layout(folder):
    """Tensors written for 2 KV heads, config.json then edited to claim 4."""
    config = {
        **checkpoints.TINY_DECODER,
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    replicas.write_layout(str(folder), config)
    (folder / "config.json").write_text(json.dumps({**config, "num_key_value_heads": 4}))
    return folder


def test_config_contradicting_tensors(tmp_path, cli):
    result = cli("summary", _contradicting_layout(tmp_path))
    assert result.code == 0
    assert result.out.split("Findings:\n")[1] == (
        "  model.layers.0.self_attn.k_proj.weight (and 1 more like it): expected shape [64, 64] (num_key_value_heads 4 x head_dim 16, hidden_size 64) from config.json, found [32, 64]\n"
        "  model.layers.0.self_attn.v_proj.weight (and 1 more like it): expected shape [64, 64] (num_key_value_heads 4 x head_dim 16, hidden_size 64) from config.json, found [32, 64]\n"
        "  attention: expected 32,768 parameters in weight matrices, as config.json implies, found 24,576 in the tensors; some tensors may be missing (one shard of several?) or config.json may describe another model\n"
    )
    assert "  attention         32,768   24,576  differs" in result.out.splitlines()
    assert result.out.startswith(f"{tmp_path.name}: 78,144 parameters (78.14K), 305.25 KiB in F32\n")


def test_config_not_json_still_counts(tmp_path, cli):
    replicas.write_layout(str(tmp_path), {**checkpoints.TINY_DECODER, "torch_dtype": "float32"})
    (tmp_path / "config.json").write_text("{not json")
    result = cli("summary", tmp_path)
    assert result.code == 0
    assert result.out.startswith(f"{tmp_path.name}: 78,144 parameters (78.14K), 305.25 KiB in F32\n")
    assert "KV cache: not computed (config.json lacks what it needs; see findings)" in result.out
    assert result.out.split("Findings:\n")[1] == (
        f"  {tmp_path}/config.json: expected a JSON config, found invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); fix or re-download config.json\n"
    )


def test_config_missing_field(tmp_path, cli):
    config = {**checkpoints.TINY_DECODER, "torch_dtype": "float32"}
    replicas.write_layout(str(tmp_path), config)
    del config["num_attention_heads"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = cli("summary", tmp_path)
    assert result.code == 0
    assert (
        "  config.json: expected num_attention_heads (or n_head, num_heads, n_heads) for the attention heads, found no such field"
        in result.out.splitlines()
    )
    assert "KV cache: not computed (config.json lacks what it needs; see findings)" in result.out
    assert "78,144 parameters" in result.out


def test_roles_of_gguf_and_other_spellings():
    assert [
        role_of(n)
        for n in (
            "blk.3.attn_q.weight",
            "blk.3.ffn_gate_exps.weight",
            "blk.0.attn_kv_a_mqa.weight",
            "token_embd.weight",
            "output.weight",
            "output_norm.weight",
        )
    ] == [
        ("attention", "q"),
        ("experts", "expert_gate"),
        ("attention", "kv_a"),
        ("embeddings", "embed"),
        ("output head", "head"),
        ("norms", "norm"),
    ]
    assert role_of("transformer.h.0.attn.c_attn.weight") == ("attention", "qkv")
    assert role_of("transformer.h.0.mlp.c_proj.weight") == ("mlp", "down")
    assert role_of("bert.encoder.layer.0.attention.output.dense.weight") == ("attention", "o")
    assert role_of("bert.encoder.layer.0.output.dense.weight") == ("mlp", "down")
    assert role_of("model.layers.0.self_attn.rotary_emb.inv_freq") == ("buffers", "buffer")


def test_json(published, cli):
    data = json.loads(cli("summary", published("Meta-Llama-3-8B"), "--json").out)
    assert data["total_params"] == 8_030_261_248
    assert data["architecture"]["attention"] == "GQA"
    assert data["memory"]["kv_cache"]["bytes_per_token"] == 131072
    assert data["findings"] == []


@pytest.mark.parametrize("command", [["summary"], ["config", "--explain"]])
def test_header_only_imports(published, command):
    """summary and config --explain read headers only: numpy, torch and transformers stay
    unimported, and so do typing, dataclasses and pathlib (milliseconds each at startup)."""
    code, loaded, out = imported_by(command[0], published("Llama-2-7b-chat-hf"), *command[1:])
    assert (code, loaded) == (0, [])
    assert out.startswith("Llama-2-7b-chat-hf: ")


@pytest.mark.parametrize("builder", ["llama_gguf", "torch_bin", "meta_checkpoint"])
def test_other_formats_count_the_same(builder, llama_dir, tmp_path):
    """GGUF (llama.cpp names, quantized), pytorch_model.bin and Meta's consolidated.00.pth:
    the same components and total as the safetensors folder, and a clean config check."""
    import checkpoints

    target = str(tmp_path / "model.gguf") if builder == "llama_gguf" else str(tmp_path / "m")
    path = getattr(checkpoints, builder)(str(llama_dir), target)
    summary = summarize(open_catalog(path))
    reference = summarize(open_catalog(str(llama_dir)))
    assert [(c.name, c.params) for c in summary.components] == [(c.name, c.params) for c in reference.components]
    assert summary.findings == ()


def test_weights_file_without_config(tmp_path, cli):
    import torch

    import checkpoints

    path = checkpoints.safetensors_file(
        str(tmp_path / "w.safetensors"),
        {"model.embed_tokens.weight": torch.zeros(10, 4), "model.layers.0.mlp.up_proj.weight": torch.zeros(6, 4)},
    )
    result = cli("summary", path)
    assert result.code == 0
    assert result.out.startswith("w.safetensors: 64 parameters (64), 256 B in F32\n")
    assert "KV cache: not computed (config.json lacks what it needs; see findings)" in result.out
    assert (
        result.out.split("Findings:\n")[1]
        == f"  {path}: expected a config.json beside it, found none; the config check and KV cache need it\n"
    )


def test_deepseek_v3_multi_token_prediction_layer(tmp_path, cli):
    """DeepSeek-V3 ships one extra layer for multi-token prediction; transformers ignores it."""
    import torch

    import checkpoints

    model = _save_family(str(tmp_path), "DeepseekV3")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_nextn_predict_layers": 1}))
    extra = {
        "model.layers.3.eh_proj.weight": torch.zeros(64, 128),
        "model.layers.3.enorm.weight": torch.zeros(64),
        "model.layers.3.shared_head.head.weight": torch.zeros(128, 64),
    }
    checkpoints.safetensors_file(str(tmp_path / "mtp.safetensors"), extra)
    summary = summarize(open_catalog(str(tmp_path)))
    assert summary.total_params == _parameter_count(model)
    assert summary.not_counted[1:] == (Count("multi-token prediction", 64 * 128 * 2 + 64, 4 * (64 * 128 * 2 + 64), 3),)
    assert summary.findings == ()
    assert (
        "  not counted: 3 tensors (16,448 parameters) of the multi-token-prediction layers after the last layer (num_nextn_predict_layers), which transformers does not load"
        in cli("summary", tmp_path).out.splitlines()
    )


def test_fp8_scales_are_not_parameters(tmp_path):
    """FP8 checkpoints (DeepSeek-V3) keep a weight_scale_inv per block beside each weight."""
    import torch

    import checkpoints

    model = _save_family(str(tmp_path), "DeepseekV3")
    scales = {
        "model.layers.0.self_attn.q_a_proj.weight_scale_inv": torch.ones(1, 1),
        "model.layers.1.mlp.experts.0.up_proj.weight_scale_inv": torch.ones(1, 1),
    }
    checkpoints.safetensors_file(str(tmp_path / "scales.safetensors"), scales)
    summary = summarize(open_catalog(str(tmp_path)))
    assert summary.total_params == _parameter_count(model)
    assert ("quantization scales", 2) in [(c.name, c.tensors) for c in summary.not_counted]
    assert summary.findings == ()


def test_encoder_keeps_no_kv_cache(bert_dir, cli):
    """BERT attends over the whole input in one pass: there is no KV cache to size."""
    summary = summarize(open_catalog(str(bert_dir)))
    assert summary.architecture.encoder_only is True
    assert summary.memory.kv_cache is None
    out = cli("summary", bert_dir).out
    assert out.endswith(
        "\nKV cache: none (model_type bert is an encoder: it reads the whole input in one pass and caches no keys or values)\n"
    )
    assert (
        json.loads(cli("summary", bert_dir, "--json").out)["memory"]["kv_cache_note"]
        == "model_type bert is an encoder: it reads the whole input in one pass and caches no keys or values"
    )


def test_bert_as_a_decoder_keeps_its_cache(bert_dir, tmp_path):
    """BertLMHeadModel with is_decoder: true generates token by token, with a cache."""
    folder = checkpoints.with_config(bert_dir, tmp_path / "decoder", lambda config: config.update(is_decoder=True))
    summary = summarize(open_catalog(str(folder)))
    assert summary.architecture.encoder_only is False
    assert summary.memory.kv_cache.bytes_per_token == 2 * 2 * 2 * 16 * 4


def test_batchnorm_running_stats_are_buffers_not_parameters(tmp_path, cli):
    """A .pth of a CNN: BatchNorm's running_mean, running_var and num_batches_tracked are buffers."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    path = tmp_path / "cnn.pth"
    torch.save(model.state_dict(), path)
    summary = summarize(open_catalog(str(path)))
    assert summary.total_params == _parameter_count(model) == 130
    assert summary.not_counted == (Count("buffers", 9, 40, 3),)
    out = cli("summary", path).out
    assert out.startswith("cnn.pth: 130 parameters (130), 520 B in F32\n")
    assert "  not counted: 3 buffer tensors (9 values) stored beside the parameters\n" in out
    assert cli("params", path).out.splitlines()[-2:] == [
        "9 tensors, 139 parameters, 560 B in 1 file",
        "note: 3 of these tensors are buffers of the model, not parameters (1.num_batches_tracked, 1.running_mean, 1.running_var: 9 values); `summary` leaves them out of its count",
    ]


def test_context_beyond_the_model_is_flagged(llama_dir, cli):
    """tiny Llama: max_position_embeddings 256; asking for 4096 tokens is flagged, not just sized."""
    summary = summarize(open_catalog(str(llama_dir)), contexts=(128, 4096))
    assert [row.beyond_context for row in summary.memory.kv_cache.rows] == [False, True]
    lines = cli("summary", llama_dir, "--context", "128,4096").out.splitlines()
    table = lines[lines.index("KV cache (fp32): 512 B per token") + 1 :][:3]
    assert table == [
        "  context  batch   KV cache",
        "      128      1  64.00 KiB",
        "    4,096      1   2.00 MiB  beyond the model's context",
    ]
    assert (
        "  ! 4,096 is beyond the model's context of 256 tokens (max_position_embeddings 256): it was not trained for such lengths"
        in lines
    )


def test_encoder_context_beyond_its_positions_is_flagged(bert_dir, cli):
    out = cli("summary", bert_dir, "--context", "4096").out
    assert out.endswith(
        "KV cache: none (model_type bert is an encoder: it reads the whole input in one pass and caches no keys or values)\n"
        "  ! 4,096 is beyond the model's context of 64 tokens (max_position_embeddings 64): it was not trained for such lengths\n"
    )
