"""`tree`: named_children() / named_parameters() printouts and per-module counts equal what
transformers itself gives; the folded tree's exact text; the cache; the names-only fallback."""

import functools
import json

import pytest

import checkpoints
from llm_anatomy.hf import skeleton
from llm_anatomy.analysis.tree import build_tree, find_node
from llm_anatomy.locate import open_catalog
from llm_anatomy.render import tree as render

FIXTURES = ["llama_dir", "llama_tied_dir", "llama_bf16_dir", "bert_dir", "gpt2_dir"]


@functools.lru_cache(maxsize=None)
def _loaded(folder):
    return checkpoints.reference_model(folder)


def _children_printout(module):
    return "".join(f"{name}: {child.__class__.__name__}\n" for name, child in module.named_children())


def _parameters_printout(module):
    return "".join(f"{name}: {param.shape}\n" for name, param in module.named_parameters())


@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_module_matches_transformers(fixture, request):
    """For each module: named_children, named_parameters, own and total counts, class name."""
    folder = str(request.getfixturevalue(fixture))
    model = _loaded(folder)
    tree = build_tree(open_catalog(folder))
    assert tree.class_names
    for path, module in model.named_modules():
        node = find_node(tree, path)
        assert node.class_name == type(module).__name__, path
        assert render.torch_children(node) == _children_printout(module), path
        assert render.torch_parameters(node) == _parameters_printout(module), path
        assert node.total == sum(p.numel() for p in module.parameters()), path
        assert node.own == sum(p.numel() for p in module.parameters(recurse=False)), path


@pytest.mark.parametrize(
    ("fixture", "node"),
    [
        ("llama_dir", ""),
        ("llama_dir", "model"),
        ("llama_dir", "model.layers"),
        ("llama_dir", "model.layers.0"),
        ("llama_dir", "model.layers.0.self_attn"),
        ("llama_dir", "lm_head"),
        ("llama_tied_dir", "lm_head"),
        ("llama_bf16_dir", "model.layers.1.mlp"),
        ("bert_dir", "encoder.layer.0.attention"),
        ("gpt2_dir", ""),
        ("gpt2_dir", "transformer.h.1"),
        ("gpt2_dir", "lm_head"),
    ],
)
def test_cli_torch_style(fixture, node, request, cli):
    folder = request.getfixturevalue(fixture)
    module = _loaded(str(folder)).get_submodule(node)
    args = ["tree", folder, "--style", "torch"] + (["--node", node] if node else [])
    children = cli(*args)
    assert children.code == 0, children.err
    assert children.out == _children_printout(module)
    params = cli(*args, "--params")
    assert params.out == _parameters_printout(module)


def test_tutorial_lm_head_and_root(llama_dir, cli):
    assert cli("tree", llama_dir, "--style", "torch").out == "model: LlamaModel\nlm_head: Linear\n"
    assert (
        cli("tree", llama_dir, "--style", "torch", "--node", "lm_head", "--params").out
        == "weight: torch.Size([128, 64])\n"
    )


LLAMA_TREE = """\
module                                                  own params  total params
LlamaForCausalLM                                                 -        78,144
├── model: LlamaModel                                            -        69,952
│   ├── embed_tokens: Embedding                              8,192         8,192
│   ├── layers: ModuleList  2 x LlamaDecoderLayer                -        61,696
│   │   └── 0-1: LlamaDecoderLayer (each)                        -        30,848
│   │       ├── self_attn: LlamaAttention                        -        12,288
│   │       │   ├── q_proj: Linear                           4,096         4,096
│   │       │   ├── k_proj: Linear                           2,048         2,048
│   │       │   ├── v_proj: Linear                           2,048         2,048
│   │       │   └── o_proj: Linear                           4,096         4,096
│   │       ├── mlp: LlamaMLP                                    -        18,432
│   │       │   ├── gate_proj: Linear                        6,144         6,144
│   │       │   ├── up_proj: Linear                          6,144         6,144
│   │       │   ├── down_proj: Linear                        6,144         6,144
│   │       │   └── act_fn: SiLUActivation                       -             -
│   │       ├── input_layernorm: LlamaRMSNorm                   64            64
│   │       └── post_attention_layernorm: LlamaRMSNorm          64            64
│   ├── norm: LlamaRMSNorm                                      64            64
│   └── rotary_emb: LlamaRotaryEmbedding                         -             -
└── lm_head: Linear                                          8,192         8,192
78,144 parameters (78.14K)
"""


def test_folded_tree_text(llama_dir, cli):
    result = cli("tree", llama_dir)
    assert result.code == 0, result.err
    assert result.out == LLAMA_TREE


