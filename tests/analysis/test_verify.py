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


def _permute_twice(hf_name, data, config):
    """A converter that permutes q and k twice."""
    once = gguf_writers._permute
    heads = config.num_attention_heads
    if hf_name.endswith("q_proj.weight"):
        return once(once(data, heads, heads), heads, heads)
    if hf_name.endswith("k_proj.weight"):
        return once(once(data, heads, config.num_key_value_heads), heads, config.num_key_value_heads)
    return data


def _k_not_permuted(hf_name, data, config):
    """A converter that permutes q but forgets k."""
    heads = config.num_attention_heads
    return gguf_writers._permute(data, heads, heads) if hf_name.endswith("q_proj.weight") else data


def _swap_layers(tensors):
    for suffix in ("mlp.down_proj.weight", "mlp.up_proj.weight"):
        a, b = f"model.layers.0.{suffix}", f"model.layers.1.{suffix}"
        tensors[a], tensors[b] = tensors[b], tensors[a]


def _zero(tensors):
    tensors["model.layers.1.mlp.gate_proj.weight"] = tensors["model.layers.1.mlp.gate_proj.weight"] * 0


def _norm_plus_one(tensors):
    tensors["model.layers.0.input_layernorm.weight"] = tensors["model.layers.0.input_layernorm.weight"] + 1


def _drop(tensors):
    del tensors["model.layers.1.self_attn.v_proj.weight"]


def _transpose(tensors):
    """A converter that writes two matrices the other way round: a square one (the same shape, other
    values) and one of 64 x 96 (another shape)."""
    for name in ("model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.down_proj.weight"):
        tensors[name] = tensors[name].T


def _truncate(tensors):
    """The embedding cut short: 100 of its 128 rows."""
    tensors["model.embed_tokens.weight"] = tensors["model.embed_tokens.weight"][:100]


def _scale(tensors):
    """1% more: the cosine stays 1, the error is past half a Q8_0 step."""
    tensors["model.layers.0.self_attn.o_proj.weight"] = tensors["model.layers.0.self_attn.o_proj.weight"] * 1.01


