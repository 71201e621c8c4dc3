"""Hostile configs (issue 14): every config field the analyses read is checked against
config_schema's table. Each family below is run through every command that reads the
config, in a bounded subprocess (tests/hostile.py): summary, config --explain and report
show the invalid field as a finding; commands that build the model from the config
(config, tree, params/values --style torch) refuse it in one line, before transformers."""

from __future__ import annotations

import html
import json
import math
import os

import pytest

import checkpoints
from hostile import assert_clean_output, assert_refused, run_cli
from llm_anatomy.analysis.architecture import FIELD_ALIASES, ZERO_MEANS_NONE, derive
from llm_anatomy.core.config_schema import FIELDS, MAX_BUILD_LAYERS, found_text, validate

BUILD_TODO = "fix the config; `llm-anatomy config --explain` lists every field out of range"

# name -> (edit of a tiny Llama's config.json, the finding it must produce: expected, found)
CONFIG_FAMILIES = {
    "layers 1e8": ({"num_hidden_layers": 10**8}, "num_hidden_layers to be an integer in 1..100,000", "100000000"),
    "layers 1e10": ({"num_hidden_layers": 10**10}, "num_hidden_layers to be an integer in 1..100,000", "10000000000"),
    "layers 2**64-1": (
        {"num_hidden_layers": 2**64 - 1},
        "num_hidden_layers to be an integer in 1..100,000",
        "18446744073709551615",
    ),
    "layers as a string": ({"num_hidden_layers": "32"}, "num_hidden_layers to be an integer in 1..100,000", '"32"'),
    "layers as a fraction": ({"num_hidden_layers": 2.5}, "num_hidden_layers to be an integer in 1..100,000", "2.5"),
    "layers 1e308": ({"num_hidden_layers": 1e308}, "num_hidden_layers to be an integer in 1..100,000", "1e+308"),
    "hidden 10**200": (
        {"hidden_size": 10**200},
        "hidden_size to be an integer in 1..1,048,576",
        "an integer of 201 digits",
    ),
    "hidden as true": ({"hidden_size": True}, "hidden_size to be an integer in 1..1,048,576", "true"),
    "vocab negative": ({"vocab_size": -5}, "vocab_size to be an integer in 1..16,777,216", "-5"),
    "heads zero": ({"num_attention_heads": 0}, "num_attention_heads to be an integer in 1..65,536", "0"),
    "kv heads as a string": ({"num_key_value_heads": "2"}, "num_key_value_heads to be an integer in 1..65,536", '"2"'),
    "head_dim 1.5": ({"head_dim": 1.5}, "head_dim to be an integer in 0..1,048,576", "1.5"),
    "intermediate negative": ({"intermediate_size": -7}, "intermediate_size to be an integer in 1..16,777,216", "-7"),
    "context 1e300": (
        {"max_position_embeddings": 1e300},
        "max_position_embeddings to be an integer in 1..4,294,967,296",
        "1e+300",
    ),
    "experts 10**6": (
        {"num_local_experts": 10**6, "num_experts_per_tok": 2},
        "num_local_experts to be an integer in 0..65,536",
        "1000000",
    ),
    "rope factor NaN": (
        {"rope_scaling": {"rope_type": "linear", "factor": math.nan}},
        "rope_scaling.factor to be a finite number in 0.001..10,000",
        "NaN",
    ),
    "rope factor Infinity": (
        {"rope_scaling": {"rope_type": "yarn", "factor": math.inf, "original_max_position_embeddings": 64}},
        "rope_scaling.factor to be a finite number in 0.001..10,000",
        "Infinity",
    ),
    "rope factor 1e308": (
        {"rope_scaling": {"rope_type": "linear", "factor": 1e308}},
        "rope_scaling.factor to be a finite number in 0.001..10,000",
        "1e+308",
    ),
    "rope factor -Infinity": (
        {"rope_parameters": {"rope_type": "dynamic", "factor": -math.inf, "rope_theta": 10000.0}},
        "rope_parameters.factor to be a finite number in 0.001..10,000",
        "-Infinity",
    ),
    "rope original length 1e20": (
        {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 10**20}},
        "rope_scaling.original_max_position_embeddings to be an integer in 1..4,294,967,296",
        "100000000000000000000",
    ),
    "rope long_factor NaN item": (
        {"rope_scaling": {"rope_type": "longrope", "long_factor": [1.0, math.nan], "short_factor": [1.0, 1.0]}},
        "rope_scaling.long_factor to be a list of at most 100,000 items, each a finite number in 0..10,000",
        "NaN at index 1",
    ),
    "rope per layer type NaN": (
        {
            "rope_parameters": {
                "full_attention": {"rope_type": "linear", "factor": math.nan},
                "sliding_attention": {"rope_type": "default"},
            }
        },
        "rope_parameters.full_attention.factor to be a finite number in 0.001..10,000",
        "NaN",
    ),
    "rope_scaling a string": ({"rope_scaling": "yarn"}, "rope_scaling to be an object", '"yarn"'),
    "sliding_window_pattern a string": (
        {"sliding_window": 4, "sliding_window_pattern": "x"},
        "sliding_window_pattern to be an integer in 1..100,000",
        '"x"',
    ),
    "max_window_layers a string": (
        {"sliding_window": 4, "use_sliding_window": True, "max_window_layers": "x"},
        "max_window_layers to be an integer in 0..100,000",
        '"x"',
    ),
    "use_sliding_window a string": (
        {"sliding_window": 4, "use_sliding_window": "yes"},
        "use_sliding_window to be true or false",
        '"yes"',
    ),
    "sliding_window negative": ({"sliding_window": -1}, "sliding_window to be an integer in 0..4,294,967,296", "-1"),
    "moe_layer_freq a string": (
        {"num_local_experts": 4, "num_experts_per_tok": 2, "first_k_dense_replace": 0, "moe_layer_freq": "x"},
        "moe_layer_freq to be an integer in 1..100,000",
        '"x"',
    ),
    "decoder_sparse_step zero": (
        {"num_local_experts": 4, "num_experts_per_tok": 2, "decoder_sparse_step": 0},
        "decoder_sparse_step to be an integer in 1..100,000",
        "0",
    ),
    "mlp_only_layers an int": (
        {"num_local_experts": 4, "num_experts_per_tok": 2, "mlp_only_layers": 3},
        "mlp_only_layers to be a list of at most 100,000 items, each an integer in 0..99,999",
        "3",
    ),
    "mlp_only_layers a string item": (
        {"num_local_experts": 4, "num_experts_per_tok": 2, "mlp_only_layers": [1, "a"]},
        "mlp_only_layers to be a list of at most 100,000 items, each an integer in 0..99,999",
        '"a" at index 1',
    ),
    "layer_types an int": (
        {"sliding_window": 4, "layer_types": 5},
        "layer_types to be a list of at most 100,000 items, each a string",
        "5",
    ),
    "tie_word_embeddings a string": (
        {"tie_word_embeddings": "yes"},
        "tie_word_embeddings to be true or false",
        '"yes"',
    ),
    "architectures a string": (
        {"architectures": "LlamaForCausalLM"},
        "architectures to be a list of at most 100,000 items, each a string",
        '"LlamaForCausalLM"',
    ),
    "model_type a number": ({"model_type": 7}, "model_type to be a string", "7"),
    "dtype a list": ({"dtype": ["float32"]}, "dtype to be a string", "a list of 1 item"),
    "text_config layers 1e8": (
        {"text_config": {"num_hidden_layers": 10**8}},
        "text_config.num_hidden_layers to be an integer in 1..100,000",
        "100000000",
    ),
    "escape codes in a value": (
        {"num_hidden_layers": "\x1b]0;pwned\x07\u202e"},
        "num_hidden_layers to be an integer in 1..100,000",
        '"\\x1b]0;pwned\\x07\\u202e"',
    ),
}


