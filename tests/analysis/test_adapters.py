"""LoRA adapters read as what they do to their base model: adapters made and saved by PEFT
itself on the tiny Llama; PEFT's own counts, ranks, alphas and scalings are the reference."""

import contextlib
import io
import json
import re
import shutil

import pytest

import llm_anatomy as la
from llm_anatomy.core.errors import UsageError

import checkpoints
from conftest import imported_by
from test_hub import online, standin  # noqa: F401  (fixtures of the stand-in Hub)

pytestmark = pytest.mark.torch  # adapters made by PEFT, on models made by transformers

# name -> LoraConfig arguments: plain LoRA with per-module rank and alpha and a saved head,
# rsLoRA, DoRA on an embedding and the attention output (a regex target_modules), the old
# pickled adapter_model.bin.
KINDS = {
    "lora": dict(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj"],
        rank_pattern={"layers.1.self_attn.q_proj": 2},
        alpha_pattern={"v_proj": 3},
        modules_to_save=["lm_head"],
    ),
    "rslora": dict(r=8, lora_alpha=16, target_modules=["k_proj", "down_proj"], use_rslora=True),
    "dora": dict(r=4, lora_alpha=8, target_modules=r".*\.(embed_tokens|o_proj)", use_dora=True),
    "bin": dict(r=2, lora_alpha=4, target_modules=["gate_proj", "up_proj"], layers_to_transform=[1]),
}


@pytest.fixture(scope="module")
def adapters(llama_dir, tmp_path_factory):
    made = {}
    for name, lora in KINDS.items():
        folder = tmp_path_factory.mktemp(f"adapter-{name}")
        made[name] = checkpoints.peft_lora(str(llama_dir), str(folder), safe_serialization=name != "bin", **lora)
    return made


def _peft_reference(llama_dir, adapter):
    """(PEFT's trainable count, its printed line, {module: (r, alpha, scaling, dora)})."""
    from peft.tuners.lora import LoraLayer

    model = checkpoints.peft_model(str(llama_dir), adapter)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model.print_trainable_parameters()
    layers = {}
    for name, module in model.base_model.model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.r:
            layers[name] = (
                module.r["default"],
                module.lora_alpha["default"],
                module.scaling["default"],
                "default" in module.lora_magnitude_vector,
            )
    return model.get_nb_trainable_parameters()[0], printed.getvalue().strip(), layers


@pytest.mark.parametrize("kind", KINDS)
def test_modules_and_counts_as_peft_builds_them(kind, adapters, llama_dir):
    trainable, _, layers = _peft_reference(llama_dir, adapters[kind])
    adapter = la.open(adapters[kind]).adapter
    assert adapter.trainable == trainable
    assert {m.name: (m.rank, m.alpha, m.scaling, m.dora) for m in adapter.modules} == layers


@pytest.mark.parametrize("kind", KINDS)
def test_summary_with_its_base_prints_peft_line(kind, adapters, llama_dir, cli, capsys):
    _, printed, _ = _peft_reference(llama_dir, adapters[kind])
    capsys.readouterr()  # transformers' loading bars
    result = cli("summary", adapters[kind])  # the base is base_model_name_or_path, a folder here
    assert result.code == 0 and result.err == ""
    assert f"on {llama_dir.name}, as PEFT prints it: {printed}" in result.out.splitlines()
    assert cli("summary", adapters[kind], "--base", llama_dir).out == result.out


