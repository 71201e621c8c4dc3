"""`verify` and `diff` against llama.cpp's own converter, not against ourselves: tiny Llama (grouped-
query attention), Gemma-3 (norms stored as 1 + w) and Qwen2 (q/k/v biases) saved by transformers,
each with a tokenizer (a sentencepiece model trained here, its tokenizer.json and a chat template),
converted by convert_hf_to_gguf.py (from the llama-cpp-python sdist: .ci/real-checkpoints) at F16 and
Q8_0; a tiny Mixtral (experts stacked by the converter) at F16; and a tiny Meta checkpoint
(consolidated.00.pth, params.json) converted by transformers' own convert_llama_weights_to_hf.py.
Every pair passes, every tensor paired."""

import io
import json
import os
import subprocess
import sys

import pytest

import checkpoints

TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "a model is built from its checkpoint files",
    "llamas and gemmas and qwens convert to gguf",
] * 20
CHAT_TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
OUTTYPES = ("f16", "q8_0")
# One interpreter runs every conversion: importing torch and transformers is most of one.
DRIVER = "import json, sys\nimport convert_hf_to_gguf\nfor argv in json.loads(sys.argv[1]):\n    sys.argv[1:] = argv\n    convert_hf_to_gguf.main()\n"


def sentencepiece_tokenizer(folder, vocab_size):
    """tokenizer.model (what the converter reads), and the tokenizer.json transformers' converter
    makes of it (BPE merges in the order of the merged piece's id) with tokenizer_config.json,
    saved by PreTrainedTokenizerFast: the files of a Llama-2-style HF folder."""
    import sentencepiece
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    with open(os.path.join(folder, "tokenizer.model"), "wb") as handle:
        handle.write(model.getvalue())
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    splits = ((piece[:k], piece[k:]) for piece in pieces for k in range(1, len(piece)))
    merges = sorted(
        (pair for pair in splits if pair[0] in pieces and pair[1] in pieces),
        key=lambda pair: (pieces[pair[0] + pair[1]], pieces[pair[0]], pieces[pair[1]]),
    )
    tokenizer = Tokenizer(models.BPE(pieces, merges, unk_token="<unk>", fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", chat_template=CHAT_TEMPLATE
    )
    fast.save_pretrained(folder)


def _config(name):
    import transformers

    common = dict(
        **checkpoints.TINY_DECODER,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
    )
    return {
        "llama": ("LlamaForCausalLM", transformers.LlamaConfig(**common)),
        "gemma": (
            "Gemma3ForCausalLM",
            transformers.Gemma3TextConfig(**common, head_dim=16, sliding_window=64, pad_token_id=0),
        ),
        "qwen": ("Qwen2ForCausalLM", transformers.Qwen2Config(**common, tie_word_embeddings=False)),
    }[name]


MODELS = ("llama", "gemma", "qwen")


def hf_model(folder, name):
    """Weights drawn from N(0, 0.02), vectors (norms, biases) from U(-0.5, 0.5): norms that are not all ones."""
    import torch
    import transformers

    class_name, config = _config(name)
    torch.manual_seed(0)
    model = getattr(transformers, class_name)(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.02) if parameter.dim() > 1 else parameter.uniform_(-0.5, 0.5)
    model.save_pretrained(folder)
    sentencepiece_tokenizer(folder, config.vocab_size)
    return folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, llama_cpp_converter):
    """(model, outtype) -> (HF folder, the GGUF llama.cpp's converter wrote from it)."""
    root = tmp_path_factory.mktemp("converted")
    folders = {name: hf_model(str(root / name), name) for name in MODELS}
    jobs = {(name, outtype): str(root / f"{name}-{outtype}.gguf") for name in MODELS for outtype in OUTTYPES}
    argv = [[folders[name], "--outtype", outtype, "--outfile", path] for (name, outtype), path in jobs.items()]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.path.join(llama_cpp_converter, "gguf-py"), llama_cpp_converter]),
    }
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(argv)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {key: (folders[key[0]], path) for key, path in jobs.items()}


