"""`stats` against torch's float64 computation of the same tensors: every statistic within
1e-6 relative, NaN/Inf/zero/outlier counts exact; groups against the concatenated tensors."""

import csv
import io
import sys
import json
import math
import os
import re

import pytest
import torch

from checkpoints import _hf_state_dict, safetensors_file
from llm_anatomy.analysis import stats as stats_module
from llm_anatomy.analysis.stats import weight_stats
from llm_anatomy.cli.progress import Progress, progress_for
from llm_anatomy.locate import open_catalog
from llm_anatomy.render.text import human_bytes

FLOAT_FIELDS = ("mean", "std", "min", "max", "absmax", "l2", "zero_fraction")
COUNT_FIELDS = ("count", "zeros", "nan", "inf", "beyond_6_std")


def reference(tensor):
    """What each statistic is, computed by torch in float64."""
    x = tensor.to(torch.float64).flatten()
    finite = x[torch.isfinite(x)]
    mean, std = finite.mean(), finite.std(correction=0)
    return {
        "count": finite.numel(),
        "mean": mean.item(),
        "std": std.item(),
        "min": finite.min().item(),
        "max": finite.max().item(),
        "absmax": finite.abs().max().item(),
        "l2": finite.norm().item(),
        "zero_fraction": (x == 0).sum().item() / x.numel(),
        "zeros": (x == 0).sum().item(),
        "nan": x.isnan().sum().item(),
        "inf": x.isinf().sum().item(),
        "beyond_6_std": ((finite - mean).abs() > 6 * std).sum().item(),
    }


def planted(dtype, n=300_000, seed=0):
    """Normal weights (std 0.02) over more than one block, with NaN, +-Inf, zeros and outliers planted."""
    torch.manual_seed(seed)
    x = torch.randn(n) * 0.02
    x[5], x[77], x[78] = float("nan"), float("inf"), float("-inf")
    x[1000:1100] = 0.0
    x[200_000], x[200_001], x[299_999] = 1.0, -1.0, 0.5
    return x.to(dtype)


def planted_checkpoint(path):
    torch.manual_seed(1)
    tensors = {
        "f32": planted(torch.float32),
        "f16": planted(torch.float16),
        "bf16": planted(torch.bfloat16),
        "f8_e4m3": torch.cat([torch.randn(5000), torch.tensor([float("nan"), 0.0, 400.0])]).to(torch.float8_e4m3fn),
        "f8_e5m2": torch.cat([torch.randn(5000), torch.tensor([float("inf"), 0.0, -3000.0])]).to(torch.float8_e5m2),
        "f64_offset": 1000.0 + torch.randn(70_000, dtype=torch.float64) * 1e-3,  # large mean, tiny spread
        "i8": torch.randint(-128, 127, (4000,), dtype=torch.int8),
        "constant": torch.full((10, 10), 3.0),
        "matrix": planted(torch.float32, n=512 * 600, seed=3).reshape(512, 600),
    }
    return safetensors_file(path, tensors), tensors


def _close(got, expected):
    assert got == pytest.approx(expected, rel=1e-6, abs=0), (got, expected)


@pytest.fixture(params=["batched", "alone"])
def batching(request, monkeypatch):
    """Run once with small tensors batched (the default: every tensor here has at most
    SMALL_ELEMS values or is near it) and once with every tensor read alone."""
    from llm_anatomy.decode import stream as streaming

    monkeypatch.setattr(streaming, "SMALL_ELEMS", 1 << 20 if request.param == "batched" else 0)
    return request.param


def test_every_statistic_matches_torch_float64(tmp_path, cli, batching):
    path, tensors = planted_checkpoint(str(tmp_path / "planted.safetensors"))
    result = cli("stats", path, "--json")
    assert result.code == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out)["rows"]}
    assert sorted(rows) == sorted(tensors)
    for name, tensor in tensors.items():
        expected = reference(tensor)
        for field in COUNT_FIELDS:
            assert rows[name][field] == expected[field], (name, field)
        for field in FLOAT_FIELDS:
            _close(rows[name][field], expected[field])
    assert (rows["f32"]["nan"], rows["f32"]["inf"], rows["f32"]["zeros"], rows["f32"]["beyond_6_std"]) == (1, 2, 100, 3)
    assert rows["constant"]["std"] == 0.0 and rows["constant"]["beyond_6_std"] == 0


def test_many_outliers_are_counted_exactly_with_a_second_pass(tmp_path):
    x = torch.randn(100_000) * 0.02
    x[:50], x[50:70] = 10.0, -10.0
    catalog = open_catalog(safetensors_file(str(tmp_path / "m.safetensors"), {"w": x}))
    row = weight_stats(catalog, keep=8).rows[0]  # tails keep 8 values: 50 and 20 outliers overflow them
    assert row.beyond == reference(x)["beyond_6_std"] == 70


