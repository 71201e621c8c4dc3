"""LoRA adapters read as what they do to their base model: adapters made and saved by PEFT
itself on the tiny Llama; PEFT's own counts, ranks, alphas and scalings are the reference."""

import contextlib
import io
import json
import re
import shutil

import pytest

import llm_anatomy as la
from llm_anatomy.core.catalog import natural_key
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
        **checkpoints.TINY_DECODER,
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


@pytest.mark.parametrize("kind", KINDS)
def test_tree_style_torch_is_the_model_peft_builds(kind, adapters, llama_dir, cli, capsys):
    """tree --style torch on an adapter shows PeftModel.from_pretrained(base, adapter): every
    module's named_children() (class names as __class__.__name__ gives them: PEFT's own Linear,
    ModuleDict, ModulesToSaveWrapper...) and named_parameters() in PEFT's names and order."""
    from llm_anatomy.analysis.tree import find_node, named_children

    reference = checkpoints.peft_model(str(llama_dir), adapters[kind])
    model = la.open(adapters[kind])
    from llm_anatomy.analysis.adapter import peft_tree

    tree = peft_tree(model.local_base().tree, model.adapter, model.catalog.config)
    for path, module in reference.named_modules():
        expected = [(name, type(child).__name__) for name, child in module.named_children()]
        assert named_children(find_node(tree, path)) == expected, path
    assert find_node(tree, "").class_name == type(reference).__name__
    capsys.readouterr()  # transformers' progress bar, loading the reference
    result = cli("tree", adapters[kind], "--style", "torch", "--params")
    assert (result.code, result.err) == (0, "")
    assert result.out == "".join(f"{n}: torch.Size({list(p.shape)})\n" for n, p in reference.named_parameters())
    layer = "base_model.model.model.layers.1.self_attn"
    result = cli("tree", adapters[kind], "--style", "torch", "--node", layer)
    assert result.out == "".join(
        f"{n}: {type(c).__name__}\n" for n, c in reference.get_submodule(layer).named_children()
    )


@pytest.mark.parametrize(
    "lora",
    [
        dict(r=2, lora_alpha=4, target_modules=["embed_tokens", "q_proj"], task_type="CAUSAL_LM"),
        dict(
            r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=["lm_head"], lora_dropout=0.1, lora_bias=True
        ),
    ],
    ids=["embedding-lora-causal-lm", "saved-tied-head-dropout-bias"],
)
def test_tree_style_torch_on_a_tied_base(llama_tied_dir, tmp_path, lora):
    """A base whose head is its embedding: the tied weight named once, where PEFT's
    named_parameters() first meets it (in the LoRA layer's base_layer, or the wrapper's
    original_module); the trained copy of a saved head is a parameter of its own."""
    from llm_anatomy.analysis.adapter import peft_tree
    from llm_anatomy.analysis.tree import find_node, named_children, named_parameters

    folder = checkpoints.peft_lora(str(llama_tied_dir), str(tmp_path / "adapter"), **lora)
    reference = checkpoints.peft_model(str(llama_tied_dir), folder)
    model = la.open(folder)
    tree = peft_tree(model.local_base().tree, model.adapter, model.catalog.config)
    for path, module in reference.named_modules():
        expected = [(name, type(child).__name__) for name, child in module.named_children()]
        assert named_children(find_node(tree, path)) == expected, path
    assert named_parameters(tree.root) == [(n, tuple(p.shape)) for n, p in reference.named_parameters()]
    assert find_node(tree, "").class_name == type(reference).__name__


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


# ---------------------------------------------------------------- LoRA GGUF (llama.cpp's convert_lora_to_gguf.py)

# A PEFT adapter llama.cpp's converter takes (no modules_to_save: it refuses whole weights), with
# a rank per module; one alpha, as the converter keeps only lora_alpha.
GGUF_LORA = dict(
    r=4,
    lora_alpha=8,
    target_modules=["q_proj", "k_proj", "v_proj", "down_proj"],
    rank_pattern={"layers.1.self_attn.q_proj": 2},
)


