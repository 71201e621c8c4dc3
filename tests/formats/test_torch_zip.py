"""torch.save checkpoints read without torch: names, shapes, dtypes and values equal
torch.load's; Meta's layout gets a config; pickles that would run code are refused by name."""

import os
import zipfile

import pytest

import checkpoints
from conftest import imported_by
from llm_anatomy.locate import open_catalog
from llm_anatomy.decode.elements import ElementReader

TORCH_DTYPES = {
    "torch.float32": "F32",
    "torch.bfloat16": "BF16",
    "torch.float16": "F16",
    "torch.int64": "I64",
    "torch.float8_e4m3fn": "F8_E4M3",
    "torch.bool": "BOOL",
}


@pytest.fixture(scope="session")
def bin_dir(llama_dir, tmp_path_factory):
    return checkpoints.torch_bin(str(llama_dir), str(tmp_path_factory.mktemp("bin") / "llama"))


@pytest.fixture(scope="session")
def sharded_bin_dir(llama_dir, tmp_path_factory):
    return checkpoints.torch_bin(str(llama_dir), str(tmp_path_factory.mktemp("bin_sharded") / "llama"), shards=2)


@pytest.fixture(scope="session")
def meta_dir(llama_dir, tmp_path_factory):
    return checkpoints.meta_checkpoint(str(llama_dir), str(tmp_path_factory.mktemp("meta") / "llama-2-tiny"))


def _storage_offsets(path):
    """Where torch's own zip reader finds each storage record in the file."""
    import torch

    reader = torch._C.PyTorchFileReader(path)
    return {reader.get_record_offset(name) for name in reader.get_all_records() if name.startswith("data/")}


def _assert_equals_torch_load(catalog, files):
    """Names, order, shapes, dtypes, offsets and every value equal what torch gives."""
    import torch

    loaded = {}
    for path in files:
        loaded.update(torch.load(path, weights_only=True))
    assert [t.name for t in catalog.tensors] == list(loaded)
    with ElementReader() as elements:
        for info in catalog.tensors:
            tensor = loaded[info.name]
            assert (info.shape, info.dtype, info.nbytes) == (
                tuple(tensor.shape),
                TORCH_DTYPES[str(tensor.dtype)],
                tensor.numel() * tensor.element_size(),
            )
            assert elements.read(info, range(info.numel)) == tensor.flatten().tolist(), info.name
    for path in files:  # each tensor's storage starts where torch's reader puts a storage record
        starts = {
            t.offset - loaded[t.name].storage_offset() * loaded[t.name].element_size()
            for t in catalog.tensors
            if t.file == path
        }
        assert starts <= _storage_offsets(path) and len(starts) == len(
            {loaded[t.name].untyped_storage().data_ptr() for t in catalog.tensors if t.file == path}
        )


def test_bin_equals_torch_load(bin_dir):
    catalog = open_catalog(bin_dir)
    assert catalog.format == "torch"
    _assert_equals_torch_load(catalog, [os.path.join(bin_dir, "pytorch_model.bin")])


def test_sharded_bin_equals_torch_load(sharded_bin_dir):
    catalog = open_catalog(sharded_bin_dir)
    assert [os.path.basename(f) for f in catalog.files] == [
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
    ]
    _assert_equals_torch_load(catalog, catalog.files)


@pytest.mark.parametrize("fixture", ["bin_dir", "sharded_bin_dir", "meta_dir"])
def test_views_match_the_safetensors_folder(fixture, request, llama_dir, cli):
    folder = request.getfixturevalue(fixture)
    assert cli("params", folder, "--style", "torch").out == cli("params", llama_dir, "--style", "torch").out
    assert cli("tree", folder).out == cli("tree", llama_dir).out


