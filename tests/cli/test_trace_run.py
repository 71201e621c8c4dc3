"""`trace --run`: every statistic equals the same quantity computed here, independently, with
torch forward hooks on the model transformers loads (tiny random Llama, GPT-2 and BERT written
with save_pretrained, a word-level tokenizer beside them); a real trained model (Gemma-3 270M,
Q4_K_M GGUF) whose logit lens ends on its own greedy next token; refusals as one line."""

from __future__ import annotations

import json
import os
import shutil
import struct

import pytest

import checkpoints
from llm_anatomy.analysis import trace_run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXT = "w5 w17 w3 w42 w9 w1"
# family -> builder, vocabulary, the module whose output enters the first layer, the layer
# list, each layer's attention module (relative), the final norm ("" for an encoder).
FAMILIES = {
    "llama": (checkpoints.tiny_llama, 128, "model.embed_tokens", "model.layers", "self_attn", "model.norm"),
    "gpt2": (checkpoints.tiny_gpt2, 100, "transformer.drop", "transformer.h", "attn", "transformer.ln_f"),
    "bert": (checkpoints.tiny_bert, 100, "embeddings", "encoder.layer", "attention.self", ""),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folders = {}
    for family, (builder, vocab, *_) in FAMILIES.items():
        folder = str(tmp_path_factory.mktemp(f"run-{family}"))
        builder(folder, seed=3)
        checkpoints.word_tokenizer(folder, vocab)
        folders[family] = folder
    return folders


def _hooked_reference(folder: str, family: str, text: str) -> dict:
    """The statistics computed with torch hooks on the model from_pretrained loads."""
    _, _, embeddings, layers_path, attention, norm_path = FAMILIES[family]
    model = checkpoints.reference_model(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(text)["input_ids"]
    streams, maps = [], []
    model.get_submodule(embeddings).register_forward_hook(lambda m, a, out: streams.append(out[0]))
    for layer in model.get_submodule(layers_path):
        layer.register_forward_hook(lambda m, a, out: streams.append((out[0] if isinstance(out, tuple) else out)[0]))
        layer.get_submodule(attention).register_forward_hook(lambda m, a, out: maps.append(out[1][0]))
    outputs = {}

    def first_tensor(value):
        if isinstance(value, torch.Tensor):
            return value
        values = list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, tuple) else []
        return next((t for t in map(first_tensor, values) if t is not None), None)

    def keep_first(path):
        def hook(module, args, out):  # returns None: a hook's result would replace the output
            outputs.setdefault(path, first_tensor(out))

        return hook

    for path, module in model.named_modules():
        module.register_forward_hook(keep_first(path))
    with torch.no_grad():
        output = model(input_ids=torch.tensor([ids]))
        modules = {}
        for path, module in model.named_modules():
            x = outputs.get(path)
            if x is None:
                modules[path] = (type(module).__name__, None, None, None, None)
                continue
            per_token = (
                [x[0, t].double().pow(2).sum().sqrt().item() for t in range(len(ids))]
                if x.dim() == 3 and x.shape[:2] == (1, len(ids))
                else None
            )
            modules[path] = (
                type(module).__name__,
                list(x.shape),
                per_token and per_token[-1],
                per_token and sum(per_token) / len(per_token),
                x.double().abs().max().item(),
            )
        layers = []
        for index, h in enumerate(streams):
            h = h.double()
            flat = h.flatten()
            order = sorted(range(flat.numel()), key=lambda i: -abs(flat[i].item()))[:3]
            magnitudes = sorted(abs(v) for v in flat.tolist())
            row = {
                "norm_last": h[-1].pow(2).sum().sqrt().item(),
                "norm_mean": sum(h[p].pow(2).sum().sqrt().item() for p in range(h.shape[0])) / h.shape[0],
                "median_abs": magnitudes[(len(magnitudes) - 1) // 2],
                "top": [(flat[i].item(), i // h.shape[1], i % h.shape[1]) for i in order],
                "entropy": [],
                "lens": [],
            }
            if index:
                p = maps[index - 1].double()
                terms = torch.where(p > 0, -p * torch.log(p), torch.zeros_like(p))
                row["entropy"] = terms.sum(-1).mean(-1).tolist()
            if norm_path:
                logits = model.get_output_embeddings()(model.get_submodule(norm_path)(streams[index][-1]))
                probabilities = torch.softmax(logits.double(), -1)
                values, indices = probabilities.sort(descending=True)
                row["lens"] = list(zip(indices[:5].tolist(), values[:5].tolist()))
            layers.append(row)
    greedy = None
    if norm_path:
        probabilities = torch.softmax(output.logits[0, -1].double(), -1)
        values, indices = probabilities.sort(descending=True)
        greedy = list(zip(indices[:5].tolist(), values[:5].tolist()))
    return {
        "ids": ids,
        "tokens": [tokenizer.decode([i]) for i in ids],
        "layers": layers,
        "greedy": greedy,
        "class": type(model).__name__,
        "modules": modules,
    }


def _approx(value):
    return None if value is None else pytest.approx(value, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_statistics_equal_torch_hooks(models, family, cli):
    torch.manual_seed(0)
    result = cli("trace", models[family], "--run", TEXT, "--json")
    assert (result.code, result.err) == (0, "")
    data = json.loads(result.out)
    reference = _hooked_reference(models[family], family, TEXT)
    assert data["model_class"] == reference["class"]
    assert data["token_ids"] == reference["ids"] and data["tokens"] == reference["tokens"]
    assert data["layers_path"] == FAMILIES[family][3]
    assert [layer["after"] for layer in data["layers"]] == ["embeddings", "0", "1"]
    for ours, theirs in zip(data["layers"], reference["layers"], strict=True):
        for key in ("norm_last", "norm_mean", "median_abs"):
            assert ours[key] == _approx(theirs[key]), key
        assert [(a["value"], a["position"], a["channel"]) for a in ours["top"]] == [
            (_approx(v), p, c) for v, p, c in theirs["top"]
        ]
        assert ours["entropy"] == _approx(theirs["entropy"])
        assert [(t["token_id"], t["probability"]) for t in ours["lens"]] == [(i, _approx(p)) for i, p in theirs["lens"]]
    assert [m["path"] for m in data["modules"]] == list(reference["modules"])
    for m in data["modules"]:
        class_name, shape, norm_last, norm_mean, max_abs = reference["modules"][m["path"]]
        assert (m["class"], m["shape"]) == (class_name, shape)
        assert (m["norm_last"], m["norm_mean"], m["max_abs"]) == (
            _approx(norm_last),
            _approx(norm_mean),
            _approx(max_abs),
        ), m["path"]
    assert len(data["layers"][1]["entropy"]) == {"llama": 4, "gpt2": 2, "bert": 2}[family]
    if reference["greedy"] is None:
        assert (data["prediction"], data["lens_norm"], data["notes"]) == (
            None,
            None,
            ["no logit lens: BertModel is not a causal language model"],
        )
    else:
        assert [(t["token_id"], t["probability"]) for t in data["prediction"]] == [
            (i, _approx(p)) for i, p in reference["greedy"]
        ]
        # The lens after the last layer is the model's own output: same norm, same head.
        assert data["layers"][-1]["lens"] == data["prediction"]
        norm_class = type(checkpoints.reference_model(models[family]).get_submodule(FAMILIES[family][5])).__name__
        assert (data["lens_norm"], data["lens_norm_class"], data["lens_head"]) == (
            FAMILIES[family][5],
            norm_class,
            "lm_head",
        )


def test_text_output(models, cli):
    result = cli("trace", models["llama"], "--run", TEXT)
    assert (result.code, result.err) == (0, "")
    data = json.loads(cli("trace", models["llama"], "--run", TEXT, "--json").out)
    lines = result.out.splitlines()
    assert (
        lines[0]
        == f"LlamaForCausalLM forward on 6 tokens with its weights (CPU, float32, {data['params']:,} parameters, transformers {transformers.__version__})"
    )
    assert lines[1] == 'tokens: 0:"w5"  1:"w17"  2:"w3"  3:"w42"  4:"w9"  5:"w1"'
    assert (
        lines[2]
        == "residual stream entering model.layers.0 (embeddings) and leaving each of model.layers.0-1 (LlamaDecoderLayer): L2 norms over the hidden size, at the last position and averaged over positions"
    )
    assert (
        lines[3].split()
        == "after norm last norm mean median |h| largest h (position:channel) max/median entropy min entropy mean lens top-1".split()
    )
    for line, layer in zip(lines[4:7], data["layers"], strict=True):
        top = ", ".join(f"{a['value']:.4g} @{a['position']}:{a['channel']}" for a in layer["top"])
        entropy = (
            [f"{min(layer['entropy']):.3f}", f"{sum(layer['entropy']) / 4:.3f}"] if layer["entropy"] else ["-", "-"]
        )
        lens = layer["lens"][0]
        expected = [
            layer["after"],
            f"{layer['norm_last']:.4g}",
            f"{layer['norm_mean']:.4g}",
            f"{layer['median_abs']:.4g}",
            *top.split(),
            f"{abs(layer['top'][0]['value']) / layer['median_abs']:.1f}",
            *entropy,
            f'"{lens["text"]}"',
            f"{lens['probability']:.3f}",
        ]
        assert line.split() == expected
    assert lines[7:9] == [
        "",
        "attention entropy per head, nats, averaged over query positions (0: each query attends to one key; a uniform spread over n keys: ln n)",
    ]
    assert lines[9].split() == ["layer", "h0", "h1", "h2", "h3"]
    assert [line.split() for line in lines[10:12]] == [
        [layer["after"]] + [f"{e:.3f}" for e in layer["entropy"]] for layer in data["layers"][1:]
    ]
    assert lines[12:14] == [
        "",
        'logit lens at the last position ("w1"): model.norm (LlamaRMSNorm) then lm_head applied to the stream after each layer; top 5 next tokens with probabilities',
    ]
    assert [line.split() for line in lines[15:18]] == [
        [layer["after"]] + [x for t in layer["lens"] for x in (f'"{t["text"]}"', f"{t['probability']:.3f}")]
        for layer in data["layers"]
    ]
    assert lines[18:] == [
        "",
        "the model's own next token: " + "  ".join(f'"{t["text"]}" {t["probability"]:.3f}' for t in data["prediction"]),
    ]


def test_depth_adds_the_module_tree(models, cli):
    plain = cli("trace", models["gpt2"], "--run", TEXT).out
    result = cli("trace", models["gpt2"], "--run", TEXT, "--depth", "2")
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith(plain)
    modules = {m["path"]: m for m in json.loads(cli("trace", models["gpt2"], "--run", TEXT, "--json").out)["modules"]}

    def row(label, path):
        m = modules[path]
        if not m["calls"]:
            return [*label.split(), "(not", "called)"]
        shape = "[" + ", ".join(map(str, m["shape"])) + "]"
        return [*label.split(), *shape.split(), *(f"{m[k]:.4g}" for k in ("norm_last", "norm_mean", "max_abs"))]

    expected = [
        row("GPT2LMHeadModel", ""),
        row("├── transformer: GPT2Model", "transformer"),
        row("│ ├── wte: Embedding", "transformer.wte"),
        row("│ ├── wpe: Embedding", "transformer.wpe"),
        row("│ ├── drop: Dropout", "transformer.drop"),
        row("│ ├── h: ModuleList", "transformer.h"),
        row("│ └── ln_f: LayerNorm", "transformer.ln_f"),
        row("└── lm_head: Linear", "lm_head"),
    ]
    tail = result.out[len(plain) :].splitlines()
    assert tail[:3] == [
        "",
        "each module's output (its first tensor, at its first call): L2 norms over the last dimension at the last token and averaged over tokens, and the largest |x|",
        "module                      output        norm last  norm mean  max |x|",
    ]
    assert [line.split() for line in tail[3:]] == expected


def test_bert_says_why_there_is_no_lens(models, cli):
    out = cli("trace", models["bert"], "--run", TEXT).out
    assert "logit lens at" not in out and "own next token" not in out and "lens top-1" in out
    assert out.endswith("\nnote: no logit lens: BertModel is not a causal language model\n")


# ---------------------------------------------------------------- refusals: one line


def _sparse_safetensors(folder: str, elements: int) -> str:
    """A safetensors file whose header declares one float32 tensor of `elements`, its data a
    hole (a sparse file: nothing is written, so the test costs no disk)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [elements], "data_offsets": [0, 4 * elements]}}).encode()
    path = os.path.join(folder, "model.safetensors")
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + 4 * elements)
    return path


def test_refuses_a_model_above_the_limit(models, tmp_path, cli, monkeypatch):
    shutil.copy(os.path.join(models["llama"], "config.json"), tmp_path)
    _sparse_safetensors(str(tmp_path), 1_250_000_001)
    monkeypatch.setattr(trace_run, "mem_available", lambda: None)
    result = cli("trace", tmp_path, "--run", TEXT)
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {tmp_path.name}: expected a model whose float32 weights fit trace --run's limit of 4,000,000,000 bytes (4 GB), "
        "found 1,250,000,001 parameters x 4 bytes = 5,000,000,004 bytes; trace without --run shows the forward pass of any size from the config alone\n"
    )


def test_a_model_above_the_limit_is_refused_before_anything_loads(models, tmp_path):
    """In a fresh interpreter under the hostile-input bounds (500 MB): the 5 GB of weights are
    never read, and nothing is written into the model folder."""
    from hostile import assert_refused, run_cli, snapshot

    shutil.copy(os.path.join(models["llama"], "config.json"), tmp_path)
    _sparse_safetensors(str(tmp_path), 1_250_000_001)
    before = snapshot(tmp_path)
    outcome = run_cli("trace", tmp_path, "--run", TEXT)
    assert_refused(outcome, (1,))
    assert "found 1,250,000,001 parameters x 4 bytes = 5,000,000,004 bytes; " in outcome.err
    assert snapshot(tmp_path) == before


def test_the_limit_is_half_the_available_memory_when_that_is_less(models):
    from llm_anatomy.locate import open_catalog

    catalog = open_catalog(models["llama"])
    trace_run.check_size(catalog, 2 * 4 * catalog.total_numel)  # exactly fits
    with pytest.raises(trace_run.AnatomyError) as refused:
        trace_run.check_size(catalog, 2 * 4 * catalog.total_numel - 2)
    limit = 4 * catalog.total_numel - 1
    assert (
        refused.value.expected
        == f"a model whose float32 weights fit trace --run's limit of {limit:,} bytes (half of MemAvailable {2 * limit:,} bytes)"
    )


def test_refuses_a_model_without_a_tokenizer(models, tmp_path, cli):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(models["llama"], folder, ignore=shutil.ignore_patterns("tokenizer*"))
    result = cli("trace", folder, "--run", TEXT)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {folder}: expected the model's own tokenizer (tokenizer.json, tokenizer_config.json, tokenizer.model, spiece.model, vocab.json, vocab.txt), found none of them; trace --run tokenizes with the model's tokenizer; copy its tokenizer files next to config.json\n"
    )


@pytest.mark.parametrize(
    "name", ["tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt"]
)
def test_refuses_a_2gb_tokenizer_file_unread(models, tmp_path, name):
    """Hostile report R9: a 2 GB sparse tokenizer file beside a tiny model, which transformers
    would read whole (2.4 GB), is refused by its size, in a fresh interpreter under the
    hostile-input bounds (500 MB); nothing is written into the folder."""
    from hostile import assert_refused, run_cli, snapshot

    folder = tmp_path / "model"
    shutil.copytree(models["llama"], folder)
    with open(folder / name, "ab") as handle:  # a hole: no disk used
        handle.truncate(2 * 2**30)
    before = snapshot(folder)
    outcome = run_cli("trace", folder, "--run", TEXT)
    assert_refused(
        outcome,
        (1,),
        f"llm-anatomy: {folder}/{name}: expected a tokenizer file of at most 134217728 bytes, found 2147483648 bytes; real tokenizers are under 40 MB; fix or re-download {name}",
    )
    assert snapshot(folder) == before


@pytest.mark.parametrize("kind", ["llama", "gguf"])
def test_refuses_a_2gb_generation_config_unread(models, tmp_path, kind):
    """from_pretrained reads generation_config.json whole, beside a GGUF too: a 2 GB sparse one
    is refused by its size, under the hostile-input bounds; nothing is written into the folder."""
    from hostile import assert_refused, run_cli, snapshot

    folder = tmp_path / "model"
    if kind == "gguf":
        folder.mkdir()
        target = checkpoints.llama_gguf(models["llama"], str(folder / "model.gguf"))
    else:
        shutil.copytree(models["llama"], folder)
        target = folder
    with open(folder / "generation_config.json", "ab") as handle:  # a hole: no disk used
        handle.truncate(2 * 2**30)
    before = snapshot(folder)
    outcome = run_cli("trace", target, "--run", TEXT)
    assert_refused(
        outcome,
        (1,),
        f"llm-anatomy: {folder}/generation_config.json: expected a generation config of at most 1048576 bytes, found 2147483648 bytes; real ones are under 4 KB; fix, re-download or delete generation_config.json",
    )
    assert snapshot(folder) == before


def test_tokenizer_files_at_the_cap_are_read(models, tmp_path, cli, monkeypatch):
    """The cap itself is allowed: a tokenizer.json of exactly MAX_TOKENIZER_BYTES loads."""
    folder = tmp_path / "model"
    shutil.copytree(models["llama"], folder)
    monkeypatch.setattr(trace_run, "MAX_TOKENIZER_BYTES", os.path.getsize(folder / "tokenizer.json"))
    assert cli("trace", folder, "--run", TEXT).code == 0
    monkeypatch.setattr(trace_run, "MAX_TOKENIZER_BYTES", os.path.getsize(folder / "tokenizer.json") - 1)
    assert cli("trace", folder, "--run", TEXT).err.startswith(
        f"llm-anatomy: {folder}/tokenizer.json: expected a tokenizer file of at most "
    )


def test_refuses_a_fifo_in_place_of_a_tokenizer_file(models, tmp_path):
    """transformers would wait on it for a writer forever."""
    from hostile import assert_refused, run_cli

    folder = tmp_path / "model"
    shutil.copytree(models["llama"], folder)
    os.remove(folder / "tokenizer.json")
    os.mkfifo(folder / "tokenizer.json")
    outcome = run_cli("trace", folder, "--run", TEXT, timeout=60)
    assert_refused(
        outcome,
        (1,),
        f"llm-anatomy: {folder}/tokenizer.json: expected a regular file, found a fifo; trace --run reads the model's tokenizer files; put the file itself there",
    )


def test_refuses_a_gguf_without_a_vocabulary(models, tmp_path, cli):
    path = checkpoints.llama_gguf(models["llama"], str(tmp_path / "model.gguf"), vocab_tokens=False)
    result = cli("trace", path, "--run", TEXT)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {path}: expected the model's own tokenizer (the tokenizer.ggml.model metadata and its vocabulary), found none; trace --run tokenizes with the model's tokenizer; use a GGUF converted with its vocabulary\n"
    )


def test_refuses_a_config_without_weights(models, tmp_path, cli):
    shutil.copy(os.path.join(models["llama"], "config.json"), tmp_path)
    result = cli("trace", tmp_path, "--run", TEXT)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {tmp_path.name}: expected weights to run, found none (only a config); trace without --run needs only the config\n"
    )


def test_refuses_weights_transformers_cannot_load(models, tmp_path, cli):
    """Meta's original layout (consolidated.00.pth, params.json) is read by the header-only
    views, but from_pretrained knows no such folder."""
    folder = checkpoints.meta_checkpoint(models["llama"], str(tmp_path / "meta"))
    shutil.copy(os.path.join(models["llama"], "tokenizer.json"), folder)
    result = cli("trace", folder, "--run", TEXT)
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("llm-anatomy: meta: expected weights transformers loads without remote code, found ")
    assert (
        result.err.endswith("; trace --run runs models transformers can load from local files\n")
        and result.err.count("\n") == 1
    )


def test_refuses_a_file_of_unknown_format(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello\n")
    result = cli("trace", "notes.txt", "--run", TEXT)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == "llm-anatomy: notes.txt: expected a checkpoint (safetensors, gguf, torch), found a file starting with b'hello\\n'; the file is empty, truncated or of an unsupported format\n"
    )


@pytest.mark.parametrize(
    "args, found",
    [
        (("--run", ""), "0 tokens; give a non-empty text"),
        (
            ("--run", " ".join(["w1"] * (trace_run.MAX_TOKENS + 1))),
            f"{trace_run.MAX_TOKENS + 1} tokens; give a shorter text",
        ),
    ],
)
def test_refuses_texts_of_no_or_too_many_tokens(models, cli, args, found):
    result = cli("trace", models["gpt2"], *args)
    assert (result.code, result.out) == (2, "")
    assert (
        result.err
        == f"llm-anatomy: {os.path.basename(models['gpt2'])}: expected a --run text of 1 to {trace_run.MAX_TOKENS} tokens, found {found}\n"
    )


@pytest.mark.parametrize(
    "option",
    [
        ("--seq", "8"),
        ("--batch", "2"),
        ("--decode",),
        ("--decode", "--context", "4"),
        ("--node", "model"),
        ("--device", "H100"),
    ],
)
def test_options_of_the_config_only_trace_do_not_go_with_run(models, cli, option):
    result = cli("trace", models["gpt2"], "--run", TEXT, *option)
    assert (result.code, result.out) == (2, "")
    given = " and ".join(o for o in option if o.startswith("--"))
    assert (
        result.err
        == f"llm-anatomy: {models['gpt2']}: expected --run without the options of the config-only trace, found {given}; --run runs one text, as many tokens long as it is, through the whole model on CPU\n"
    )


# ---------------------------------------------------------------- a real trained model


GEMMA_PROMPT = "The capital of France is Paris. The capital of Germany is"


def test_real_gemma3_logit_lens_ends_on_its_greedy_token(gemma3_270m, cli):
    """Gemma-3 270M (Q4_K_M, dequantized by transformers): the lens after the last layer names
    the token greedy decoding picks, computed here from the model's own logits, and that token
    is the right answer."""
    result = cli("trace", gemma3_270m, "--run", GEMMA_PROMPT, "--json")
    assert (result.code, result.err) == (0, "")
    data = json.loads(result.out)
    folder, name = os.path.split(gemma3_270m)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval()
    ids = tokenizer(GEMMA_PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = model.generate(ids, max_new_tokens=1, do_sample=False)[0, -1].item()
    assert data["token_ids"] == ids[0].tolist()
    assert data["layers"][-1]["lens"][0]["token_id"] == greedy == data["prediction"][0]["token_id"]
    assert tokenizer.decode([greedy]) == " Berlin"
    assert (data["layers_path"], data["lens_norm"], data["lens_head"], len(data["layers"])) == (
        "model.layers",
        "model.norm",
        "lm_head",
        19,
    )
    assert all(len(layer["entropy"]) == 4 for layer in data["layers"][1:])


# ---------------------------------------------------------------- the report's section


def test_report_run_section(models, tmp_path, cli):
    import html
    import re

    page_file = tmp_path / "page.html"
    result = cli("report", models["llama"], "--run", TEXT, "-o", page_file)
    assert (result.code, result.err) == (0, "")
    data = json.loads(cli("trace", models["llama"], "--run", TEXT, "--json").out)
    page = page_file.read_text(encoding="utf-8")
    section = re.search(r'<section id="run">(.*?)</section>', page).group(1)
    assert html.unescape(re.search(r'<p class="note">(.*?)</p>', section).group(1)) == (
        "LlamaForCausalLM ran its weights on CPU (float32) over 6 tokens of “w5 w17 w3 w42 w9 w1”, tokenized by its own tokenizer. "
        "Below: the residual stream entering the first layer (emb) and leaving each layer, and each layer's attention entropy (nats, averaged over query positions)."
    )
    assert [html.unescape(t) for t in re.findall(r"<h3>(.*?)</h3>", section)] == [
        "Residual-stream L2 norm by layer",
        "Attention entropy by layer",
        "Largest activations and the logit lens",
    ]
    rows = [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", section)
    ]
    expected = [
        [
            "emb" if layer["after"] == "embeddings" else layer["after"],
            ", ".join(f"{a['value']:.4g} @{a['position']}:{a['channel']}" for a in layer["top"]),
            f"{abs(layer['top'][0]['value']) / layer['median_abs']:.1f}",
            "  ".join(f'"{t["text"]}" {t["probability"]:.3f}' for t in layer["lens"]),
        ]
        for layer in data["layers"]
    ]
    assert rows[-3:] == expected
    assert "the forward pass section ran the model&#x27;s weights.</footer>" in page
    assert re.search(r'<a href="#run">', page)


def test_report_run_section_of_an_encoder_in_chinese(models, tmp_path, cli):
    import re

    page_file = tmp_path / "page.html"
    assert cli("report", models["bert"], "--run", TEXT, "-o", page_file, "--lang", "zh").code == 0
    section = re.search(r'<section id="run">(.*?)</section>', page_file.read_text(encoding="utf-8")).group(1)
    assert section.startswith("<h2>在一段文本上的前向传播</h2>")
    assert (
        "logit lens" not in section.split("</th>")[-2]
        and "note: no logit lens: BertModel is not a causal language model" in section
    )
