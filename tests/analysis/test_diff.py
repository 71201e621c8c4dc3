"""`diff` finds exactly the planted changes (names, shapes, dtypes, config, values) and
their size as torch computes it in float64; bad pairs of checkpoints still get a report."""

import json
import os
import shutil

import pytest
import torch

from checkpoints import _hf_state_dict, safetensors_file

PLANTED = (
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
)


@pytest.fixture(scope="module")
def pair(llama_dir, tmp_path_factory):
    """A = the sharded fp32 Llama; B = A with three tensors changed by value (one of them
    also to bf16), one dropped, one added, one reshaped, and one config field changed."""
    a = _hf_state_dict(llama_dir)
    b = dict(a)
    torch.manual_seed(7)
    b["model.layers.1.mlp.up_proj.weight"] = a["model.layers.1.mlp.up_proj.weight"] * 1.1
    b["model.layers.0.self_attn.q_proj.weight"] = (
        a["model.layers.0.self_attn.q_proj.weight"]
        + torch.randn_like(a["model.layers.0.self_attn.q_proj.weight"]) * 1e-3
    )
    b["model.layers.0.self_attn.o_proj.weight"] = a["model.layers.0.self_attn.o_proj.weight"].to(torch.bfloat16)
    del b["lm_head.weight"]
    b["extra.weight"] = torch.ones(3)
    b["model.norm.weight"] = torch.ones(2, 32)
    folder = tmp_path_factory.mktemp("llama_b")
    safetensors_file(str(folder / "model.safetensors"), b)
    config = json.loads((llama_dir / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (folder / "config.json").write_text(json.dumps(config))
    return llama_dir, folder, a, b


def expected_change(a, b):
    a, b = a.to(torch.float64).flatten(), b.to(torch.float64).flatten()
    return {
        "relative": ((b - a).norm() / a.norm()).item(),
        "cosine": (a @ b / (a.norm() * b.norm())).item(),
        "max_abs_diff": (b - a).abs().max().item(),
    }


@pytest.fixture(params=["batched", "alone"])
def batching(request, monkeypatch):
    """Run once with the small tensors batched (as by default), once with each pair read alone."""
    from llm_anatomy.decode import stream

    monkeypatch.setattr(stream, "SMALL_ELEMS", 1 << 20 if request.param == "batched" else 0)
    return request.param


def test_finds_exactly_the_planted_changes(pair, cli, batching):
    a_dir, b_dir, a, b = pair
    result = cli("diff", a_dir, b_dir, "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["only_in_a"] == ["lm_head.weight"]
    assert doc["only_in_b"] == ["extra.weight"]
    assert doc["shape_changed"] == [{"name": "model.norm.weight", "a": [64], "b": [2, 32]}]
    assert doc["dtype_changed"] == [{"name": "model.layers.0.self_attn.o_proj.weight", "a": "F32", "b": "BF16"}]
    assert doc["config_changed"] == [{"field": "rms_norm_eps", "a": 1e-06, "b": 1e-05}]
    rows = {row["name"]: row for row in doc["tensors"]}
    assert len(rows) == doc["compared"] == 19  # 21 - lm_head - model.norm (shape changed)
    changed = [row["name"] for row in doc["tensors"] if not row["identical"]]
    assert sorted(changed) == sorted(PLANTED)
    assert doc["identical"] == 16
    for name in PLANTED:
        for field, value in expected_change(a[name], b[name]).items():
            assert rows[name][field] == pytest.approx(value, rel=1e-6, abs=0), (name, field)
    assert rows["model.layers.1.mlp.up_proj.weight"]["relative"] == pytest.approx(0.1, rel=1e-6)
    relative = [row["relative"] for row in doc["tensors"]]
    assert relative == sorted(relative, reverse=True)  # largest change first, identical ones last


def test_text_prints_the_header_part_first(pair, cli):
    a_dir, b_dir, _, _ = pair
    result = cli("diff", a_dir, b_dir, "--top", "2")
    assert result.code == 0
    header, values = result.out.split("\n\n")
    assert header == "\n".join(
        [
            f"A: {a_dir.name} (21 tensors, 305.25 KiB)",
            f"B: {b_dir.name} (21 tensors, 265.26 KiB)",
            "only in A (1):",
            "  lm_head.weight",
            "only in B (1):",
            "  extra.weight",
            "shape changed (1):",
            "  model.norm.weight: [64] -> [2, 32]",
            "dtype changed (1):",
            "  model.layers.0.self_attn.o_proj.weight: F32 -> BF16",
            "config differs (1):",
            "  rms_norm_eps: 1e-06 -> 1e-05",
        ]
    )
    lines = values.splitlines()
    assert lines[0].split() == ["name", "dtype", "relative", "cosine", "max_abs_diff"]
    assert lines[1].split()[:3] == ["model.layers.1.mlp.up_proj.weight", "F32", "0.1"]
    _, _, a, b = pair
    second = max(PLANTED[1:], key=lambda name: expected_change(a[name], b[name])["relative"])
    for line, name in zip(lines[1:3], (PLANTED[0], second)):
        dtype = "F32" if b[name].dtype == torch.float32 else "F32->BF16"
        assert line.split() == [name, dtype, *(f"{value:.4g}" for value in expected_change(a[name], b[name]).values())]
    assert lines[3:] == [
        "... 17 more (--top)",
        "19 tensors compared: 16 bit-identical, 3 changed; 538.00 KiB of tensor data",
        "relative = ||B - A|| / ||A||; cosine = A.B / (||A|| ||B||); over float64 values, NaN/Inf pairs left out",
    ]


def test_identical_checkpoints(llama_dir, cli):
    result = cli("diff", llama_dir, llama_dir, "--json", "--top", "0")
    doc = json.loads(result.out)
    assert result.code == 0 and doc["tensors"] == [] and doc["compared"] == doc["identical"] == 21
    assert list(doc) == [
        "a",
        "b",
        "only_in_a",
        "only_in_b",
        "shape_changed",
        "dtype_changed",
        "config_changed",
        "config_compared",
        "notes",
        "tensors",
        "compared",
        "identical",
        "errors",
    ]


def test_nothing_in_common(llama_dir, tmp_path, cli):
    other = safetensors_file(str(tmp_path / "other.safetensors"), {"x": torch.ones(2), "y": torch.zeros(3)})
    result = cli("diff", llama_dir, other)
    assert result.code == 0, result.err
    names = sorted(json.loads(cli("diff", llama_dir, other, "--json").out)["only_in_a"])
    assert result.out == "\n".join(
        [
            f"A: {llama_dir.name} (21 tensors, 305.25 KiB)",
            "B: other.safetensors (2 tensors, 20 B)",
            "only in A (21):",
            *[f"  {n}" for n in names[:10]],
            "  ... 11 more (--json lists all)",
            "only in B (2):",
            "  x",
            "  y",
            "no tensor names in common: nothing to compare by value",
            "B has no config: configs not compared",
            "",
            "0 tensors compared: 0 bit-identical, 0 changed; 0 B of tensor data",
            "relative = ||B - A|| / ||A||; cosine = A.B / (||A|| ||B||); over float64 values, NaN/Inf pairs left out",
            "",
        ]
    )


def test_truncated_b_is_reported_and_the_rest_still_compared(llama_dir, tmp_path, cli, batching):
    b_dir = tmp_path / "b"
    shutil.copytree(llama_dir, b_dir)
    shard = sorted(p for p in os.listdir(b_dir) if p.endswith(".safetensors"))[-1]
    size = os.path.getsize(b_dir / shard)
    os.truncate(b_dir / shard, size - 4)
    result = cli("diff", llama_dir, b_dir, "--json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert [e["name"] for e in doc["errors"]] == ["model.norm.weight"]  # stored last in the last shard
    assert doc["errors"][0]["error"] == (
        f"{b_dir / shard}: tensor model.norm.weight: expected data at bytes {size - 256}..{size}, "
        f"found a file of {size - 4} bytes; the file is truncated; download it again"
    )
    assert doc["compared"] == doc["identical"] == 20


def test_nan_pairs_are_left_out_and_counted(tmp_path, cli, batching):
    a = safetensors_file(str(tmp_path / "a.safetensors"), {"w": torch.tensor([1.0, 2.0, float("nan"), 4.0])})
    b = safetensors_file(str(tmp_path / "b.safetensors"), {"w": torch.tensor([1.0, 2.0, 3.0, float("inf")])})
    row = json.loads(cli("diff", a, b, "--json").out)["tensors"][0]
    assert (row["identical"], row["relative"], row["cosine"], row["max_abs_diff"], row["skipped_nonfinite"]) == (
        False,
        0.0,
        pytest.approx(1.0),
        0.0,
        2,
    )


def test_negative_top_is_a_usage_error(llama_dir, cli):
    result = cli("diff", llama_dir, llama_dir, "--top", "-1")
    assert (result.code, result.out, result.err) == (
        2,
        "",
        "llm-anatomy diff: error: argument --top: expected a whole number in 0..1,000,000,000, found -1\n",
    )


# A hang bound, not a speed test: these diffs take tens of seconds on a loaded 2-core machine
# (about 12 s of CPU; on a machine shared by a dozen processes its wall time passed 60 s).
HANG_SECONDS = 600


@pytest.mark.slow
def test_tiny_tensors_against_themselves_and_a_changed_copy(tmp_path):
    from hostile import run_cli
    from test_stats import tiny_tensors_file

    a = tiny_tensors_file(str(tmp_path / "a.safetensors"), 200_000)
    outcome = run_cli("diff", a, a, "--json", timeout=HANG_SECONDS)
    assert outcome.code == 0, outcome.err
    doc = json.loads(outcome.out)
    assert doc["compared"] == doc["identical"] == 200_000
    assert outcome.max_rss < 500 * 2**20 and outcome.leftover == []
    a = tiny_tensors_file(
        str(tmp_path / "a.safetensors"), 50_000
    )  # a copy is read whole: smaller, to keep the test short
    b = str(tmp_path / "b.safetensors")
    shutil.copyfile(a, b)
    with open(b, "r+b") as handle:  # the last tensor [1.5, -2.0] becomes [1.5, 2.0]
        handle.seek(-1, os.SEEK_END)
        handle.write(b"\x40")
    outcome = run_cli("diff", a, b, "--json", "--top", "1", timeout=HANG_SECONDS)
    doc = json.loads(outcome.out)
    assert (doc["compared"], doc["identical"]) == (50_000, 49_999)
    assert doc["tensors"] == [
        {
            "name": "t.49999",
            "dtype_a": "F16",
            "dtype_b": "F16",
            "numel": 2,
            "identical": False,
            "relative": 4 / 2.5,
            "cosine": (2.25 - 4) / 6.25,
            "max_abs_diff": 4.0,
            "skipped_nonfinite": 0,
            "transforms": [],
        }
    ]


def _header_lines(result):
    return result.out.split("\n\n")[0].splitlines()[2:]


def test_unreadable_config_is_never_called_the_same(llama_dir, tmp_path, cli):
    """Same tensors, A's config.json broken: 'same config' would contradict the note below it."""
    a = tmp_path / "a"
    shutil.copytree(llama_dir, a)
    (a / "config.json").write_text("{not json")
    result = cli("diff", a, llama_dir)
    assert _header_lines(result) == [
        "same tensor names, shapes and dtypes",
        f"config of A unreadable: {a / 'config.json'}: expected a JSON config, found invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); fix or re-download config.json",
    ]
    assert json.loads(cli("diff", a, llama_dir, "--json").out)["config_compared"] is False


def test_no_config_on_either_side_is_not_the_same_config(tmp_path, cli):
    a = safetensors_file(str(tmp_path / "a.safetensors"), {"x": torch.ones(2)})
    b = safetensors_file(str(tmp_path / "b.safetensors"), {"x": torch.ones(2)})
    assert _header_lines(cli("diff", a, b)) == [
        "same tensor names, shapes and dtypes",
        "A has no config: configs not compared",
        "B has no config: configs not compared",
    ]


def test_filter_selecting_nothing_is_not_the_same_tensor_names(llama_dir, cli):
    """No tensor on either side: 'same tensor names' beside 'no tensor names in common' contradicts itself."""
    result = cli("diff", llama_dir, llama_dir, "--filter", "nothing.*")
    assert _header_lines(result) == ["same config", "no tensor names in common: nothing to compare by value"]


def test_a_gguf_pairs_with_its_original_and_matches_once_conventions_are_undone(llama_dir, tmp_path, cli):
    """An F32 GGUF written from the HF folder as llama.cpp's converter writes it: across formats
    every tensor pairs under transformers' names without --hf-names, q and k are compared with
    the converter's rotary row permutation undone (the conversion `values --hf-names` reads
    through), so nothing changed; the config fields GGUF does not store are no difference.
    (Before: 21 tensors only in A, and with --hf-names q/k changed and 14 config differences.)"""
    import checkpoints

    gguf_path = checkpoints.llama_gguf(str(llama_dir), str(tmp_path / "m.gguf"), types={})
    qk = [f"model.layers.{i}.self_attn.{p}_proj.weight" for i in (0, 1) for p in ("k", "q")]
    for args in ((llama_dir, gguf_path), (gguf_path, llama_dir), (llama_dir, gguf_path, "--hf-names")):
        result = cli("diff", *args, "--json")
        doc = json.loads(result.out)
        assert (
            result.code,
            doc["only_in_a"],
            doc["only_in_b"],
            doc["config_changed"],
            doc["compared"],
            doc["identical"],
        ) == (0, [], [], [], 21, 21)
        assert sorted(t["name"] for t in doc["tensors"] if t["transforms"]) == qk
        assert {tuple(t["transforms"]) for t in doc["tensors"] if t["transforms"]} == {("unpermute",)}
    lines = cli("diff", llama_dir, gguf_path).out.splitlines()
    assert lines[2] == "same tensor names, shapes and dtypes; same config"
    assert (
        "model.layers.0.self_attn.q_proj.weight          F32           0       1             0  identical once rotary row permutation of q/k undone (llama.cpp's layout)"
        in lines
    )
    assert (
        lines[-2]
        == "21 tensors compared: 21 identical (4 once a converter's convention is undone), 0 changed; 610.50 KiB of tensor data"
    )


def test_a_config_field_gguf_states_differently_is_a_difference(llama_dir, tmp_path, cli):
    """Across formats, fields both state are compared as meaning: rope_theta (nested in
    config.json's rope_parameters) and the norm epsilon at float32 precision."""
    import checkpoints

    hf = tmp_path / "hf"
    shutil.copytree(llama_dir, hf)
    gguf_path = checkpoints.llama_gguf(str(llama_dir), str(tmp_path / "m.gguf"), types={})
    config = json.loads((hf / "config.json").read_text())
    config["rope_parameters"]["rope_theta"] = 500000.0
    config["max_position_embeddings"] = 512
    (hf / "config.json").write_text(json.dumps(config))
    assert _header_lines(cli("diff", hf, gguf_path)) == [
        "config differs (2):",
        "  max_position_embeddings: 512 -> 256",
        "  rope_parameters.rope_theta: 500000.0 -> 10000.0",
        "same tensor names, shapes and dtypes",
    ]


def test_help_says_both_models_may_be_read_from_the_hub(cli):
    """diff reads model ids from the Hub as every command does (test_hub streams one): its help
    said they had to be in the local cache."""
    result = cli("diff", "--help")
    text = " ".join(result.out.split())  # argparse wraps to the terminal's width
    assert result.code == 0
    assert (
        "A the first model: model folder, weights file, or model id (the local Hugging Face cache, else the Hub; REPO:QUANT picks a GGUF quantization)"
        in text
    )
    assert "B the second model, in the same forms as A" in text
    assert "--revision-b REVISION_B branch, tag or commit of B when it is a model id (default: main)" in text
    assert "cached model id" not in text and "in the local Hugging Face cache" not in text


def test_a_null_field_and_a_model_type_gguf_writes_as_llama_are_no_difference(llama_dir, tmp_path, cli):
    """config.json's null states nothing (transformers takes the default: head_dim from the widths),
    and llama.cpp writes Mistral and Mixtral as GGUF architecture llama, which the derived config
    names; another model type still differs."""
    import checkpoints

    gguf_path = checkpoints.llama_gguf(str(llama_dir), str(tmp_path / "m.gguf"), types={})
    for model_type, lines in (
        ("mistral", ["same tensor names, shapes and dtypes; same config"]),
        ("qwen2", ["config differs (1):", '  model_type: "qwen2" -> "llama"', "same tensor names, shapes and dtypes"]),
    ):
        hf = tmp_path / model_type
        shutil.copytree(llama_dir, hf)
        config = json.loads((hf / "config.json").read_text())
        config.update(head_dim=None, model_type=model_type)
        (hf / "config.json").write_text(json.dumps(config))
        assert (model_type, _header_lines(cli("diff", hf, gguf_path))) == (model_type, lines)
