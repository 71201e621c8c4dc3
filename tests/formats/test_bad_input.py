"""Hostile and broken safetensors checkpoints: one exact line on stderr, exit 1, no traceback."""

import json
import os
import struct

import pytest


def _packed(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _write(tmp_path, content: bytes, name="model.safetensors"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


F32_2 = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b"",
            "expected a checkpoint (safetensors, gguf, torch), found an empty file; the file is empty, truncated or of an unsupported format",
        ),
        (
            b"\x05\x00",
            "expected a checkpoint (safetensors, gguf, torch), found a file starting with b'\\x05\\x00'; the file is empty, truncated or of an unsupported format",
        ),
        (
            _packed(b"{", length=1000),
            "expected a header of 1000 bytes after the 8-byte length, found a file of 9 bytes; the file is truncated; download it again",
        ),
        (
            _packed(b"{" + b" " * 20, length=200 * 1024 * 1024),
            "expected a header of at most 104857600 bytes, found a header length of 209715200 bytes; the file is corrupt or not safetensors",
        ),
        (
            _packed(b"{nope"),
            "expected a JSON header, found invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); the file is corrupt; download it again",
        ),
        (
            _packed(F32_2, b"\0" * 4),
            "tensor w: expected data_offsets inside the 4 data bytes, found [0, 8]; the file is truncated or corrupt",
        ),
        (
            _packed(
                {
                    "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "v": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
                },
                b"\0" * 8,
            ),
            "expected tensor data that does not overlap, found v overlapping w; the file is corrupt or hostile",
        ),
        (
            _packed({"w": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
            "tensor w: expected a known dtype (BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2, F8_E4M3FNUZ, F8_E5M2FNUZ, F8_E8M0, F6_E2M3, F6_E3M2, F4, C64, C128), found 'Q9'; the file may be corrupt or from a newer writer",
        ),
        (
            _packed({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
            "tensor w: expected 12 bytes for shape [3] of F32, found 8 bytes; the header is corrupt",
        ),
        (
            _packed({"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0" * 2),
            "tensor w: expected a shape of F4 elements filling whole bytes, found shape [3]: 12 bits (1.5 bytes); the header is corrupt",
        ),
        (
            _packed({"w": {"dtype": "F6_E2M3", "shape": [5], "data_offsets": [0, 4]}}, b"\0" * 4),
            "tensor w: expected a shape of F6_E2M3 elements filling whole bytes, found shape [5]: 30 bits (3.75 bytes); the header is corrupt",
        ),
        (
            _packed({"w": {"dtype": "F4", "shape": [4], "data_offsets": [0, 3]}}, b"\0" * 3),
            "tensor w: expected 2 bytes for shape [4] of F4, found 3 bytes; the header is corrupt",
        ),
        (
            _packed({"w\x1b[31mred": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
            "expected tensor names without control characters, found 'w\\x1b[31mred'; the file is corrupt or hostile; do not trust it",
        ),
        (_packed({"__metadata__": 5}), "expected __metadata__ as an object of strings, found int; the file is corrupt"),
    ],
    ids=[
        "empty",
        "tiny",
        "truncated-header",
        "huge-header",
        "bad-json",
        "offset-beyond",
        "overlap",
        "unknown-dtype",
        "shape-mismatch",
        "f4-odd-count",
        "f6-partial-byte",
        "f4-even-count",
        "control-chars",
        "bad-metadata",
    ],
)
def test_corrupt_file_gives_one_line(tmp_path, cli_subprocess, content, message):
    path = _write(tmp_path, content)
    before = sorted(os.listdir(tmp_path))
    result = cli_subprocess("params", path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"llm-anatomy: {path}: {message}\n"
    assert sorted(os.listdir(tmp_path)) == before  # never writes into the model folder


def test_every_reader_refuses_a_control_character_in_a_name_in_one_wording(tmp_path, cli):
    """safetensors, GGUF and torch files name the same fault alike (core.catalog.check_tensor_name)."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w\x1b[31mred": torch.zeros(2)}, path)
    result = cli("params", path)
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {path}: expected tensor names without control characters, found 'w\\x1b[31mred';"
        " the file is corrupt or hostile; do not trust it\n"
    )


def test_traceback_only_with_debug(tmp_path, cli_subprocess):
    path = _write(tmp_path, b"")
    assert "Traceback" not in cli_subprocess("params", path).stderr
    assert "Traceback" in cli_subprocess("--debug", "params", path).stderr


def test_missing_path(cli):
    result = cli("params", "./no/such/model")
    assert (result.code, result.err) == (
        1,
        "llm-anatomy: ./no/such/model: expected a model folder, a weights file, or a model id such as meta-llama/Llama-2-7b-chat-hf, found no such file or folder; check the path\n",
    )


def test_folder_without_weights(tmp_path, cli):
    (tmp_path / "README.md").write_text("weights to follow")  # no config.json either (that alone is a model to study)
    result = cli("params", tmp_path)
    assert result.code == 1
    assert (
        result.err
        == f"llm-anatomy: {tmp_path}: expected weights (*.safetensors, pytorch_model*.bin, *.gguf, *.pth or *.pt files, or a shard index), found none; point at the folder that holds the weights\n"
    )


def test_index_naming_missing_shard(tmp_path, cli):
    _write(tmp_path, _packed(F32_2, b"\0" * 8), "model-00001-of-00002.safetensors")
    index = {"weight_map": {"w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    result = cli("params", tmp_path)
    assert result.code == 1
    assert (
        result.err
        == f"llm-anatomy: {tmp_path / 'model.safetensors.index.json'}: expected shard model-00002-of-00002.safetensors named by the index, found no such file; download the missing shard\n"
    )


def test_index_escaping_the_folder_is_refused(tmp_path, cli):
    index = {"weight_map": {"w": "../elsewhere.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    result = cli("params", tmp_path)
    assert (
        result.err
        == f"llm-anatomy: {tmp_path / 'model.safetensors.index.json'}: expected shard names inside the model folder, found '../elsewhere.safetensors'; the index is corrupt or hostile\n"
    )


def test_model_id_not_in_cache(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    result = cli("params", "meta-llama/Llama-2-7b-chat-hf")
    assert result.code == 1
    assert result.err == (
        f"llm-anatomy: meta-llama/Llama-2-7b-chat-hf: expected a model folder, a weights file, or a model in the local Hugging Face cache ({tmp_path}), "
        "found none of these; download it with `hf download meta-llama/Llama-2-7b-chat-hf`\n"
    )


def test_usage_errors_exit_2(cli_subprocess):
    result = cli_subprocess("params")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "llm-anatomy params: error: the following arguments are required: MODEL"


def test_piped_into_head_ends_quietly(llama_dir, cli):
    import subprocess
    import sys

    pipeline = f"{sys.executable} -m llm_anatomy.cli.main params {llama_dir} | head -1"
    result = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True)
    assert result.stdout == cli("params", llama_dir).out.splitlines(keepends=True)[0]
    assert result.stderr == ""
