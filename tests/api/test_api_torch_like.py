"""What a tutorial reader types on llm_anatomy.open(path) answers as it does on the model
from_pretrained gives (issue 22, item 6): class names through __class__, the config as an
object that prints as transformers', state_dict(), buffers, module walks, requires_grad,
device and dtype as torch spells them, np.asarray(p), and lazy p.view(-1) / p.reshape()."""

import contextlib
import functools
import io
import random

import numpy as np
import pytest

import checkpoints
import llm_anatomy as la
from llm_anatomy.api import Buffer, Config, Reshaped

FIXTURES = ["llama_dir", "llama_tied_dir", "llama_bf16_dir", "bert_dir", "gpt2_dir"]


@functools.lru_cache(maxsize=None)
def _loaded(folder):
    return checkpoints.reference_model(folder)


def _printed(value):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print(value)
    return buffer.getvalue()


def _both(request, fixture):
    folder = str(request.getfixturevalue(fixture))
    return _loaded(folder), la.open(folder)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_class_names_equal_transformers(fixture, request):
    """The tutorial's loop `for name, child in model.named_children(): print(name, child.__class__.__name__)`, on every module."""
    model, m = _both(request, fixture)
    assert m.__class__.__name__ == type(model).__name__
    assert isinstance(m, la.Model) and isinstance(m, la.Module)
    for path, module in model.named_modules():
        mine = m.get_submodule(path)
        assert [(n, c.__class__.__name__) for n, c in mine.named_children()] == [
            (n, c.__class__.__name__) for n, c in module.named_children()
        ], path
        assert all(isinstance(c, la.Module) and type(c).__name__ == c.class_name for c in mine.children()), path
    first = next(iter(m.named_children()))[0]
    assert m.get_submodule("") is m and type(getattr(m, first)) is type(
        m.get_submodule(first)
    )  # one class per name and model
    assert [c.__class__.__name__ for _, c in m.named_modules()] == [type(c).__name__ for _, c in model.named_modules()]


@pytest.mark.parametrize("fixture", FIXTURES)
def test_config_prints_and_reads_as_transformers(fixture, request):
    model, m = _both(request, fixture)
    assert _printed(m.config) == _printed(model.config)
    assert isinstance(m.config, Config) and isinstance(m.config, dict)
    for key, value in m.config.items():
        if key not in ("transformers_version", "dtype", "torch_dtype") and not isinstance(value, dict):
            assert getattr(m.config, key) == getattr(model.config, key), key
    # Not in config.json: a value transformers derives or a default of its class, asked of transformers.
    assert m.config.output_attentions == model.config.output_attentions
    assert m.config.is_encoder_decoder == model.config.is_encoder_decoder
    with pytest.raises(AttributeError) as ours:
        m.config.no_such_field  # noqa: B018 (the attribute read is what raises)
    with pytest.raises(AttributeError) as theirs:
        model.config.no_such_field  # noqa: B018 (the attribute read is what raises)
    assert str(ours.value) == str(theirs.value)


def test_config_attributes_need_no_transformers_for_what_config_json_holds(llama_dir):
    config = la.open(str(llama_dir)).config
    assert (config.hidden_size, config.num_key_value_heads, config["vocab_size"]) == (64, 2, 128)
    assert config.rope_parameters == {"rope_theta": 10000.0, "rope_type": "default"}
    with pytest.raises(AttributeError, match="^'LlamaConfig' object has no attribute '_repr_html_'$"):
        config._repr_html_  # noqa: B018 (IPython's probes never build the model)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_state_dict_equals_transformers(fixture, request):
    model, m = _both(request, fixture)
    theirs, ours = model.state_dict(), m.state_dict()
    assert list(ours.keys()) == list(theirs.keys())
    assert len(ours) == len(theirs) and "lm_head.weight" in ours or fixture == "bert_dir"
    assert [(k, repr(p.shape), repr(p.dtype)) for k, p in ours.items()] == [
        (k, repr(t.shape), repr(t.dtype)) for k, t in theirs.items()
    ]
    layer = m.model.layers[0] if fixture.startswith("llama") else None
    if layer is not None:
        assert list(layer.state_dict()) == list(model.model.layers[0].state_dict())


