"""`config`: char-for-char `print(model.config)` after from_pretrained; the file-as-stored
fallback without transformers; --json; a config.json that is not JSON."""

import contextlib
import io
import json
import shutil

import pytest

from llm_anatomy.hf import skeleton
from llm_anatomy.replicas import published_config, write_layout

import checkpoints

FIXTURES = ["llama_dir", "llama_tied_dir", "llama_bf16_dir", "bert_dir", "gpt2_dir"]


def _printed_config(folder):
    """What the user sees: AutoModelForCausalLM.from_pretrained (the architecture class for encoders), then print."""
    model = checkpoints.reference_model(folder)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print(model.config)
    return buffer.getvalue()


@pytest.mark.parametrize("fixture", FIXTURES)
def test_matches_print_model_config(fixture, request, cli):
    folder = request.getfixturevalue(fixture)
    result = cli("config", folder)
    assert result.code == 0, result.err
    assert result.out == _printed_config(str(folder))


def test_auto_model_prints_the_same(llama_dir, cli):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(llama_dir))
    assert cli("config", llama_dir).out == str(model.config) + "\n"


def test_dtype_from_the_weights_when_config_names_none(llama_bf16_dir, tmp_path, cli):
    """from_pretrained writes the weights' dtype into model.config; _from_config alone would not."""
    folder = checkpoints.with_config(llama_bf16_dir, tmp_path / "no_dtype", lambda c: c.pop("dtype"))
    result = cli("config", folder)
    assert '  "dtype": "bfloat16",\n' in result.out
    assert result.out == _printed_config(str(folder))


def test_published_llama2_config_style(tmp_path, cli):
    """Llama-2's own config.json (torch_dtype, _name_or_path, rope_scaling: null, old version), shrunk."""
    config = published_config("Llama-2-7b-chat-hf")
    config.update(
        hidden_size=32,
        intermediate_size=48,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_hidden_layers=1,
        vocab_size=64,
    )
    folder = tmp_path / "llama2"
    write_layout(str(folder), config)
    result = cli("config", folder)
    assert result.code == 0, result.err
    assert result.out == _printed_config(str(folder))


def test_json_is_the_printed_dict(llama_dir, cli):
    text = cli("config", llama_dir).out
    data = json.loads(cli("config", llama_dir, "--json").out)
    assert data == json.loads(text.partition(" ")[2])
    assert data["num_key_value_heads"] == 2


def test_without_transformers_prints_the_file_as_stored(gpt2_dir, cli, monkeypatch):
    monkeypatch.setattr(skeleton, "installed_transformers_version", lambda: None)
    stored = json.loads((gpt2_dir / "config.json").read_text())
    result = cli("config", gpt2_dir)
    assert result.code == 0, result.err
    assert result.out == (
        "GPT2Config " + json.dumps(stored, indent=2, sort_keys=True) + "\n\n"
        f"note: this is {gpt2_dir / 'config.json'} as stored, not as transformers would print it "
        "(it is not installed); class name GPT2Config guessed from `architectures`\n"
    )
    assert json.loads(cli("config", gpt2_dir, "--json").out) == stored


@pytest.mark.parametrize(
    ("architectures", "expected"),
    [
        (["LlamaForCausalLM"], "LlamaConfig"),
        (["GPT2LMHeadModel"], "GPT2Config"),
        (["BertModel"], "BertConfig"),
        (None, "PreTrainedConfig"),
        (["Custom"], "PreTrainedConfig"),
    ],
)
def test_guessed_class_name(architectures, expected):
    from llm_anatomy.analysis.config_view import guess_class_name

    assert guess_class_name({"architectures": architectures}) == expected


def test_config_that_is_not_json(llama_bf16_dir, tmp_path, cli):
    folder = tmp_path / "broken"
    shutil.copytree(llama_bf16_dir, folder)
    (folder / "config.json").write_text("{not json")
    result = cli("config", folder)
    assert result.code == 1
    assert result.err == (
        f"llm-anatomy: {folder / 'config.json'}: expected a JSON config, found invalid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); fix or re-download config.json\n"
    )


def test_no_config_beside_a_weights_file(llama_bf16_dir, tmp_path, cli):
    weights = tmp_path / "model.safetensors"
    shutil.copy(llama_bf16_dir / "model.safetensors", weights)
    result = cli("config", weights)
    assert result.code == 1
    assert (
        result.err
        == f"llm-anatomy: {weights}: expected a config.json beside it, found none; copy the model's config.json next to the weights\n"
    )


def test_lone_pth_in_the_current_folder_names_the_file(tmp_path, cli, monkeypatch):
    """`config model.pth` from the file's own folder: the message names model.pth, not '.'."""
    import torch

    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pth")
    monkeypatch.chdir(tmp_path)
    for command in (("config",), ("config", "--explain")):
        result = cli(*command, "model.pth")
        assert (result.code, result.err) == (
            1,
            "llm-anatomy: model.pth: expected a config.json beside it, found none; copy the model's config.json next to the weights\n",
        )
    assert cli("summary", "model.pth").out.endswith(
        "Findings:\n  model.pth: expected a config.json beside it, found none; the config check and KV cache need it\n"
    )


def test_config_transformers_cannot_build_is_printed_as_stored(llama_bf16_dir, tmp_path, cli):
    folder = checkpoints.with_config(
        llama_bf16_dir,
        tmp_path / "unknown",
        lambda c: c.update(model_type="no-such-model", architectures=["NoSuchForCausalLM"]),
    )
    stored = json.loads((folder / "config.json").read_text())
    result = cli("config", folder)
    assert result.code == 0, result.err
    printed, note = result.out.split("\n\n")
    assert printed == "NoSuchConfig " + json.dumps(stored, indent=2, sort_keys=True)
    assert note.startswith(
        f"note: this is {folder / 'config.json'} as stored, not as transformers would print it (ValueError: "
    )
    assert note.endswith("); class name NoSuchConfig guessed from `architectures`\n")