def test_summary_text(adapters, llama_dir, cli):
    result = cli("summary", adapters["lora"])
    name = adapters["lora"].rsplit("/", 1)[-1]
    assert (
        result.out
        == f"""\
{name}: LoRA adapter of {llama_dir} (LlamaForCausalLM)
adapted modules: 4, rank 2 to 4, scaling = alpha / r
trainable parameters: 9,728 (LoRA 1,536, modules_to_save 8,192)
stored: 38.00 KiB in F32
on {llama_dir.name}, as PEFT prints it: trainable params: 9,728 || all params: 87,872 || trainable%: 11.0706

Adapted modules:
  module                           kind    rank  alpha  scaling  in  out  params
  model.layers.0.self_attn.q_proj  linear     4      8        2  64   64     512
  model.layers.0.self_attn.v_proj  linear     4      3     0.75  64   32     384
  model.layers.1.self_attn.q_proj  linear     2      8        4  64   64     256
  model.layers.1.self_attn.v_proj  linear     4      3     0.75  64   32     384

Saved whole (modules_to_save):
  weight          shape      params
  lm_head.weight  [128, 64]   8,192
"""
    )
    data = json.loads(cli("summary", adapters["lora"], "--json").out)
    assert (data["trainable_params"], data["lora_params"], data["base"]["all_params"]) == (9728, 1536, 87872)
    assert json.loads(cli("params", adapters["lora"], "--json").out)["adapter"] == {
        key: value for key, value in data.items() if key != "base"
    }
    assert data["modules"][1] == {
        "name": "model.layers.0.self_attn.v_proj",
        "kind": "linear",
        "rank": 4,
        "alpha": 3,
        "scaling": 0.75,
        "in_features": 64,
        "out_features": 32,
        "params": 384,
        "dora": False,
    }


def test_dora_embedding_and_rslora_scaling(adapters, cli):
    out = cli("summary", adapters["dora"]).out.splitlines()
    assert out[0].endswith(
        "LoRA (DoRA) adapter of " + str(la.open(adapters["dora"]).adapter.base_model) + " (LlamaForCausalLM)"
    )
    assert "also stored: 1 base weight of the targeted embeddings, not trained (model.embed_tokens.weight)" in out
    assert "  model.embed_tokens               embedding + DoRA     4      8        2  128   64     832" in out
    assert "adapted modules: 4, rank 8, scaling = alpha / sqrt(r) (rsLoRA)" in cli("summary", adapters["rslora"]).out


