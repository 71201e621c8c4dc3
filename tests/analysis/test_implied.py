"""Checkpoints without tensors: a vocabulary-only GGUF (llama.cpp ships one per tokenizer) and
a folder or path holding only config.json, the cheap way to study a model before downloading
it. params says there are no tensors; tree, --style torch and summary show the model the
metadata or config implies, and say so."""

import os

import pytest

from conftest import NOT_ON_THE_LIGHT_PATH, imported_by

LLAMA_3_8B = 8_030_261_248  # LlamaForCausalLM of Meta-Llama-3-8B's config, untied head
NOTE = "the file holds no tensors: this is the model its metadata implies"


def _vocab_only(path: str, vocab: int = 128256) -> str:
    """What llama.cpp's convert_hf_to_gguf.py --vocab-only writes for Meta-Llama-3-8B: the
    hyper-parameters and the tokenizer, no tensors (ggml-vocab-llama-bpe.gguf)."""
    import gguf

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("llama-bpe")
    writer.add_context_length(8192)
    writer.add_embedding_length(4096)
    writer.add_block_count(32)
    writer.add_feed_forward_length(14336)
    writer.add_rope_dimension_count(128)
    writer.add_head_count(32)
    writer.add_head_count_kv(8)
    writer.add_layer_norm_rms_eps(1e-05)
    writer.add_rope_freq_base(500000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(vocab)])
    writer.add_bos_token_id(128000)
    writer.add_eos_token_id(128001)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def vocab_gguf(tmp_path_factory):
    return _vocab_only(str(tmp_path_factory.mktemp("vocab") / "ggml-vocab-llama-bpe.gguf"))


def test_params_says_the_file_holds_metadata_only(vocab_gguf, cli):
    result = cli("params", vocab_gguf)
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        "name  shape  dtype  params  bytes  file\n"
        "0 tensors, 0 parameters, 0 B in 0 files\n"
        "the file holds metadata only, no tensors: `params --metadata` shows it; tree, config and summary show the model it implies\n"
    )
    code, loaded, out = imported_by("params", vocab_gguf, modules=NOT_ON_THE_LIGHT_PATH + ("gguf",))
    assert (code, loaded, out) == (0, [], result.out)


def test_tree_is_the_model_the_metadata_implies(vocab_gguf, cli):
    result = cli("tree", vocab_gguf, "--depth", "1")
    assert result.out == (
        "module                  own params   total params\n"
        "LlamaForCausalLM                 -  8,030,261,248\n"
        "├── model: LlamaModel            -  7,504,924,672\n"
        "└── lm_head: Linear    525,336,576    525,336,576\n"
        "8,030,261,248 parameters (8.03B)\n"
        f"note: {NOTE}\n"
    )


def test_torch_style_stays_torch_text_and_says_so_on_stderr(vocab_gguf, cli):
    tree = cli("tree", vocab_gguf, "--style", "torch")
    assert (tree.code, tree.out, tree.err) == (
        0,
        "model: LlamaModel\nlm_head: Linear\n",
        f"llm-anatomy: note: {NOTE}\n",
    )
    params = cli("params", vocab_gguf, "--style", "torch", "--filter", "lm_head.*")
    assert (params.code, params.out, params.err) == (
        0,
        "lm_head.weight: torch.Size([128256, 4096])\n",
        f"llm-anatomy: note: {NOTE}\n",
    )
    values = cli("values", vocab_gguf, "--style", "torch")
    assert (values.code, values.out) == (2, "")
    assert (
        values.err
        == "llm-anatomy: ggml-vocab-llama-bpe.gguf: expected a tensor to show, found none (the file holds metadata only); see it with `llm-anatomy params --metadata`\n"
    )


def test_summary_counts_the_parameters_the_metadata_implies(vocab_gguf, cli):
    import json

    result = cli("summary", vocab_gguf)
    assert (
        result.out.splitlines()[0]
        == "ggml-vocab-llama-bpe.gguf: 8,030,261,248 parameters (8.03B) implied by its metadata (the file holds no tensors), 29.92 GiB in F32 as loaded"
    )
    data = json.loads(cli("summary", vocab_gguf, "--json").out)
    assert (data["total_params"], data["implied_by"]) == (LLAMA_3_8B, "its metadata")


