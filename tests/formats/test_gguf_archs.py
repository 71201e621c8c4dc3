"""GGUF beyond Llama: for every architecture transformers' GGUF loader maps, the config derived
from a tiny GGUF written as llama.cpp's converter writes it is compared field by field with
transformers' own AutoConfig.from_pretrained(folder, gguf_file=...), and the model it builds
with the one built from the original transformers config."""

import json
import os
import re
import struct

import pytest

import gguf_writers
from repo import ROOT
from conftest import NOT_ON_THE_LIGHT_PATH, imported_by
from llm_anatomy.hf import names as name_maps
from llm_anatomy.locate import open_catalog

FORMATS_PAGE = os.path.join(ROOT, "docs", "formats.md")

# Where transformers' GGUF config is wrong, per architecture: field -> (ours, transformers').
# Ours equals the original transformers config in every case; docs/formats.md lists each one.
# AS_ORIGINAL: ours is whatever the installed transformers writes for the original config (a field
# whose default some releases write into to_dict() and others leave out).
AS_ORIGINAL = object()
TRANSFORMERS_WRONG = {
    "qwen2moe": {"moe_intermediate_size": (32, 1408), "shared_expert_intermediate_size": (48, 5632)},
    "qwen3": {"head_dim": (32, 128)},
    "phi3": {"original_max_position_embeddings": (256, 4096)},
    "qwen3moe": {"moe_intermediate_size": (32, 768)},
    "gemma2": {"attn_logit_softcapping": (40.0, 50.0), "final_logit_softcapping": (20.0, 30.0)},
    "falcon": {
        "layer_norm_epsilon": (1e-06, 1e-05),
        "intermediate_size": (None, 256),
        "num_key_value_heads": (AS_ORIGINAL, 4),
    },  # multi-query: 1 KV head
    "gpt2": {"n_positions": (256, 1024), "feed_forward_length": (None, 256)},
    "mamba": {"max_position_embeddings": (None, 1048576)},
    "t5": {"feed_forward_proj": ("gated-gelu", "relu"), "dense_act_fn": ("gelu_new", "relu")},
    "gpt-oss": {"head_dim": (16, 64), "sliding_window": (64, 128)},
    # transformers reads key_length (the full layers' head size) but not key_length_swa, the layer
    # pattern, the KV-shared layers, the per-layer input size, the softcap or the rope bases.
    "gemma4": {
        "head_dim": (16, 256),
        "layer_types": (
            ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
            ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
        ),
        "per_layer_config": ({"1": {"head_dim": 32}, "3": {"head_dim": 32}}, {"3": {"head_dim": 32}}),
        "num_kv_shared_layers": (2, 0),
        "hidden_size_per_layer_input": (8, 256),
        "vocab_size_per_layer_input": (128, 262144),
        "final_logit_softcapping": (20.0, None),
        "rope_parameters": (
            {
                "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0},
                "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 500000.0},
            },
            {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0},
            },
        ),
    },
}
# Where transformers' GGUF config cannot be built at all: the error it raises.
TRANSFORMERS_REFUSES = {
    "gemma4-moe": "Field 'intermediate_size' expected int, got list"
}  # per-layer feed_forward_length
# Fields GGUF stores as float32: transformers keeps the float32 value, we the decimal it stands for.
FLOAT32_FIELDS = {"rms_norm_eps", "norm_eps", "norm_epsilon", "layer_norm_eps", "layer_norm_epsilon"}


def _config_dict(config) -> dict:
    data = config.to_dict()
    for key in ("transformers_version", "_name_or_path"):
        data.pop(key, None)
    return data


def _float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _ours(tmp_path, config: dict):
    import transformers

    folder = tmp_path / "derived"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return transformers.AutoConfig.from_pretrained(folder)


