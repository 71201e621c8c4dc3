"""tensors.py: every dtype decodes to the values torch holds, and reads stay few and small."""

import math
import struct

import pytest

import checkpoints
from llm_anatomy.decode import elements
from llm_anatomy.locate import open_catalog
from llm_anatomy.decode.elements import DECODERS, ElementReader, _runs

FP8 = {
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
}


def _same(ours, theirs):
    """Equal as floats, with nan equal to nan and the sign of zero respected."""
    return all(
        (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
        for a, b in zip(ours, theirs, strict=True)
    )


@pytest.mark.parametrize("name", sorted(FP8))
def test_fp8_tables_match_torch_for_every_code(name):
    import torch

    codes = torch.arange(256, dtype=torch.uint8)
    theirs = codes.view(getattr(torch, FP8[name])).float().tolist()
    assert _same(DECODERS[name].decode(bytes(range(256))), theirs)


def test_bf16_and_f16_decode_every_bit_pattern():
    import torch

    patterns = torch.arange(65536, dtype=torch.int32).to(torch.uint16)
    raw = patterns.numpy().tobytes()
    assert _same(DECODERS["BF16"].decode(raw), patterns.view(torch.bfloat16).double().tolist())
    assert _same(DECODERS["F16"].decode(raw), patterns.view(torch.float16).double().tolist())


@pytest.mark.parametrize(
    "name, dtype",
    [
        ("F64", "float64"),
        ("F32", "float32"),
        ("I64", "int64"),
        ("I32", "int32"),
        ("I16", "int16"),
        ("I8", "int8"),
        ("U8", "uint8"),
        ("U16", "uint16"),
        ("U32", "uint32"),
        ("U64", "uint64"),
        ("BOOL", "bool"),
        ("C64", "complex64"),
    ],
)
def test_plain_dtypes_read_back_what_safetensors_wrote(tmp_path, name, dtype):
    import torch

    torch.manual_seed(1)
    source = torch.randn(4, 9, dtype=torch.float64) * 1000
    tensor = (
        source.to(getattr(torch, dtype)) if dtype != "complex64" else torch.complex(source, -source).to(torch.complex64)
    )
    path = checkpoints.safetensors_file(str(tmp_path / "t.safetensors"), {"t": tensor})
    info = open_catalog(path).get("t")
    assert info.dtype == name
    positions = [0, 1, 5, 17, 18, 35]
    with ElementReader() as reader:
        values = reader.read(info, positions)
    assert values == [tensor.reshape(-1)[p].item() for p in positions]
    assert all(type(v) is type(tensor.reshape(-1)[0].item()) for v in values)


def test_runs_merge_near_positions_and_split_far_ones():
    # Blocks at most 1024 apart share a run; no run is longer than 2000 blocks.
    assert _runs([0, 1, 2, 1025, 1026, 5000], 1, 1024, 2000) == [(0, 1027, 0, 5), (5000, 1, 5, 6)]
    assert _runs(range(0, 9000, 3), 1, 1024, 2000)[:2] == [(0, 1999, 0, 667), (2001, 1999, 667, 1334)]
    # Blocks of 4 elements: positions 5, 6 and 13 lie in blocks 1, 1 and 3.
    assert _runs([5, 6, 13], 4, 1, 100) == [(1, 1, 0, 2), (3, 1, 2, 3)]
    assert _runs([5, 6, 13], 4, 2, 100) == [(1, 3, 0, 3)]
    assert _runs([], 1, 1, 1) == []


def test_block_decoders_read_whole_blocks(tmp_path, monkeypatch):
    """A decoder whose blocks hold several elements (how GGML quants plug in) gets whole blocks."""
    calls = []

    def one_per_byte(data):
        calls.append(len(data))
        return [float(b) for b in data]  # one element per byte, blocks of 4 bytes

    monkeypatch.setitem(
        DECODERS, "U8", elements.Decoder("torch.float32", "float", one_per_byte, block_bytes=4, block_elems=4)
    )
    import torch

    path = checkpoints.safetensors_file(str(tmp_path / "b.safetensors"), {"b": torch.arange(16, dtype=torch.uint8)})
    with ElementReader() as reader:
        assert reader.read(open_catalog(path).get("b"), [5, 6, 13]) == [5.0, 6.0, 13.0]
    assert calls == [12]  # blocks 1, 2 and 3 (bytes 4..16) in one read of whole blocks


def test_a_merged_read_decodes_only_the_wanted_stretches(tmp_path, monkeypatch):
    import torch

    decoded = []
    plain = DECODERS["U8"].decode
    monkeypatch.setitem(
        DECODERS, "U8", DECODERS["U8"]._replace(decode=lambda data: decoded.append(len(data)) or plain(data))
    )
    path = checkpoints.safetensors_file(str(tmp_path / "u.safetensors"), {"u": torch.arange(3000).to(torch.uint8)})
    with ElementReader() as reader:
        assert reader.read(open_catalog(path).get("u"), [0, 1, 2, 2000, 2001]) == [0, 1, 2, 2000 % 256, 2001 % 256]
    assert decoded == [3, 2]  # one read of 2002 bytes, two small decodes


def test_stream_yields_bounded_chunks_in_order(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(elements, "STREAM_CHUNK_ELEMS", 7)
    tensor = torch.arange(50, dtype=torch.int32)
    path = checkpoints.safetensors_file(str(tmp_path / "s.safetensors"), {"s": tensor})
    with ElementReader() as reader:
        chunks = list(reader.stream(open_catalog(path).get("s"), 3, 10, 4))
    assert [len(c) for c in chunks] == [7, 3]
    assert sum(chunks, []) == list(range(3, 43, 4))


def test_undecodable_dtype_is_one_clear_line(tmp_path):
    header = b'{"x":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}'
    path = tmp_path / "f4.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x12\x34")
    info = open_catalog(str(path)).get("x")
    with pytest.raises(elements.AnatomyError) as caught, ElementReader() as reader:
        reader.read(info, [0])
    assert caught.value.line() == (
        f"{path}: tensor x: expected a dtype whose values llm-anatomy can decode, found F4; "
        "its names, shapes and sizes are still shown by `llm-anatomy params`"
    )


@pytest.mark.parametrize("source", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("target", ["F64", "F32", "F16", "BF16"])
def test_casts_round_as_tensor_to_does(source, target):
    import torch

    torch.manual_seed(5)
    wide = torch.randn(4000, dtype=torch.float64) * 10.0 ** torch.randint(-44, 40, (4000,))
    specials = torch.tensor(
        [
            math.nan,
            math.inf,
            -math.inf,
            -0.0,
            0.0,
            65504.0,
            65519.99,
            65520.0,
            -7e4,
            3.4e38,
            1e-8,
            6e-8,
            1 + 2**-8,
            1 + 3 * 2**-9,
        ],
        dtype=torch.float64,
    )
    values = torch.cat([wide, specials]).to(getattr(torch, source))
    torch_target = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[target]
    assert _same(elements.CASTS[target](values.double().tolist()), values.to(torch_target).double().tolist())


def test_positions_outside_the_tensor_are_refused(tmp_path):
    import torch

    path = checkpoints.safetensors_file(str(tmp_path / "p.safetensors"), {"a": torch.zeros(4), "b": torch.ones(4)})
    with pytest.raises(elements.AnatomyError) as caught, ElementReader() as reader:
        reader.read(open_catalog(path).get("a"), [2, 4])
    assert caught.value.line() == f"{path}: tensor a: expected element positions inside its 4 elements, found 2..4"
