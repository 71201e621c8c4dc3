"""Reading a LoRA adapter stays header-only: `params` and `summary` of a PEFT folder with 1,008
LoRA tensors (r=16 on every projection of 72 Llama-2-7B-sized layers, float16), against
`python -c pass` and `params` of the same file without its adapter_config.json; the same for a
LoRA GGUF of the same 1,008 tensors (as llama.cpp's convert_lora_to_gguf.py names them); and `values --merged` of one base weight's corner on a Llama-2-7b-chat-hf
layout replica with a 448-tensor adapter of its 32 layers.

The adapter_model.safetensors is written as the format says (a JSON header, then the data)
with its data left sparse, and so is the GGUF (gguf.GGUFWriter's header and tensor infos): the
commands read the header only.

    .venv/bin/python bench/bench_adapter.py [--repeat N] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile

from views import CLI, PYTHON, print_table, run_all

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from llm_anatomy import replicas  # noqa: E402

# Llama-2-7B's projections: module -> (in_features, out_features).
PROJECTIONS = {
    "self_attn.q_proj": (4096, 4096),
    "self_attn.k_proj": (4096, 4096),
    "self_attn.v_proj": (4096, 4096),
    "self_attn.o_proj": (4096, 4096),
    "mlp.gate_proj": (4096, 11008),
    "mlp.up_proj": (4096, 11008),
    "mlp.down_proj": (11008, 4096),
}
RANK = 16
# The same projections as llama.cpp's GGUF names them (gguf.TensorNameMap for LLAMA).
GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def write_adapter(folder: str, layers: int, base: str, sparse: bool) -> None:
    """A PEFT LoRA folder as save_pretrained lays it out; data zeros (sparse, or written)."""
    os.makedirs(folder, exist_ok=True)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for layer in range(layers):
        for module, (n_in, n_out) in PROJECTIONS.items():
            for part, shape in (("lora_A", [RANK, n_in]), ("lora_B", [n_out, RANK])):
                size = 2 * shape[0] * shape[1]
                header[f"base_model.model.model.layers.{layer}.{module}.{part}.weight"] = {
                    "dtype": "F16",
                    "shape": shape,
                    "data_offsets": [offset, offset + size],
                }
                offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(folder, "adapter_model.safetensors"), "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        if sparse:
            handle.truncate(8 + len(text) + offset)
        else:
            handle.write(bytes(offset))
    config = {
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": 32,
        "target_modules": sorted(m.split(".")[1] for m in PROJECTIONS),
        "base_model_name_or_path": base,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    with open(os.path.join(folder, "adapter_config.json"), "w") as handle:
        json.dump(config, handle)


def write_lora_gguf(path: str, layers: int) -> None:
    """A LoRA GGUF with convert_lora_to_gguf.py's keys and names: the header and tensor infos
    written by gguf.GGUFWriter, the data left sparse."""
    if os.path.exists(path):
        return
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 32.0)
    total = 0
    for layer in range(layers):
        for module, (n_in, n_out) in PROJECTIONS.items():
            for part, shape in ((".lora_a", (RANK, n_in)), (".lora_b", (n_out, RANK))):
                size = 2 * shape[0] * shape[1]
                writer.add_tensor_info(f"blk.{layer}.{GGUF_NAMES[module]}.weight{part}", shape, np.float16, size)
                total += size + (-size % 32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with open(path, "r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.truncate(end + (-end % 32) + total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=os.path.join(HERE, "out"), help="where to write the adapters and the layout replica"
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("LLM_ANATOMY_CACHE", tempfile.mkdtemp(prefix="llm-anatomy-bench-"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # time the package with compiled bytecode, as installed
    big = os.path.join(args.data, "lora-1008")
    write_adapter(big, 72, "meta-llama/Llama-2-7b-hf", sparse=True)
    bare = os.path.join(args.data, "lora-1008-bare")  # the same tensors without adapter_config.json: a plain checkpoint
    os.makedirs(bare, exist_ok=True)
    if not os.path.exists(os.path.join(bare, "adapter_model.safetensors")):
        os.link(os.path.join(big, "adapter_model.safetensors"), os.path.join(bare, "adapter_model.safetensors"))
    base = os.path.join(args.data, "Llama-2-7b-chat-hf")
    if not os.path.isdir(base):
        replicas.write_layout(base, replicas.published_config("Llama-2-7b-chat-hf"), max_shard_bytes=10**13)
    gguf_lora = os.path.join(args.data, "lora-1008.gguf")
    write_lora_gguf(gguf_lora, 72)
    on_base = os.path.join(args.data, "lora-448")
    write_adapter(on_base, 32, base, sparse=False)
    weight = "model.layers.31.mlp.down_proj.weight"
    cases: dict[str, list[str]] = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "params (1,008 LoRA tensors)": CLI + ["params", big],
        "params (the same file as a plain checkpoint)": CLI + ["params", bare],
        "summary (1,008 LoRA tensors)": CLI + ["summary", big],
        "params (1,008-tensor LoRA GGUF)": CLI + ["params", gguf_lora],
        "summary (1,008-tensor LoRA GGUF)": CLI + ["summary", gguf_lora],
        "summary --base (448 tensors, 7B replica)": CLI + ["summary", on_base, "--base", base],
        "values --merged (4096 x 11008 corner)": CLI + ["values", on_base, weight, "--merged"],
    }
    results = run_all(cases, args.repeat)
    print(f"{args.repeat} interleaved runs each, medians; peak RSS is the maximum over runs.\n")
    print_table(results)


if __name__ == "__main__":
    main()