def test_depth_and_node(llama_dir, cli):
    assert cli("tree", llama_dir, "--node", "model", "--depth", "1").out == (
        "module                                         own params  total params\n"
        "model: LlamaModel                                       -        69,952\n"
        "├── embed_tokens: Embedding                         8,192         8,192\n"
        "├── layers: ModuleList  2 x LlamaDecoderLayer           -        61,696\n"
        "├── norm: LlamaRMSNorm                                 64            64\n"
        "└── rotary_emb: LlamaRotaryEmbedding                    -             -\n"
        "69,952 parameters (69.95K)\n"
    )


def test_params_leaves_show_ties(gpt2_dir, cli):
    result = cli("tree", gpt2_dir, "--params", "--node", "lm_head")
    assert result.out == (
        "module                                                  own params  total params\n"
        "lm_head: Linear                                              3,200         3,200\n"
        "└── weight  [100, 32] (tied to transformer.wte.weight)       3,200\n"
        "3,200 parameters (3.20K)\n"
    )


def test_unequal_blocks_are_not_folded(tmp_path, cli):
    import torch

    tensors = {"layers.0.w": torch.zeros(2), "layers.1.w": torch.zeros(2), "layers.2.w": torch.zeros(3)}
    path = checkpoints.safetensors_file(str(tmp_path / "m.safetensors"), tensors)
    assert cli("tree", path).out == (
        "module                own params  total params\n"
        "(root)                         -             7\n"
        "└── layers  3 blocks           -             7\n"
        "    ├── 0-1 (each)             2             2\n"
        "    └── 2                      3             3\n"
        "7 parameters (7)\n"
        "note: no class names (they need a config.json beside the weights); this tree is built from the tensor names, and its counts include every stored tensor (buffers too)\n"
    )


def test_json_is_unfolded_with_paths(llama_dir, cli):
    data = json.loads(cli("tree", llama_dir, "--json", "--node", "model.layers", "--depth", "1").out)
    assert data["class_names"] is True and data["notes"] == []
    node = data["node"]
    assert (node["path"], node["class"], node["own"], node["total"]) == ("model.layers", "ModuleList", 0, 61696)
    assert [(c["path"], c["class"], c["total"]) for c in node["children"]] == [
        ("model.layers.0", "LlamaDecoderLayer", 30848),
        ("model.layers.1", "LlamaDecoderLayer", 30848),
    ]
    assert all("children" not in c for c in node["children"])
    lm_head = json.loads(cli("tree", llama_dir, "--json", "--node", "lm_head").out)["node"]
    assert lm_head["parameters"] == [
        {"name": "weight", "shape": [128, 64], "numel": 8192, "canonical": "lm_head.weight"}
    ]
    assert lm_head["children"] == []


def test_unknown_node_is_a_usage_error(llama_dir, cli):
    result = cli("tree", llama_dir, "--node", "model.layer.0")
    assert result.code == 2
    assert result.err == (
        f"llm-anatomy: {llama_dir.name}: expected a module path for --node, found 'model.layer.0'; "
        "valid names include model.embed_tokens, model.layers, model.norm, model.rotary_emb\n"
    )
    assert cli("tree", llama_dir, "--node", "nope").err.endswith("valid names include model, lm_head\n")


def test_second_call_uses_the_cache(llama_dir, cli, monkeypatch):
    first = cli("tree", llama_dir)

    def fail(*args, **kwargs):
        raise AssertionError("the skeleton was rebuilt instead of read from the cache")

    monkeypatch.setattr(skeleton, "_build", fail)
    second = cli("tree", llama_dir)
    assert second.code == 0 and second.out == first.out == LLAMA_TREE