def test_summary_of_a_file_without_tensors_checks_nothing_and_stores_nothing(vocab_gguf, cli):
    """The counts are the ones the metadata implies: no "config.json vs tensors ok" against
    themselves, no memory row for stored weights that are not there."""
    import json

    out = cli("summary", vocab_gguf).out
    assert "\nWeight matrices, config.json vs tensors: nothing to check (the file holds no tensors)\n" in out
    assert "  ok" not in out and "stored" not in out
    assert out.split("Weights memory:\n")[1].splitlines()[:2] == [
        "  precision  bits/weight     memory",
        "  fp32             32.00  29.92 GiB",
    ]
    data = json.loads(cli("summary", vocab_gguf, "--json").out)
    assert data["implied"] == [] and "stored" not in [row["label"] for row in data["memory"]["weights"]]


def test_config_of_a_vocab_file_leaves_the_head_untied(vocab_gguf, cli):
    """No output.weight because there are no tensors at all, not because the head is tied."""
    from llm_anatomy.locate import open_catalog

    assert "tie_word_embeddings" not in open_catalog(vocab_gguf).config
    assert cli("config", vocab_gguf).code == 0


def test_llama_cpp_vocab_files(llama_cpp_models, cli):
    real = os.path.join(llama_cpp_models, "ggml-vocab-llama-bpe.gguf")
    assert (
        cli("summary", real).out.splitlines()[0]
        == "ggml-vocab-llama-bpe.gguf: 8,030,261,248 parameters (8.03B) implied by its metadata (the file holds no tensors), 29.92 GiB in F32 as loaded"
    )
    assert cli("tree", real, "--style", "torch").err == f"llm-anatomy: note: {NOTE}\n"
    assert (
        "\nWeight matrices, config.json vs tensors: nothing to check (the file holds no tensors)\n"
        in cli("summary", real).out
    )
    for name in sorted(os.listdir(llama_cpp_models)):
        if name.endswith(".gguf"):
            path = os.path.join(llama_cpp_models, name)
            assert cli("params", path).out.endswith(
                "the file holds metadata only, no tensors: `params --metadata` shows it; tree, config and summary show the model it implies\n"
            ), name
            assert cli("tree", path).code == 0, name  # a derived config, or the name-based fallback


# ---------------------------------------------------------------- config.json alone


@pytest.fixture
def config_only(llama_dir, tmp_path):
    folder = tmp_path / "Tiny-Llama"
    folder.mkdir()
    (folder / "config.json").write_bytes((llama_dir / "config.json").read_bytes())
    return folder


def test_config_and_explain_from_config_json_alone(config_only, llama_dir, cli):
    for target in (config_only, config_only / "config.json"):
        config = cli("config", target)
        assert (config.code, config.out) == (0, cli("config", llama_dir).out)
        explain = cli("config", target, "--explain")
        assert explain.code == 0
        assert explain.out.splitlines()[2:] == cli("config", llama_dir, "--explain").out.splitlines()[2:]


def test_summary_from_config_json_alone(config_only, llama_dir, cli):
    from llm_anatomy.analysis.summary import summarize
    from llm_anatomy.locate import open_catalog

    stored = summarize(open_catalog(str(llama_dir)))
    for target, name in ((config_only, "Tiny-Llama"), (config_only / "config.json", "config.json")):
        result = cli("summary", target)
        assert result.code == 0, result.err
        assert (
            result.out.splitlines()[0]
            == f"{name}: {stored.total_params:,} parameters (78.14K) implied by its config (no weights beside config.json), 305.25 KiB in F32 as loaded"
        )
        implied = summarize(open_catalog(str(target)))
        assert [(c.name, c.params) for c in implied.components] == [(c.name, c.params) for c in stored.components]


def test_params_tree_and_values_of_config_json_alone(config_only, llama_dir, cli):
    params = cli("params", config_only)
    assert (
        params.out.splitlines()[-1]
        == "no weights: only config.json; tree, config and summary show the model it implies"
    )
    tree = cli("tree", config_only)
    assert tree.out.splitlines()[:-1] == cli("tree", llama_dir).out.splitlines()
    assert tree.out.splitlines()[-1] == "note: only config.json, no weights: this is the model its config implies"
    values = cli("values", config_only)
    assert (values.code, values.err) == (
        2,
        "llm-anatomy: Tiny-Llama: expected a tensor to show, found none (only config.json, no weights); see the model it implies with `llm-anatomy params --style torch`\n",
    )