SUMMARIES = {
    ("llama", "f16"): [
        "type  tensors  status                 max_abs   rel_rmse  sqnr_db  min_cosine",
        "F16        16  16 same               2.92e-05   0.000207    73.68           1",
        "F32         5  5 identical                  0          0      inf           1",
        "all        21  5 identical, 16 same  2.92e-05  0.0001491    76.53           1",
    ],
    ("llama", "q8_0"): [
        "type  tensors  status                  max_abs  rel_rmse  sqnr_db  min_cosine",
        "F32         5  5 identical                   0         0      inf           1",
        "Q8_0       16  16 same               0.0003573  0.005369     45.4           1",
        "all        21  5 identical, 16 same  0.0003573  0.003867    48.25           1",
    ],
    ("gemma", "f16"): [
        "type  tensors  status    max_abs   rel_rmse  sqnr_db  min_cosine",
        "F16        15  15 same  2.92e-05  0.0002071    73.68           1",
        "F32        13  13 same  5.96e-08  9.941e-08    140.1           1",
        "all        28  28 same  2.92e-05  0.0001184    78.54           1",
    ],
    ("gemma", "q8_0"): [
        "type  tensors  status     max_abs   rel_rmse  sqnr_db  min_cosine",
        "F32        13  13 same   5.96e-08  9.941e-08    140.1           1",
        "Q8_0       15  15 same  0.0003573   0.005365    45.41           1",
        "all        28  28 same  0.0003573   0.003066    50.27           1",
    ],
    ("qwen", "f16"): [
        "type  tensors  status                  max_abs   rel_rmse  sqnr_db  min_cosine",
        "F16        16  16 same                2.92e-05   0.000207    73.68           1",
        "F32        11  11 identical                  0          0      inf           1",
        "all        27  11 identical, 16 same  2.92e-05  0.0001298    77.74           1",
    ],
    ("qwen", "q8_0"): [
        "type  tensors  status                   max_abs  rel_rmse  sqnr_db  min_cosine",
        "F32        11  11 identical                   0         0      inf           1",
        "Q8_0       16  16 same                0.0003573  0.005371     45.4           1",
        "all        27  11 identical, 16 same  0.0003573  0.003368    49.45           1",
    ],
}


@pytest.mark.parametrize("model, outtype", SUMMARIES, ids=[f"{m}-{o}" for m, o in SUMMARIES])
def test_the_real_converters_output_passes(model, outtype, pairs, cli):
    """The verdict, and the summary per type to the last digit: the converter's F16 rounding and
    Q8_0 blocks within the noise derived for them, q/k compared through the rotary permutation."""
    hf, gguf_path = pairs[model, outtype]
    result = cli("verify", hf, gguf_path)
    lines = result.out.splitlines()
    assert (result.code, result.err, lines[2], lines[3]) == (0, "", "verdict: pass", "")
    start = lines.index(next(line for line in lines if line.startswith("type ")))
    assert lines[start : start + len(SUMMARIES[model, outtype])] == SUMMARIES[model, outtype]
    assert (
        lines[-1]
        == "tokenizers and chat templates: the same; compared 128 tokens, merges against scores, special token ids, chat template"
    )
    doc = json.loads(cli("verify", hf, gguf_path, "--json").out)
    unpermuted = sorted(t["a_name"] for t in doc["tensors"] if t["transforms"] == ["unpermute"])
    assert unpermuted == (
        [f"model.layers.{i}.self_attn.{p}_proj.weight" for i in (0, 1) for p in ("k", "q")] if model == "llama" else []
    )


def test_a_summary_per_layer(pairs, cli):
    """Each layer's tensors together (RMSE and SQNR over all their elements), then what lies outside the layers."""
    hf, gguf_path = pairs["llama", "q8_0"]
    lines = cli("verify", hf, gguf_path).out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("layer ")))
    assert lines[start : start + 5] == [
        "layer  tensors  status                 max_abs  rel_rmse  sqnr_db  min_cosine",
        "0            9  2 identical, 7 same  0.0003573  0.003788    48.43           1",
        "1            9  2 identical, 7 same  0.0003001  0.003922    48.13           1",
        "other        3  1 identical, 2 same  0.0003178  0.003918    48.14           1",
        "",
    ]