def _family_folder(base, tmp_path, edit):
    folder = tmp_path / "model"
    checkpoints.with_config(base, folder, lambda config: config.update(edit))
    return folder


def _first_finding_line(expected, found, where="config.json"):
    return f"{where}: expected {expected}, found {found}"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return checkpoints.tiny_llama(str(tmp_path_factory.mktemp("guard_base")), shard=None)


@pytest.mark.parametrize("family", list(CONFIG_FAMILIES))
def test_invalid_config_field(base, tmp_path, family):
    edit, expected, found = CONFIG_FAMILIES[family]
    from pathlib import Path

    folder = _family_folder(Path(base), tmp_path, edit)
    finding = _first_finding_line(expected, found)
    refusal = f"llm-anatomy: {folder}/config.json: expected {expected}, found {found}; {BUILD_TODO}"
    for command in (("config",), ("tree",), ("params", "--style", "torch"), ("values", "--style", "torch")):
        outcome = run_cli(*command, folder)
        assert_refused(outcome, (1,), refusal)
        assert outcome.out == ""
    for command in (("summary",), ("config", "--explain", "--lang", "en")):
        outcome = run_cli(*command, folder)
        assert (outcome.code, outcome.err) == (0, ""), outcome.err[-2000:]
        assert f"  {finding}" in outcome.out.split("Findings:\n")[1].splitlines()
        assert_clean_output(outcome.out)
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    outcome = run_cli("report", folder, "-o", page)
    assert (outcome.code, outcome.err) == (0, ""), outcome.err[-2000:]
    assert html.escape(finding) in page.read_text()