TWICE = "equal to A's after the rotary permutation is applied twice (B's file permutes the rows twice)"
SKIPPED = (
    "equal to A's with the rotary permutation undone (B's file does not permute the rows: the converter skipped it)"
)
FAULTS = {
    "q and k permuted twice": (
        dict(convert=_permute_twice, types={"blk.0.attn_q": "Q8_0"}),
        [
            f"model.layers.0.self_attn.k_proj.weight (blk.0.attn_k.weight in B): {TWICE}",
            f"model.layers.0.self_attn.q_proj.weight (blk.0.attn_q.weight in B): {TWICE}",
            f"model.layers.1.self_attn.k_proj.weight (blk.1.attn_k.weight in B): {TWICE}",
            f"model.layers.1.self_attn.q_proj.weight (blk.1.attn_q.weight in B): {TWICE}",
        ],
    ),
    "q and k not permuted": (
        dict(convert=lambda name, data, config: data),
        [
            f"model.layers.0.self_attn.k_proj.weight (blk.0.attn_k.weight in B): {SKIPPED}",
            f"model.layers.0.self_attn.q_proj.weight (blk.0.attn_q.weight in B): {SKIPPED}",
            f"model.layers.1.self_attn.k_proj.weight (blk.1.attn_k.weight in B): {SKIPPED}",
            f"model.layers.1.self_attn.q_proj.weight (blk.1.attn_q.weight in B): {SKIPPED}",
        ],
    ),
    "two layers swapped": (
        dict(edit=_swap_layers, types={"blk.0.ffn_up": "Q8_0", "blk.1.ffn_up": "Q8_0"}),
        [
            "layers 0 and 1 are swapped: 2 tensors of model.layers.0 and model.layers.1 (mlp.down_proj.weight, mlp.up_proj.weight) hold each other's values",
        ],
    ),
    "a tensor zeroed": (
        dict(edit=_zero, types={"blk.1.ffn_gate": "Q8_0"}),
        [
            "model.layers.1.mlp.gate_proj.weight (blk.1.ffn_gate.weight in B): all zero in B",
        ],
    ),
    "a norm shifted by +1": (
        dict(edit=_norm_plus_one),
        [
            "model.layers.0.input_layernorm.weight (blk.0.attn_norm.weight in B): norm weights differ by exactly +1 (B = A + 1)",
        ],
    ),
    "a missing tensor": (
        dict(edit=_drop),
        [
            "model.layers.1.self_attn.v_proj.weight: in A, missing from B",
        ],
    ),
    "a transposed matrix": (
        dict(edit=_transpose, types={"blk.0.attn_output": "Q8_0"}),
        [
            "model.layers.0.mlp.down_proj.weight (blk.0.ffn_down.weight in B): shape [64, 96] in A, [96, 64] in B: B holds A's matrix transposed",
            "model.layers.0.self_attn.o_proj.weight (blk.0.attn_output.weight in B): equal to A's transposed (B's file stores the matrix transposed)",
        ],
    ),
    "a truncated tensor": (
        dict(edit=_truncate, types={"token_embd": "F16"}),
        [
            "model.embed_tokens.weight (token_embd.weight in B): shape [128, 64] in A, [100, 64] in B: B holds only A's first 100 of 128 rows (truncated)",
            "config vocab_size: 128 in A, 100 in B",  # the converter counts the embedding's rows
        ],
    ),
    "only k not permuted": (
        dict(convert=_k_not_permuted),
        [
            f"model.layers.0.self_attn.k_proj.weight (blk.0.attn_k.weight in B): {SKIPPED}",
            f"model.layers.1.self_attn.k_proj.weight (blk.1.attn_k.weight in B): {SKIPPED}",
        ],
    ),
    "a tensor 1% larger (cosine 1)": (
        dict(edit=_scale, types={"blk.0.attn_output": "Q8_0"}),
        [
            "model.layers.0.self_attn.o_proj.weight (blk.0.attn_output.weight in B): differs beyond Q8_0 rounding (per block of 32) (max abs 0.0008343, 3.06x the allowance; relative 0.01144, cosine 1)",
        ],
    ),
    "a tensor 1% larger in the same dtype": (
        dict(edit=_scale),
        [
            "model.layers.0.self_attn.o_proj.weight (blk.0.attn_output.weight in B): differs where the same dtype allows no difference (max abs 0.0008252; relative 0.01, cosine 1)",
        ],
    ),
}


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_a_planted_fault_fails_and_is_named_first(fault, hf, tmp_path, cli):
    kwargs, findings = FAULTS[fault]
    result = cli("verify", hf, converted(hf, str(tmp_path), **kwargs))
    lines = result.out.splitlines()
    assert (result.code, result.err) == (3, "")
    assert lines[2 : len(findings) + 4] == ["verdict: fail", *(f"  {line}" for line in findings), ""]


ROTARY = "  rotary row permutation of q/k undone (llama.cpp's layout)"
FOOTER = [
    "rel_rmse = ||B - A|| / ||A||; sqnr_db = 10 log10(||A||^2 / ||B - A||^2); cosine = A.B / (||A|| ||B||); over float64 values, conventions undone",
    "tokenizers: not compared (A has none read here)",
]


def test_an_hf_llama_and_its_f32_gguf_are_identical(hf, tmp_path, cli):
    """The user's case: the GGUF llama.cpp's converter writes from an HF folder is the same model,
    q and k compared with the rotary permutation undone (GQA: 4 heads, 2 KV heads)."""
    result = cli("verify", hf, converted(hf, str(tmp_path)))
    assert (result.code, result.err) == (0, "")
    names = sorted(
        ["lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"]
        + [
            f"model.layers.{i}.{part}.weight"
            for i in (0, 1)
            for part in (
                "input_layernorm",
                "mlp.down_proj",
                "mlp.gate_proj",
                "mlp.up_proj",
                "post_attention_layernorm",
                "self_attn.k_proj",
                "self_attn.o_proj",
                "self_attn.q_proj",
                "self_attn.v_proj",
            )
        ]
    )
    rows = [
        f"{name:<46}  F32    identical        0         0      inf       1{ROTARY if name in QK else ''}"
        for name in names
    ]
    assert result.out.splitlines() == [
        "A: tiny-llama (21 tensors, 305.25 KiB)",
        "B: model.gguf (21 tensors, 305.25 KiB)",
        "verdict: pass",
        "",
        "name                                            dtype  status     max_abs  rel_rmse  sqnr_db  cosine",
        *rows,
        "",
        "layer  tensors  status       max_abs  rel_rmse  sqnr_db  min_cosine",
        "0            9  9 identical        0         0      inf           1",
        "1            9  9 identical        0         0      inf           1",
        "other        3  3 identical        0         0      inf           1",
        "",
        "type  tensors  status        max_abs  rel_rmse  sqnr_db  min_cosine",
        "F32        21  21 identical        0         0      inf           1",
        "all        21  21 identical        0         0      inf           1",
        *FOOTER,
    ]