def test_diff_pairs_every_tensor_of_each_conversion(pairs, cli):
    """No tensor left unpaired on either side, and no config field reported that GGUF does not store."""
    for (model, outtype), (hf, gguf_path) in pairs.items():
        doc = json.loads(cli("diff", hf, gguf_path, "--json").out)
        assert (model, outtype, doc["only_in_a"], doc["only_in_b"], doc["shape_changed"], doc["config_changed"]) == (
            model,
            outtype,
            [],
            [],
            [],
            [],
        )
        assert doc["compared"] == doc["a"]["tensors"] == doc["b"]["tensors"]


def _edit_json(folder, name, edit):
    path = os.path.join(folder, name)
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    edit(document)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False)


def _swap_merges(document):
    merges = document["model"]["merges"]
    merges[10], merges[40] = merges[40], merges[10]


def _rename_token(document):
    vocab = document["model"]["vocab"]
    vocab["\u2581brown"] = vocab.pop("\u2581fox")


def _template(folder):
    with open(os.path.join(folder, "chat_template.jinja"), "a", encoding="utf-8") as handle:
        handle.write("\n{{ eos_token }}")


HF_TOKENIZER_FAULTS = {
    "two merges swapped": (lambda f: _edit_json(f, "tokenizer.json", _swap_merges), 3, "fail"),
    "a token renamed": (lambda f: _edit_json(f, "tokenizer.json", _rename_token), 3, "fail"),
    "the eos token changed": (
        lambda f: _edit_json(f, "tokenizer_config.json", lambda d: d.update(eos_token="<unk>")),
        0,
        "warn",
    ),
    "the chat template changed": (_template, 0, "warn"),
}


def test_a_changed_hf_tokenizer_against_the_converters_gguf(pairs, tmp_path, cli):
    """The HF side's tokenizer edited after the conversion: what changes the ids fails, what changes
    the prompt warns, each said in words (merges checked against the GGUF's sentencepiece scores)."""
    import shutil

    hf, gguf_path = pairs["llama", "q8_0"]
    findings = {}
    for fault, (edit, code, verdict) in HF_TOKENIZER_FAULTS.items():
        folder = str(tmp_path / fault.replace(" ", "-"))
        shutil.copytree(hf, folder)
        edit(folder)
        result = cli("verify", folder, gguf_path)
        lines = result.out.splitlines()
        assert (fault, result.code, lines[2]) == (fault, code, f"verdict: {verdict}")
        findings[fault] = lines[3]
    assert findings == {
        "two merges swapped": "  tokenizer: A's merge 11 ('\u2581 b') comes after merge 10 ('d el'), but its result scores higher in B",
        "a token renamed": "  tokenizer: token 65: '\u2581brown' in A, '\u2581fox' in B",
        "the eos token changed": "  tokenizer: eos token id 0 in A, 2 in B",
        "the chat template changed": "  chat template: differs from line 2 (93 characters in A, 77 in B)",
    }