def test_build_limit(base, tmp_path):
    """Within the schema's range but too many layers to build on the meta device in bounded
    time: refused before transformers is imported; summary still works from the tensors."""
    from pathlib import Path

    folder = _family_folder(Path(base), tmp_path, {"num_hidden_layers": 5000})
    line = f"llm-anatomy: {folder}/config.json: expected num_hidden_layers at most {MAX_BUILD_LAYERS:,} to build the model's skeleton, found 5,000; summary, and params and values in their default style, work without it"
    for command in (("config",), ("tree",), ("params", "--style", "torch"), ("values", "--style", "torch")):
        assert_refused(run_cli(*command, folder), (1,), line)
    outcome = run_cli("summary", folder)
    assert (
        outcome.code == 0
        and "  attention: expected 61,440,000 parameters in weight matrices, as config.json implies, found 24,576 in the tensors; "
        in outcome.out
    )


META_FAMILIES = {
    "ffn_dim_multiplier NaN": (
        {"ffn_dim_multiplier": math.nan},
        "ffn_dim_multiplier to be a finite number in 0.01..100",
        "NaN",
    ),
    "ffn_dim_multiplier Infinity": (
        {"ffn_dim_multiplier": math.inf},
        "ffn_dim_multiplier to be a finite number in 0.01..100",
        "Infinity",
    ),
    "ffn_dim_multiplier 1e308": (
        {"ffn_dim_multiplier": 1e308},
        "ffn_dim_multiplier to be a finite number in 0.01..100",
        "1e+308",
    ),
    "n_layers 1e10": ({"n_layers": 10**10}, "n_layers to be an integer in 1..100,000", "10000000000"),
    "dim a string": ({"dim": "4096"}, "dim to be an integer in 1..1,048,576", '"4096"'),
    "dim 10**1000": ({"dim": 10**1000}, "dim to be an integer in 1..1,048,576", "an integer of 1001 digits"),
    "multiple_of zero": ({"multiple_of": 0}, "multiple_of to be an integer in 1..1,048,576", "0"),
}


@pytest.fixture(scope="module")
def meta_base(tmp_path_factory, base):
    return checkpoints.meta_checkpoint(base, str(tmp_path_factory.mktemp("guard_meta")))


@pytest.mark.parametrize("family", list(META_FAMILIES))
def test_invalid_meta_params(meta_base, tmp_path, family):
    import shutil

    edit, expected, found = META_FAMILIES[family]
    folder = tmp_path / "meta"
    shutil.copytree(meta_base, folder)
    params = json.loads((folder / "params.json").read_text())
    params.update(edit)
    (folder / "params.json").write_text(json.dumps(params))
    line = f"{folder}/params.json: expected {expected}, found {found}; fix or re-download params.json"
    for command in (
        ("config",),
        ("config", "--explain"),
        ("tree",),
        ("params", "--style", "torch"),
        ("values", "--style", "torch"),
    ):
        assert_refused(run_cli(*command, folder), (1,), f"llm-anatomy: {line}")
    outcome = run_cli("summary", folder)
    assert (outcome.code, outcome.err) == (0, "")
    assert outcome.out.split("Findings:\n")[1].splitlines()[0] == f"  {line}"


def _gguf(path, block_count):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint64("llama.block_count", block_count)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("block_count", [2**64 - 1, 10**8])
def test_gguf_block_count(tmp_path, block_count):
    """A GGUF block_count becomes the derived config's num_hidden_layers: checked like config.json's."""
    path = _gguf(tmp_path / "model.gguf", block_count)
    expected = f"expected num_hidden_layers to be an integer in 1..100,000, found {block_count}"
    for command in (("tree",), ("config",), ("params", "--style", "torch")):
        assert_refused(run_cli(*command, path), (1,), f"llm-anatomy: {path}: {expected}; {BUILD_TODO}")
    for command in (("summary",), ("config", "--explain")):
        outcome = run_cli(*command, path)
        assert outcome.code == 0
        assert f"  config.json: {expected}" in outcome.out.splitlines()


def test_every_quantity_has_a_rule():
    """architecture reads only validated fields: each alias has a rule, and a field may be 0
    exactly when its quantity takes 0 to mean "none"."""
    for quantity, names in FIELD_ALIASES.items():
        for name in names:
            assert FIELDS[name].kind == "int"
            assert (FIELDS[name].low == 0) == (quantity in ZERO_MEANS_NONE), name


