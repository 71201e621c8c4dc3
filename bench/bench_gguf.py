"""Benchmark `params` on a Llama-2-7B GGUF (issue 4) against the `gguf-dump` script.

Writes, with gguf.GGUFWriter, a GGUF with the Llama-2-7B layout (291 tensors: Q4_0
weights, Q6_K output, F32 norms) and the metadata of a real file (32,000-token
vocabulary with scores and token types); the tensor data is left as a sparse zero
region, so the 3.6 GiB file takes no disk. Then times, interleaved, `llm-anatomy params`
and `gguf-dump` (from the gguf package) on it, and prints a Markdown table.

    .venv/bin/python bench/bench_gguf.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from views import CLI, PYTHON, print_table, run_all

HERE = os.path.dirname(os.path.abspath(__file__))
GGUF_DUMP = [os.path.join(os.path.dirname(PYTHON), "gguf-dump")]
LLAMA_2_7B = {"layers": 32, "hidden": 4096, "ffn": 11008, "heads": 32, "vocab": 32000, "context": 4096}


def llama_2_7b_tensors(c: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(GGUF name, torch-order shape, GGML type) in llama.cpp's file order."""
    h, f, v = c["hidden"], c["ffn"], c["vocab"]
    tensors = [("token_embd.weight", (v, h), "Q4_0")]
    for i in range(c["layers"]):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_q.weight", (h, h), "Q4_0"),
            (b + "attn_k.weight", (h, h), "Q4_0"),
            (b + "attn_v.weight", (h, h), "Q4_0"),
            (b + "attn_output.weight", (h, h), "Q4_0"),
            (b + "ffn_gate.weight", (f, h), "Q4_0"),
            (b + "ffn_up.weight", (f, h), "Q4_0"),
            (b + "ffn_down.weight", (h, f), "Q4_0"),
            (b + "attn_norm.weight", (h,), "F32"),
            (b + "ffn_norm.weight", (h,), "F32"),
        ]
    return tensors + [("output_norm.weight", (h,), "F32"), ("output.weight", (v, h), "Q6_K")]


def write_llama_2_7b_gguf(path: str) -> None:
    import gguf
    import numpy as np

    c = LLAMA_2_7B
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("Llama-2-7b-chat (layout replica, zero weights)")
    writer.add_context_length(c["context"])
    writer.add_embedding_length(c["hidden"])
    writer.add_block_count(c["layers"])
    writer.add_feed_forward_length(c["ffn"])
    writer.add_rope_dimension_count(c["hidden"] // c["heads"])
    writer.add_head_count(c["heads"])
    writer.add_head_count_kv(c["heads"])
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    writer.add_tokenizer_model("llama")
    special = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    writer.add_token_list(special + [f"\u2581piece{i}" for i in range(c["vocab"] - len(special))])
    writer.add_token_scores([-float(i) for i in range(c["vocab"])])
    writer.add_token_types([2, 3, 3] + [6] * 256 + [1] * (c["vocab"] - 259))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    data_bytes = 0
    for name, shape, type_name in llama_2_7b_tensors(c):
        qtype = gguf.GGMLQuantizationType[type_name]
        block_size, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = shape[0] * (shape[-1] // block_size * block_bytes) if len(shape) == 2 else shape[0] * block_bytes
        writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
        data_bytes += gguf.GGUFWriter.ggml_pad(nbytes, writer.data_alignment)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    data_start = gguf.GGUFWriter.ggml_pad(os.path.getsize(path), writer.data_alignment)
    os.truncate(path, data_start + data_bytes)  # padding and zero data: a hole, no disk used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "out"), help="where to write the sparse GGUF")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--write", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = os.path.join(args.data, "llama-2-7b-chat.Q4_0.gguf")
    if args.write:
        write_llama_2_7b_gguf(args.write)
        return
    if not os.path.isfile(path):
        os.makedirs(args.data, exist_ok=True)
        # In a child: numpy and gguf in this process would count in every timed child's
        # peak RSS (a forked child starts as a copy of its parent).
        subprocess.run([PYTHON, __file__, "--write", path], check=True)
    cases = {
        "python -c pass": [PYTHON, "-c", "pass"],
        f"llm-anatomy params {os.path.basename(path)}": CLI + ["params", path],
        f"gguf-dump {os.path.basename(path)}": GGUF_DUMP + [path],
        # Every metadata array whole, as JSON (issue 12): ours streams the items from the file.
        f"llm-anatomy params {os.path.basename(path)} --metadata --json": CLI
        + ["params", path, "--metadata", "--json"],
        f"gguf-dump --json --json-array {os.path.basename(path)}": GGUF_DUMP + ["--json", "--json-array", path],
    }
    results = run_all(cases, args.repeat)
    ours, dump, ours_json, dump_json = (results[name] for name in list(cases)[1:])
    print(
        f"{args.repeat} interleaved runs each, medians; peak RSS is the maximum over runs. File: {os.path.getsize(path) / 2**30:.2f} GiB, sparse.\n"
    )
    print_table(results)
    if not isinstance(ours, str) and not isinstance(dump, str):
        print(
            f"\nparams / gguf-dump: {ours[0] / dump[0]:.3f} of the wall time (target <= 0.2), {ours[1] / dump[1]:.3f} of the CPU time; params peak RSS {ours[2] / 1024:.1f} MB (target <= 60)"
        )
    if not isinstance(ours_json, str) and not isinstance(dump_json, str):
        print(
            f"params --metadata --json / gguf-dump --json --json-array: {ours_json[0] / dump_json[0]:.3f} of the wall time, {ours_json[1] / dump_json[1]:.3f} of the CPU time; peak RSS {ours_json[2] / 1024:.1f} MB vs {dump_json[2] / 1024:.1f} MB"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