def test_params_lists_tensors_then_modules(adapters, cli):
    out = cli("params", adapters["bin"]).out
    assert "base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight  [2, 64]" in out
    assert out.endswith(
        """\
4 tensors, 640 parameters, 2.50 KiB in 1 file

Adapted modules:
  module                    kind    rank  alpha  scaling  in  out  params
  model.layers.1.mlp.gate_proj  linear     2      4        2  64   96     320
  model.layers.1.mlp.up_proj    linear     2      4        2  64   96     320
""".replace("module                    kind", "module                        kind")
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_adapter_field_explained(kind, adapters, cli):
    for lang in ("en", "zh"):
        result = cli("config", adapters[kind], "--explain", "--lang", lang)
        assert result.code == 0 and "(no glossary entry)" not in result.out and "术语表中没有此字段" not in result.out
    assert result.out.startswith(f"{adapters[kind].rsplit('/', 1)[-1]}：adapter_config.json（PEFT 适配器）的 ")
    data = json.loads(cli("config", adapters[kind] + "/adapter_config.json", "--explain", "--json").out)
    assert data["architecture"] is None and all(f["explanation"] for f in data["fields"])


def test_config_is_the_json_as_stored(adapters, cli):
    result = cli("config", adapters["lora"])
    stored = adapters["lora"] + "/adapter_config.json"
    with open(stored) as handle:
        assert result.out.splitlines()[:-1] == json.dumps(json.load(handle), indent=2).splitlines()
    assert (
        result.out.splitlines()[-1]
        == f"note: this is {stored}, a PEFT adapter's config, as stored; `config --explain` explains each field"
    )


def test_every_lora_config_field_has_an_entry():
    from peft import LoraConfig

    from llm_anatomy import glossary

    fields = LoraConfig(target_modules=["q_proj"]).to_dict()
    assert [f for f in fields if glossary.entry(f"peft.{f}") is None] == []


def _base(folder, **changes):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = dict(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    LlamaForCausalLM(LlamaConfig(**{**config, **changes})).save_pretrained(folder)
    return folder


def test_mismatched_base_one_line_each(adapters, llama_dir, tmp_path, cli, capsys):
    wide = _base(tmp_path / "wide", hidden_size=32, num_hidden_layers=1, vocab_size=256)
    vocab = _base(tmp_path / "vocab", vocab_size=256)
    capsys.readouterr()  # transformers' saving bars
    result = cli("summary", adapters["lora"], "--base", wide)
    weights = f"{adapters['lora']}/adapter_model.safetensors"
    todo = f"use the base model the adapter was trained on ({llama_dir})"
    assert result.code == 1
    assert result.err.splitlines() == [
        f"llm-anatomy: {weights}: expected model.layers.0.self_attn.q_proj.weight [64, 64] (in_features 64, out_features 64), found [32, 32] in wide; {todo}",
        f"llm-anatomy: {weights}: expected model.layers.0.self_attn.v_proj.weight [32, 64] (in_features 64, out_features 32), found [16, 32] in wide; {todo}",
        f"llm-anatomy: {weights}: expected module model.layers.1.self_attn.q_proj in the base wide, found no such weight; {todo}",
        f"llm-anatomy: {weights}: expected module model.layers.1.self_attn.v_proj in the base wide, found no such weight; {todo}",
        f"llm-anatomy: {weights}: expected lm_head.weight [128, 64] as saved, found [256, 32] in wide; {todo}",
    ]
    assert result.out.startswith(adapters["lora"].rsplit("/", 1)[-1] + ": LoRA adapter")
    result = cli("params", adapters["dora"], "--base", vocab)
    assert result.code == 1 and result.err.splitlines() == [
        f"llm-anatomy: {adapters['dora']}/adapter_model.safetensors: expected model.embed_tokens.weight [128, 64] (a vocabulary of 128 tokens of width 64), found [256, 64] in vocab; {todo}",
    ]


def test_tied_base_head_is_its_embedding(adapters, llama_tied_dir, cli):
    assert cli("summary", adapters["lora"], "--base", llama_tied_dir).code == 0


def test_an_unreadable_own_base_is_a_note(adapters, tmp_path, cli):
    folder = tmp_path / "adapter"
    shutil.copytree(adapters["lora"], folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (tmp_path / "empty").mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": str(tmp_path / "empty")})
    )
    result = cli("summary", folder)
    assert result.code == 0 and "as PEFT prints it" not in result.out
    assert (
        result.err
        == f"llm-anatomy: note: the adapter's base_model_name_or_path is not read: {tmp_path / 'empty'}: expected weights (*.safetensors, pytorch_model*.bin, *.gguf, *.pth or *.pt files, or a shard index), found none; point at the folder that holds the weights\n"
    )


def test_base_refused_for_a_model(llama_dir, cli):
    result = cli("summary", llama_dir, "--base", llama_dir)
    assert (result.code, result.out, result.err) == (
        2,
        "",
        f"llm-anatomy: {llama_dir.name}: expected a PEFT adapter (adapter_config.json) with --base, found a model; drop --base\n",
    )


def test_damaged_config_is_one_line(adapters, tmp_path, cli):
    folder = tmp_path / "damaged"
    shutil.copytree(adapters["lora"], folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "rank_pattern": {"q_proj": 3}}))
    result = cli("summary", folder)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {folder}/adapter_model.safetensors: expected rank 3 for model.layers.0.self_attn.q_proj (rank_pattern 'q_proj' in adapter_config.json), found lora_A [4, 64]; the adapter config does not belong to these weights\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["params"],
        ["summary"],
        ["config"],
        ["config", "--explain"],
        ["values", "model.layers.0.self_attn.q_proj.weight", "--merged"],
    ],
)
def test_header_only(argv, adapters):
    code, loaded, _ = imported_by(argv[0], adapters["lora"], *argv[1:])
    assert (code, loaded) == (0, [])


def _merged_reference(base, adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter)).merge_and_unload()