def test_few_outliers_are_counted_in_one_pass(tmp_path, monkeypatch):
    x = torch.randn(600_000) * 0.02  # tails compact many times with keep=8
    x[123], x[400_000], x[599_999] = 0.5, -0.4, 0.3
    catalog = open_catalog(safetensors_file(str(tmp_path / "m.safetensors"), {"w": x}))

    def no_second_pass(*args):
        raise AssertionError("read twice")

    monkeypatch.setattr(stats_module, "_count_beyond", no_second_pass)
    assert weight_stats(catalog, keep=8).rows[0].beyond == reference(x)["beyond_6_std"] == 3


LAYER_GROUPS = ["lm_head.weight", "model.embed_tokens.weight", "model.layers.0", "model.layers.1", "model.norm.weight"]
ROLE_GROUPS = [
    "input_layernorm.weight",
    "lm_head.weight",
    "mlp.down_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "model.embed_tokens.weight",
    "model.norm.weight",
    "post_attention_layernorm.weight",
    "self_attn.k_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_proj.weight",
    "self_attn.v_proj.weight",
]


def _members(group, by, names):
    if by == "layer":
        return [n for n in names if n == group or n.startswith(group + ".")]
    return [n for n in names if n == group or (n.startswith("model.layers.") and n.split(".", 3)[3] == group)]


@pytest.mark.parametrize(("by", "groups"), [("layer", LAYER_GROUPS), ("role", ROLE_GROUPS)])
def test_groups_combine_exactly(llama_dir, cli, by, groups, batching):
    tensors = _hf_state_dict(llama_dir)
    with torch.no_grad():
        tensors["model.layers.1.mlp.up_proj.weight"][0, :3] = torch.tensor([float("nan"), 0.0, 5.0])
    folder = llama_dir.parent / f"planted_{by}"
    folder.mkdir(exist_ok=True)
    safetensors_file(str(folder / "model.safetensors"), tensors)
    result = cli("stats", folder, "--by", by, "--json")
    assert result.code == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out)["rows"]}
    assert list(rows) == groups
    for group in groups:
        members = _members(group, by, list(tensors))
        joined = torch.cat([tensors[n].flatten() for n in members])
        expected = reference(joined)
        expected["beyond_6_std"] = sum(reference(tensors[n])["beyond_6_std"] for n in members)
        assert rows[group]["tensors"] == len(members)
        for field in COUNT_FIELDS:
            assert rows[group][field] == expected[field], (group, field)
        for field in FLOAT_FIELDS:
            _close(rows[group][field], expected[field])


def test_text_output_is_exact(tmp_path, cli):
    path = safetensors_file(
        str(tmp_path / "small.safetensors"),
        {
            "model.layers.0.w": torch.tensor([0.0, 1.0, 2.0, 3.0, float("nan"), float("inf")]),
            "model.norm.weight": torch.ones(4, dtype=torch.float16),
        },
    )
    result = cli("stats", path)
    assert result.code == 0 and result.err == ""
    assert result.out == (
        "name               dtype  mean    std  min  max  absmax     l2   zeros  nan  inf  >6sd\n"
        "model.layers.0.w   F32     1.5  1.118    0    3       3  3.742  16.67%    1    1     0\n"
        "model.norm.weight  F16       1      0    1    1       1      2   0.00%    0    0     0\n"
        "2 tensors, 32 B\n"
        "std: population (divides by n); NaN and Inf are counted apart and left out of mean, std, min, max, absmax, l2 and >6sd\n"
        "zeros: fraction of all elements equal to 0 or -0; >6sd: finite values with |x - mean| > 6 std of their own tensor\n"
    )


CSV_HEADER = "name,dtype,tensors,numel,count,mean,std,min,max,absmax,l2,zero_fraction,zeros,nan,inf,beyond_6_std,error"
JSON_ROW_KEYS = [
    "name",
    "dtype",
    "tensors",
    "numel",
    "count",
    "mean",
    "std",
    "min",
    "max",
    "absmax",
    "l2",
    "zero_fraction",
    "zeros",
    "nan",
    "inf",
    "beyond_6_std",
]


def test_json_and_csv_schema(llama_dir, cli):
    document = json.loads(cli("stats", llama_dir, "--json").out)
    assert list(document) == ["model", "by", "std", "rows", "errors", "total"]
    assert document["std"] == "population" and document["by"] is None and document["errors"] == []
    assert document["total"]["tensors"] == len(document["rows"]) == 21
    assert all(list(row) == JSON_ROW_KEYS for row in document["rows"])
    text = cli("stats", llama_dir, "--csv", "--filter", "model.layers.0.*").out
    assert text.splitlines()[0] == CSV_HEADER
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 9 and all(r["error"] == "" for r in rows)
    assert [r["name"] for r in rows] == [r["name"] for r in document["rows"] if r["name"].startswith("model.layers.0.")]
    by_name = {r["name"]: r for r in document["rows"]}
    assert all(float(r["mean"]) == by_name[r["name"]]["mean"] for r in rows)  # full precision in CSV