@pytest.mark.parametrize("arch", sorted(gguf_writers.TINY))
def test_derived_config_equals_transformers_gguf_config(arch, tmp_path):
    import transformers

    path, original = gguf_writers.embedding_only(str(tmp_path / "gguf"), arch)
    derived = open_catalog(path).config
    if arch in TRANSFORMERS_REFUSES:  # ours still equals the original config, field by field
        with pytest.raises(Exception, match=re.escape(TRANSFORMERS_REFUSES[arch])):
            transformers.AutoConfig.from_pretrained(tmp_path / "gguf", gguf_file=os.path.basename(path))
        assert _config_dict(_ours(tmp_path, derived)) == {
            **_config_dict(original),
            "architectures": derived["architectures"],
        }
        return
    theirs = _config_dict(transformers.AutoConfig.from_pretrained(tmp_path / "gguf", gguf_file=os.path.basename(path)))
    ours = _config_dict(_ours(tmp_path, derived))
    assert ours["architectures"] == derived["architectures"]
    wrong = TRANSFORMERS_WRONG.get(arch, {})
    expected = original.to_dict()
    for field in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(field), theirs.get(field)
        if field == "architectures":  # transformers' GGUF config names none (most classes)
            assert mine == [derived["architectures"][0]] and other in (None, mine)
        elif field in wrong:
            ours_expected, theirs_expected = wrong[field]
            assert (mine, other) == (
                expected.get(field) if ours_expected is AS_ORIGINAL else ours_expected,
                theirs_expected,
            ), field
        elif field in FLOAT32_FIELDS and isinstance(mine, float):
            assert other == _float32(mine) and mine == expected[field], field
        else:
            assert mine == other, field
        if field in expected and field != "architectures":
            assert mine == expected[field], field


def test_formats_page_lists_each_field_transformers_gets_wrong():
    with open(FORMATS_PAGE, encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("Where transformers' own GGUF loader") :]
    section = section[: section.index("\n\n")]
    for arch, fields in TRANSFORMERS_WRONG.items():
        for field in fields:
            assert f"`{field}`" in section, (arch, field)