@pytest.fixture(scope="module")
def lora_gguf(llama_dir, tmp_path_factory):
    """(the PEFT folder, the LoRA GGUF gguf.GGUFWriter wrote from it as the converter does)."""
    folder = tmp_path_factory.mktemp("gguf-lora")
    peft_folder = checkpoints.peft_lora(str(llama_dir), str(folder / "peft"), **GGUF_LORA)
    return peft_folder, checkpoints.lora_gguf(peft_folder, str(llama_dir), str(folder / "lora.gguf"))


def _modules(adapter):
    return [m[:-1] for m in adapter.modules]  # all but the tensors: the GGUF's are other files' and names


GGUF_MODULES = """\
Adapted modules:
  module                           kind    rank  alpha  scaling  in  out  params
  model.layers.0.mlp.down_proj     linear     4      8        2  96   64     640
  model.layers.0.self_attn.k_proj  linear     4      8        2  64   32     384
  model.layers.0.self_attn.q_proj  linear     4      8        2  64   64     512
  model.layers.0.self_attn.v_proj  linear     4      8        2  64   32     384
  model.layers.1.mlp.down_proj     linear     4      8        2  96   64     640
  model.layers.1.self_attn.k_proj  linear     4      8        2  64   32     384
  model.layers.1.self_attn.q_proj  linear     2      8        4  64   64     256
  model.layers.1.self_attn.v_proj  linear     4      8        2  64   32     384
"""


def test_lora_gguf_read_as_its_peft_original(lora_gguf, llama_dir, cli):
    """Modules, ranks (from the shapes), alpha, scaling and counts are the PEFT adapter's."""
    peft_folder, gguf = lora_gguf
    assert _modules(la.open(gguf).adapter) == _modules(la.open(peft_folder).adapter)
    result = cli("summary", gguf)
    assert (result.code, result.err) == (0, "")
    assert (
        result.out
        == """\
lora.gguf: LoRA adapter of an unnamed base (general.architecture llama)
adapted modules: 8, rank 2 to 4, scaling = alpha / r
trainable parameters: 3,584 (LoRA 3,584, modules_to_save 0)
stored: 14.00 KiB in F32

"""
        + GGUF_MODULES
    )
    result = cli("summary", gguf, "--base", llama_dir)
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[4] == (
        f"on {llama_dir.name}, as PEFT prints it: trainable params: 3,584 || all params: 81,728 || trainable%: 4.3853"
    )
    out = cli("params", gguf).out
    assert "blk.1.attn_q.weight.lora_a    [2, 64]  F32       128     512 B  lora.gguf" in out
    assert out.endswith("16 tensors, 3,584 parameters, 14.00 KiB in 1 file\n\n" + GGUF_MODULES)
    assert json.loads(cli("params", gguf, "--json").out)["adapter"]["modules"][6] == {
        "name": "model.layers.1.self_attn.q_proj",
        "kind": "linear",
        "rank": 2,
        "alpha": 8.0,
        "scaling": 4.0,
        "in_features": 64,
        "out_features": 64,
        "params": 256,
        "dora": False,
    }


def test_lora_gguf_keys_explained(lora_gguf, cli):
    _, gguf = lora_gguf
    for lang in ("en", "zh"):
        result = cli("config", gguf, "--explain", "--lang", lang)
        assert result.code == 0 and "(no glossary entry)" not in result.out and "术语表中没有此字段" not in result.out
    assert result.out.startswith("lora.gguf：LoRA GGUF（llama.cpp 的适配器格式）的 6 个键值及其含义\n")
    result = cli("config", gguf, "--explain")
    assert result.out.splitlines()[:2] == [
        "lora.gguf: the 6 key/values of a LoRA GGUF (llama.cpp's adapter format), explained",
        "",
    ]
    assert "adapter.lora.alpha = 8.0" in result.out.splitlines()
    result = cli("config", gguf)  # no model config to derive: the key/values as stored
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[:3] == ["{", '  "general.architecture": "llama",', '  "general.type": "adapter",']
    assert (
        result.out.splitlines()[-1]
        == "note: lora.gguf is a LoRA GGUF: it holds no model config; these are its key/values as stored; `config --explain` explains each"
    )
    data = json.loads(cli("config", gguf, "--explain", "--json").out)
    assert [f["path"] for f in data["fields"]] == [
        "general.architecture",
        "general.type",
        "adapter.type",
        "general.name",
        "adapter.lora.alpha",
        "general.quantization_version",
    ]