def test_values_torch_style_matches_print(bin_dir, cli):
    import transformers

    model = transformers.LlamaForCausalLM.from_pretrained(bin_dir)
    result = cli("values", bin_dir, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == "".join(f"{p}\n" for p in model.parameters())


def test_meta_checkpoint(meta_dir, cli):
    catalog = open_catalog(meta_dir)
    _assert_equals_torch_load(catalog, [os.path.join(meta_dir, "consolidated.00.pth")])
    assert catalog.config == {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "intermediate_size": 96,
        "vocab_size": 128,
        "tie_word_embeddings": False,
    }
    hf_names = cli("params", meta_dir, "--hf-names", "--filter", "model.layers.1.*").out.splitlines()
    assert [line.split()[0] for line in hf_names[1:-1]] == [
        "model.layers.1.input_layernorm.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.post_attention_layernorm.weight",
        "model.layers.1.self_attn.k_proj.weight",
        "model.layers.1.self_attn.o_proj.weight",
        "model.layers.1.self_attn.q_proj.weight",
        "model.layers.1.self_attn.v_proj.weight",
    ]


def test_meta_names_are_llama_cpp_names(llama_dir):
    """The builder's Meta names are the ones gguf's TensorNameMap knows (llama-pth)."""
    import gguf

    names = gguf.TensorNameMap(gguf.MODEL_ARCH.LLAMA, 2)
    for info in open_catalog(str(llama_dir)).tensors:
        base = info.name.rsplit(".", 1)[0]
        assert names.get_name(checkpoints.meta_name(base)) == names.get_name(base)


def test_model_parallel_shards_are_refused(meta_dir, tmp_path, cli):
    import shutil

    folder = tmp_path / "llama-2-13b"
    shutil.copytree(meta_dir, folder)
    shutil.copy(folder / "consolidated.00.pth", folder / "consolidated.01.pth")
    result = cli("params", folder)
    assert (
        result.err
        == f"llm-anatomy: {folder}: expected one consolidated.00.pth (a model that is not split for model parallelism), found 2 model-parallel shards; pass one shard file, or convert with transformers' convert_llama_weights_to_hf.py\n"
    )


@pytest.mark.parametrize(
    "text, found",
    [
        ("{not json", "invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        ("[64, 2]", "list"),
    ],
    ids=["not-json", "not-an-object"],
)
def test_broken_params_json_is_one_line_and_params_still_works(meta_dir, tmp_path, cli, text, found):
    import shutil

    folder = tmp_path / "llama-2-tiny"
    shutil.copytree(meta_dir, folder)
    (folder / "params.json").write_text(text)
    expected = "Meta's params.json" if text.startswith("{") else "a JSON object"
    result = cli("config", folder)
    assert (result.code, result.err) == (
        1,
        f"llm-anatomy: {folder / 'params.json'}: expected {expected}, found {found}; fix or re-download params.json\n",
    )
    assert cli("params", folder).out == cli("params", meta_dir).out  # the same folder name, so the same text


@pytest.mark.parametrize(
    "numel, offset, found",
    [(4, 2, "a storage of 16 bytes"), (2, 0, "a storage of 8 bytes")],
    ids=["past-the-member", "past-the-declared-numel"],
)
def test_tensor_past_its_storage(numel, offset, found):
    """The smaller of the member's bytes and the storage size the pickle declares bounds a tensor."""
    from llm_anatomy.core.errors import AnatomyError
    from llm_anatomy.formats import torch_zip
    from llm_anatomy.formats.restricted_pickle import StorageRef, TensorRef

    ref = TensorRef(StorageRef("0", "F32", numel), offset, (4,), (1,), "F32")
    with pytest.raises(AnatomyError) as caught:
        torch_zip._tensor("m.bin", "w", ref, (64, 16))
    assert (
        caught.value.line()
        == f"m.bin: tensor w: expected 16 bytes at byte {offset * 4} of its storage, found {found}; the file is truncated or corrupt"
    )
    assert torch_zip._tensor("m.bin", "w", ref._replace(offset=0, shape=(numel,)), (64, 16)).nbytes == numel * 4


def test_shared_views_offsets_and_new_dtypes(tmp_path):
    """Tied weights share bytes, a view starts at its storage offset, float8 uses _rebuild_tensor_v3."""
    import torch

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = {
        "a": base,
        "tied": base,
        "row": base[1],
        "p": torch.nn.Parameter(torch.ones(2)),
        "f8": torch.full((4,), 0.5).to(torch.float8_e4m3fn),
        "ids": torch.arange(3),
        "mask": torch.tensor([True, False]),
    }
    path = str(tmp_path / "state.pt")
    torch.save(state, path)
    catalog = open_catalog(path)
    _assert_equals_torch_load(catalog, [path])
    a, tied, row = catalog.get("a"), catalog.get("tied"), catalog.get("row")
    assert tied.offset == a.offset and row.offset == a.offset + 16 and row.nbytes == 16


def test_scalars_become_metadata_and_nested_dicts_dotted_names(tmp_path):
    import torch

    path = str(tmp_path / "ckpt.pt")
    torch.save({"epoch": 3, "model": {"w": torch.zeros(2)}}, path)
    catalog = open_catalog(path)
    assert [t.name for t in catalog.tensors] == ["model.w"]
    assert catalog.metadata == {"epoch": "3"}


# ---------------------------------------------------------------- refusals


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_a_command_is_refused(tmp_path, cli):
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    torch.save({"w": torch.zeros(2), "payload": RunsACommand(marker)}, str(path))
    result = cli("params", path)
    assert (
        result.err
        == f"llm-anatomy: {path}: expected only tensors and state dicts, found the disallowed global posix.system; the file is not a plain state dict and may run code when loaded with torch.load; do not load it\n"
    )
    assert result.code == 1
    assert not marker.exists()
    torch.load(str(path), weights_only=False)  # the same file does run the command when torch loads it unrestricted
    assert marker.exists()


def _torch_like_zip(path, pickle_bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
    return path


def test_build_on_an_allowed_global_is_refused(tmp_path, cli):
    """BUILD could rewrite our stand-ins' state: only dicts may receive it."""
    evil = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x01\x00\x00\x00aK\x01sb."
    path = _torch_like_zip(tmp_path / "build.pt", evil)
    result = cli("params", path)
    assert (
        result.err
        == f"llm-anatomy: {path}: expected object state only on dicts, found state for function; the file is not a plain state dict and may run code when loaded with torch.load; do not load it\n"
    )


NOT_A_STATE_DICT = "the file is not a plain state dict and may run code when loaded with torch.load; do not load it"
CORRUPT_PICKLE = "the file is corrupt; download it again"


@pytest.mark.parametrize(
    "pickle_bytes, message",
    [
        (
            b"\x80\x02ccollections\nOrderedDict\n)\x81.",
            f"expected a state dict, found the pickle operation NEWOBJ; {NOT_A_STATE_DICT}",
        ),
        (
            b"\x80\x02(X\x02\x00\x00\x00idiposix\nsystem\n.",
            f"expected a state dict, found the pickle operation INST; {NOT_A_STATE_DICT}",
        ),
        (b"\x80\x02]K\x00K\x01s.", f"expected items set only on dicts, found items set on list; {NOT_A_STATE_DICT}"),
        (
            b"\x80\x02}K\x01a.",
            f"expected items appended only to lists, found items appended to dict; {NOT_A_STATE_DICT}",
        ),
        (
            b"\x80\x02ctorch\nFloatStorage\n)R.",
            f"expected calls of the allowed functions only, found a call of StorageType; {NOT_A_STATE_DICT}",
        ),
        (
            b"\x80\x02\xff.",
            f"expected a readable pickle (data.pkl), found an unknown operation 0xff at byte 2; {CORRUPT_PICKLE}",
        ),
        (
            b"\x80\x02}",
            f"expected a readable pickle (data.pkl), found the pickle cut short before its STOP; {CORRUPT_PICKLE}",
        ),
        (
            b"\x80\x02X\xff\xff\xff\xff.",
            f"expected a readable pickle (data.pkl), found 4294967295 bytes at byte 7 of a pickle of 8 bytes; {CORRUPT_PICKLE}",
        ),
        (b"\x80\x02h\x05.", f"expected a readable pickle (data.pkl), found memo entry 5; {CORRUPT_PICKLE}"),
    ],
    ids=[
        "newobj",
        "inst",
        "setitem-on-list",
        "append-to-dict",
        "call-a-storage-type",
        "unknown-operation",
        "no-stop",
        "string-past-the-end",
        "memo-miss",
    ],
)
def test_operations_outside_a_state_dict(tmp_path, cli, pickle_bytes, message):
    """The opcode loop's refusals, one line each: operations it does not follow, targets it
    does not set items on, calls it does not make, and pickles it cannot follow."""
    path = _torch_like_zip(tmp_path / "model.pt", pickle_bytes)
    result = cli("params", path)
    assert (result.err, result.code) == (f"llm-anatomy: {path}: {message}\n", 1)


def test_other_refusals(tmp_path, cli):
    import torch

    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, str(legacy), _use_new_zipfile_serialization=False)
    single = tmp_path / "single.pt"
    torch.save(torch.zeros(2), str(single))
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("readme.txt", "hi")
    good, recompressed = tmp_path / "good.pt", tmp_path / "deflated.pt"
    torch.save({"w": torch.zeros(64)}, str(good))
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(recompressed, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    expected = {
        legacy: "expected a torch checkpoint in the zip format (torch >= 1.6), found the legacy torch.save format; convert it once where you trust it: torch.save(torch.load(PATH, map_location='cpu', weights_only=True), 'converted.pt')",
        single: "expected a state dict (a dict of tensors), found a single tensor; save a dict such as model.state_dict()",
        plain: "expected a torch zip checkpoint with one <name>/data.pkl, found 0 data.pkl members; the zip was not written by torch.save",
        recompressed: "tensor w: expected an uncompressed storage (torch.save writes them stored), found compression method 8; the zip was recompressed; save it again with torch.save",
    }
    for path, message in expected.items():
        assert cli("params", path).err == f"llm-anatomy: {path}: {message}\n", path


def _views():
    """Tensors torch.save stores as views of a larger storage, not in row-major order."""
    import torch

    torch.manual_seed(0)
    t = torch.randn(3, 4)
    grid = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    return {
        "transposed": t.T,  # strides (1, 4)
        "sliced": t[:, ::2],  # strides (4, 2)
        "offset": grid[2:5, 3:7],  # storage offset 23, strides (10, 1)
        "column": grid[1:, 7],  # 1-D, offset 17, stride 10
        "half_transposed": torch.randn(5, 4).half().T,
        "broadcast": torch.arange(3, dtype=torch.bfloat16).reshape(3, 1).expand(3, 4),  # stride 0
        "plain": t.clone(),
    }


@pytest.fixture(scope="module")
def strided_pair(tmp_path_factory):
    """The views saved as they are, and the same values saved contiguous, each as model.pt."""
    import torch

    folder = tmp_path_factory.mktemp("strided")
    strided, contiguous = folder / "strided" / "model.pt", folder / "contiguous" / "model.pt"
    for path, state in ((strided, _views()), (contiguous, {k: v.contiguous() for k, v in _views().items()})):
        path.parent.mkdir()
        torch.save(state, str(path))
    return strided, contiguous


def test_strided_views_equal_torch_load(strided_pair):
    """Every element of a view comes from storage[offset + sum(index * stride)], as torch reads it."""
    import torch

    strided, _ = strided_pair
    assert {
        k: (v.is_contiguous(), v.storage_offset()) for k, v in torch.load(str(strided)).items() if k != "plain"
    } == {
        "transposed": (False, 0),
        "sliced": (False, 0),
        "offset": (False, 23),
        "column": (False, 17),
        "half_transposed": (False, 0),
        "broadcast": (False, 0),
    }
    catalog = open_catalog(str(strided))
    _assert_equals_torch_load(catalog, [str(strided)])


@pytest.mark.parametrize("command", [("params",), ("values",), ("stats",), ("values", "--full"), ("params", "--json")])
def test_strided_views_read_by_every_command(strided_pair, cli, command):
    """params, values and stats print for the views what they print for the same values saved
    contiguous; values prints each as torch's print(tensor) does."""
    strided, contiguous = strided_pair
    result = cli(*command[:1], strided, *command[1:])
    assert result.code == 0, result.err
    assert result.out == cli(*command[:1], contiguous, *command[1:]).out.replace(str(contiguous), str(strided))


def test_strided_views_diff_by_value(strided_pair, cli):
    """diff compares a view with its contiguous copy by value (their bytes differ in order): no difference."""
    strided, contiguous = strided_pair
    result = cli("diff", strided, contiguous)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("name "))
    rows = lines[header + 1 : header + 8]
    assert sorted(row.split()[0] for row in rows) == sorted(_views())
    assert all(row.split()[2] == "0" and row.split()[4] == "0" for row in rows), rows


def test_same_strided_views_are_bit_identical(strided_pair, tmp_path, cli):
    """Two files holding the same views over the same storage bytes are bit-identical: their
    storages' bytes are compared (a copy of the file, so not the same place)."""
    strided, _ = strided_pair
    copy = tmp_path / "model.pt"
    copy.write_bytes(strided.read_bytes())
    result = cli("diff", strided, copy)
    assert result.code == 0, result.err
    assert "7 tensors compared: 7 bit-identical" in result.out, result.out


def test_strided_values_match_print(strided_pair, cli):
    import torch

    strided, _ = strided_pair
    loaded = torch.load(str(strided))
    blocks = cli("values", strided).out.split("\n\n")
    assert len(blocks) == len(loaded)
    for block in blocks:
        header, _, text = block.partition("\n")
        name = header.split()[0]
        assert text.rstrip("\n") == str(loaded[name]), name


@pytest.mark.parametrize(
    "stride, found",
    [
        (
            (1, 3),
            "tensor w: expected storage elements 1..12 (shape [3, 4], strides [1, 3]), found a storage of 12 elements; the file is truncated or corrupt",
        ),
        (
            (1, -3),
            "tensor w: expected strides of 0 or more (as torch makes them), found strides [1, -3]; the file is corrupt or hostile",
        ),
    ],
    ids=["past-the-storage", "negative-stride"],
)
def test_strided_view_outside_its_storage(tmp_path, cli, stride, found):
    """A view whose strides reach past the storage's elements, or go backwards, is refused in one line."""
    import io
    import pickle
    from collections import OrderedDict

    import torch

    class Storage:
        pass

    class View:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (STORAGE, 1, (3, 4), stride, False, OrderedDict())

    STORAGE = Storage()
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.persistent_id = lambda obj: ("storage", torch.FloatStorage, "0", "cpu", 12) if obj is STORAGE else None
    pickler.dump({"w": View()})
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/data/0", b"\0" * 48)
    assert cli("params", path).err == f"llm-anatomy: {path}: {found}\n"


def test_legacy_conversion_hint_runs_on_a_cpu_only_machine(tmp_path, cli):
    """The hint's code, run as printed, converts a legacy file saved from a CUDA tensor: without
    map_location it would fail on a machine without CUDA, such as this one."""
    import torch

    legacy = tmp_path / "legacy.pt"
    # A legacy pickle whose storage location says cuda:0, as torch.save of a GPU tensor writes it
    # (the location is a BINUNICODE string: 'X', its length, its bytes).
    torch.save({"w": torch.arange(3.0)}, str(legacy), _use_new_zipfile_serialization=False)
    raw = legacy.read_bytes().replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    assert raw != legacy.read_bytes()
    legacy.write_bytes(raw)
    with pytest.raises(RuntimeError):
        torch.load(str(legacy), weights_only=True)  # what the old hint ran
    hint = cli("params", legacy).err.split("convert it once where you trust it: ")[1].strip()
    converted = tmp_path / "converted.pt"
    code = hint.replace("PATH", repr(str(legacy))).replace("'converted.pt'", repr(str(converted)))
    exec(code, {"torch": torch})
    assert cli("values", converted, "w").out == "w  [3]  F32\ntensor([0., 1., 2.])\n"


def test_truncated_zip(bin_dir, tmp_path, cli):
    data = open(os.path.join(bin_dir, "pytorch_model.bin"), "rb").read()
    path = tmp_path / "truncated.bin"
    path.write_bytes(data[: len(data) // 2])
    assert (
        cli("params", path).err
        == f"llm-anatomy: {path}: expected a torch zip checkpoint, found an unreadable zip (File is not a zip file); the file is truncated or corrupt; download it again\n"
    )


def test_params_imports_neither_torch_nor_numpy(bin_dir, cli):
    # pathlib comes with zipfile, so it is not checked here.
    code, loaded, out = imported_by(
        "params", bin_dir, modules=("numpy", "torch", "transformers", "typing", "dataclasses")
    )
    assert (code, loaded) == (0, [])
    assert out == cli("params", bin_dir).out  # the light path prints the same text


def test_the_unpickler_is_our_own(bin_dir):
    """data.pkl is read by restricted_pickle's own opcode loop: Python's pickle module, whose
    private parts a subclass would depend on, is not even imported."""
    code, loaded, _ = imported_by("params", bin_dir, modules=("pickle", "_pickle"))
    assert (code, loaded) == (0, [])


@pytest.mark.parametrize("fixture", ["bin_dir", "sharded_bin_dir"])
@pytest.mark.parametrize("command", [("summary",), ("config", "--explain")])
def test_summary_and_explain_match_the_safetensors_folder(fixture, command, request, llama_dir, cli):
    folder = request.getfixturevalue(fixture)
    ours, reference = cli(*command[:1], folder, *command[1:]), cli(*command[:1], llama_dir, *command[1:])
    assert ours.code == 0, ours.err
    assert ours.out.split("\n", 1)[1] == reference.out.split("\n", 1)[1]  # all but the line naming the model
