"""bitsandbytes checkpoints counted as the models they are: real files quantized by
bitsandbytes through transformers (BitsAndBytesConfig, CPU) and saved with save_pretrained,
plus a layout replica of a published 4-bit repo and hand-edited disagreeing ones."""

import json

import pytest

import checkpoints
from conftest import imported_by
from llm_anatomy import replicas
from llm_anatomy.analysis.summary import summarize
from llm_anatomy.locate import open_catalog


@pytest.fixture(scope="session")
def bnb(tmp_path_factory):
    """mode -> folder: the float16 tiny Llama ("fp16") and it quantized as nf4 (double quant), fp4 and int8."""
    root = tmp_path_factory.mktemp("bnb")
    folders = {"fp16": checkpoints.tiny_llama(str(root / "fp16"), dtype="float16", shard=None)}
    for mode in checkpoints.BNB_MODES:
        folders[mode] = checkpoints.bnb_llama(str(root / mode), folders["fp16"], mode)
    return folders


def _stored(folder):
    """name -> (dtype, shape, nbytes) as the safetensors header says, read with the safetensors library."""
    from safetensors import safe_open

    with safe_open(f"{folder}/model.safetensors", "pt") as f:
        return {k: f.get_slice(k) for k in f.keys()}


@pytest.mark.parametrize(
    "mode, words, weights_line",
    [
        (
            "nf4",
            "bitsandbytes 4 bit nf4, block 64, double quant",
            "  14 quantized weights: 61,440 parameters as unquantized, 48.15 KiB stored, 6.42 bits per weight (scales, zeros and indices included)\n",
        ),
        (
            "fp4",
            "bitsandbytes 4 bit fp4, block 64",
            "  14 quantized weights: 61,440 parameters as unquantized, 35.68 KiB stored, 4.76 bits per weight (scales, zeros and indices included)\n",
        ),
        (
            "int8",
            "bitsandbytes 8 bit (LLM.int8), per-row scales (SCB), outlier threshold 6.0",
            "  14 quantized weights: 61,440 parameters as unquantized, 63.51 KiB stored, 8.47 bits per weight (scales, zeros and indices included)\n",
        ),
    ],
)
def test_counts_are_the_unquantized_models(bnb, cli, mode, words, weights_line):
    """Every logical weight has the name and shape of the float16 model's; totals are transformers' numel."""
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(bnb["fp16"])
    shapes = {name: list(p.shape) for name, p in reference.named_parameters()}
    listing = json.loads(cli("params", bnb[mode], "--json").out)
    assert {t["name"]: t["shape"] for t in listing["tensors"]} == shapes
    assert listing["total"]["numel"] == sum(p.numel() for p in reference.parameters()) == 78_144
    stored = _stored(bnb[mode])
    assert {t["name"] for t in listing["stored_tensors"]} == set(stored)
    out = cli("summary", bnb[mode]).out
    assert out.startswith(f"{mode}: 78,144 parameters (78.14K), ")
    assert f"\nQuantization: {words} (quant_method bitsandbytes)\n{weights_line}" in out
    summary = summarize(open_catalog(str(bnb[mode])))
    assert summary.findings == ()
    assert summary.total_nbytes == sum(t["nbytes"] for t in listing["stored_tensors"])


def test_params_stored_lists_the_quant_state(bnb, cli):
    out = cli("params", bnb["nf4"], "--filter", "model.layers.0.mlp.gate_proj*").out
    assert out == (
        "name                                 shape     dtype  params     bytes  file\n"
        "model.layers.0.mlp.gate_proj.weight  [96, 64]  BNB4    6,144  4.32 KiB  model.safetensors\n"
        "1 tensor, 6,144 parameters, 4.32 KiB in 1 file\n"
        "quantized: bitsandbytes 4 bit nf4, block 64, double quant; 1 logical weights stand for 6 stored tensors (params as unquantized, bytes as stored): `--stored` lists the stored tensors\n"
    )
    # 96 x 64 four-bit values: 3,072 bytes, 96 blocks of 64 (absmax as U8 codes), 1 nested block of 256
    assert cli("params", bnb["nf4"], "--filter", "model.layers.0.mlp.gate_proj*", "--stored").out == (
        "name                                                               shape      dtype  params     bytes  file\n"
        "model.layers.0.mlp.gate_proj.weight                                [3072, 1]  U8      3,072  3.00 KiB  model.safetensors\n"
        "model.layers.0.mlp.gate_proj.weight.absmax                         [96]       U8         96      96 B  model.safetensors\n"
        "model.layers.0.mlp.gate_proj.weight.nested_absmax                  [1]        F32         1       4 B  model.safetensors\n"
        "model.layers.0.mlp.gate_proj.weight.nested_quant_map               [256]      F32       256  1.00 KiB  model.safetensors\n"
        "model.layers.0.mlp.gate_proj.weight.quant_map                      [16]       F32        16      64 B  model.safetensors\n"
        "model.layers.0.mlp.gate_proj.weight.quant_state.bitsandbytes__nf4  [166]      U8        166     166 B  model.safetensors\n"
        "6 tensors, 3,607 parameters, 4.32 KiB in 1 file\n"
    )
    assert cli("params", bnb["int8"], "--filter", "model.layers.0.mlp.gate_proj*", "--stored").out == (
        "name                                        shape     dtype  params     bytes  file\n"
        "model.layers.0.mlp.gate_proj.SCB            [96]      F32        96     384 B  model.safetensors\n"
        "model.layers.0.mlp.gate_proj.weight         [96, 64]  I8      6,144  6.00 KiB  model.safetensors\n"
        "model.layers.0.mlp.gate_proj.weight_format  []        U8          1       1 B  model.safetensors\n"
        "3 tensors, 6,241 parameters, 6.38 KiB in 1 file\n"
    )