def test_lora_gguf_tree_on_its_base(lora_gguf, llama_dir, cli):
    _, gguf = lora_gguf
    result = cli("tree", gguf, "--base", llama_dir, "--node", "model.layers.1.self_attn")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[1:4] == [
        "model.layers.1.self_attn: LlamaAttention           -        12,288",
        "├── q_proj: Linear + LoRA r=2 alpha=8          4,096         4,096",
        "├── k_proj: Linear + LoRA r=4 alpha=8          2,048         2,048",
    ]
    result = cli("tree", gguf)
    assert (result.code, result.out) == (2, "")
    assert (
        result.err
        == "llm-anatomy: lora.gguf: expected --base MODEL for the tree of a LoRA GGUF (the base's tree, the adapted modules marked), found no base; add --base with the base model\n"
    )
    result = cli("tree", gguf, "--base", llama_dir, "--style", "torch")
    assert (result.code, result.out) == (2, "")
    assert (
        result.err
        == "llm-anatomy: lora.gguf: expected a PEFT adapter for --style torch (the model PeftModel.from_pretrained builds), found a LoRA GGUF; drop --style torch\n"
    )


def test_lora_gguf_pairs_with_its_peft_original(lora_gguf):
    """verify pairs each lora_a and lora_b with PEFT's, under PEFT's names; q's and k's lora_b
    through llama.cpp's rotary row order, undone with the heads of the adapter's base."""
    peft_folder, gguf = lora_gguf
    found = la.verify(peft_folder, gguf)
    assert found.verdict == "pass" and len(found.tensors) == 16 and found.header.only_a == found.header.only_b == ()
    assert {check.status for check in found.tensors} == {"identical"}
    assert sorted(c.a_name for c in found.tensors if c.transforms) == [
        f"base_model.model.model.layers.{i}.self_attn.{m}_proj.lora_B.weight" for i in (0, 1) for m in "kq"
    ]
    assert ("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", "blk.1.attn_q.weight.lora_a") in {
        (c.a_name, c.b_name) for c in found.tensors
    }