def test_state_dict_is_lazy_and_names_tied_weights_twice(gpt2_dir, monkeypatch):
    m = la.open(str(gpt2_dir))
    made = []
    original = la.Model._parameter
    monkeypatch.setattr(
        la.Model, "_parameter", lambda self, name, shape: made.append(name) or original(self, name, shape)
    )
    state = m.state_dict()
    assert made == []
    tied = state["lm_head.weight"]
    assert made == ["transformer.wte.weight"] and tied.name == "transformer.wte.weight"
    assert repr(state) == f"<state_dict of {m.name}: 29 tensors, 'transformer.wte.weight' ... 'lm_head.weight'>"


@pytest.mark.parametrize("fixture", FIXTURES)
def test_buffers_modules_and_parameters_equal_torch(fixture, request):
    model, m = _both(request, fixture)
    persistent = {
        f"{path}.{name}".lstrip(".")
        for path, module in model.named_modules()
        for name in module._buffers
        if name not in module._non_persistent_buffers_set
    }
    assert [(n, repr(b.shape), repr(b.dtype), b.persistent, b.requires_grad) for n, b in m.named_buffers()] == [
        (n, repr(b.shape), repr(b.dtype), n in persistent, b.requires_grad) for n, b in model.named_buffers()
    ]
    assert all(isinstance(b, Buffer) for b in m.buffers())
    assert [path for path, _ in m.named_modules()] == [path for path, _ in model.named_modules()]
    assert len(list(m.modules())) == len(list(model.modules()))
    assert [p.shape for p in m.parameters()] == [p.shape for p in model.parameters()]
    assert (repr(m.dtype), repr(m.device), str(m.device)) == (repr(model.dtype), repr(model.device), str(model.device))
    for (name, p), (_, q) in zip(m.named_parameters(), model.named_parameters()):
        assert (repr(p.dtype), repr(p.device), p.requires_grad, p.numel(), p.shape) == (
            repr(q.dtype),
            repr(q.device),
            q.requires_grad,
            q.numel(),
            q.shape,
        ), name
        assert p.dtype == q.dtype and p.dtype == str(q.dtype)


def test_a_buffer_transformers_computes_says_so(bert_dir):
    m = la.open(str(bert_dir))
    buffer = dict(m.named_buffers())["embeddings.position_ids"]
    assert repr(buffer) == "<buffer embeddings.position_ids: torch.Size([1, 64])>"
    with pytest.raises(la.AnatomyError) as error:
        buffer[0, :3]
    assert (
        error.value.line()
        == f"{m.name}: expected buffer embeddings.position_ids in the checkpoint, found none stored; transformers computes it when it builds the model; read it there (from_pretrained)"
    )


@pytest.mark.parametrize("fixture", ["llama_dir", "llama_bf16_dir", "gpt2_dir"])
def test_asarray_equals_torch(fixture, request):
    model, m = _both(request, fixture)
    for name, p in model.named_parameters():
        mine = m.get_parameter(name)
        expected = p.detach().float().numpy() if repr(p.dtype) == "torch.bfloat16" else p.detach().numpy()
        got = np.asarray(mine)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), name
    p = m.get_parameter(name)
    assert np.asarray(p, dtype=np.float64).dtype == np.float64
    assert np.array(p, copy=True).shape == tuple(p.shape)
    with pytest.raises(ValueError) as error:
        np.asarray(p, copy=False)
    assert (
        str(error.value)
        == f"{name}: expected copy=None or True, found copy=False; its values are read from the file into a new array, never shared (np.asarray(p) reads them)"
    )


def _random_index(shape, rng):
    """Integers, slices (steps too) for the first dimensions, or after ... for the last ones."""
    index = []
    count = rng.randint(1, len(shape))
    trailing = rng.random() < 0.2
    for size in shape[len(shape) - count :] if trailing else shape[:count]:
        if rng.random() < 0.4:
            index.append(rng.randrange(-size, size))
        else:
            start, stop = sorted(rng.randrange(-size, size + 1) for _ in range(2))
            index.append(
                slice(
                    start if rng.random() < 0.7 else None,
                    stop if rng.random() < 0.7 else None,
                    rng.choice([None, 1, 2, 3, 7]),
                )
            )
    return (Ellipsis, *index) if trailing else tuple(index)