MIXED = {
    "token_embd": "F16",
    "output": "BF16",
    "blk.0.attn_q": "Q8_0",
    "blk.0.attn_k": "Q8_0",
    "blk.1.attn_q": "Q5_1",
    "blk.1.attn_k": "Q4_1",
    "blk.0.ffn_gate": "Q4_0",
    "blk.0.ffn_up": "Q5_0",
    "blk.1.ffn_down": "Q8_0",
}


def test_f16_bf16_and_block_types_are_the_same_within_their_noise(hf, tmp_path, cli):
    """Every type gguf can write, made with gguf's own quantize functions (q/k of Q4_1 and Q5_1 with
    their rows permuted): each tensor `same`, within the noise its type allows; a summary per type."""
    result = cli("verify", hf, converted(hf, str(tmp_path), MIXED))
    lines = result.out.splitlines()
    assert (result.code, lines[2]) == (0, "verdict: pass")
    assert lines[5:14] == [
        "lm_head.weight                                  F32->BF16  same       0.0002179   0.001667    55.56       1",
        "model.embed_tokens.weight                       F32->F16   same        2.79e-05  0.0002093    73.59       1",
        "model.layers.0.mlp.gate_proj.weight             F32->Q4_0  same        0.009019    0.08837    21.07  0.9961",
        "model.layers.0.mlp.up_proj.weight               F32->Q5_0  same        0.003013    0.04192    27.55  0.9991",
        "model.layers.0.self_attn.k_proj.weight          F32->Q8_0  same       0.0002793    0.00538    45.38       1"
        + ROTARY,
        "model.layers.0.self_attn.q_proj.weight          F32->Q8_0  same        0.000332   0.005282    45.54       1"
        + ROTARY,
        "model.layers.1.mlp.down_proj.weight             F32->Q8_0  same       0.0002826   0.005302    45.51       1",
        "model.layers.1.self_attn.k_proj.weight          F32->Q4_1  same        0.003828    0.07937    22.01  0.9969"
        + ROTARY,
        "model.layers.1.self_attn.q_proj.weight          F32->Q5_1  same        0.002034    0.03837    28.32  0.9993"
        + ROTARY,
    ]
    assert lines[-12:] == [
        "type  tensors  status                  max_abs   rel_rmse  sqnr_db  min_cosine",
        "BF16        1  1 same                0.0002179   0.001667    55.56           1",
        "F16         1  1 same                 2.79e-05  0.0002093    73.59           1",
        "F32        12  12 identical                  0          0      inf           1",
        "Q4_0        1  1 same                 0.009019    0.08837    21.07      0.9961",
        "Q4_1        1  1 same                 0.003828    0.07937    22.01      0.9969",
        "Q5_0        1  1 same                 0.003013    0.04192    27.55      0.9991",
        "Q5_1        1  1 same                 0.002034    0.03837    28.32      0.9993",
        "Q8_0        3  3 same                 0.000332   0.005308     45.5           1",
        "all        21  12 identical, 9 same   0.009019   0.009518    40.43      0.9961",
        *FOOTER,
    ]