def test_lora_gguf_refusals(lora_gguf, llama_dir, tmp_path, cli):
    import gguf

    _, path = lora_gguf
    result = cli("values", path, "model.layers.0.self_attn.q_proj.weight", "--merged", "--base", llama_dir)
    assert (result.code, result.out) == (2, "")
    assert (
        result.err
        == "llm-anatomy: lora.gguf: expected a PEFT adapter to merge, found a LoRA GGUF (laid out for llama.cpp's base weights); merge the PEFT adapter it was converted from\n"
    )
    damaged = str(tmp_path / "damaged.gguf")
    writer = gguf.GGUFWriter(damaged, "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_string(gguf.Keys.Adapter.LORA_ALPHA, "\x1b[31m8")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    result = cli("summary", damaged)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {damaged}: expected a positive number as adapter.lora.alpha, found '\\x1b[31m8'; the LoRA GGUF is damaged\n"
    )


@pytest.mark.parametrize("argv", [["params"], ["summary"], ["config"], ["config", "--explain"]])
def test_lora_gguf_header_only(argv, lora_gguf):
    code, loaded, _ = imported_by(argv[0], lora_gguf[1], *argv[1:])
    assert (code, loaded) == (0, [])


# One interpreter runs every conversion: importing torch and transformers is most of one.
LORA_DRIVER = "import json, runpy, sys\nscript, runs = sys.argv[1], json.loads(sys.argv[2])\nfor argv in runs:\n    sys.argv[:] = [script, *argv]\n    runpy.run_path(script, run_name='__main__')\n"


@pytest.mark.slow
def test_real_converter_lora_gguf(lora_gguf, llama_dir, llama_cpp_lora_converter, tmp_path, cli):
    """convert_lora_to_gguf.py itself (F32 and F16): read as the PEFT adapter it came from, every
    pair identical (F32) or the same within F16's rounding, every key explained, and the F32
    file's tensors bit for bit the GGUFWriter file's that pins the reader."""
    import os
    import subprocess
    import sys

    peft_folder, written = lora_gguf
    folder = os.path.dirname(llama_cpp_lora_converter)
    outs = {outtype: str(tmp_path / f"lora-{outtype}.gguf") for outtype in ("f32", "f16")}
    argv = [["--base", str(llama_dir), "--outtype", t, "--outfile", path, peft_folder] for t, path in outs.items()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(folder, "gguf-py"), folder])}
    done = subprocess.run(
        [sys.executable, "-c", LORA_DRIVER, llama_cpp_lora_converter, json.dumps(argv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for outtype, path in outs.items():
        adapter = la.open(path).adapter
        assert _modules(adapter) == _modules(la.open(peft_folder).adapter)
        assert adapter.dtypes == (outtype.upper(),)
        found = la.verify(peft_folder, path)
        assert found.verdict == "pass" and len(found.tensors) == 16
        assert {c.status for c in found.tensors} == {"identical" if outtype == "f32" else "same"}
        for lang in ("en", "zh"):
            result = cli("config", path, "--explain", "--lang", lang)
            assert (
                result.code == 0 and "(no glossary entry)" not in result.out and "术语表中没有此字段" not in result.out
            )
    assert la.diff(written, outs["f32"]).values.identical == 16


# ---------------------------------------------------------------- mlx-lm adapters (adapters.safetensors)

# name -> (mlx_lora arguments): LoRA on chosen keys of both blocks; DoRA on the last block's every
# linear layer (mlx-lm's default keys).
MLX_KINDS = {
    "lora": dict(num_layers=2, rank=4, scale=20.0, dropout=0.0, keys=["self_attn.q_proj", "mlp.down_proj"]),
    "dora": dict(num_layers=1, fine_tune_type="dora", rank=2, scale=10.0, dropout=0.0),
}


@pytest.fixture(scope="module")
def mlx_adapters(llama_dir, tmp_path_factory):
    """name -> (folder, mlx-lm's print_trainable_parameters() line), made and saved by mlx-lm."""
    pytest.importorskip("mlx_lm")
    root = tmp_path_factory.mktemp("mlx-adapters")
    return {name: checkpoints.mlx_lora(str(llama_dir), str(root / name), **kw) for name, kw in MLX_KINDS.items()}


@pytest.mark.parametrize("kind", MLX_KINDS)
def test_mlx_modules_as_mlx_lm_builds_them(kind, mlx_adapters, llama_dir, cli):
    """Every LoRA layer mlx-lm made, with its rank, scale and shapes, and mlx-lm's own line of
    trainable parameters on the base (adapter_config.json's model, a folder here)."""
    import mlx.core as mx

    folder, printed = mlx_adapters[kind]
    stored = mx.load(folder + "/adapters.safetensors")
    adapter = la.open(folder).adapter
    parameters = MLX_KINDS[kind]
    assert [(m.name, m.rank, m.alpha, m.scaling, m.in_features, m.out_features, m.dora) for m in adapter.modules] == [
        (
            name,
            parameters["rank"],
            None,
            parameters["scale"],
            stored[name + ".lora_a"].shape[0],
            stored[name + ".lora_b"].shape[1],
            kind == "dora",
        )
        for name in sorted({n.rpartition(".")[0] for n in stored}, key=natural_key)
    ]
    assert adapter.trainable == sum(v.size for v in stored.values())
    result = cli("summary", folder)
    assert (result.code, result.err) == (0, "")
    assert f"on {llama_dir.name}, as mlx-lm prints it: {printed}" in result.out.splitlines()


def test_mlx_summary_params_tree(mlx_adapters, llama_dir, cli):
    folder, printed = mlx_adapters["lora"]
    name = folder.rsplit("/", 1)[-1]
    assert (
        cli("summary", folder).out
        == f"""\
{name}: LoRA adapter of {llama_dir}
adapted modules: 4, rank 4, scaling = scale (mlx-lm's lora_parameters)
trainable parameters: 2,304 (LoRA 2,304, modules_to_save 0)
stored: 9.00 KiB in F32
on {llama_dir.name}, as mlx-lm prints it: {printed}

Adapted modules:
  module                           kind    rank  alpha  scaling  in  out  params
  model.layers.0.mlp.down_proj     linear     4      -       20  96   64     640
  model.layers.0.self_attn.q_proj  linear     4      -       20  64   64     512
  model.layers.1.mlp.down_proj     linear     4      -       20  96   64     640
  model.layers.1.self_attn.q_proj  linear     4      -       20  64   64     512
"""
    )
    out = cli("params", folder).out
    assert "model.layers.0.mlp.down_proj.lora_a     [96, 4]  F32" in out
    assert "\n4 tensors" not in out and "8 tensors, 2,304 parameters, 9.00 KiB in 1 file\n" in out
    data = json.loads(cli("summary", folder, "--json").out)
    assert (data["source"], data["modules"][0]["alpha"], data["modules"][0]["scaling"]) == ("mlx", None, 20.0)
    result = cli("tree", folder, "--node", "model.layers.1.self_attn")
    assert result.out.splitlines()[2] == "├── q_proj: Linear + LoRA r=4 scale=20         4,096         4,096"


def test_mlx_config_explained(mlx_adapters, cli):
    folder, _ = mlx_adapters["lora"]
    for lang in ("en", "zh"):
        result = cli("config", folder, "--explain", "--lang", lang)
        assert result.code == 0 and "(no glossary entry)" not in result.out and "术语表中没有此字段" not in result.out
    assert result.out.startswith(f"{folder.rsplit('/', 1)[-1]}：adapter_config.json（mlx-lm 适配器）的 ")
    result = cli("config", folder)
    with open(folder + "/adapter_config.json") as handle:
        assert result.out.splitlines()[:-1] == json.dumps(json.load(handle), indent=4).splitlines()
    assert (
        result.out.splitlines()[-1]
        == f"note: this is {folder}/adapter_config.json, an mlx-lm adapter's config, as stored; `config --explain` explains each field"
    )


def test_mlx_refusals_and_mismatches(mlx_adapters, tmp_path, cli):
    folder, _ = mlx_adapters["lora"]
    copy = tmp_path / "mlx"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps({**config, "lora_parameters": {"rank": 8, "scale": 20.0}}))
    result = cli("summary", copy, "--base", copy.parent)  # (the rank is refused before the base is opened)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {copy}/adapters.safetensors: expected rank 8 for model.layers.0.mlp.down_proj (lora_parameters.rank in adapter_config.json), found lora_a [96, 4]; the adapter config does not belong to these weights\n"
    )
    (copy / "adapter_config.json").write_text(json.dumps({**config, "fine_tune_type": "full"}))
    result = cli("summary", copy)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {copy}/adapter_config.json: expected an mlx-lm LoRA or DoRA adapter (fine_tune_type lora or dora), found fine_tune_type full; a full fine-tune's weights are read as a model's tensors: open adapters.safetensors alone\n"
    )
    result = cli("values", folder, "model.layers.0.mlp.down_proj.weight", "--merged")
    assert (result.code, result.err) == (
        2,
        f"llm-anatomy: {folder.rsplit('/', 1)[-1]}: expected a PEFT adapter to merge, found an mlx-lm adapter; merged values of mlx-lm adapters are not computed yet\n",
    )


@pytest.mark.parametrize("argv", [["params"], ["summary"], ["config", "--explain"]])
def test_mlx_header_only(argv, mlx_adapters):
    code, loaded, _ = imported_by(argv[0], mlx_adapters["lora"][0], *argv[1:])
    assert (code, loaded) == (0, [])


@pytest.mark.parametrize("kind", KINDS)
def test_named_parameters_as_peft_names_them(kind, adapters, llama_dir):
    """open(adapter, base=...).named_parameters(): the names, order and shapes of PEFT's own
    model (PeftModel.from_pretrained) - base_layer, lora_A.default, modules_to_save.default."""
    expected = [
        (n, tuple(p.shape)) for n, p in checkpoints.peft_model(str(llama_dir), adapters[kind]).named_parameters()
    ]
    model = la.open(adapters[kind], base=llama_dir)
    assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == expected