@pytest.fixture(scope="module")
def more_adapters(llama_bf16_dir, gpt2_dir, llama_dir, tmp_path_factory):
    """(base, adapter) of LoRAs the merge must follow: a bfloat16 base and adapter, an embedding
    and the head, GPT-2's Conv1D weights stored [in, out] (fan_in_fan_out)."""

    def make(name, base, **lora):
        return base, checkpoints.peft_lora(str(base), str(tmp_path_factory.mktemp(name)), **lora)

    return {
        "bf16": make("bf16", llama_bf16_dir, r=4, lora_alpha=16, target_modules=["q_proj", "down_proj"]),
        "embedding": make(
            "embedding", llama_dir, r=4, lora_alpha=4, target_modules=["embed_tokens", "lm_head"], use_rslora=True
        ),
        "gpt2": make("gpt2", gpt2_dir, r=2, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True),
    }


@pytest.mark.parametrize("kind", ["lora", "rslora", "bin", "bf16", "embedding", "gpt2"])
def test_merged_equals_merge_and_unload(kind, adapters, more_adapters, llama_dir):
    """Every element of every parameter, against PEFT's merged model."""
    import numpy as np

    base, adapter = more_adapters[kind] if kind in more_adapters else (llama_dir, adapters[kind])
    model = la.open(adapter, base=base)
    for name, parameter in _merged_reference(base, adapter).named_parameters():
        expected = parameter.detach().float().numpy()
        assert np.array_equal(model.get_parameter(name).merged(), expected), name
    name = next(m.name for m in model.adapter.modules) + ".weight"
    rows, cols = model.get_parameter(name).shape
    assert np.array_equal(
        model.get_parameter(name).merged(-1, slice(1, cols, 3)), model.get_parameter(name).merged()[-1, 1::3]
    )


def test_values_merged_prints_as_torch(adapters, llama_dir, cli, capsys):
    merged = _merged_reference(llama_dir, adapters["lora"])
    capsys.readouterr()
    name = "model.layers.1.self_attn.q_proj.weight"
    result = cli("values", adapters["lora"], name, "--merged")
    assert (result.code, result.err) == (0, "")
    assert result.out == f"{name}  [64, 64]  F32\n{merged.get_parameter(name).data}\n"
    result = cli("values", adapters["lora"], f"{name}[2, :8]", "--merged", "--base", llama_dir)
    assert result.out == f"{name}[2, :8]  [8]  F32\n{merged.get_parameter(name).data[2, :8]}\n"


def test_a_gguf_base_is_checked_but_not_merged_into(adapters, llama_dir, tmp_path, cli):
    """The GGUF converted from the base fits the adapter (its tensors under transformers' names
    and shapes); its q and k rows are in llama.cpp's order, which the merge does not undo."""
    gguf = checkpoints.llama_gguf(str(llama_dir), str(tmp_path / "base.gguf"))
    result = cli("summary", adapters["lora"], "--base", gguf)
    assert (result.code, result.err) == (0, "")
    assert (
        "on base.gguf, as PEFT prints it: trainable params: 9,728 || all params: 87,872 || trainable%: 11.0706"
        in result.out.splitlines()
    )
    result = cli("values", adapters["lora"], "model.layers.0.self_attn.q_proj.weight", "--merged", "--base", gguf)
    assert (result.code, result.out) == (2, "")
    assert (
        result.err
        == "llm-anatomy: base.gguf: expected a base in transformers' layout to merge into (safetensors or a transformers .bin), found a gguf checkpoint with its own names and row order; pass the Hugging Face base model\n"
    )


@pytest.fixture(scope="module")
def dora_adapters(llama_dir, llama_bf16_dir, tmp_path_factory):
    """(base, adapter) of DoRA on linear modules, with a rank pattern: float32 and bfloat16."""
    lora = dict(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj"],
        use_dora=True,
        rank_pattern={"layers.1.self_attn.q_proj": 2},
    )
    return {
        dtype: (base, checkpoints.peft_lora(str(base), str(tmp_path_factory.mktemp(f"dora-{dtype}")), **lora))
        for dtype, base in (("float32", llama_dir), ("bfloat16", llama_bf16_dir))
    }