@pytest.fixture(scope="module")
def smollm2_hf(smollm2_gguf, tmp_path_factory):
    """SmolLM2-135M-Instruct's HF form as transformers' GGUF loader makes it from the published Q4_1
    GGUF: the dequantized weights (saved with safetensors: transformers will not save a GGUF-loaded
    model), its config, and the tokenizer it converts from the GGUF's tokenizer.ggml.* keys."""
    import safetensors.torch
    import torch
    import transformers

    folder = str(tmp_path_factory.mktemp("smollm2") / "hf")
    where, name = os.path.split(smollm2_gguf)
    model = transformers.AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    tied = model.config.tie_word_embeddings
    os.makedirs(folder)
    weights = {k: v.contiguous() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    safetensors.torch.save_file(weights, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(where, gguf_file=name).save_pretrained(folder)
    return folder


def test_a_published_gguf_against_its_hf_form_raises_no_false_alarm(smollm2_gguf, smollm2_hf, cli):
    """A real trained model and a real tokenizer (49,152 tokens, GPT-2 merges, a chat template):
    every tensor identical once dequantized, the tokenizers the same."""
    result = cli("verify", smollm2_hf, smollm2_gguf)
    lines = result.out.splitlines()
    assert (result.code, lines[2], lines[3]) == (0, "verdict: pass", "")
    assert lines[-7:] == [
        "type  tensors  status         max_abs  rel_rmse  sqnr_db  min_cosine",
        "F32        61  61 identical         0         0      inf           1",
        "Q4_1      210  210 identical        0         0      inf           1",
        "Q8_0        1  1 identical          0         0      inf           1",
        "all       272  272 identical        0         0      inf           1",
        "rel_rmse = ||B - A|| / ||A||; sqnr_db = 10 log10(||A||^2 / ||B - A||^2); cosine = A.B / (||A|| ||B||); over float64 values, conventions undone",
        "tokenizers and chat templates: the same; compared 49152 tokens, merges, special token ids, chat template",
    ]


# transformers' converter, as its main() runs it for a Llama-2 release, from the weights step on:
# its tokenizer step (LlamaTokenizerFast(path)) no longer runs under transformers 5, and the
# weights do not need it (the vocabulary size is the embedding's).
META_DRIVER = """import sys
sys.path.insert(0, sys.argv[1])
import convert_llama_weights_to_hf as convert
convert.write_model(model_path=sys.argv[3], input_base_path=sys.argv[2], num_shards=1, llama_version="2", vocab_size=128)
"""


@pytest.fixture(scope="module")
def meta_pair(tmp_path_factory, transformers_llama_converter):
    """(Meta's consolidated.00.pth + params.json as torch.save writes them, bfloat16 as Meta's are;
    the HF folder transformers' own convert_llama_weights_to_hf.py writes from it)."""
    import checkpoints

    root = tmp_path_factory.mktemp("meta-converted")
    meta = checkpoints.meta_checkpoint(checkpoints.tiny_llama(str(root / "source"), shard=None), str(root / "meta"))
    # The converter sizes the MLP from params.json alone: 2/3 of 4 x 64, halved, up to a multiple of 32 is 96.
    with open(os.path.join(meta, "params.json")) as handle:
        params = json.load(handle)
    with open(os.path.join(meta, "params.json"), "w") as handle:
        json.dump({**params, "ffn_dim_multiplier": 0.5}, handle)
    hf = str(root / "hf")
    done = subprocess.run(
        [sys.executable, "-c", META_DRIVER, os.path.dirname(transformers_llama_converter), meta, hf],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return meta, hf


def test_transformers_meta_converter_output_passes(meta_pair, cli):
    """Every tensor paired (Meta's names against transformers'), identical, q and k through Meta's
    rotary layout with the GQA head counts; params.json consistent with the config.json it wrote."""
    meta, hf = meta_pair
    result = cli("verify", meta, hf)
    lines = result.out.splitlines()
    assert (result.code, result.err, lines[2], lines[3]) == (0, "", "verdict: pass", "")
    assert lines[-5:-1] == [
        "type  tensors  status        max_abs  rel_rmse  sqnr_db  min_cosine",
        "BF16       21  21 identical        0         0      inf           1",
        "all        21  21 identical        0         0      inf           1",
        "rel_rmse = ||B - A|| / ||A||; sqnr_db = 10 log10(||A||^2 / ||B - A||^2); cosine = A.B / (||A|| ||B||); over float64 values, conventions undone",
    ]
    doc = json.loads(cli("verify", meta, hf, "--json").out)
    assert (doc["config"], doc["only_in_a"], doc["only_in_b"]) == ([], [], [])
    assert sorted(t["b_name"] for t in doc["tensors"] if t["transforms"] == ["unpermute_meta"]) == sorted(
        f"model.layers.{i}.self_attn.{p}_proj.weight" for i in (0, 1) for p in ("k", "q")
    )


def _meta_layout_kept(weights, meta):
    """The converter skipped the permutation of layer 1's q: Meta's rows as stored."""
    weights["model.layers.1.self_attn.q_proj.weight"] = meta["layers.1.attention.wq.weight"]


def _permuted_again(weights, meta):
    """The converter permuted layer 1's k twice (transformers' permutation, 2 KV heads)."""
    k = weights["model.layers.1.self_attn.k_proj.weight"]
    weights["model.layers.1.self_attn.k_proj.weight"] = k.reshape(2, 8, 2, 64).transpose(1, 2).reshape(32, 64)


CONVERTER_FAULTS = {
    "q not permuted": (
        _meta_layout_kept,
        "model.layers.1.self_attn.q_proj.weight (layers.1.attention.wq.weight in A): equal to A's rows as Meta stores them (B's file does not permute the rows: the converter skipped it)",
    ),
    "k permuted twice": (
        _permuted_again,
        "model.layers.1.self_attn.k_proj.weight (layers.1.attention.wk.weight in A): equal to A's after the rotary permutation is applied twice (B's file permutes the rows twice)",
    ),
}


@pytest.mark.parametrize("fault", CONVERTER_FAULTS, ids=str)
def test_a_faulty_meta_conversion_is_named(fault, meta_pair, tmp_path, cli):
    """The converter's output with one tensor as a faulty converter would have written it."""
    import shutil

    import safetensors.torch
    import torch

    meta, hf = meta_pair
    edit, finding = CONVERTER_FAULTS[fault]
    folder = str(tmp_path / "hf")
    shutil.copytree(hf, folder)
    weights = safetensors.torch.load_file(os.path.join(hf, "model.safetensors"))
    edit(weights, torch.load(os.path.join(meta, "consolidated.00.pth")))
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in weights.items()},
        os.path.join(folder, "model.safetensors"),
        metadata={"format": "pt"},
    )
    result = cli("verify", meta, folder)
    assert (result.code, result.out.splitlines()[2:5]) == (3, ["verdict: fail", f"  {finding}", ""])


@pytest.fixture(scope="module")
def mixtral_pair(tmp_path_factory, llama_cpp_converter):
    """A tiny Mixtral (4 experts) saved by transformers (one matrix per expert) and the F16 GGUF
    llama.cpp's converter writes from it (architecture llama, experts stacked in ffn_*_exps)."""
    import torch
    import transformers

    root = tmp_path_factory.mktemp("mixtral")
    config = transformers.MixtralConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.02) if parameter.dim() > 1 else parameter.uniform_(-0.5, 0.5)
    hf = str(root / "hf")
    model.save_pretrained(hf)
    sentencepiece_tokenizer(hf, config.vocab_size)
    gguf_path = str(root / "mixtral-f16.gguf")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.path.join(llama_cpp_converter, "gguf-py"), llama_cpp_converter]),
    }
    argv = [[hf, "--outtype", "f16", "--outfile", gguf_path]]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(argv)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return hf, gguf_path