@pytest.mark.parametrize("fixture", ["llama_dir", "llama_bf16_dir", "bert_dir"])
def test_views_and_reshapes_equal_torch(fixture, request):
    model, m = _both(request, fixture)
    rng = random.Random(22)
    for name, p in model.named_parameters():
        mine = m.get_parameter(name)
        flat = mine.view(-1)
        assert isinstance(flat, Reshaped) and flat.shape == p.view(-1).shape and flat.numel() == p.numel()
        assert flat[5].item() == p.view(-1)[5].item() if p.numel() > 5 else True
        n = p.numel()
        shapes = (
            [(-1,), (n,), (1, -1), (-1, 1)]
            + [(d, -1) for d in (2, 4, 8) if n % d == 0]
            + [(2, -1, 4) for _ in [0] if n % 8 == 0]
        )
        for shape in shapes:
            view, expected = mine.reshape(*shape), p.detach().reshape(*shape)
            assert view.shape == expected.shape and view.size() == expected.size()
            for _ in range(4):
                index = _random_index(tuple(expected.shape), rng)
                got, want = view[index], expected[index].float().numpy()
                assert got.shape == want.shape and np.array_equal(got, want), (name, shape, index)
        assert np.array_equal(
            np.asarray(mine.view(2, -1) if n % 2 == 0 else mine.view(-1)),
            p.detach().float().reshape(2, -1).numpy() if n % 2 == 0 else p.detach().float().reshape(-1).numpy(),
        )


def test_a_view_reads_only_the_elements_asked_for(llama_dir, monkeypatch):
    m = la.open(str(llama_dir))
    p = m.get_parameter("model.embed_tokens.weight")  # [128, 64]
    asked = []
    original = la.Parameter.__getitem__

    def counting(self, index):
        values = original(self, index)
        asked.append(values.size)
        return values

    monkeypatch.setattr(la.Parameter, "__getitem__", counting)
    monkeypatch.setattr(la.Parameter, "numpy", lambda self: pytest.fail("read whole"))
    assert p.view(-1)[5] == p.view(128, 64)[0, 5]
    assert sum(asked) == 2
    asked.clear()
    p.view(-1)[::1000]  # 9 elements, far apart: one read per row that holds one
    assert asked == [1] * 9
    asked.clear()
    p.view(-1, 2)[100:120, 1]  # 20 elements of row 3, in a span of 39
    assert asked == [39]


@pytest.mark.parametrize(
    "shape, line",
    [
        (
            (5, 7),
            "model.norm.weight: expected a shape of 64 elements, found [5, 7]; one size may be -1, to be inferred",
        ),
        (
            (-1, 5),
            "model.norm.weight: expected a shape of 64 elements, found [-1, 5]; one size may be -1, to be inferred",
        ),
        ((-1, -1), "model.norm.weight: expected a shape with sizes of at least 0 and at most one -1, found [-1, -1]"),
        ((2.0, 32), "model.norm.weight: expected a shape of integers, as tensor.view takes, found (2.0, 32)"),
    ],
)
def test_a_bad_view_is_one_line(llama_dir, shape, line):
    p = la.open(str(llama_dir)).get_parameter("model.norm.weight")
    with pytest.raises(la.UsageError) as error:
        p.view(*shape)
    assert error.value.line() == line
    assert p.view((4, 16)).shape == p.view(4, 16).shape == p.view([4, -1]).shape == (4, 16)


def test_a_gguf_walks_as_the_model_transformers_builds(llama_tied_dir, tmp_path):
    """A GGUF under transformers' names: class names, state_dict keys and config attributes as for its original."""
    model = _loaded(str(llama_tied_dir))
    m = la.open(checkpoints.llama_gguf(str(llama_tied_dir), str(tmp_path / "m.gguf")))
    assert m.__class__.__name__ == type(model).__name__
    assert [(n, c.__class__.__name__) for n, c in m.model.named_children()] == [
        (n, type(c).__name__) for n, c in model.model.named_children()
    ]
    assert list(m.state_dict()) == list(model.state_dict())
    assert (m.config.hidden_size, m.config.num_key_value_heads, m.config.tie_word_embeddings) == (
        model.config.hidden_size,
        model.config.num_key_value_heads,
        model.config.tie_word_embeddings,
    )
    flat = m.get_parameter("model.norm.weight").view(-1)
    assert flat.shape == (64,) and flat[3] == model.model.norm.weight.view(-1)[3].item()