def test_json_and_the_api_give_one_record(hf, tmp_path, cli):
    """--json has the fields the issue lists; la.verify(a, b) returns the same record."""
    import llm_anatomy as la
    from llm_anatomy.render import verify as render

    gguf_path = converted(hf, str(tmp_path), {"blk.0.attn_q": "Q8_0"}, edit=_drop)
    result = cli("verify", hf, gguf_path, "--json")
    doc = json.loads(result.out)
    assert (result.code, doc["verdict"], doc["findings"]) == (
        3,
        "fail",
        ["model.layers.1.self_attn.v_proj.weight: in A, missing from B"],
    )
    assert (
        doc["only_in_a"],
        doc["only_in_b"],
        doc["config"],
        doc["tokenizer"],
        doc["tokenizer_compared"],
        doc["errors"],
    ) == (["model.layers.1.self_attn.v_proj.weight"], [], [], [], False, [])
    q = next(t for t in doc["tensors"] if t["a_name"] == "model.layers.0.self_attn.q_proj.weight")
    assert {
        k: q[k] for k in ("b_name", "dtype_a", "dtype_b", "numel", "status", "transforms", "noise", "skipped_nonfinite")
    } == {
        "b_name": "blk.0.attn_q.weight",
        "dtype_a": "F32",
        "dtype_b": "Q8_0",
        "numel": 4096,
        "status": "same",
        "transforms": ["unpermute"],
        "noise": "Q8_0 rounding (per block of 32)",
        "skipped_nonfinite": 0,
    }
    assert 0 < q["max_abs"] < 1e-3 and 0.9999 < q["cosine"] <= 1 and q["sqnr_db"] > 40
    assert [(t["type"], t["tensors"], t["same"], t["identical"]) for t in doc["by_type"]] == [
        ("F32", 19, 0, 19),
        ("Q8_0", 1, 1, 0),
    ]
    assert [(t["layer"], t["tensors"], t["same"], t["identical"]) for t in doc["by_layer"]] == [
        (0, 9, 1, 8),
        (1, 8, 0, 8),
        ("other", 3, 0, 3),
    ]
    found = la.verify(hf, gguf_path)
    assert render.json_text(found) == result.out
    assert (found.verdict, found.tensors[0].status, found.overall.tensors) == ("fail", "same", 20)


META_ROTARY = "  rotary row permutation of q/k undone (Meta's layout)"


def test_a_meta_checkpoint_and_its_hf_form_are_identical(hf, tmp_path, cli):
    """Meta's consolidated.00.pth (q and k in Meta's rotary layout) against the HF folder made from
    it: Meta's names paired with transformers' without --hf-names, q and k compared with the
    permutation undone over params.json's head counts (4 query heads, 2 KV heads), the config
    derived from params.json consistent with config.json."""
    meta = checkpoints.meta_checkpoint(hf, str(tmp_path / "meta"), dtype="float32")
    result = cli("verify", meta, hf)
    lines = result.out.splitlines()
    assert (result.code, result.err, lines[:4]) == (
        0,
        "",
        ["A: meta (21 tensors, 305.25 KiB)", "B: tiny-llama (21 tensors, 305.25 KiB)", "verdict: pass", ""],
    )
    assert [line for line in lines if line.endswith(META_ROTARY)] == [
        f"layers.{i}.attention.{w}.weight     F32    identical        0         0      inf       1{META_ROTARY}"
        for i in (0, 1)
        for w in ("wk", "wq")
    ]
    doc = json.loads(cli("verify", hf, meta, "--json").out)
    assert (doc["verdict"], doc["config"], doc["only_in_a"], doc["only_in_b"]) == ("pass", [], [], [])
    assert sorted((t["a_name"], t["b_name"]) for t in doc["tensors"] if t["transforms"] == ["unpermute_meta"]) == [
        (name, f"layers.{name.split('.')[2]}.attention.w{name.split('.')[4][0]}.weight") for name in QK
    ]


def _meta_twice(tensor, heads):
    return checkpoints.meta_layout(checkpoints.meta_layout(tensor, heads), heads)


def _meta_query_heads(tensor, heads):
    """A converter that permutes k with the query heads' count (4), not the KV heads' (2)."""
    return checkpoints.meta_layout(tensor, 4)


# How the Meta checkpoint's q and k relate to the HF folder's -> the finding on layer 0's q and k.
# The HF side stands for what transformers' converter would have written from the Meta file.
META_FAULTS = {
    "not permuted": (
        lambda tensor, heads: tensor,
        [
            "model.layers.0.self_attn.k_proj.weight (layers.0.attention.wk.weight in A): equal to A's rows as Meta stores them (B's file does not permute the rows: the converter skipped it)",
            "model.layers.0.self_attn.q_proj.weight (layers.0.attention.wq.weight in A): equal to A's rows as Meta stores them (B's file does not permute the rows: the converter skipped it)",
        ],
    ),
    "permuted twice": (
        _meta_twice,
        [
            "model.layers.0.self_attn.k_proj.weight (layers.0.attention.wk.weight in A): equal to A's after the rotary permutation is applied twice (B's file permutes the rows twice)",
            "model.layers.0.self_attn.q_proj.weight (layers.0.attention.wq.weight in A): equal to A's after the rotary permutation is applied twice (B's file permutes the rows twice)",
        ],
    ),
    "k permuted over the query heads": (
        _meta_query_heads,
        [
            "model.layers.0.self_attn.k_proj.weight (layers.0.attention.wk.weight in A): the rotary permutation applied over 4 heads, not 2 (B's file permutes the rows with the wrong head count)"
        ],
    ),
}