def test_the_real_converters_stacked_experts_pass(mixtral_pair, cli):
    """Each expert's gate, up and down compared with its slice of the stacked tensor, at F16's noise;
    the router paired; no config field the GGUF's `llama` does not state reported."""
    hf, gguf_path = mixtral_pair
    result = cli("verify", hf, gguf_path)
    lines = result.out.splitlines()
    assert (result.code, result.err, lines[:4]) == (
        0,
        "",
        ["A: hf (41 tensors, 355.25 KiB)", "B: mixtral-f16.gguf (41 tensors, 179.25 KiB)", "verdict: pass", ""],
    )
    doc = json.loads(cli("verify", hf, gguf_path, "--json").out)
    stacked = sorted((t["a_name"], t["b_name"]) for t in doc["tensors"] if t["transforms"] == ["experts_stacked"])
    assert stacked == sorted(
        (f"model.layers.{i}.block_sparse_moe.experts.{e}.{w}.weight", f"blk.{i}.ffn_{part}_exps.weight[{e}]")
        for i in (0, 1)
        for e in range(4)
        for w, part in (("w1", "gate"), ("w2", "down"), ("w3", "up"))
    )
    assert {t["status"] for t in doc["tensors"] if t["transforms"] == ["experts_stacked"]} == {"same"}
    routers = [t["b_name"] for t in doc["tensors"] if t["a_name"].endswith("block_sparse_moe.gate.weight")]
    assert (routers, doc["config"]) == (["blk.0.ffn_gate_inp.weight", "blk.1.ffn_gate_inp.weight"], [])