def test_all_nan_tensor_has_null_moments_in_json(tmp_path, cli, batching):
    path = safetensors_file(str(tmp_path / "n.safetensors"), {"n": torch.full((3,), float("nan"))})
    row = json.loads(cli("stats", path, "--json").out)["rows"][0]
    assert (row["count"], row["nan"], row["mean"], row["std"], row["min"], row["l2"]) == (0, 3, None, None, None, 0.0)


def test_truncated_shard_is_reported_and_the_rest_still_computed(llama_dir, tmp_path, cli, batching):
    folder = tmp_path / "truncated"
    folder.mkdir()
    for name in os.listdir(llama_dir):
        (folder / name).write_bytes((llama_dir / name).read_bytes())
    catalog = open_catalog(str(folder))
    victim = max(catalog.tensors, key=lambda t: (t.file, t.offset))
    os.truncate(victim.file, victim.offset + 100)
    result = cli("stats", folder, "--csv")
    assert result.code == 1
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert len(rows) == len(catalog.tensors)
    failed = [r for r in rows if r["error"]]
    assert [r["name"] for r in failed] == [victim.name]
    assert failed[0]["error"] == (
        f"{victim.file}: tensor {victim.name}: expected data at bytes {victim.offset}..{victim.offset + victim.nbytes}, "
        f"found a file of {victim.offset + 100} bytes; the file is truncated; download it again"
    )
    text = cli("stats", folder)
    assert text.code == 1
    assert text.out.splitlines()[-1] == "error: " + failed[0]["error"]
    assert f"{len(catalog.tensors)} tensors, " in text.out and ", 1 could not be read" in text.out
    total = human_bytes(sum(t.nbytes for t in catalog.tensors))
    assert (
        text.out.splitlines()[-4] == f"{len(catalog.tensors)} tensors, {total}, 1 could not be read"
    )  # then 2 notes, the error


def test_no_progress_bar_when_stderr_is_not_a_terminal(llama_dir, cli):
    assert cli("stats", llama_dir).err == ""
    with progress_for("stats", 100, machine_output=False) as progress:
        assert progress is None


def test_progress_line_format():
    stream = io.StringIO()
    progress = Progress("stats", 2_000_000_000, stream)
    progress(2_000_000_000)
    assert stream.getvalue().startswith("\rstats 100% 2.00/2.00 GB ")
    assert stream.getvalue().endswith(" GB/s")
    assert re.fullmatch(
        r"\rstats 100% 2\.00/2\.00 GB +\d+\.\d\d GB/s", stream.getvalue()
    )  # the rate depends on the clock
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_mean_is_nan_free_for_infinite_values(tmp_path):
    catalog = open_catalog(
        safetensors_file(str(tmp_path / "i.safetensors"), {"i": torch.tensor([float("inf"), 2.0, 4.0])})
    )
    row = weight_stats(catalog).rows[0]
    assert (row.mean, row.std, row.inf, row.max) == (3.0, 1.0, 1, 4.0) and not math.isnan(row.l2)