def _merged_in(base, adapter, dtype):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=getattr(torch, dtype))
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


@pytest.mark.slow  # PEFT merges the adapter; every element of six weights computed in Python
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dora_merged_equals_merge_and_unload(dtype, dora_adapters, cli):
    """Every element against PEFT's merge_and_unload(), the adapter (float32) on a float32 and
    a bfloat16 base. DoRA's row norm is summed as torch's AVX2 kernel sums it (8 lanes): bit
    for bit there; a CPU where torch sums 16 lanes (AVX-512) may round the norm, and so the
    factor and each element, differently: there within 2 units in the last place."""
    import numpy as np
    import torch

    base, adapter = dora_adapters[dtype]
    model = la.open(adapter, base=base)
    dora = {m.name + ".weight" for m in model.adapter.modules}
    assert len(dora) == 6 and all(m.dora for m in model.adapter.modules)
    exact = torch.backends.cpu.get_cpu_capability() == "AVX2"
    for name, parameter in _merged_in(base, adapter, dtype).named_parameters():
        expected = parameter.detach().float().numpy()
        got = model.get_parameter(name).merged()
        if exact or name not in dora:
            assert np.array_equal(got, expected), name
        else:
            ulp = np.spacing(np.abs(expected)) * (2**16 if dtype == "bfloat16" else 1)
            assert np.all(np.abs(got - expected) <= 2 * ulp), name
        if name in dora:  # a part: from its rows whole, the same values
            assert np.array_equal(model.get_parameter(name).merged(3, slice(1, 9, 2)), got[3, 1:9:2])
    name = "model.layers.1.mlp.down_proj.weight"
    result = cli("values", adapter, f"{name}[5, :4]", "--merged", "--base", base)
    assert (result.code, result.out.splitlines()[0]) == (
        0,
        f"{name}[5, :4]  [4]  {'F32' if dtype == 'float32' else 'BF16'}",
    )


def test_merged_refusals(adapters, llama_dir, cli):
    weight = "model.embed_tokens.weight"
    result = cli("values", adapters["dora"], weight, "--merged")
    assert (result.code, result.err) == (
        2,
        f"llm-anatomy: {weight}: expected a DoRA linear module in [out, in] layout to merge, found a DoRA embedding; merged DoRA embeddings and Conv1D weights are not computed yet\n",
    )
    result = cli("values", llama_dir, weight, "--base", llama_dir)
    assert (result.code, result.err) == (
        2,
        f"llm-anatomy: {llama_dir}: expected --base with --merged (values of a LoRA adapter merged into its base), found --base alone; add --merged, or drop --base\n",
    )
    with pytest.raises(la.SubmoduleError):
        la.open(adapters["lora"], base=llama_dir).get_parameter("model.layers.0.self_attn.q_proj.bias")
    with pytest.raises(
        UsageError,
        match=r"^model.norm.weight: expected a base weight from open\(adapter, base=...\).get_parameter\(\), found a parameter of a model; open the adapter with its base$",
    ):
        la.open(llama_dir).get_parameter("model.norm.weight").merged()
    with pytest.raises(UsageError, match="expected a PEFT adapter"):
        la.open(llama_dir, base=llama_dir)
    assert [name for name, _ in la.open(adapters["bin"]).named_parameters()] == [
        "base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight",
        "base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight",
        "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight",
        "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight",
    ]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"r": "4"}, "{config}: expected a positive whole number as r, found '4'; the adapter config is damaged"),
        (
            {"rank_pattern": ["q_proj"]},
            "{config}: expected an object of module patterns as rank_pattern, found list; the adapter config is damaged",
        ),
        (
            {"alpha_pattern": {"q_proj": "x\x1b[31m"}},
            "{weights}: expected a number as alpha of model.layers.0.self_attn.q_proj in adapter_config.json, found 'x\\x1b[31m'; the adapter config is damaged",
        ),
        (
            {"peft_type": "IA3"},
            "{config}: expected a LoRA adapter (peft_type LORA), found peft_type IA3; only LoRA adapters are read so far",
        ),
    ],
)
def test_hostile_config_one_line(change, expected, adapters, tmp_path, cli):
    folder = tmp_path / "hostile"
    shutil.copytree(adapters["lora"], folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}))
    result = cli("summary", folder)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == "llm-anatomy: "
        + expected.format(config=folder / "adapter_config.json", weights=folder / "adapter_model.safetensors")
        + "\n"
    )