@pytest.mark.parametrize("fault", META_FAULTS, ids=str)
def test_a_meta_conversion_that_mishandles_the_rotary_layout_fails_in_words(fault, hf, tmp_path, cli):
    permute, findings = META_FAULTS[fault]
    meta = checkpoints.meta_checkpoint(hf, str(tmp_path / "meta"), dtype="float32", permute=permute)
    result = cli("verify", meta, hf)
    lines = result.out.splitlines()
    assert (result.code, result.err, lines[2]) == (3, "", "verdict: fail")
    assert [line for line in lines[3:] if line.startswith("  model.layers.0.")] == [f"  {line}" for line in findings]


def test_params_json_is_compared_as_config_meaning(hf, tmp_path, cli):
    """params.json's fields under config.json's names; a field params.json does not state
    (max_position_embeddings, rope_theta here) is no difference."""
    meta = checkpoints.meta_checkpoint(hf, str(tmp_path / "meta"), dtype="float32")
    with open(os.path.join(meta, "params.json")) as handle:
        params = json.load(handle)
    with open(os.path.join(meta, "params.json"), "w") as handle:
        json.dump({**params, "norm_eps": 1e-5, "n_kv_heads": 4}, handle)
    result = cli("verify", meta, hf)
    lines = result.out.splitlines()
    assert (result.code, lines[2:6]) == (
        3,
        [
            "verdict: fail",
            "  config num_key_value_heads: 4 in A, 2 in B",
            "  config rms_norm_eps: 1e-05 in A, 1e-06 in B",
            "  model.layers.0.self_attn.k_proj.weight (layers.0.attention.wk.weight in A): the rotary permutation applied over 2 heads, not 4 (B's file permutes the rows with the wrong head count)",
        ],
    )


def test_meta_model_parallel_shards_are_refused_in_one_line(hf, tmp_path, cli):
    """consolidated.00.pth and .01.pth (each tensor split across them) are not joined: said in one line, exit 1."""
    meta = checkpoints.meta_checkpoint(hf, str(tmp_path / "meta"), dtype="float32")
    shutil.copy(os.path.join(meta, "consolidated.00.pth"), os.path.join(meta, "consolidated.01.pth"))
    result = cli("verify", meta, hf)
    assert (result.code, result.out, result.err) == (
        1,
        "",
        f"llm-anatomy: {meta}: expected one consolidated.00.pth (a model that is not split for model parallelism), found 2 model-parallel shards; pass one shard file, or convert with transformers' convert_llama_weights_to_hf.py\n",
    )


def test_an_unreadable_tensor_exits_1(hf, tmp_path, cli):
    gguf_path = converted(hf, str(tmp_path))
    with open(gguf_path, "r+b") as handle:
        handle.truncate(os.path.getsize(gguf_path) - 100)
    result = cli("verify", hf, gguf_path)
    assert result.code == 1