def test_progress_goes_to_a_terminal_stderr_and_never_into_machine_output(llama_dir, cli, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    shown = cli("stats", llama_dir)
    assert shown.err.startswith("\rstats ") and shown.err.endswith("\r\x1b[K") and "100% 0.00/0.00 GB" in shown.err
    assert shown.out.startswith("name ")
    assert re.fullmatch(
        r"(\rstats +\d+% \d\.\d\d/0\.00 GB +\d+\.\d\d GB/s)*\rstats 100% 0\.00/0\.00 GB +\d+\.\d\d GB/s\r\x1b\[K",
        shown.err,
    )
    assert shown.out == cli("stats", llama_dir).out  # the same table as without a terminal
    for flag in ("--json", "--csv"):
        quiet = cli("stats", llama_dir, flag)
        assert quiet.err == "" and "\r" not in quiet.out


@pytest.mark.parametrize(
    ("name", "layer", "role"),
    [
        ("model.layers.7.self_attn.q_proj.weight", "model.layers.7", "self_attn.q_proj.weight"),
        (
            "model.layers.3.block_sparse_moe.experts.5.w1.weight",
            "model.layers.3",
            "block_sparse_moe.experts.*.w1.weight",
        ),
        ("transformer.h.11.attn.c_attn.bias", "transformer.h.11", "attn.c_attn.bias"),
        ("encoder.layer.0.attention.self.query.weight", "encoder.layer.0", "attention.self.query.weight"),
        ("blk.0.ffn_down.weight", "blk.0", "ffn_down.weight"),
        ("model.embed_tokens.weight", "model.embed_tokens.weight", "model.embed_tokens.weight"),
    ],
)
def test_layer_and_role_keys(name, layer, role):
    from llm_anatomy.analysis.roles import layer_key, role_key

    assert (layer_key(name), role_key(name)) == (layer, role)


def test_bool_bytes_other_than_0_and_1_count_as_true_as_in_torch(tmp_path):
    path = safetensors_file(str(tmp_path / "b.safetensors"), {"b": torch.zeros(4, dtype=torch.bool)})
    info = open_catalog(path).get("b")
    with open(path, "r+b") as handle:
        handle.seek(info.offset)
        handle.write(bytes([0, 1, 2, 255]))
    stored = torch.frombuffer(bytearray([0, 1, 2, 255]), dtype=torch.bool).double()
    row = weight_stats(open_catalog(path)).rows[0]
    assert (row.mean, row.std, row.min, row.max, row.zeros) == (
        stored.mean().item(),
        stored.std(correction=0).item(),
        0.0,
        1.0,
        1,
    )


def test_progress_line_is_cleared_when_the_work_fails(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with pytest.raises(RuntimeError):
        with progress_for("stats", 10, machine_output=False) as progress:
            progress(10)  # the last bytes always draw the line
            raise RuntimeError("read failed")
    assert re.fullmatch(r"\rstats 100% 0\.00/0\.00 GB +\d+\.\d\d GB/s\r\x1b\[K", terminal.getvalue())


def test_a_batch_mixes_dtypes_and_empty_tensors_exactly(tmp_path, cli):
    """Small tensors of every kind side by side in one batch: each row equals torch's."""
    torch.manual_seed(5)
    tensors = {
        "a_f16": (torch.randn(300) * 0.02).to(torch.float16),
        "b_bf16": torch.tensor([1.0, float("nan"), -2.0, 0.0]).to(torch.bfloat16),
        "c_empty": torch.zeros(0),
        "d_f32": torch.tensor([float("inf"), float("-inf"), 2.0, float("nan")]),
        "e_i8": torch.tensor([-3, 0, 5], dtype=torch.int8),
        "f_f64": torch.randn(7, dtype=torch.float64),
        "g_outlier": torch.cat([torch.zeros(99), torch.tensor([1.0])]),
        "h_bool": torch.tensor([True, False, True]),
    }
    rows = {
        row["name"]: row
        for row in json.loads(cli("stats", safetensors_file(str(tmp_path / "m.safetensors"), tensors), "--json").out)[
            "rows"
        ]
    }
    for name, tensor in tensors.items():
        if tensor.numel() == 0:
            assert (rows[name]["numel"], rows[name]["count"], rows[name]["mean"], rows[name]["zeros"]) == (
                0,
                0,
                None,
                0,
            )
            continue
        expected = reference(tensor)
        for field in COUNT_FIELDS:
            assert rows[name][field] == expected[field], (name, field)
        for field in FLOAT_FIELDS:
            _close(rows[name][field], expected[field])
    assert rows["g_outlier"]["beyond_6_std"] == 1 and rows["d_f32"]["inf"] == 2


def tiny_tensors_file(path, count):
    """`count` F16 tensors of 2 values each, hand-packed (json header, sparse zero data but
    for the last tensor's [1.5, -2.0]): how a hostile file makes a million tiny reads."""
    import struct

    header = {f"t.{i}": {"dtype": "F16", "shape": [2], "data_offsets": [4 * i, 4 * i + 4]} for i in range(count)}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + 4 * count - 4)
        handle.seek(0, os.SEEK_END)
        handle.write(struct.pack("<2e", 1.5, -2.0))
    return path


@pytest.mark.slow
def test_200k_tiny_tensors_finish_fast_in_bounded_memory(tmp_path):
    from hostile import run_cli

    path = tiny_tensors_file(str(tmp_path / "tiny.safetensors"), 200_000)
    outcome = run_cli("stats", path, "--csv", timeout=60)
    assert outcome.code == 0, outcome.err
    lines = outcome.out.splitlines()
    assert len(lines) == 1 + 200_000
    assert lines[1] == "t.0,F16,1,2,2,0.0,0.0,0.0,0.0,0.0,0.0,1.0,2,0,0,0,"
    assert lines[-1] == "t.199999,F16,1,2,2,-0.25,1.75,-2.0,1.5,2.0,2.5,0.0,0,0,0,0,"
    assert outcome.max_rss < 500 * 2**20 and outcome.leftover == []