@pytest.mark.hub_standin
def test_an_adapter_on_the_hub(adapters, llama_dir, request, cli):
    """An adapter repository read from the Hub (the stand-in): adapter_config.json is fetched
    whole beside the weights' header, and the adapter is the same as in its folder."""
    from test_hub import local_out

    online = request.getfixturevalue("online")
    online.add("org/tiny-lora", adapters["lora"])
    result = cli("summary", "org/tiny-lora", "--base", llama_dir)
    assert (result.code, result.err) == (0, "")
    assert result.out == local_out(cli, "summary", adapters["lora"], "org/tiny-lora")
    fetched = sorted({e.path.rsplit("/", 1)[-1] for e in online.log if e.host == "hub" and "/resolve/" in e.path})
    assert fetched == ["adapter_config.json", "adapter_model.safetensors"]


def test_tree_marks_the_adapted_modules_of_the_base(adapters, llama_dir, cli):
    result = cli("tree", adapters["lora"], "--node", "model.layers.1.self_attn")
    assert (result.code, result.err) == (0, "")
    assert (
        result.out
        == """\
module                                    own params  total params
model.layers.1.self_attn: LlamaAttention           -        12,288
├── q_proj: Linear + LoRA r=2 alpha=8          4,096         4,096
├── k_proj: Linear                             2,048         2,048
├── v_proj: Linear + LoRA r=4 alpha=3          2,048         2,048
└── o_proj: Linear                             4,096         4,096
12,288 parameters (12.29K)
"""
    )

    def labels(adapter, depth):
        return [re.sub(r"\s+\S+\s+\S+$", "", line) for line in cli("tree", adapter, "--depth", depth).out.splitlines()]

    assert "│   │   └── 0-1: LlamaDecoderLayer (each)" in labels(adapters["rslora"], "3")  # adapted alike: folded
    assert ["│   │   ├── 0: LlamaDecoderLayer", "│   │   └── 1: LlamaDecoderLayer"] == [
        line for line in labels(adapters["lora"], "3") if "DecoderLayer" in line
    ]
    assert "└── lm_head: Linear + saved whole by the adapter" in labels(adapters["lora"], "1")
    result = cli("tree", adapters["lora"], "--style", "torch")
    assert (result.code, result.err) == (
        2,
        f"llm-anatomy: {adapters['lora'].rsplit('/', 1)[-1]}: expected a model for --style torch, found a LoRA adapter (PEFT's module classes are not shown); drop --style torch\n",
    )


def test_another_kind_of_adapter_is_its_tensors(llama_dir, tmp_path, cli):
    """An IA3 adapter (PEFT's, not LoRA): params lists its tensors as any checkpoint's; the views
    that describe an adapter refuse it in one line."""
    import torch
    from peft import IA3Config, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(llama_dir)),
        IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"]),
    ).save_pretrained(str(tmp_path / "ia3"))
    result = cli("params", tmp_path / "ia3")
    assert (
        result.code == 0 and result.out.splitlines()[-1] == "4 tensors, 256 parameters, 1.00 KiB in 1 file"
    )  # k_proj: 32 each, down_proj: 96 each
    result = cli("summary", tmp_path / "ia3")
    assert (result.code, result.out) == (1, "")
    assert result.err.endswith(
        "adapter_config.json: expected a LoRA adapter (peft_type LORA), found peft_type IA3; only LoRA adapters are read so far\n"
    )