def gemma_pair(folder, convert=None):
    """Tiny Gemma-3 as gguf_writers.whole_model converts it (norms stored as 1 + w), and the same
    weights (same seed, same initialisation) saved by transformers; CONVERT: the converter's
    transform of Gemma-3's tensors instead of its own."""
    import torch
    import transformers
    from llm_anatomy.formats.gguf_archs import ARCHITECTURES

    original = gguf_writers.CONVERTED["gemma3"]
    if convert is not None:
        gguf_writers.CONVERTED["gemma3"] = convert
    try:
        path, config = gguf_writers.whole_model(folder, "gemma3")
    finally:
        gguf_writers.CONVERTED["gemma3"] = original
    torch.manual_seed(0)
    model = getattr(transformers, ARCHITECTURES["gemma3"].class_name)(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    model.save_pretrained(os.path.join(folder, "hf"))
    return os.path.join(folder, "hf"), path


def test_gemma_norms_stored_as_one_plus_w_are_the_same(tmp_path, cli):
    """1 + w rounded to float32 and 1 taken off again: `same` within that rounding, not identical."""
    hf_gemma, gguf_path = gemma_pair(str(tmp_path))
    result = cli("verify", hf_gemma, gguf_path)
    lines = result.out.splitlines()
    assert (result.code, lines[2]) == (0, "verdict: pass")
    assert (
        lines[5]
        == "model.layers.0.input_layernorm.weight             F32    same       1.192e-07  3.898e-08    148.2       1  norm weight stored as 1 + w: 1 subtracted"
    )
    assert "F32        28  15 identical, 13 same  2.384e-07  3.58e-09    168.9           1" in lines


def test_gemma_norms_the_converter_did_not_shift_differ_by_exactly_one(tmp_path, cli):
    hf_gemma, gguf_path = gemma_pair(str(tmp_path), convert=lambda name, data, config: data)
    result = cli("verify", hf_gemma, gguf_path)
    lines = result.out.splitlines()
    assert (result.code, lines[2], lines[3]) == (
        3,
        "verdict: fail",
        "  model.layers.0.input_layernorm.weight (blk.0.attn_norm.weight in B): norm weights differ by exactly -1 (B = A - 1)",
    )
    assert sum("differ by exactly -1" in line for line in lines) == 13


def test_each_tensor_says_what_noise_it_was_allowed(hf, tmp_path, cli):
    hf_gemma, gemma_gguf = gemma_pair(str(tmp_path / "gemma"))
    gemma = {t["a_name"]: t["noise"] for t in json.loads(cli("verify", hf_gemma, gemma_gguf, "--json").out)["tensors"]}
    llama = {
        t["a_name"]: t["noise"]
        for t in json.loads(cli("verify", hf, converted(hf, str(tmp_path), MIXED), "--json").out)["tensors"]
    }
    assert (gemma["model.layers.0.input_layernorm.weight"], gemma["model.layers.0.mlp.up_proj.weight"]) == (
        "rounding of 1 + w to F32",
        "none (same dtype)",
    )
    assert [
        llama[n] for n in ("lm_head.weight", "model.embed_tokens.weight", "model.layers.1.self_attn.k_proj.weight")
    ] == ["BF16 rounding", "F16 rounding", "Q4_1 rounding (per block of 32)"]


def tokenizer_gguf(
    path,
    tokens=("a", "b", "c", "ab", "abc"),
    merges=("a b", "ab c"),
    template="{% for m in messages %}{{ m.content }}{% endfor %}",
    eos=2,
):
    """A GGUF holding a GPT-2-style tokenizer (tokens, merges, special ids, chat template) and one tensor."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(list(tokens))
    writer.add_token_merges(list(merges))
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(eos)
    writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.ones((len(tokens), 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


TOKENIZER_FAULTS = {
    "one merge changed": (dict(merges=("a b", "a bc")), 3, "fail", ["tokenizer: merge 1: 'ab c' in A, 'a bc' in B"]),
    "a token changed": (
        dict(tokens=("a", "b", "c", "ab", "abd")),
        3,
        "fail",
        ["tokenizer: token 4: 'abc' in A, 'abd' in B"],
    ),
    "the chat template and eos changed": (
        dict(template="{% for m in messages %}{{ m.role }}{% endfor %}", eos=1),
        0,
        "warn",
        [
            "tokenizer: eos token id 2 in A, 1 in B",
            "chat template: differs from line 1 (50 characters in A, 47 in B)",
        ],
    ),
}


@pytest.mark.parametrize("fault", TOKENIZER_FAULTS, ids=str)
def test_tokenizers_that_map_differently_fail_and_prompting_changes_warn(fault, tmp_path, cli):
    kwargs, code, verdict, findings = TOKENIZER_FAULTS[fault]
    a = tokenizer_gguf(str(tmp_path / "a.gguf"))
    b = tokenizer_gguf(str(tmp_path / "b.gguf"), **kwargs)
    result = cli("verify", a, b)
    lines = result.out.splitlines()
    assert (result.code, lines[2 : len(findings) + 4]) == (
        code,
        [f"verdict: {verdict}", *(f"  {line}" for line in findings), ""],
    )
    n = len(findings)
    assert (
        lines[-1]
        == f"tokenizers and chat templates: {n} difference{'s' if n > 1 else ''} (above); compared 5 tokens, merges, special token ids, chat template"
    )
    doc = json.loads(cli("verify", a, b, "--json").out)
    assert (doc["tokenizer"], doc["tokenizer_compared"], doc["verdict"]) == (findings, True, verdict)


def test_the_same_tokenizer_passes(tmp_path, cli):
    a = tokenizer_gguf(str(tmp_path / "a.gguf"))
    result = cli("verify", a, tokenizer_gguf(str(tmp_path / "b.gguf")))
    assert (result.code, result.out.splitlines()[2], result.out.splitlines()[-1]) == (
        0,
        "verdict: pass",
        "tokenizers and chat templates: the same; compared 5 tokens, merges, special token ids, chat template",
    )


def test_a_tokenizer_past_its_cap_is_refused_before_reading(hf, tmp_path, cli):
    """A 65 MB tokenizer.json (sparse: costs nothing) is refused by its size; the weights are still verified."""
    folder = str(tmp_path / "hf")
    shutil.copytree(hf, folder)
    with open(os.path.join(folder, "tokenizer.json"), "wb") as handle:
        handle.truncate(65 * 1024 * 1024)
    result = cli("verify", folder, converted(hf, str(tmp_path)))
    lines = result.out.splitlines()
    reason = f"{folder}/tokenizer.json: expected tokenizer.json of at most 67108864 bytes, found 68157440 bytes; fix or re-download tokenizer.json"
    assert (result.code, lines[2:5], lines[-1]) == (
        0,
        ["verdict: warn", f"  tokenizer of A unreadable: {reason}", ""],
        "tokenizers: not compared",
    )


D_FIELDS = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def kquant_pair(folder, dtype, push=0.45, seed=0):
    """B: a K-quant tensor of random super-blocks (any bytes are codes, scales and mins; the
    float16 d and dmin set to small positive values), dequantized by gguf's own dequantize; A: the
    floats it could have been quantized from, each within PUSH steps of its code (and pushed
    outward past the range's end where its code is that end, as clamping leaves it)."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize
    from llm_anatomy.analysis.verify import KQUANT, kquant_steps

    kind = KQUANT[dtype]
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (32, kind.block_bytes), dtype=np.uint8)
    for at in D_FIELDS[dtype]:
        raw[:, at : at + 2] = np.abs(rng.normal(0, 0.01, 32)).astype(np.float16).view(np.uint8).reshape(32, 2)
    values = dequantize(raw.reshape(-1), getattr(gguf.GGMLQuantizationType, dtype)).astype(np.float64).reshape(-1)
    steps, offsets = (
        x.reshape(-1).astype(np.float64).repeat(kind.sub_elems) for x in kquant_steps(dtype, raw.reshape(-1))
    )
    codes = np.where(steps != 0, (values + offsets) / np.where(steps != 0, steps, 1), 0)
    assert (
        np.abs(codes - np.rint(codes)).max() < 1e-4
        and kind.low <= np.rint(codes).min()
        and np.rint(codes).max() <= kind.high
    )  # the layout, against gguf's dequantize
    shift = rng.uniform(-push, push, values.size)
    shift = np.where(
        np.rint(codes) == kind.high, np.abs(shift) * 4, np.where(np.rint(codes) == kind.low, -np.abs(shift) * 4, shift)
    )
    original = np.where(steps != 0, values + shift * steps, values).astype(np.float32)
    paths = []
    for name, tensor, raw_dtype in (
        ("a", original.reshape(32, 256), None),
        ("b", raw, getattr(gguf.GGMLQuantizationType, dtype)),
    ):
        writer = gguf.GGUFWriter(os.path.join(folder, f"{name}.gguf"), "llama")
        writer.add_tensor("blk.0.ffn_up.weight", tensor, raw_dtype=raw_dtype)  # shape from the bytes: [32, 256]
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        paths.append(os.path.join(folder, f"{name}.gguf"))
    return paths


@pytest.mark.parametrize("dtype", sorted(D_FIELDS))
def test_k_quants_within_half_a_step_are_the_same_and_beyond_are_different(dtype, tmp_path, cli):
    (tmp_path / "within").mkdir()
    (tmp_path / "beyond").mkdir()
    within = json.loads(cli("verify", *kquant_pair(str(tmp_path / "within"), dtype), "--json").out)
    beyond = json.loads(cli("verify", *kquant_pair(str(tmp_path / "beyond"), dtype, push=0.7), "--json").out)
    words = f"{dtype} rounding (per sub-block of {16 if dtype in ('Q2_K', 'Q3_K', 'Q6_K') else 32}, codes clamped)"
    assert [(d["verdict"], d["tensors"][0]["status"], d["tensors"][0]["noise"]) for d in (within, beyond)] == [
        ("pass", "same", words),
        ("fail", "different", words),
    ]