def test_names_alone_show_bitsandbytes(bnb, tmp_path, cli):
    """Without config.json: the quant_state's name says nf4, nested_absmax says double quant."""
    for mode in ("nf4", "int8"):
        (tmp_path / mode).mkdir()
        (tmp_path / mode / "model.safetensors").symlink_to(f"{bnb[mode]}/model.safetensors")
    assert (
        "\nQuantization: bitsandbytes 4 bit nf4, block 64, double quant (quant_method bitsandbytes)\n"
        in cli("summary", tmp_path / "nf4").out
    )
    assert cli("tree", tmp_path / "int8").out.splitlines()[1].split() == ["(root)", "-", "78,144"]


# unsloth/llama-3-8b-bnb-4bit: nf4, double quant, every linear layer of Meta-Llama-3-8B
REPLICA = "llama-3-8b-bnb-4bit"


def test_published_4bit_llama_3_8b(published, cli):
    folder = published(REPLICA, replicas.quantized_specs)
    summary = summarize(open_catalog(str(folder)))
    assert (summary.total_params, summary.findings) == (8_030_261_248, ())
    specs = replicas.quantized_specs(replicas.published_config(REPLICA))
    assert summary.total_nbytes == sum(s.nbytes for s in specs) == 5_702_578_336
    assert (summary.quant.weights, summary.quant.params, summary.quant.nbytes) == (224, 6_979_321_856, 3_600_699_552)
    out = cli("summary", folder).out
    assert (
        "  224 quantized weights: 6,979,321,856 parameters as unquantized, 3.35 GiB stored, 4.13 bits per weight (scales, zeros and indices included)\n"
        in out
    )


def test_counting_reads_only_headers_and_states(published):
    """The quant states are a few hundred bytes each: read without numpy or torch."""
    code, loaded, out = imported_by("summary", published(REPLICA, replicas.quantized_specs))
    assert (code, loaded) == (0, [])
    assert out.startswith(f"{REPLICA}: 8,030,261,248 parameters (8.03B)")


def _small(tmp_path, edit=None, drop=(), state=None):
    """A 2-layer replica of llama-3-8b-bnb-4bit; state(name, raw) may rewrite a quant state's bytes."""
    config = dict(replicas.published_config(REPLICA), num_hidden_layers=2, vocab_size=1024)
    specs = replicas.quantized_specs(config)
    if edit:
        edit(config)
    specs = [
        s
        if not (state and s.data)
        else replicas.TensorSpec(s.name, s.dtype, (len(state(s.name, s.data)),), state(s.name, s.data))
        for s in specs
        if s.name not in drop
    ]
    replicas.write_layout(str(tmp_path), config, specs)
    return summarize(open_catalog(str(tmp_path)))


LAYER_PARAMS = 218_112_000


def test_unreadable_state_is_a_finding(tmp_path):
    q_state = "model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__nf4"
    summary = _small(tmp_path, state=lambda name, raw: b'{"shape": [4096' if name == q_state else raw)
    assert summary.findings[0].line() == (
        "model.layers.0.self_attn.q_proj.weight: expected bitsandbytes 4 bit nf4, block 64, double quant,"
        f" found {q_state} as a JSON object: invalid JSON (Expecting ',' delimiter: line 1 column 16 (char 15));"
        " those tensors are counted as stored elements; check quantization_config in config.json"
    )
    assert (
        summary.total_params
        == 2 * LAYER_PARAMS
        + 2 * 1024 * 4096
        + 4096
        - 4096 * 4096
        + 8_388_608
        + 262_144
        + 16
        + 1024
        + 256
        + len(b'{"shape": [4096')
    )