@pytest.mark.parametrize("arch", sorted(gguf_writers.TINY))
def test_params_torch_style_equals_the_model_transformers_builds(arch, tmp_path, cli):
    """The module tree and parameters come from the derived config: they equal those of the
    model transformers builds from the original config."""
    import torch
    import transformers

    path, original = gguf_writers.embedding_only(str(tmp_path), arch)
    with torch.device("meta"):
        model_class = getattr(transformers, open_catalog(path).config["architectures"][0])
        model = model_class._from_config(original)
    result = cli("params", path, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == "".join(f"{name}: {p.shape}\n" for name, p in model.named_parameters())
    tree = cli("tree", path, "--style", "torch")
    assert tree.out == "".join(f"{name}: {type(child).__name__}\n" for name, child in model.named_children())


def test_mistral_named_llama_file_is_mistral(tmp_path):
    """llama.cpp writes Mistral as "llama"; transformers takes a file named exactly "mistral" for Mistral."""
    path, _ = gguf_writers.embedding_only(str(tmp_path), "llama", name="mistral")
    assert open_catalog(path).config["architectures"] == ["MistralForCausalLM"]
    path, _ = gguf_writers.embedding_only(str(tmp_path / "other"), "llama", name="Mistral-7B")
    assert open_catalog(path).config["architectures"] == ["LlamaForCausalLM"]


def test_every_architecture_transformers_maps_has_a_row_or_falls_back():
    """transformers' GGUF_CONFIG_MAPPING, architecture by architecture: a row here, or the one
    that falls back to the name tree (tested below)."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    from llm_anatomy.formats.gguf_archs import ARCHITECTURES

    ours = {row.model_type for row in ARCHITECTURES.values()} | set(ARCHITECTURES)
    theirs = set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"}
    assert {arch for arch in theirs if arch not in ours and arch.replace("_", "-") not in ours} == set(FALLING_BACK)


# transformers' GGUF table lists it, but has no config class for it.
FALLING_BACK = ("deci",)


@pytest.mark.parametrize("arch", ("rwkv7",) + FALLING_BACK)
def test_other_architectures_fall_back_to_the_name_tree(arch, tmp_path, cli):
    import gguf
    import numpy as np

    path = str(tmp_path / "rwkv.gguf")
    writer = gguf.GGUFWriter(path, arch)
    writer.add_tensor("blk.0.time_mix.weight", np.zeros((2, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tree = cli("tree", path)
    assert (tree.code, tree.err) == (0, "")
    assert (
        tree.out.splitlines()[-1]
        == f"note: no class names (transformers has no config for GGUF architecture '{arch}'); this tree is built from the tensor names, and its counts include every stored tensor (buffers too)"
    )
    config = cli("config", path)
    assert config.code == 1
    assert config.err.startswith(
        f"llm-anatomy: {path}: expected a GGUF architecture that maps to a transformers config (llama, mistral, qwen2, "
    )


# ---------------------------------------------------------------- --hf-names: each architecture's own table


def test_name_table_is_what_transformers_gguf_loader_maps():
    """gguf_names.json equals the table transformers' loader computes for each architecture; to
    update it after upgrading transformers or gguf: python tests/gguf_writers.py"""
    with open(name_maps.GGUF_NAMES, encoding="utf-8") as handle:
        assert json.load(handle) == gguf_writers.name_tables()


def test_name_table_rows_are_gguf_tensor_name_map_rows():
    """Each row, read forwards, is what gguf's own TensorNameMap for that architecture gives for
    the transformers name, or (as transformers also looks in submodules) for it without its
    first component: Bloom's `transformer.h.0...` is TensorNameMap's `h.0...`; but for the rows
    an architecture's own tensor processor in transformers maps (MiniMax-M2's routing bias)."""
    import gguf

    arch_of = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
    mapped_by_processor = {
        ("minimax-m2", "blk.{bid}.exp_probs_b.bias")
    }  # MiniMaxM2TensorProcessor.perform_fallback_tensor_mapping
    for arch, table in name_maps.gguf_tables().items():
        names = gguf.TensorNameMap(arch_of[arch], 4)
        for gguf_name, hf in table.items():
            if (arch, gguf_name) in mapped_by_processor:
                continue
            base = gguf_name.rpartition(".")[0] if hf.endswith((".weight", ".bias")) else gguf_name
            hf_base = hf.rpartition(".")[0] if hf.endswith((".weight", ".bias")) else hf
            expected = base.format(bid=3).removesuffix(".weight")
            hf_base = hf_base.format(bid=3)
            assert expected in (names.get_name(hf_base), names.get_name(hf_base.partition(".")[2])), (arch, gguf_name)


def test_gemma3_ffn_norm_is_the_pre_feedforward_norm(tmp_path, cli):
    path, _ = gguf_writers.embedding_only(str(tmp_path), "gemma3")
    assert (
        name_maps.hf_name("blk.0.ffn_norm.weight", name_maps.gguf_table(open_catalog(path).metadata))
        == "model.layers.0.pre_feedforward_layernorm.weight"
    )
    llama = name_maps.gguf_tables()["llama"]
    assert name_maps.hf_name("blk.0.ffn_norm.weight", llama) == "model.layers.0.post_attention_layernorm.weight"
    assert name_maps.hf_name("blk.12.attn_q.weight", llama) == "model.layers.12.self_attn.q_proj.weight"
    qwen2moe = name_maps.gguf_tables()["qwen2moe"]
    assert name_maps.hf_name("blk.0.ffn_down_exps.weight", qwen2moe) == "model.layers.0.mlp.experts.down_proj"
    assert (
        name_maps.hf_name("blk.0.ffn_gate_exps.weight", qwen2moe) == "blk.0.ffn_gate_exps.weight"
    )  # fused with up: kept


# ---------------------------------------------------------------- values --style torch: the loader's transforms undone

# Quantized rows check that reordered and transposed views read the right blocks.
QUANTIZED = {"blk.0.attn_q": "Q8_0", "blk.0.attn_k": "Q8_0", "blk.1.ffn_up": "Q4_0", "blk.0.attn_qkv": "Q8_0"}
LOADED_BY_TRANSFORMERS = (
    "bloom",
    "falcon",
    "gemma2",
    "gemma3",
    "lfm2",
    "llama",
    "minimax-m2",
    "nemotron",
    "phi3",
    "qwen2",
    "stablelm",
    "starcoder2",
)


@pytest.mark.parametrize("arch", LOADED_BY_TRANSFORMERS)
def test_values_torch_style_equals_transformers_gguf_loading(arch, tmp_path, cli):
    """Exactly `for p in model.parameters(): print(p)` after from_pretrained(gguf_file=): Llama's
    q/k rows un-permuted, Gemma's and Nemotron's norms minus one, Bloom's qkv rows reordered,
    LFM2's convolution unsqueezed, block types dequantized."""
    import transformers

    path, _ = gguf_writers.whole_model(str(tmp_path), arch, types=QUANTIZED)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=os.path.basename(path))
    result = cli("values", path, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == "".join(f"{p}\n" for p in model.parameters())


@pytest.mark.parametrize("arch", ("gemma4", "gemma4-moe", "gpt2", "qwen3"))
def test_values_torch_style_equals_the_original_model(arch, tmp_path, cli):
    """Where transformers' GGUF config is wrong, from_pretrained(gguf_file=) fails on the shapes;
    the values still equal the original model's (F32 throughout: conversion is lossless), GPT-2's
    Conv1D weights transposed back, Gemma-4's norms as stored (its converter adds no 1)."""
    import torch
    import transformers

    path, config = gguf_writers.whole_model(str(tmp_path), arch)
    torch.manual_seed(0)
    model = getattr(transformers, open_catalog(path).config["architectures"][0])(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    result = cli("values", path, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == "".join(f"{p}\n" for p in model.parameters())


def test_gemma4_values_equal_transformers_gguf_loading_with_the_derived_config(tmp_path, cli):
    """transformers' own Gemma-4 GGUF config builds a different model (head_dim 256, no shared KV
    layers, ...), so from_pretrained(gguf_file=) refuses the file; given the derived config, its
    loader holds exactly what `values --style torch` prints (quantized rows too), and `summary`
    and `tree` count its parameters. It misses only the layer scalars, which it looks for as
    blk.N.layer_output_scale where the converter writes blk.N.layer_output_scale.weight."""
    import transformers

    path, _ = gguf_writers.whole_model(str(tmp_path), "gemma4", types=QUANTIZED)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=os.path.basename(path))
    config = transformers.AutoConfig.for_model(**open_catalog(path).config)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file=os.path.basename(path), config=config, output_loading_info=True
    )
    assert sorted(info["missing_keys"]) == [f"model.layers.{i}.layer_scalar" for i in range(4)]
    assert not info["mismatched_keys"] and not info["unexpected_keys"]
    result = cli("values", path, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == "".join(f"{p}\n" for p in model.parameters())
    summary = json.loads(cli("summary", path, "--json").out)
    total = sum(p.numel() for p in model.parameters())
    assert summary["total_params"] == total
    assert cli("tree", path).out.splitlines()[1].split()[-1] == f"{total:,}"


def test_gemma4_tensors_transformers_loader_misses_are_named_from_the_converter(tmp_path, cli):
    """Given the derived config, transformers' loader leaves exactly the parameters and buffers
    of name_maps.CONVERTER_NAMES initialised in the MoE variant (the converter writes them under
    other names); `--hf-names` gives those tensors their transformers names all the same."""
    import transformers

    path, _ = gguf_writers.whole_model(str(tmp_path), "gemma4-moe")
    config = transformers.AutoConfig.for_model(**open_catalog(path).config)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file=os.path.basename(path), config=config, output_loading_info=True
    )
    stored = {t.name for t in open_catalog(path).tensors}
    renamed = {
        hf.format(bid=b)
        for g, hf in name_maps.CONVERTER_NAMES["gemma4"].items()
        for b in range(4)
        if g.format(bid=b) in stored
    }
    assert "model.layers.3.experts.gate_up_proj" in renamed and "model.layers.0.router.per_expert_scale" in renamed
    assert set(info["missing_keys"]) == renamed
    assert not info["mismatched_keys"] and not info["unexpected_keys"]
    lines = cli("params", path, "--hf-names").out.splitlines()
    assert lines[-1].startswith(
        "note: 5 of these tensors are buffers of the model, not parameters (model.layers.0.layer_scalar, "
    )
    hf_names = {line.split()[0] for line in lines[1:-2]}
    assert hf_names == {n for n, _ in model.named_parameters()} | {
        f"model.layers.{b}.layer_scalar" for b in range(4)
    } | {"rope_freqs.weight"}


def test_mamba_a_log_is_numpys_float32_log_of_minus_a(tmp_path, cli):
    """llama.cpp stores Mamba's A_log as A = -exp(A_log); transformers loads log(-A) computed by
    numpy in float32: every element at 10 digits equals what from_pretrained(gguf_file=) holds."""
    import torch
    import transformers

    path, _ = gguf_writers.whole_model(str(tmp_path), "mamba")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=os.path.basename(path))
    result = cli("values", path, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == "".join(f"{p}\n" for p in model.parameters())
    full = cli("values", path, "--style", "torch", "--filter", "*.A_log", "--full", "--precision", "10")
    assert full.code == 0, full.err
    torch.set_printoptions(precision=10, threshold=float("inf"))
    try:
        expected = "".join(f"{p}\n" for n, p in model.named_parameters() if n.endswith(".A_log"))
    finally:
        torch.set_printoptions(profile="default")
    assert full.out == expected


def test_hf_names_of_gemma3_are_transformers_names(tmp_path, cli):
    path, _ = gguf_writers.whole_model(str(tmp_path), "gemma3")
    hf_names = {line.split()[0] for line in cli("params", path, "--hf-names").out.splitlines()[1:-1]}
    torch_style = {line.split(":")[0] for line in cli("params", path, "--style", "torch").out.splitlines()}
    assert hf_names == torch_style
    assert "model.layers.0.pre_feedforward_layernorm.weight" in hf_names
    code, loaded, out = imported_by("params", path, "--hf-names", modules=NOT_ON_THE_LIGHT_PATH + ("gguf",))
    assert (code, loaded) == (0, [])
    assert out == cli("params", path, "--hf-names").out


# ---------------------------------------------------------------- a real GGUF: Gemma-3 270M, Q4_K_M


def test_real_gemma3_gguf_against_transformers(gemma3_270m, tmp_path, cli):
    """config field by field against AutoConfig(gguf_file=), and tree, params and values in torch
    style, and --hf-names, against the model from_pretrained(gguf_file=) loads (Q4_K, Q5_0, Q8_0
    and F32 tensors, norms stored as 1 + w, ffn_norm the pre-feedforward norm)."""
    import transformers

    folder, name = os.path.split(gemma3_270m)
    theirs = _config_dict(transformers.AutoConfig.from_pretrained(folder, gguf_file=name))
    ours = _config_dict(_ours(tmp_path, open_catalog(gemma3_270m).config))
    differ = {k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
    assert differ == {"architectures", "rms_norm_eps", "_model_name_or_path"}
    assert (ours["rms_norm_eps"], theirs["rms_norm_eps"]) == (1e-06, _float32(1e-06))
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    assert cli("tree", gemma3_270m, "--style", "torch").out == "".join(
        f"{n}: {type(c).__name__}\n" for n, c in model.named_children()
    )
    assert cli("params", gemma3_270m, "--style", "torch").out == "".join(
        f"{n}: {p.shape}\n" for n, p in model.named_parameters()
    )
    hf_names = {line.split()[0] for line in cli("params", gemma3_270m, "--hf-names").out.splitlines()[1:-1]}
    assert hf_names == {n for n, _ in model.named_parameters()}
    assert cli("values", gemma3_270m, "--style", "torch").out == "".join(f"{p}\n" for p in model.parameters())


# ---------------------------------------------------------------- values --hf-names: transformers' values under transformers' names


def _printed(tensors):
    return "".join(
        str(t) + "\n" for t in tensors
    )  # print(t): str(), not format(), which a 0-d tensor gives as a number


def test_hf_names_show_transformers_values_and_stored_shows_the_stored_ones(tmp_path, cli):
    """Under transformers' names, the values from_pretrained(gguf_file=) holds (Gemma's norm
    minus one, Llama's q rows un-permuted, block types dequantized); the stored values go with
    the stored names, or with --stored."""
    import torch
    import transformers

    for arch, name, index, stored_name, convention in [
        ("gemma3", "model.norm.weight", (slice(None, 4),), "output_norm.weight", lambda stored: stored[:4] - 1),
        (
            "llama",
            "model.layers.0.self_attn.q_proj.weight",
            (slice(None, 3), slice(None, 4)),
            "blk.0.attn_q.weight",
            lambda stored: stored[[0, 2, 4], :4],
        ),
    ]:
        folder = tmp_path / arch
        path, _ = gguf_writers.whole_model(str(folder), arch, types=QUANTIZED)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=os.path.basename(path))
        text = "[:4]" if len(index) == 1 else "[:3, :4]"
        dtype = open_catalog(path).get(stored_name).dtype
        expected = model.get_parameter(name).detach()[index]
        result = cli("values", path, name + text, "--hf-names")
        assert result.code == 0, result.err
        assert result.out == f"{name}{text}  {list(expected.shape)}  {dtype}\n{expected}\n"
        whole = torch.tensor(_stored_values(path, stored_name))
        assert torch.equal(convention(whole), expected)
        stored = whole[index]
        assert not torch.equal(stored, expected)
        assert (
            cli("values", path, name + text, "--hf-names", "--stored").out
            == f"{name}{text}  {list(stored.shape)}  {dtype}\n{stored}\n"
        )
        if len(index) == 1:
            assert (
                cli("values", path, stored_name + text).out
                == f"{stored_name}{text}  {list(stored.shape)}  {dtype}\n{stored}\n"
            )


def _stored_values(path, name):
    """The tensor as the file stores it (blocks dequantized), by gguf's own reader."""
    import gguf
    import numpy as np

    tensor = next(t for t in gguf.GGUFReader(path).tensors if t.name == name)
    data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    return np.asarray(data, dtype=np.float32).reshape(tuple(reversed([int(n) for n in tensor.shape]))).tolist()


@pytest.mark.parametrize(
    "index", ["[:4]", "[0]", "[..., 1]", "[:, :]", "[0, :4]", "[:2, 3]", "[-1, 1::3]", "[1:, ...]", "[...]"]
)
def test_values_torch_style_with_an_index_is_print_of_the_indexed_parameter(index, tmp_path, cli):
    """`values M 'NAME[INDEX]' --style torch` prints print(p[INDEX]) of transformers' parameter,
    grad_fn included; a --filter with an index prints it for every matching parameter."""
    import transformers

    path, _ = gguf_writers.whole_model(str(tmp_path), "llama", types=QUANTIZED)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=os.path.basename(path))
    items = eval(f"numpy.s_{index}", {"numpy": __import__("numpy")})  # noqa: S307 (the test's own literal)
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.norm.weight"):
        p = model.get_parameter(name)
        if index.count(",") + 1 - index.count("...") > p.dim():
            continue
        result = cli("values", path, name + index, "--style", "torch")
        assert result.code == 0, result.err
        assert result.out == _printed([p[items]])
    result = cli("values", path, "--style", "torch", "--filter", "model.layers.0.self_attn.*" + index)
    assert result.code == 0, result.err
    assert result.out == _printed(
        [p[items] for n, p in model.named_parameters() if n.startswith("model.layers.0.self_attn.")]
    )


@pytest.mark.parametrize("arch", (*LOADED_BY_TRANSFORMERS, "mamba"))
def test_indexed_parameters_hold_what_transformers_gguf_loading_holds(arch, tmp_path):
    """p[idx] of the API equals p.numpy()[idx] and transformers' p[idx] for random index
    expressions on every parameter, through every loader transform: rows reordered (Llama's
    q/k, Bloom's qkv), values computed (norms minus one, Mamba's log(-A)), dimensions added
    (LFM2, Mamba), experts fused, block types dequantized."""
    import random

    import checkpoints
    import llm_anatomy as la
    import transformers

    path, _ = gguf_writers.whole_model(str(tmp_path), arch, types=QUANTIZED)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=os.path.basename(path))
    m = la.open(path)
    for name, reference in model.named_parameters():
        p = m.get_parameter(name)
        whole, theirs = p.numpy(), reference.detach().numpy()
        assert whole.tobytes() == theirs.tobytes(), name
        rng = random.Random(name)
        for _ in range(8):
            index = checkpoints.random_index(rng, p.shape)
            assert p[index].tobytes() == whole[index].tobytes() == theirs[index].tobytes(), (name, index)
            assert p[index].shape == theirs[index].shape, (name, index)