def test_invalid_fields_are_left_out():
    config = {
        "hidden_size": 64,
        "num_hidden_layers": "2",
        "rope_scaling": {"rope_type": "linear", "factor": math.nan},
        "text_config": {"vocab_size": -1},
    }
    checked = validate(config)
    assert checked.config == {"hidden_size": 64, "rope_scaling": {"rope_type": "linear"}, "text_config": {}}
    assert [f.line() for f in checked.findings] == [
        'config.json: expected num_hidden_layers to be an integer in 1..100,000, found "2"',
        "config.json: expected rope_scaling.factor to be a finite number in 0.001..10,000, found NaN",
        "config.json: expected text_config.vocab_size to be an integer in 1..16,777,216, found -1",
    ]
    assert config["num_hidden_layers"] == "2"  # the caller's config is not changed


def test_invalid_field_reported_once():
    """An invalid field is one finding, not also "no such field" when its quantity is needed."""
    arch = derive({"hidden_size": 64, "num_hidden_layers": "2", "num_attention_heads": 4, "vocab_size": 10})
    assert arch.num_layers is None
    assert [f.line() for f in arch.findings] == [
        'config.json: expected num_hidden_layers to be an integer in 1..100,000, found "2"'
    ]


def test_more_experts_per_token_than_experts():
    arch = derive(
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": 10,
            "num_local_experts": 4,
            "num_experts_per_tok": 8,
        }
    )
    assert arch.experts_per_token is None
    assert "config.json: expected num_experts_per_tok at most num_local_experts 4, found 8" in [
        f.line() for f in arch.findings
    ]


@pytest.mark.parametrize(
    "value, text",
    [
        (10**3000, "an integer of 3001 digits"),
        (-(10**4200), "an integer of over 3,900 digits"),
        ("a" * 100, '"' + "a" * 56 + "..."),
        ("\x9b2J", '"\\x9b2J"'),
        ([[]], "a list of 1 item"),
        ({}, "an object of 0 fields"),
    ],
)
def test_found_text(value, text):
    """Never str() of an int past Python's 4,300-digit limit, never a terminal control, never long."""
    assert found_text(value) == text


def test_config_untouched_by_validation(base):
    """A valid config passes whole: nothing left out, no finding."""
    config = json.loads(open(os.path.join(base, "config.json")).read())
    assert validate(config) == (config, ())


def test_per_layer_numbers_build():
    """Real models give some sizes per layer or stage (Gemma 3n's intermediate_size, Swin's
    num_heads, LXMERT's num_hidden_layers per part): the builder takes them, each checked;
    the analyses, which need one number, report them."""
    from llm_anatomy.core.config_schema import refuse_to_build
    from llm_anatomy.core.errors import AnatomyError

    refuse_to_build(
        {
            "intermediate_size": [8192] * 35,
            "num_heads": [3, 6, 12, 24],
            "num_hidden_layers": {"vision": 5, "language": 9},
        },
        "c",
    )
    with pytest.raises(AnatomyError) as refused:
        refuse_to_build({"num_heads": [3, 10**9]}, "c")
    assert (
        refused.value.line()
        == "c: expected num_heads to be an integer in 1..65,536, found 1000000000 at index 1; " + BUILD_TODO
    )
    with pytest.raises(AnatomyError) as refused:
        refuse_to_build({"num_hidden_layers": {"vision": 5, "language": 9000}}, "c")
    assert refused.value.line().startswith(
        "c: expected num_hidden_layers.language at most 2,048 to build the model's skeleton, found 9,000; "
    )
    assert [f.line() for f in validate({"intermediate_size": [8192] * 35}).findings] == [
        "config.json: expected intermediate_size to be an integer in 1..16,777,216, found a list of 35 items"
    ]


def test_integral_floats_are_ints():
    """1200.0 layers are 1200 (a config written by a tool that keeps numbers as floats)."""
    assert validate({"num_hidden_layers": 1200.0, "vocab_size": 32000}).config == {
        "num_hidden_layers": 1200,
        "vocab_size": 32000,
    }


def test_every_transformers_config_passes():
    """The schema holds every config class transformers ships, at its defaults: none is refused
    by the builder's check, and derive() reads each without an exception."""
    import logging
    import warnings

    from transformers import CONFIG_MAPPING

    from llm_anatomy.core.config_schema import refuse_to_build

    checked = 0
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for model_type in list(CONFIG_MAPPING.keys()):
                try:
                    config = json.loads(CONFIG_MAPPING[model_type]().to_json_string())
                except Exception:  # some need arguments or extra packages to be made
                    continue
                refuse_to_build(config, model_type)
                derive(config)
                checked += 1
    finally:
        logging.disable(logging.NOTSET)
    assert checked > 700
