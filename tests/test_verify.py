"""`verify A B`: an HF Llama (grouped-query attention) against the GGUF llama.cpp's converter
writes from it passes (F32, F16, Q8_0 and Q4_0 made with gguf's own quantize functions), and
each planted fault fails with the failing line first, saying what is wrong in words."""

import json
import os
import shutil

import pytest

import checkpoints
import gguf_writers
from checkpoints import _hf_state_dict, safetensors_file

QK = [f"model.layers.{i}.self_attn.{p}_proj.weight" for i in (0, 1) for p in ("k", "q")]


def converted(hf_folder, folder, types=None, edit=None, convert=None):
    """The GGUF of HF_FOLDER as llama_gguf (llama.cpp's converter's names, metadata and q/k
    permutation) writes it, after EDIT(state dict) (a planted fault in the weights) and with
    CONVERT(name, tensor, config) in place of the converter's tensor transform."""
    source = os.path.join(folder, "source")
    os.makedirs(source)
    shutil.copy(os.path.join(hf_folder, "config.json"), source)
    tensors = dict(_hf_state_dict(hf_folder))
    if edit is not None:
        edit(tensors)
    safetensors_file(os.path.join(source, "model.safetensors"), {k: v.contiguous() for k, v in tensors.items()})
    original = gguf_writers._llama_tensor
    if convert is not None:
        gguf_writers._llama_tensor = convert
    try:
        return checkpoints.llama_gguf(source, os.path.join(folder, "model.gguf"), types={} if types is None else types)
    finally:
        gguf_writers._llama_tensor = original


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    return checkpoints.tiny_llama(str(tmp_path_factory.mktemp("hf") / "tiny-llama"), shard=None)