def test_without_transformers_the_tree_comes_from_names(llama_dir, cli, monkeypatch):
    monkeypatch.setattr(skeleton, "installed_transformers_version", lambda: None)
    result = cli("tree", llama_dir)
    assert result.code == 0, result.err
    assert result.out == (
        "module                                    own params  total params\n"
        "(root)                                             -        78,144\n"
        "├── lm_head                                    8,192         8,192\n"
        "└── model                                          -        69,952\n"
        "    ├── embed_tokens                           8,192         8,192\n"
        "    ├── layers  2 blocks                           -        61,696\n"
        "    │   └── 0-1 (each)                             -        30,848\n"
        "    │       ├── input_layernorm                   64            64\n"
        "    │       ├── mlp                                -        18,432\n"
        "    │       │   ├── down_proj                  6,144         6,144\n"
        "    │       │   ├── gate_proj                  6,144         6,144\n"
        "    │       │   └── up_proj                    6,144         6,144\n"
        "    │       ├── post_attention_layernorm          64            64\n"
        "    │       └── self_attn                          -        12,288\n"
        "    │           ├── k_proj                     2,048         2,048\n"
        "    │           ├── o_proj                     4,096         4,096\n"
        "    │           ├── q_proj                     4,096         4,096\n"
        "    │           └── v_proj                     2,048         2,048\n"
        "    └── norm                                      64            64\n"
        "78,144 parameters (78.14K)\n"
        "note: no class names (they need the [transformers] extra: pip install 'llm-anatomy[transformers]'); "
        "this tree is built from the tensor names, and its counts include every stored tensor (buffers too)\n"
    )
    torch_style = cli("tree", llama_dir, "--style", "torch")
    assert torch_style.code == 2
    assert torch_style.err == (
        f"llm-anatomy: {llama_dir.name}: expected class names for --style torch, found none; "
        "they need the [transformers] extra: pip install 'llm-anatomy[transformers]'\n"
    )


@pytest.mark.parametrize("named", ["pipeline", "AutoTokenizer", "PreTrainedModel.__class__"])
def test_architectures_that_name_no_model_class_fall_back_to_the_model_type(llama_bf16_dir, tmp_path, cli, named):
    """architectures comes from the checkpoint: a function or another class of transformers'
    namespace is never called with its config."""
    plain = cli("tree", llama_bf16_dir, "--depth", "1").out
    folder = checkpoints.with_config(llama_bf16_dir, tmp_path / "odd", lambda c: c.update(architectures=[named]))
    result = cli("tree", folder, "--depth", "1")
    assert (result.code, result.out) == (0, plain)
    assert "LlamaForCausalLM" in plain


def test_tree_when_transformers_cannot_build_the_config(llama_bf16_dir, tmp_path, cli):
    import transformers

    folder = checkpoints.with_config(
        llama_bf16_dir,
        tmp_path / "unknown",
        lambda c: c.update(model_type="no-such\x1b[31m-model", architectures=["NoSuchForCausalLM"]),
    )
    with pytest.raises(ValueError) as rejected:
        transformers.AutoConfig.from_pretrained(folder)
    result = cli("tree", folder, "--depth", "1")
    assert result.code == 0, result.err
    why = str(rejected.value).splitlines()[0].replace("\x1b", "\\x1b")
    assert result.out.splitlines() == [
        "module       own params  total params",
        "(root)                -        78,144",
        "├── lm_head       8,192         8,192",
        "└── model             -        69,952",
        "78,144 parameters (78.14K)",
        f"note: no class names (transformers could not build the config: ValueError: {why}); "
        "this tree is built from the tensor names, and its counts include every stored tensor (buffers too)",
    ]
    assert "no-such\\x1b[31m-model" in why and "\x1b" not in result.out


def test_unbuildable_config_is_cached_too(llama_bf16_dir, tmp_path, cli, monkeypatch):
    """A config transformers rejects costs the transformers import once, not on every call."""
    folder = checkpoints.with_config(
        llama_bf16_dir, tmp_path / "unknown", lambda c: c.update(model_type="not-a-model-type")
    )
    first = cli("tree", folder)
    monkeypatch.setattr(skeleton, "_build", lambda *a, **k: pytest.fail("rebuilt"))
    second = cli("tree", folder)
    assert second.code == 0 and second.out == first.out
    assert "note: no class names (transformers could not build the config: ValueError: " in second.out


def test_a_tied_head_is_marked_as_transformers_ties_it(llama_tied_dir, gpt2_dir, cli):
    """lm_head.weight is model.embed_tokens.weight: named_parameters() shows it once, under that name."""
    assert cli("tree", llama_tied_dir, "--depth", 1).out == (
        "module                                                  own params  total params\n"
        "LlamaForCausalLM                                                 -        69,952\n"
        "├── model: LlamaModel                                            -        69,952\n"
        "└── lm_head: Linear  tied to model.embed_tokens.weight       8,192         8,192\n"
        "69,952 parameters (69.95K)\n"
    )
    assert (
        cli("tree", llama_tied_dir, "--node", "lm_head").out.splitlines()[1]
        == "lm_head: Linear  tied to model.embed_tokens.weight       8,192         8,192"
    )
    assert (
        cli("tree", gpt2_dir, "--depth", 1).out.splitlines()[-2]
        == "└── lm_head: Linear  tied to transformer.wte.weight       3,200         3,200"
    )
    assert "tied" not in cli("tree", llama_tied_dir, "--depth", 0).out