def test_state_shape_that_disagrees_with_the_packed_bytes(tmp_path):
    def wrong(name, raw):
        return raw.replace(b"[4096, 4096]", b"[4096, 4000]") if ".0.self_attn.q_proj" in name else raw

    summary = _small(tmp_path, state=wrong)
    assert summary.findings[0].line() == (
        "model.layers.0.self_attn.q_proj.weight: expected bitsandbytes 4 bit nf4, block 64, double quant,"
        " found packed weight of 8388608 bytes for the 16384000 four-bit values of shape [4096, 4000] (8192000 bytes);"
        " those tensors are counted as stored elements; check quantization_config in config.json"
    )


def test_findings_of_different_kinds_are_not_folded_together(tmp_path):
    """A missing absmax and the config's quant type disagreeing with the states are two findings, each folding its own repeats."""
    summary = _small(
        tmp_path,
        lambda c: c["quantization_config"].update(bnb_4bit_quant_type="fp4"),
        drop={"model.layers.1.mlp.up_proj.weight.absmax"},
    )
    assert [f.line() for f in summary.findings] == [
        "model.layers.0.mlp.down_proj.weight (and 13 more like it): expected model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__fp4 beside it"
        " (bitsandbytes 4 bit fp4, block 64, double quant), found missing; the count uses the packed tensor's shape; check quantization_config in config.json",
        "model.layers.1.mlp.up_proj.weight: expected model.layers.1.mlp.up_proj.weight.absmax beside it (bitsandbytes 4 bit fp4, block 64, double quant),"
        " found missing; the count uses the packed tensor's shape; check quantization_config in config.json",
    ]
    assert summary.total_params == 2 * LAYER_PARAMS + 2 * 1024 * 4096 + 4096


def test_a_state_too_large_is_not_read(tmp_path):
    name = "model.layers.1.mlp.up_proj.weight.quant_state.bitsandbytes__nf4"
    summary = _small(tmp_path, state=lambda n, raw: b" " * 20_000 + raw if n == name else raw)
    assert summary.findings[0].line() == (
        "model.layers.1.mlp.up_proj.weight: expected bitsandbytes 4 bit nf4, block 64, double quant,"
        f" found {name} as JSON bytes (U8, at most 16384 bytes): U8 [20175];"
        " those tensors are counted as stored elements; check quantization_config in config.json"
    )


def test_hostile_states_and_settings_are_findings_in_clean_text(tmp_path):
    """A quant type with terminal controls in config.json, a state claiming 2**80 values, a state
    of 16 KiB of brackets, a state that is not UTF-8: summary counts on, each a finding, escaped."""
    from hostile import assert_clean_output, run_cli

    hostile = {
        "model.layers.0.self_attn.q_proj": b'{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [1099511627776, 1099511627776]}',
        "model.layers.0.self_attn.k_proj": b"[" * 16_000,
        "model.layers.1.self_attn.v_proj": b'{"shape": "\xff\xfe"}',
    }

    def state(name, raw):
        return next((bad for base, bad in hostile.items() if name.startswith(base + ".")), raw)

    _small(tmp_path, lambda c: c["quantization_config"].update(bnb_4bit_quant_type="\x1b[31mnf4\u202e"), state=state)
    outcome = run_cli("summary", tmp_path, timeout=120)
    assert (outcome.code, outcome.err) == (0, "")
    assert_clean_output(outcome.out)
    findings = outcome.out.split("Findings:\n")[1].splitlines()
    words = "bitsandbytes 4 bit \\x1b[31mnf4\\u202e, block 64, double quant"
    assert findings[:3] == [  # the weights with a readable state are counted by it
        f"  model.layers.0.mlp.down_proj.weight (and 10 more like it): expected model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__\\x1b[31mnf4\\u202e beside it ({words}),"
        " found missing; the count uses the packed tensor's shape; check quantization_config in config.json",
        f"  model.layers.0.self_attn.k_proj.weight (and 1 more like it): expected {words}, found model.layers.0.self_attn.k_proj.weight.quant_state.bitsandbytes__nf4 as a JSON object:"
        " deeper nesting; those tensors are counted as stored elements; check quantization_config in config.json",
        f"  model.layers.0.self_attn.q_proj.weight: expected {words}, found packed weight of 8388608 bytes for the 1208925819614629174706176 four-bit values"
        " of shape [1099511627776, 1099511627776] (604462909807314587353088 bytes); those tensors are counted as stored elements; check quantization_config in config.json",
    ]
