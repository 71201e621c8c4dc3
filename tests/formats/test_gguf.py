"""GGUF: tables equal gguf's, tensors and values equal what gguf itself reads from files
written with gguf.GGUFWriter, the derived config equals the Hugging Face one, and
hand-packed corrupt files each give one exact line."""

import json
import os
import struct

import pytest

import checkpoints
from conftest import NOT_ON_THE_LIGHT_PATH, imported_by
from llm_anatomy.core.dtypes import DTYPES
from llm_anatomy.core import ggml_types
from llm_anatomy.locate import open_catalog
from llm_anatomy.hf.names import META_TO_HF, meta_hf_name
from llm_anatomy.decode.elements import ElementReader


@pytest.fixture(scope="session")
def llama_gguf(llama_dir, tmp_path_factory):
    """The tiny Llama as GGUF: F32 norms, F16 embedding, Q8_0, Q4_0 and BF16 tensors, a vocabulary."""
    return checkpoints.llama_gguf(str(llama_dir), str(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"))


# ---------------------------------------------------------------- tables copied from gguf


def test_ggml_types_equal_gguf_tables():
    import gguf

    expected = {t.value: (t.name, *gguf.GGML_QUANT_SIZES[t]) for t in gguf.GGMLQuantizationType}
    literal = "\n".join(f"    {k}: {v!r}," for k, v in expected.items())
    assert ggml_types.GGML_TYPES == expected, f"update GGML_TYPES in ggml_types.py to:\n{literal}"
    packing = gguf.GGUFWriter._simple_value_packing
    assert ggml_types.GGUF_VALUE_TYPES == {v.value: (v.name, packing.get(v)) for v in gguf.GGUFValueType}
    assert ggml_types.GGML_DEQUANTIZABLE == {t.name for t in gguf.quants._type_traits} - {"BF16"}
    assert (ggml_types.FLOAT32, ggml_types.STRING) == (gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.STRING)
    assert ggml_types.GGUF_MAGIC == struct.pack("<I", gguf.GGUF_MAGIC)
    assert ggml_types.GGUF_DEFAULT_ALIGNMENT == gguf.GGUF_DEFAULT_ALIGNMENT
    assert gguf.GGUF_VERSION in ggml_types.GGUF_VERSIONS
    assert (ggml_types.KEY_ARCHITECTURE, ggml_types.KEY_ALIGNMENT, ggml_types.KEY_TOKENS) == (
        gguf.Keys.General.ARCHITECTURE,
        gguf.Keys.General.ALIGNMENT,
        gguf.Keys.Tokenizer.LIST,
    )


def test_ggml_types_join_the_dtype_table():
    assert (DTYPES["Q4_K"].block_size, DTYPES["Q4_K"].block_bytes, DTYPES["Q4_K"].bits_per_weight) == (256, 144, 4.5)
    assert DTYPES["Q8_0"].bits_per_weight == 8.5 and DTYPES["IQ2_XXS"].bits_per_weight == 2.0625
    for name, block_size, block_bytes in ggml_types.GGML_TYPES.values():
        assert DTYPES[name].nbytes(block_size * 3) == block_bytes * 3, name


def test_meta_names_equal_gguf_tensor_name_map():
    import gguf

    llama = gguf.TensorNameMap(gguf.MODEL_ARCH.LLAMA, 4)
    for meta, hf in META_TO_HF.items():
        assert llama.get_name(meta.format(bid=2)) == llama.get_name(hf.format(bid=2)), meta
    assert meta_hf_name("layers.12.attention.wq.weight") == "model.layers.12.self_attn.q_proj.weight"
    assert meta_hf_name("rope.freqs") == "rope.freqs"  # no HF twin: kept


# ---------------------------------------------------------------- fidelity against gguf


def test_tensors_equal_gguf_reader(llama_gguf):
    import gguf

    catalog = open_catalog(llama_gguf)
    reader = gguf.GGUFReader(llama_gguf)
    assert catalog.format == "gguf"
    assert [(t.name, t.shape, t.dtype, t.offset, t.nbytes) for t in catalog.tensors] == [
        (t.name, tuple(int(d) for d in reversed(t.shape)), t.tensor_type.name, t.data_offset, int(t.n_bytes))
        for t in reader.tensors
    ]
    assert {t.dtype for t in catalog.tensors} == {"F32", "F16", "Q8_0", "Q4_0", "BF16"}


def test_values_equal_gguf_dequantize(llama_gguf):
    import gguf

    catalog = open_catalog(llama_gguf)
    with ElementReader() as elements:
        for tensor in gguf.GGUFReader(llama_gguf).tensors:
            info = catalog.get(tensor.name)
            expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype("float64").ravel().tolist()
            assert elements.read(info, range(info.numel)) == expected, tensor.name


def test_values_command_prints_as_torch(llama_gguf, cli):
    import gguf
    import torch

    tensor = next(t for t in gguf.GGUFReader(llama_gguf).tensors if t.name == "blk.0.ffn_up.weight")
    expected = torch.from_numpy(gguf.quants.dequantize(tensor.data, tensor.tensor_type))
    result = cli("values", llama_gguf, "blk.0.ffn_up.weight")
    assert result.code == 0, result.err
    assert result.out == f"blk.0.ffn_up.weight  [96, 64]  Q4_0\n{expected}\n"


def test_metadata_arrays_are_summarized(llama_gguf):
    metadata = open_catalog(llama_gguf).metadata
    assert metadata["tokenizer.ggml.tokens"] == "array of 128 strings ['<t0>', '<t1>', '<t2>', ...]"
    assert metadata["tokenizer.ggml.tokens"].item_count == 128
    assert metadata["tokenizer.ggml.scores"] == "array of 128 float32 [0.0, -1.0, -2.0, ...]"
    assert (
        metadata["general.architecture"],
        metadata["llama.block_count"],
        metadata["llama.attention.head_count_kv"],
    ) == ("llama", 2, 2)


def test_derived_config_prints_as_the_hf_config(llama_gguf, llama_dir, cli):
    assert open_catalog(llama_gguf).config == {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-06,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "vocab_size": 128,
        "tie_word_embeddings": False,
    }
    from_gguf, from_hf = cli("config", llama_gguf), cli("config", llama_dir)
    assert from_gguf.code == 0, from_gguf.err
    # The same but for the GGUF quantizer's block (the next test).
    name = os.path.basename(llama_gguf)
    block = f'  "quantization_config": {{\n    "dequantize": false,\n    "gguf_file": "{name}",\n    "quant_method": "gguf"\n  }},\n'
    assert from_gguf.out == from_hf.out.replace('  "rms_norm_eps"', block + '  "rms_norm_eps"')


def test_config_shows_the_quantization_config_from_pretrained_sets(llama_gguf, cli):
    """print(model.config) after from_pretrained(folder, gguf_file=NAME) has GgufConfig's block."""
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(llama_gguf), gguf_file=os.path.basename(llama_gguf)
    )
    theirs = json.loads(str(model.config).partition(" ")[2])["quantization_config"]
    assert theirs == {"dequantize": False, "gguf_file": os.path.basename(llama_gguf), "quant_method": "gguf"}
    assert json.loads(cli("config", llama_gguf).out.partition(" ")[2])["quantization_config"] == theirs
    assert json.loads(cli("config", llama_gguf, "--json").out)["quantization_config"] == theirs


def test_tree_and_torch_style_params_match_the_hf_folder(llama_gguf, llama_dir, cli):
    assert cli("tree", llama_gguf).out == cli("tree", llama_dir).out
    assert cli("params", llama_gguf, "--style", "torch").out == cli("params", llama_dir, "--style", "torch").out


def test_params_table_and_hf_names(llama_gguf, cli):
    assert cli("params", llama_gguf, "--filter", "blk.0.*").out == (
        "name                      shape     dtype  params      bytes  file\n"
        "blk.0.attn_k.weight       [32, 64]  Q8_0    2,048   2.12 KiB  tiny-llama.gguf\n"
        "blk.0.attn_norm.weight    [64]      F32        64      256 B  tiny-llama.gguf\n"
        "blk.0.attn_output.weight  [64, 64]  F32     4,096  16.00 KiB  tiny-llama.gguf\n"
        "blk.0.attn_q.weight       [64, 64]  Q8_0    4,096   4.25 KiB  tiny-llama.gguf\n"
        "blk.0.attn_v.weight       [32, 64]  F32     2,048   8.00 KiB  tiny-llama.gguf\n"
        "blk.0.ffn_down.weight     [64, 96]  F32     6,144  24.00 KiB  tiny-llama.gguf\n"
        "blk.0.ffn_gate.weight     [96, 64]  Q4_0    6,144   3.38 KiB  tiny-llama.gguf\n"
        "blk.0.ffn_norm.weight     [64]      F32        64      256 B  tiny-llama.gguf\n"
        "blk.0.ffn_up.weight       [96, 64]  Q4_0    6,144   3.38 KiB  tiny-llama.gguf\n"
        "9 tensors, 30,848 parameters, 61.62 KiB in 1 file\n"
    )
    assert cli("params", llama_gguf, "--hf-names", "--filter", "model.layers.0.mlp.*").out == (
        "name                                 shape     dtype  params      bytes  file\n"
        "model.layers.0.mlp.down_proj.weight  [64, 96]  F32     6,144  24.00 KiB  tiny-llama.gguf\n"
        "model.layers.0.mlp.gate_proj.weight  [96, 64]  Q4_0    6,144   3.38 KiB  tiny-llama.gguf\n"
        "model.layers.0.mlp.up_proj.weight    [96, 64]  Q4_0    6,144   3.38 KiB  tiny-llama.gguf\n"
        "3 tensors, 18,432 parameters, 30.75 KiB in 1 file\n"
    )
    hf_names = {line.split()[0] for line in cli("params", llama_gguf, "--hf-names").out.splitlines()[1:-1]}
    assert hf_names == {line.split(":")[0] for line in cli("params", llama_gguf, "--style", "torch").out.splitlines()}


def test_params_json_shows_block_types(llama_gguf, cli):
    data = json.loads(cli("params", llama_gguf, "--json", "--filter", "blk.0.attn_q.weight").out)
    assert data["tensors"] == [
        {
            "name": "blk.0.attn_q.weight",
            "shape": [64, 64],
            "dtype": "Q8_0",
            "numel": 4096,
            "nbytes": 4352,
            "file": "tiny-llama.gguf",
        }
    ]
    assert data["format"] == "gguf"


def test_params_imports_neither_numpy_nor_gguf(llama_gguf, cli):
    code, loaded, out = imported_by("params", llama_gguf, modules=NOT_ON_THE_LIGHT_PATH + ("gguf",))
    assert (code, loaded) == (0, [])
    assert out == cli("params", llama_gguf).out  # the light path prints the same text


# ---------------------------------------------------------------- hand-packed corrupt files


def _string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _kv_u32(key: bytes, value: int) -> bytes:
    return _string(key) + struct.pack("<II", 4, value)


def _tensor_info(name: bytes, dims: tuple, ggml_type: int = 0, offset: int = 0) -> bytes:
    return (
        _string(name)
        + struct.pack("<I", len(dims))
        + struct.pack(f"<{len(dims)}Q", *dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def _gguf(kvs=(), tensors=(), version=3, tensor_count=None, kv_count=None, data=b"\0" * 64, magic=b"GGUF") -> bytes:
    head = magic + struct.pack(
        "<IQQ",
        version,
        len(tensors) if tensor_count is None else tensor_count,
        len(kvs) if kv_count is None else kv_count,
    )
    body = head + b"".join(kvs) + b"".join(tensors)
    return body + b"\0" * (-len(body) % 32) + data


GOOD_TENSOR = _tensor_info(b"w", (4, 2))  # F32 [2, 4]: 32 bytes at offset 0


def _tokens(lengths: list) -> bytes:
    """tokenizer.ggml.tokens with strings of these lengths; lengths of 100 or more are lies."""
    strings = b"".join(struct.pack("<Q", n) + (b"x" * n if n < 100 else b"") for n in lengths)
    return _string(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, len(lengths)) + strings


CORRUPT = {
    "bad_magic": (
        _gguf(magic=b"GGUX"),
        "expected a checkpoint (safetensors, gguf, torch), found a file starting with b'GGUX\\x03\\x00\\x00\\x00'; the file is empty, truncated or of an unsupported format",
    ),
    "version_1": (
        _gguf(version=1),
        "expected GGUF version 2 or 3, found version 1; convert the model again with a current llama.cpp",
    ),
    "version_4": (
        _gguf(version=4),
        "expected GGUF version 2 or 3, found version 4; convert the model again with a current llama.cpp",
    ),
    "big_endian": (
        b"GGUF" + struct.pack(">IQQ", 3, 0, 0),
        "expected a little-endian GGUF file, found a big-endian one (version 3); convert it with `gguf-convert-endian FILE little`",
    ),
    "tensor_count_beyond_file": (
        _gguf(tensor_count=10**6),
        "expected 1000000 tensors within the file (at least 24 bytes each), found 80 bytes left; the file is truncated or corrupt; download it again",
    ),
    "kv_count_beyond_file": (
        _gguf(kv_count=2**64 - 1),
        "expected 18446744073709551615 metadata keys within the file (at least 13 bytes each), found 72 bytes left; the file is truncated or corrupt; download it again",
    ),
    "key_length_beyond_file": (
        _gguf(kvs=[struct.pack("<Q", 2**40) + b"key"]),
        "expected a metadata key at bytes 32..1099511627808, found a file of 128 bytes; the file is truncated or corrupt; download it again",
    ),
    "string_value_beyond_file": (
        _gguf(kvs=[_string(b"general.name") + struct.pack("<IQ", 8, 10**9)]),
        "expected the string value of general.name at bytes 56..1000000056, found a file of 128 bytes; the file is truncated or corrupt; download it again",
    ),
    "array_count_beyond_file": (
        _gguf(kvs=[_string(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 10**9)]),
        "expected 1000000000 items of tokenizer.ggml.tokens within the file, found 91 bytes left; the file is truncated or corrupt; download it again",
    ),
    "skipped_string_beyond_file": (
        _gguf(kvs=[_tokens([1, 1, 1, 10**6, 1])]),
        "expected a string length in tokenizer.ggml.tokens at bytes 1000104..1000112, found a file of 192 bytes; the file is truncated or corrupt; download it again",
    ),
    "last_string_beyond_file": (
        _gguf(kvs=[_tokens([1, 1, 1, 1, 10**6])]),
        "expected the strings of tokenizer.ggml.tokens to end at byte 1000113, found a file of 192 bytes; the file is truncated or corrupt; download it again",
    ),
    "unknown_value_type": (
        _gguf(kvs=[_string(b"x") + struct.pack("<I", 99)]),
        "expected a GGUF value type (0..12) for x, found 99; the file is truncated or corrupt; download it again",
    ),
    "duplicate_key": (
        _gguf(kvs=[_kv_u32(b"a", 1), _kv_u32(b"a", 2)]),
        "expected each metadata key once, found a twice; the file is corrupt",
    ),
    "misaligned_data": (
        _gguf(tensors=[_tensor_info(b"w", (4, 2), offset=8)]),
        "tensor w: expected data offset aligned to 32 bytes, found offset 8; the file is corrupt",
    ),
    "duplicate_tensor": (
        _gguf(tensors=[GOOD_TENSOR, GOOD_TENSOR]),
        "expected each tensor name once, found w twice; the file is corrupt",
    ),
    "data_beyond_file": (
        _gguf(tensors=[_tensor_info(b"w", (4, 2), offset=64)]),
        "tensor w: expected 32 data bytes at 160, found a file of 160 bytes; the file is truncated or corrupt; download it again",
    ),
    "too_many_dims": (
        _gguf(tensors=[_tensor_info(b"w", (1, 1, 1, 1, 1))]),
        "expected at most 4 dimensions for w, found 5; the file is truncated or corrupt; download it again",
    ),
    "unknown_ggml_type": (
        _gguf(tensors=[_tensor_info(b"w", (4, 2), ggml_type=77)]),
        "tensor w: expected a GGML type known to gguf, found type 77; upgrade the gguf package, or the file is corrupt",
    ),
    "partial_block": (
        _gguf(tensors=[_tensor_info(b"w", (40, 2), ggml_type=2)]),
        "tensor w: expected rows of whole Q4_0 blocks (32 elements), found a row of 40; the file is corrupt",
    ),
    "bad_alignment": (
        _gguf(kvs=[_kv_u32(b"general.alignment", 24)]),
        "expected general.alignment a power of two, found 24; the file is corrupt",
    ),
    "control_characters": (
        _gguf(tensors=[_tensor_info(b"w\x1b[31m", (4, 2))]),
        "expected tensor names without control characters, found 'w\\x1b[31m'; the file is corrupt or hostile; do not trust it",
    ),
    "invalid_utf8_name": (
        _gguf(tensors=[_tensor_info(b"w\xff", (4, 2))]),
        "expected a tensor name in UTF-8, found b'w\\xff'; the file is truncated or corrupt; download it again",
    ),
    "truncated_header": (
        _gguf()[:20],
        "expected the metadata key count at bytes 16..24, found a file of 20 bytes; the file is truncated or corrupt; download it again",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_files_give_one_exact_line(case, tmp_path, cli):
    content, message = CORRUPT[case]
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    result = cli("params", path)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"llm-anatomy: {path}: {message}\n"


def test_good_hand_packed_file_reads(tmp_path, cli):
    path = tmp_path / "good.gguf"
    path.write_bytes(_gguf(kvs=[_kv_u32(b"general.alignment", 64)], tensors=[GOOD_TENSOR]))
    catalog = open_catalog(str(path))
    assert [(t.name, t.shape, t.dtype, t.offset, t.nbytes) for t in catalog.tensors] == [("w", (2, 4), "F32", 128, 32)]
    assert catalog.config is None
    assert (
        str(catalog.config_error)
        == f"{path}: expected a GGUF architecture that maps to a transformers config (llama, mistral, qwen2, qwen2moe, qwen3, qwen3moe, gpt-oss, phi3, gemma2, gemma3, nemotron, starcoder2, stablelm, falcon, bloom, gpt2, mamba, t5, t5encoder, minimax-m2, gemma4, lfm2), found None; params, values and tree (by tensor names) work; config needs a config.json"
    )


def test_values_torch_style_prints_each_parameter_from_its_gguf_tensor(llama_gguf, cli):
    """--style torch maps names to transformers' own; each parameter prints exactly as after
    from_pretrained(gguf_file=): float32, block types dequantized, q and k rows un-permuted."""
    import os

    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(llama_gguf), gguf_file=os.path.basename(llama_gguf)
    )
    result = cli("values", llama_gguf, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == "".join(f"{p}\n" for p in model.parameters())


def test_k_and_i_quants_read_only_the_blocks_shown(tmp_path, monkeypatch):
    """Random bytes are valid blocks of any type (some scales are inf/nan): the values of a few
    elements equal gguf's dequantization of the whole tensor, and only the blocks holding
    them are read and dequantized."""
    import gguf
    import numpy as np

    from llm_anatomy.decode import elements as tensors
    from llm_anatomy.io.sources import LocalFile

    rng = np.random.default_rng(0)
    path = str(tmp_path / "kquants.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    kinds = ("Q4_K", "Q6_K", "IQ2_XXS", "IQ4_NL")
    raw = {}
    for kind in kinds:
        qtype = gguf.GGMLQuantizationType[kind]
        block_size, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        data = rng.integers(0, 256, size=(512, 512 // block_size * block_bytes), dtype=np.uint8)
        raw[kind] = data
        writer.add_tensor(kind.lower(), data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reads = []
    real_read = LocalFile.read
    monkeypatch.setattr(
        LocalFile,
        "read",
        lambda self, offset, length, what: (
            (what.startswith("data of ") and reads.append(length)) or real_read(self, offset, length, what)
        ),
    )
    catalog = open_catalog(path)
    with ElementReader() as elements:
        for kind in kinds:
            info = catalog.get(kind.lower())
            assert (info.shape, info.dtype) == ((512, 512), kind)
            with np.errstate(all="ignore"):
                expected = (
                    gguf.quants.dequantize(raw[kind], gguf.GGMLQuantizationType[kind])
                    .astype("float64")
                    .ravel()
                    .tolist()
                )
            positions = [0, 1, 256 * 512 + 300, 512 * 512 - 1]  # three blocks, far apart
            decoder = tensors.DECODERS[kind]
            decoded = []
            monkeypatch.setitem(
                tensors.DECODERS,
                kind,
                decoder._replace(
                    decode=lambda data, decode=decoder.decode, decoded=decoded: (
                        decoded.append(len(data)) or decode(data)
                    )
                ),
            )
            reads.clear()
            assert list(map(repr, elements.read(info, positions))) == [repr(expected[p]) for p in positions], (
                kind
            )  # repr: nan == nan
            assert reads == decoded == [DTYPES[kind].block_bytes] * 3, kind


def test_version_2_reads(tmp_path):
    path = tmp_path / "v2.gguf"
    path.write_bytes(_gguf(version=2, tensors=[GOOD_TENSOR]))
    assert [(t.name, t.shape) for t in open_catalog(str(path)).tensors] == [("w", (2, 4))]


def _write_gguf(path, tensors, **writer_options):
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama", **writer_options)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_split_gguf_reads_as_one_model(tmp_path):
    import numpy as np

    _write_gguf(
        tmp_path / "model.gguf", {f"t{i}": np.full((2, 4), i, np.float32) for i in range(5)}, split_max_tensors=2
    )
    catalog = open_catalog(str(tmp_path))
    assert [(t.name, t.file.rsplit("/", 1)[1]) for t in catalog.tensors] == [
        ("t0", "model-00001-of-00003.gguf"),
        ("t1", "model-00001-of-00003.gguf"),
        ("t2", "model-00002-of-00003.gguf"),
        ("t3", "model-00002-of-00003.gguf"),
        ("t4", "model-00003-of-00003.gguf"),
    ]


def test_several_quantizations_in_one_folder(tmp_path, cli):
    import numpy as np

    for name in ("llama-2-7b.Q4_0.gguf", "llama-2-7b.Q8_0.gguf"):
        _write_gguf(tmp_path / name, {"w": np.zeros((2, 4), np.float32)})
    result = cli("params", tmp_path)
    assert (
        result.err
        == f"llm-anatomy: {tmp_path}: expected one GGUF model (a file, or the splits NAME-0000N-of-0000M.gguf), found 2 GGUF files (llama-2-7b.Q4_0.gguf, llama-2-7b.Q8_0.gguf); pass one of the files\n"
    )
    assert cli("params", tmp_path / "llama-2-7b.Q8_0.gguf").code == 0


def test_summary_and_explain_work_on_gguf(llama_gguf, cli):
    summary = cli("summary", llama_gguf)
    assert (
        summary.out.splitlines()[0]
        == "tiny-llama.gguf: 78,144 parameters (78.14K), 226.38 KiB in F32, Q4_0, F16, Q8_0, BF16"
    )
    explain = cli("config", llama_gguf, "--explain")
    assert (explain.code, explain.out.splitlines()[2]) == (0, 'architectures = ["LlamaForCausalLM"]')
    assert (
        explain.out.splitlines()[0]
        == "tiny-llama.gguf: the 14 fields of the config derived from the checkpoint's metadata, explained"
    )


def test_metadata_view(llama_gguf, cli):
    result = cli("params", llama_gguf, "--metadata", "--filter", "llama.*")
    assert result.out == (
        "key                                     value\n"
        "llama.block_count                       2\n"
        "llama.context_length                    256\n"
        "llama.embedding_length                  64\n"
        "llama.feed_forward_length               96\n"
        "llama.attention.head_count              4\n"
        "llama.attention.head_count_kv           2\n"
        "llama.attention.layer_norm_rms_epsilon  1e-06\n"
        "llama.rope.freq_base                    10000.0\n"
        "8 metadata keys in gguf\n"
    )
    data = json.loads(cli("params", llama_gguf, "--metadata", "--json", "--filter", "tokenizer.ggml.[bt]*").out)
    assert data == {
        "model": "tiny-llama.gguf",
        "format": "gguf",
        "metadata": {
            "tokenizer.ggml.tokens": [f"<t{i}>" for i in range(128)],
            "tokenizer.ggml.bos_token_id": 1,
        },
    }


def test_metadata_json_gives_arrays_whole_as_gguf_reads_them(llama_gguf, cli):
    """Every key and every array item as gguf.GGUFReader decodes them, laid out as json.dumps(indent=2)."""
    import gguf
    import numpy as np

    result = cli("params", llama_gguf, "--metadata", "--json")
    data = json.loads(result.out)
    assert result.out == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    reader = gguf.GGUFReader(str(llama_gguf))
    fields = {name: field for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert list(data["metadata"]) == list(fields)
    tokens, scores = data["metadata"]["tokenizer.ggml.tokens"], data["metadata"]["tokenizer.ggml.scores"]
    assert tokens == [
        bytes(fields["tokenizer.ggml.tokens"].parts[i]).decode() for i in fields["tokenizer.ggml.tokens"].data
    ]
    reference = np.array(
        [fields["tokenizer.ggml.scores"].parts[i][0] for i in fields["tokenizer.ggml.scores"].data], dtype=np.float32
    )
    assert np.array_equal(np.array(scores, dtype=np.float32), reference) and len(scores) == 128
    assert (
        cli("params", llama_gguf, "--metadata", "--filter", "tokenizer.ggml.tokens").out.splitlines()[1]
        == "tokenizer.ggml.tokens  array of 128 strings ['<t0>', '<t1>', '<t2>', ...]"
    )


@pytest.mark.slow  # a subprocess streams 3,000,000 items under a memory watch (~6 s)
def test_metadata_json_streams_a_huge_array(tmp_path):
    """3,000,000 int32 items (12 MB in the file): decoded into one list they would take over
    100 MB; streamed, the process stays near its baseline."""
    import subprocess
    import sys

    import numpy as np

    path = tmp_path / "big.gguf"
    items = np.arange(3_000_000, dtype=np.int32)
    kv = _string(b"big.array") + struct.pack("<IIQ", 9, 5, len(items)) + items.tobytes()
    strings = b"".join(_string(t) for t in (b"a", b"b", b"c", b"\xff\xfeok"))  # past the three the header decodes
    path.write_bytes(_gguf(kvs=[kv, _string(b"tokens") + struct.pack("<IIQ", 9, 8, 4) + strings]))
    # The peak resident set of this process alone (VmHWM starts afresh at exec; a forked
    # child's ru_maxrss would carry over the test runner's).
    script = "import sys\nfrom llm_anatomy.cli.main import main\ncode = main(sys.argv[1:])\nprint(code, [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1], file=sys.stderr)"
    with open(tmp_path / "out.json", "w") as out:
        result = subprocess.run(
            [sys.executable, "-c", script, "params", str(path), "--metadata", "--json"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    code, peak_kib = result.stderr.split()
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["metadata"]["big.array"] == list(range(3_000_000))
    assert data["metadata"]["tokens"] == [
        "a",
        "b",
        "c",
        "\\xff\\xfeok",
    ]  # bytes that are not UTF-8 as \xNN, not a crash
    assert (code, int(peak_kib) < 60 * 1024) == ("0", True), peak_kib


def test_long_and_hostile_metadata_values_are_cut_and_escaped(tmp_path, cli):
    template = b"{% for m in messages %}\x1b[2J" + b"x" * 200
    path = tmp_path / "m.gguf"
    path.write_bytes(_gguf(kvs=[_string(b"tokenizer.chat_template") + struct.pack("<I", 8) + _string(template)]))
    assert cli("params", path, "--metadata").out == (
        "key                      value\n"
        "tokenizer.chat_template  {% for m in messages %}\\x1b[2J" + "x" * 93 + "... (227 characters)\n"
        "1 metadata key in gguf\n"
    )
