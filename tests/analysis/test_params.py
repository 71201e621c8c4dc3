"""`params`: rows, totals, JSON, filters, and the exact named_parameters() printout."""

import json

import pytest

import checkpoints


def _named_parameters_printout(folder, **kwargs):
    model = checkpoints.reference_model(folder, **kwargs)
    return "".join(f"{name}: {p.size()}\n" for name, p in model.named_parameters())


@pytest.mark.parametrize("fixture", ["llama_dir", "llama_tied_dir", "llama_bf16_dir", "bert_dir", "gpt2_dir"])
def test_torch_style_matches_named_parameters(fixture, request, cli):
    folder = request.getfixturevalue(fixture)
    result = cli("params", folder, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == _named_parameters_printout(str(folder))


def test_torch_style_filter(llama_dir, cli):
    result = cli("params", llama_dir, "--style", "torch", "--filter", "model.layers.1.mlp.*")
    assert result.out == (
        "model.layers.1.mlp.gate_proj.weight: torch.Size([96, 64])\n"
        "model.layers.1.mlp.up_proj.weight: torch.Size([96, 64])\n"
        "model.layers.1.mlp.down_proj.weight: torch.Size([64, 96])\n"
    )


def test_table_lists_every_tensor_with_totals(tmp_path, cli):
    import torch

    path = checkpoints.safetensors_file(
        str(tmp_path / "one.safetensors"),
        {
            "b.weight": torch.zeros(3, 4, dtype=torch.float16),
            "a.bias": torch.zeros(5, dtype=torch.bfloat16),
        },
    )
    result = cli("params", path)
    assert result.code == 0
    assert result.out == (
        "name      shape   dtype  params  bytes  file\n"
        "a.bias    [5]     BF16        5   10 B  one.safetensors\n"
        "b.weight  [3, 4]  F16        12   24 B  one.safetensors\n"
        "2 tensors, 17 parameters, 34 B in 1 file\n"
    )


def test_json_schema(llama_dir, cli):
    result = cli("params", llama_dir, "--json", "--filter", "model.norm.*")
    data = json.loads(result.out)
    shard = json.loads((llama_dir / "model.safetensors.index.json").read_text())["weight_map"]["model.norm.weight"]
    assert data["tensors"] == [
        {"name": "model.norm.weight", "shape": [64], "dtype": "F32", "numel": 64, "nbytes": 256, "file": shard}
    ]
    assert data["total"] == {"tensors": 1, "numel": 64, "nbytes": 256}


def test_natural_layer_order(tmp_path, cli):
    import torch

    names = [f"layers.{i}.w" for i in (10, 2, 1)]
    path = checkpoints.safetensors_file(str(tmp_path / "m.safetensors"), {n: torch.zeros(1) for n in names})
    result = cli("params", path, "--json")
    assert [t["name"] for t in json.loads(result.out)["tensors"]] == ["layers.1.w", "layers.2.w", "layers.10.w"]


def test_filtered_totals_count_only_the_files_holding_the_rows(llama_dir, cli):
    shards = len(list(llama_dir.glob("*.safetensors")))
    assert shards > 1
    assert cli("params", llama_dir).out.splitlines()[-1].endswith(f" in {shards} files")
    result = cli("params", llama_dir, "--filter", "model.norm.weight")
    assert result.out.splitlines()[-1] == "1 tensor, 64 parameters, 256 B in 1 file"


def test_torch_style_names_parameters_the_checkpoint_lacks(llama_tied_dir, tmp_path, cli):
    """transformers would initialise a missing weight, so it is still listed; JSON says so."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(llama_tied_dir, folder)
    weights = load_file(str(folder / "model.safetensors"))
    del weights["model.norm.weight"]
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    assert cli("params", folder, "--style", "torch").out == cli("params", llama_tied_dir, "--style", "torch").out
    data = json.loads(cli("params", folder, "--style", "torch", "--json", "--filter", "model.norm.*").out)
    assert data["tensors"] == [
        {"name": "model.norm.weight", "shape": [64], "dtype": "?", "numel": 64, "nbytes": 0, "file": ""}
    ]
    assert data["notes"] == [
        "parameters of LlamaForCausalLM not stored under their own names in the checkpoint: 1 (first: model.norm.weight); "
        "transformers would initialise or convert them on load"
    ]


NO_MATCH = "llm-anatomy: {model}: expected a {what} matching 'nothing.*', found none; list the names with `llm-anatomy params{style}`\n"


@pytest.mark.parametrize(
    "command, what, style",
    [
        (("params",), "tensor", ""),
        (("params", "--json"), "tensor", ""),
        (("params", "--style", "torch"), "parameter", " --style torch"),
        (("values",), "tensor", ""),
        (("values", "--json"), "tensor", ""),
        (("values", "--style", "torch"), "parameter", " --style torch"),
        (("stats",), "tensor", ""),
        (("stats", "--json"), "tensor", ""),
        (("stats", "--by", "layer"), "tensor", ""),
    ],
)
def test_a_filter_matching_nothing_is_the_same_usage_error_everywhere(llama_dir, cli, command, what, style):
    """params, values and stats: one line naming the filter, exit status 2, nothing on stdout."""
    result = cli(command[0], llama_dir, *command[1:], "--filter", "nothing.*")
    assert (result.code, result.out, result.err) == (
        2,
        "",
        NO_MATCH.format(model=llama_dir.name, what=what, style=style),
    )


def test_values_of_a_file_without_tensors_says_so_in_words(tmp_path, cli):
    """A vocab-only GGUF (metadata, no tensors): no 'matching None'."""
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "vocab.gguf"), "llama")
    writer.add_token_list(["<unk>", "<s>"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    result = cli("values", tmp_path / "vocab.gguf")
    assert (result.code, result.out, result.err) == (
        2,
        "",
        "llm-anatomy: vocab.gguf: expected a tensor to show, found none (the file holds metadata only); see it with `llm-anatomy params --metadata`\n",
    )
