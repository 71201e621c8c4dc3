"""verify's byte path: pairs of one 16-bit float dtype with equal bytes are `identical` from a
histogram of their codes, with the very numbers the value path gives; bytes that differ, and
NaN or Inf, go the value path."""

import pytest
import torch

import checkpoints
from llm_anatomy.analysis import verify
from llm_anatomy.decode.stream import Reader
from llm_anatomy.locate import open_catalog


def _pairs(tmp_path, a, b):
    checkpoints.safetensors_file(str(tmp_path / "a" / "model.safetensors"), a)
    checkpoints.safetensors_file(str(tmp_path / "b" / "model.safetensors"), b)
    return list(zip(open_catalog(str(tmp_path / "a")).tensors, open_catalog(str(tmp_path / "b")).tensors))


def _both_paths(a, b, monkeypatch):
    reader_a, reader_b = Reader(), Reader()
    try:
        fast = verify.check_pair(a, b, reader_a, reader_b)
        with monkeypatch.context() as patch:
            patch.setattr(verify, "_equal_bytes_sums", lambda *args: None)
            slow = verify.check_pair(a, b, reader_a, reader_b)
        return fast, slow, verify._equal_bytes_sums(a, b, reader_a, reader_b)
    finally:
        reader_a.close()
        reader_b.close()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_equal_bytes_give_the_value_path_s_record(dtype, tmp_path, monkeypatch):
    torch.manual_seed(0)
    tensors = {"w": (torch.randn(300, 77) * 0.02).to(dtype), "z": torch.zeros(5, dtype=dtype)}
    for a, b in _pairs(tmp_path, tensors, tensors):
        fast, slow, sums = _both_paths(a, b, monkeypatch)
        assert sums is not None and fast == slow and fast.status == "identical"


def test_other_bytes_and_nan_take_the_value_path(tmp_path, monkeypatch):
    torch.manual_seed(0)
    w = (torch.randn(300, 77) * 0.02).half()
    changed = w.clone()
    changed[-1, -1] += 1
    nan = w.clone()
    nan[0, 0] = float("nan")
    found = {}
    for a, b in _pairs(tmp_path, {"changed": w, "nan": nan}, {"changed": changed, "nan": nan}):
        fast, slow, sums = _both_paths(a, b, monkeypatch)
        assert sums is None and fast == slow
        found[a.name] = (fast.status, fast.skipped, fast.max_abs)
    assert found == {
        "changed": ("different", 0, float(changed[-1, -1]) - float(w[-1, -1])),
        "nan": ("different", 1, 0.0),
    }
