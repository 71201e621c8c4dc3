"""`report`: one self-contained HTML page: valid markup, no external URL, the real numbers
and shapes, hostile names escaped, never written into the model folder, small for 7B."""

import html
import json
import ast
import os
import re
from html.parser import HTMLParser

import html5lib
import pytest

import checkpoints
from conftest import imported_by
from llm_anatomy import glossary
from llm_anatomy.replicas import published_config, write_layout


@pytest.fixture(autouse=True)
def _english_locale(monkeypatch):
    """The page's language follows the locale; these tests expect English unless they say."""
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Checker(HTMLParser):
    """Collects what the tests look at: tag balance, URL-bearing attributes, text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.links, self.text, self.tags = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [
            value for name, value in attrs if name in ("src", "href", "xlink:href", "action", "srcset", "poster")
        ]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href", "xlink:href")]

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page):
    checker = Checker()
    checker.feed(page)
    checker.close()
    return checker


def assert_valid_and_offline(page):
    assert page.startswith("<!DOCTYPE html>\n<html")
    html5lib.HTMLParser(strict=True).parse(page)  # raises on the first HTML5 parse error
    checker = parse(page)
    assert checker.problems == []
    assert checker.stack == []
    assert [t for t in checker.tags if t in ("html", "head", "body", "main")] == ["html", "head", "body", "main"]
    # Only in-page anchors; no scheme, no protocol-relative URL, no stylesheet import.
    assert all(link.startswith("#") for link in checker.links), checker.links
    for forbidden in ("http://", "https://", "@import", "url(", "<link", "<iframe", "<object", "<embed"):
        assert forbidden not in page.lower(), forbidden
    return checker


def render(cli, model, tmp_path, *extra):
    out = tmp_path / "report.html"
    result = cli("report", model, "-o", out, *extra)
    assert result.code == 0, result.err
    page = out.read_text(encoding="utf-8")
    assert result.out == f"wrote {out} ({size_text(len(page.encode()))})\n"
    return page


def tensor_table(page):
    start = page.index('id="tensor-table"')
    return page[start : page.index("</table>", start)]


def size_text(nbytes):
    from llm_anatomy.render.text import human_bytes

    return human_bytes(nbytes)


def test_report_of_tiny_llama_is_valid_offline_html_with_the_real_numbers(llama_dir, tmp_path, cli):
    page = render(cli, llama_dir, tmp_path)
    checker = assert_valid_and_offline(page)
    text = "".join(checker.text)
    # 128 x 64 embedding and head, 2 layers of (q 64x64, k 32x64, v 32x64, o 64x64,
    # gate/up 96x64, down 64x96, two norms of 64), final norm 64.
    total = 2 * 128 * 64 + 2 * (64 * 64 * 2 + 32 * 64 * 2 + 96 * 64 * 3 + 64 * 2) + 64
    assert f"{total:,}" in text
    assert "<dt>Layers</dt><dd>2</dd>" in page
    assert "× 2 layers" in text
    # The diagram rows: names and the real shapes, heads from the config.
    for row in (
        "q_proj  [64, 64]",
        "k_proj  [32, 64]",
        "v_proj  [32, 64]",
        "o_proj  [64, 64]",
        "gate_proj  [96, 64]",
        "up_proj    [96, 64]",
        "down_proj  [64, 96]",
        "input_layernorm  [64]",
        "post_attention_layernorm  [64]",
        "model.embed_tokens  [128, 64]",
        "lm_head  [128, 64]",
    ):
        assert f">{row}</text>" in page, row
    assert "GQA: 4 heads · 2 KV heads · head_dim 16" in text
    # Every tensor in the table, sortable by its raw count.
    assert tensor_table(page).count("<tr><td><code>") == 21
    assert tensor_table(page).count("<tr><td><code>model.<wbr>layers.<wbr>") == 18
    # The config, explained from the glossary.
    assert (
        f"<tr><td><code>hidden_size</code></td><td><code>64</code></td><td>{html.escape(glossary.explain('hidden_size', 64, 'en'))}</td></tr>"
        in page
    )
    assert '<td class="num" data-sort="8192">' in page  # embed_tokens: 128 x 64
    assert page.count("<svg") == 3  # diagram, components, layers


def test_report_in_chinese(llama_dir, tmp_path, cli):
    page = render(cli, llama_dir, tmp_path, "--lang", "zh")
    assert_valid_and_offline(page)
    assert '<html lang="zh">' in page
    assert "一个 Transformer 层" in page and "× 2 层" in page and "按组件" in page
    assert (
        f"<td><code>hidden_size</code></td><td><code>64</code></td><td>{html.escape(glossary.explain('hidden_size', 64, 'zh'))}</td>"
        in page
    )


def test_language_follows_the_locale_unless_given(llama_dir, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert '<html lang="zh">' in render(cli, llama_dir, tmp_path)
    assert '<html lang="en">' in render(cli, llama_dir, tmp_path, "--lang", "en")


def test_hostile_names_and_config_values_are_escaped(tmp_path, cli):
    import torch

    folder = tmp_path / "hostile"
    # The reader refuses control characters in names (tested elsewhere); markup is allowed.
    hostile = 'model.layers.0.<script>alert(1)</script>"&amp;.weight'
    checkpoints.safetensors_file(
        str(folder / "model.safetensors"), {hostile: torch.zeros(2, 2), "model.norm.weight": torch.zeros(2)}
    )
    (folder / "config.json").write_text(
        '{"model_type": "<img src=x onerror=alert(1)>", "note": "</style><b>\\u001b[31m"}'
    )
    page = render(cli, folder, tmp_path)
    assert_valid_and_offline(page)
    assert "<script>alert" not in page and "<img" not in page and "</style><b>" not in page
    assert "\x1b" not in page
    assert "model.<wbr>layers.<wbr>0.<wbr>&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;amp;.<wbr>weight" in page
    assert "&quot;&lt;/style&gt;&lt;b&gt;\\u001b[31m&quot;" in page  # as config.json spells it
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_refuses_to_write_into_the_model_folder(llama_dir, cli):
    before = sorted(os.listdir(llama_dir))
    target = llama_dir / "report.html"
    result = cli("report", llama_dir, "-o", target)
    assert result.code == 2
    assert result.err == (
        f"llm-anatomy: {target}: expected an output path outside the model folder, found a path inside {llama_dir}; "
        "pass -o with another folder; llm-anatomy never writes into a model folder\n"
    )
    assert sorted(os.listdir(llama_dir)) == before


def test_default_output_is_report_html_in_the_current_folder(llama_dir, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("report", llama_dir)
    assert result.code == 0, result.err
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert result.out == f"wrote report.html ({size_text(len(page.encode()))})\n"
    assert_valid_and_offline(page)


def test_tied_gpt2_shows_the_tied_head_and_its_layers(gpt2_dir, tmp_path, cli):
    page = render(cli, gpt2_dir, tmp_path)
    assert_valid_and_offline(page)
    assert "Output head: shares the embedding matrix (tied)" in page
    assert "× 2 layers" in page
    assert ">c_attn       [32, 96]</text>" in page  # GPT-2's Conv1D stores [in, out]
    assert ">c_attn.bias  [96]</text>" in page
    assert page.index(">transformer.wte  [100, 32]<") < page.index(">transformer.wpe  [64, 32]<")


@pytest.fixture(scope="session")
def llama2_7b_layout(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama2-7b")
    write_layout(str(folder), published_config("Llama-2-7b-chat-hf"), max_shard_bytes=10_000_000_000)
    return folder


def test_llama2_7b_report_is_under_2_mb(llama2_7b_layout, tmp_path, cli):
    page = render(cli, llama2_7b_layout, tmp_path)
    assert_valid_and_offline(page)
    assert len(page.encode()) < 2 * 1024 * 1024
    assert "6,738,415,616" in page
    assert "× 32 layers" in page
    assert re.search(r">q_proj  \[4096, 4096\]</text>", page)
    assert tensor_table(page).count("<tr><td><code>") == 291


def test_stats_plot_the_std_and_absmax_of_each_role_per_layer(llama_dir, tmp_path, cli):
    from safetensors.torch import load_file

    page = render(cli, llama_dir, tmp_path, "--stats")
    assert_valid_and_offline(page)
    assert page.count("<svg") == 5  # diagram, components, layers, std, absmax
    assert "and one streaming pass over its weights" in page
    weights = {}
    for shard in llama_dir.glob("*.safetensors"):
        weights.update(load_file(shard))
    for layer in (0, 1):
        for role in ("self_attn.q_proj", "mlp.down_proj"):
            tensor = weights[f"model.layers.{layer}.{role}.weight"].double()
            std = tensor.std(unbiased=False).item()
            absmax = tensor.abs().max().item()
            assert f"<title>{role} · {layer}: {std:.4g}</title>" in page
            assert f"<title>{role} · {layer}: {absmax:.4g}</title>" in page
    assert "No NaN, no Inf, and no value beyond 6 std in any tensor." in page


def test_stats_highlight_nan_inf_and_outliers(tmp_path, cli):
    import torch

    torch.manual_seed(0)
    tensors = {
        f"model.layers.{i}.self_attn.{p}.weight": torch.randn(16, 16)
        for i in (0, 1)
        for p in ("q_proj", "k_proj", "v_proj")
    }
    tensors["model.layers.1.self_attn.q_proj.weight"][3, 4] = float("nan")
    tensors["model.layers.0.self_attn.v_proj.weight"][0, 0] = float("inf")
    tensors["model.layers.0.self_attn.k_proj.weight"][5, 5] = 1000.0
    checkpoints.safetensors_file(str(tmp_path / "planted" / "model.safetensors"), tensors)
    page = render(cli, tmp_path / "planted", tmp_path, "--stats")
    assert_valid_and_offline(page)
    rows = re.findall(
        r'<tr class="(bad|warn)"><td><code>([^<]*(?:<wbr>[^<]*)*)</code></td><td class="num" data-sort="(\d+)">\d+</td><td class="num" data-sort="(\d+)">',
        page,
    )
    # NaN/Inf first (errors), then outliers (warnings); in name order within each.
    assert [(kind, name.replace("<wbr>", ""), nan, inf) for kind, name, nan, inf in rows] == [
        ("bad", "model.layers.0.self_attn.v_proj.weight", "0", "1"),
        ("bad", "model.layers.1.self_attn.q_proj.weight", "1", "0"),
        ("warn", "model.layers.0.self_attn.k_proj.weight", "0", "0"),
    ]
    assert "There is no readable config.json beside the weights" in page
    from llm_anatomy.analysis.summary import summarize
    from llm_anatomy.locate import open_catalog

    (finding,) = summarize(open_catalog(str(tmp_path / "planted"))).findings  # no config.json
    assert f'<li><span class="pill warn">!</span> {html.escape(finding.line())}</li>' in page


def test_bert_embedding_norm_belongs_to_the_embedding(bert_dir, tmp_path, cli):
    page = render(cli, bert_dir, tmp_path)
    assert_valid_and_offline(page)
    assert ">Final norm</text>" not in page  # BERT has none: its LayerNorm follows the embeddings
    embedding = page[page.index(">Embedding</text>") : page.index(">Self-attention (attention)</text>")]
    assert ">embeddings.LayerNorm              [32]</text>" in embedding  # padded to embeddings.token_type_embeddings
    assert ">Feed-forward network (intermediate, output)</text>" in page


def test_report_without_stats_imports_neither_numpy_nor_torch(llama_dir, tmp_path):
    code, loaded, out = imported_by(
        "report", llama_dir, "-o", tmp_path / "r.html", "--lang", "en", modules=("numpy", "torch", "transformers")
    )
    assert (code, loaded) == (0, [])
    assert out == f"wrote {tmp_path / 'r.html'} ({size_text((tmp_path / 'r.html').stat().st_size)})\n"


def test_tensor_table_of_a_huge_model_is_cut_with_a_note(llama_dir, tmp_path, cli, monkeypatch):
    from llm_anatomy.render import report

    monkeypatch.setattr(report, "TABLE_ROWS", 5)
    page = render(cli, llama_dir, tmp_path)
    assert_valid_and_offline(page)
    assert tensor_table(page).count("<tr><td><code>") == 5
    assert "The first 5 of 21 tensors, in name order; `llm-anatomy params MODEL` lists them all." in page


def test_gguf_and_meta_checkpoints_get_their_diagram(llama_dir, tmp_path, cli):
    gguf = checkpoints.llama_gguf(str(llama_dir), str(tmp_path / "tiny.gguf"))
    page = render(cli, gguf, tmp_path)  # beside a single weights file is fine
    assert_valid_and_offline(page)
    for row in (">attn_norm  [64]<", ">attn_q       [64, 64]<", ">ffn_down  [64, 96]<", ">output_norm  [64]<"):
        assert row in page, row
    result = cli("report", gguf, "-o", gguf)
    assert result.code == 2
    assert (
        result.err
        == f"llm-anatomy: {gguf}: expected an output path outside the model folder, found the weights file {gguf}; pass -o with another folder; llm-anatomy never writes into a model folder\n"
    )
    meta = checkpoints.meta_checkpoint(str(llama_dir), str(tmp_path / "meta"))
    page = render(cli, meta, tmp_path)
    assert (
        page.index(">wq  [64, 64]<")
        < page.index(">wk  [32, 64]<")
        < page.index(">wv  [32, 64]<")
        < page.index(">wo  [64, 64]<")
    )


def test_unreadable_tensors_are_listed_and_the_exit_status_says_so(llama_dir, tmp_path, cli, monkeypatch):
    from llm_anatomy.analysis import stats

    real = stats.weight_stats

    def with_one_error(catalog, **kwargs):
        report = real(catalog, **kwargs)
        line = "shard.safetensors: expected 256 bytes of model.norm.weight, found 100 (file truncated)"
        return stats.StatsReport(
            report.model, report.rows[1:], None, (("model.norm.weight", line),), report.tensors, report.nbytes
        )

    monkeypatch.setattr(stats, "weight_stats", with_one_error)
    out = tmp_path / "report.html"
    result = cli("report", llama_dir, "-o", out, "--stats")
    assert result.code == 1
    page = out.read_text(encoding="utf-8")
    assert (
        result.out
        == f"wrote {out} ({size_text(len(page.encode()))})\n1 tensor could not be read; the page lists it under Weight statistics\n"
    )
    assert_valid_and_offline(page)
    assert (
        '<h3>Tensors that could not be read</h3><ul class="findings"><li><span class="pill bad">!</span> shard.safetensors: expected 256 bytes'
        in page
    )


def test_no_layers_no_config_still_gives_a_page(tmp_path, cli):
    import torch

    path = checkpoints.safetensors_file(
        str(tmp_path / "plain.safetensors"),
        {"a.weight": torch.zeros(3, 4, dtype=torch.float16), "b.bias": torch.zeros(5)},
    )
    page = render(cli, path, tmp_path)
    assert_valid_and_offline(page)
    assert "No repeated layers were found in the tensor names, so there is no layer diagram." in page
    assert "There is no readable config.json beside the weights, so there is nothing to explain." in page
    assert "<dt>Parameters</dt><dd>17<small>17</small></dd>" in page
    assert page.count("<svg") == 1  # the component chart ("other")


def test_chart_axes_have_round_ticks_covering_the_data():
    from llm_anatomy.render.svg import linear_scale, log_scale

    assert linear_scale(0, 266_240).ticks == (0, 100_000, 200_000, 300_000)
    assert linear_scale(0, 202_383_360).ticks == (0, 50_000_000, 100_000_000, 150_000_000, 200_000_000, 250_000_000)
    assert linear_scale(-0.03, 0.021).ticks == (-0.04, -0.02, 0.0, 0.02, 0.04)
    assert linear_scale(0, 0).ticks == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # all-zero weights: an empty 0..1 axis
    assert log_scale(0.013, 1.2).ticks == (0.01, 0.1, 1.0, 10.0)
    assert log_scale(0.02, 0.09).ticks == (0.01, 0.02, 0.05, 0.1)  # a narrow range gets 2 and 5 as well


def test_experts_of_a_moe_layer_fold_into_one_row_each(tmp_path, cli):
    """Mixtral's layout: each expert projection shown once with its count, in compute order
    (w1, w3, w2), the router first; the box is titled as experts."""
    import torch

    from llm_anatomy.analysis.report import DiagramBlock, DiagramTensor, layer_diagram
    from llm_anatomy.locate import open_catalog

    tensors = {
        "model.embed_tokens.weight": torch.zeros(10, 4),
        "model.norm.weight": torch.zeros(4),
        "lm_head.weight": torch.zeros(10, 4),
    }
    for layer in range(2):
        prefix = f"model.layers.{layer}."
        tensors[prefix + "input_layernorm.weight"] = torch.zeros(4)
        tensors[prefix + "self_attn.q_proj.weight"] = torch.zeros(4, 4)
        tensors[prefix + "block_sparse_moe.gate.weight"] = torch.zeros(3, 4)
        for expert in range(3):
            for name, shape in (("w1", (6, 4)), ("w2", (4, 6)), ("w3", (6, 4))):
                tensors[prefix + f"block_sparse_moe.experts.{expert}.{name}.weight"] = torch.zeros(*shape)
    path = checkpoints.safetensors_file(str(tmp_path / "moe" / "model.safetensors"), tensors)
    diagram = layer_diagram(open_catalog(path))
    assert (diagram.layers, diagram.other) == (2, ())
    assert diagram.block("ffn") == DiagramBlock(
        "ffn",
        "block_sparse_moe",
        (
            DiagramTensor("block_sparse_moe.gate", (3, 4)),
            DiagramTensor("block_sparse_moe.experts.*.w1", (6, 4), 3),
            DiagramTensor("block_sparse_moe.experts.*.w3", (6, 4), 3),
            DiagramTensor("block_sparse_moe.experts.*.w2", (4, 6), 3),
        ),
    )
    page = render(cli, path, tmp_path)
    assert_valid_and_offline(page)
    rows = [
        ">Experts (block_sparse_moe)<",
        ">gate              [3, 4]<",
        ">experts.*.w1 × 3  [6, 4]<",
        ">experts.*.w3 × 3  [6, 4]<",
        ">experts.*.w2 × 3  [4, 6]<",
    ]
    assert [page.index(row) for row in rows] == sorted(page.index(row) for row in rows)


def _flow(folder, lang="en"):
    from llm_anatomy.analysis.report import build_report
    from llm_anatomy.locate import open_catalog
    from llm_anatomy.render.report import LABELS, diagram_flow

    report = build_report(open_catalog(str(folder)), lang)
    return diagram_flow(report.diagram, report.summary.architecture, LABELS[lang])


def test_bert_is_drawn_post_norm(bert_dir, tmp_path, cli):
    """BERT normalises after each residual sum (attention -> add -> LayerNorm), not before the block."""
    flow = _flow(bert_dir)
    assert [[b.title for b in r.boxes] for r in flow.repeated] == [
        ["Self-attention (attention)"],
        ["Feed-forward network (intermediate, output)"],
    ]
    assert [[(b.title, b.rows) for b in r.after] for r in flow.repeated] == [
        [("Norm (after ⊕)", ("attention.output.LayerNorm       [32]", "attention.output.LayerNorm.bias  [32]"))],
        [("Norm (after ⊕)", ("output.LayerNorm       [32]", "output.LayerNorm.bias  [32]"))],
    ]
    page = render(cli, bert_dir, tmp_path)
    assert_valid_and_offline(page)
    pluses = [m.start() for m in re.finditer('class="plus"', page)]
    first_norm = page.index(">attention.output.LayerNorm ")
    ffn = page.index(">Feed-forward network (intermediate, output)</text>")
    assert pluses[0] < first_norm < ffn < pluses[1] < page.index(">output.LayerNorm ")


def test_pre_norm_llama_keeps_its_norms_before_the_blocks(llama_dir):
    flow = _flow(llama_dir)
    assert [[b.title for b in r.boxes] for r in flow.repeated] == [
        ["Norm", "Self-attention (self_attn)"],
        ["Norm", "Feed-forward network (mlp)"],
    ]
    assert [r.after for r in flow.repeated] == [(), ()]


def _rwkv_gguf(path):
    """A GGUF of an architecture no transformers config is derived for (rwkv6)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "rwkv6")
    writer.add_block_count(2)
    for i in range(2):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(8, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.time_mix_key.weight", np.ones((8, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_report_names_its_architecture(llama_dir, tmp_path, cli):
    """From general.architecture even when no transformers config can be derived (rwkv6 here)."""
    page = render(cli, _rwkv_gguf(tmp_path / "rwkv.gguf"), tmp_path)
    assert "<dt>Architecture</dt><dd>rwkv6<small>general.architecture</small></dd>" in page
    page = render(cli, checkpoints.llama_gguf(str(llama_dir), str(tmp_path / "llama.gguf")), tmp_path)
    assert "<dt>Architecture</dt><dd>Llama<wbr>For<wbr>Causal<wbr>LM<small>llama</small></dd>" in page


# Three English words in a row, outside code: a sentence the Chinese page forgot to translate.
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{2,}:? [A-Za-z]{2,}:? [A-Za-z]{2,}\b")  # a list of names (a, b, c) is no sentence


class VisibleText(HTMLParser):
    """Visible text and the attributes a reader sees (placeholder, aria-label, title), outside
    <code>, <script>, <style> and the diagram's monospace tensor rows."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.texts = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.texts += [attrs[a] for a in ("placeholder", "aria-label") if attrs.get(a)]
        if tag not in VOID:
            self.stack.append((tag, attrs.get("class") or ""))

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if not any(tag in ("code", "script", "style") or "box-row" in cls for tag, cls in self.stack):
            self.texts.append(data)


def test_chinese_report_has_no_english_sentence_left(llama_dir, gpt2_dir, bert_dir, tmp_path, cli):
    """Every label and generated sentence under --lang zh: stats, tied head, findings, a config
    that cannot be derived, a config that contradicts the tensors."""
    broken = checkpoints.with_config(
        llama_dir,
        tmp_path / "broken",
        lambda c: c.update(intermediate_size=100, num_key_value_heads=3, rope_scaling={"rope_type": "wild"}),
    )
    lone = checkpoints.safetensors_file(
        str(tmp_path / "lone" / "w.safetensors"), {"model.layers.0.mlp.up_proj.weight": __import__("torch").zeros(6, 4)}
    )
    models = (
        (llama_dir, ("--stats",)),
        (gpt2_dir, ()),
        (bert_dir, ()),
        (broken, ()),
        (_rwkv_gguf(tmp_path / "rwkv.gguf"), ()),
        (lone, ()),
    )
    pages = [render(cli, folder, tmp_path, "--lang", "zh", *extra) for folder, extra in models]
    for page in pages:
        parser = VisibleText()
        parser.feed(page)
        english = [t for t in parser.texts if ENGLISH_RUN.search(t)]
        assert english == []
    assert "输出头与 transformer.wte.weight 绑定（tie_word_embeddings）：只存储并计数一次" in pages[1]
    assert (
        "config.json：RoPE 缩放类型应为本工具已知的一种（default, linear, dynamic, yarn, llama3, longrope, su, proportional），实际为 &#x27;wild&#x27;"
        in pages[3]
    )
    assert "注意力：按 config.json 推算，权重矩阵应有 28,672 个参数，张量中实际为 24,576" in pages[3]
    assert "rwkv.gguf：无法读取或推导出配置（英文原因见悬停提示），因此不做配置检查" in pages[4]
    assert "w.safetensors：旁边没有 config.json；配置检查和 KV 缓存需要它" in pages[5]


def test_every_kind_of_finding_and_note_has_a_chinese_sentence():
    """Each kind= the analyses give a Finding or Phrase is worded in report-labels.json's zh."""
    import llm_anatomy
    from llm_anatomy.render.report import LABELS

    kinds = set()
    for root, _, names in os.walk(os.path.dirname(llm_anatomy.__file__)):
        for name in names:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(root, name), encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
                # Finding(..., kind="implied") and Phrase(text, "kind", ...), however they are laid out.
                kinds |= {k.value.value for k in call.keywords if k.arg == "kind" and isinstance(k.value, ast.Constant)}
                if (
                    getattr(call.func, "id", None) == "Phrase"
                    and len(call.args) > 1
                    and isinstance(call.args[1], ast.Constant)
                ):
                    kinds.add(call.args[1].value)
    assert len(kinds) == 15
    assert kinds == set(LABELS["zh"]["sentences"])


def test_long_class_and_model_names_wrap_between_words(tmp_path, cli):
    """Qwen2MoeForCausalLM may wrap at Qwen2|Moe|For|Causal|LM, never inside a word: <wbr> at
    the word boundaries, and no CSS that breaks anywhere."""
    from llm_anatomy.render.html import asset, breakable

    assert breakable("Qwen2MoeForCausalLM") == "Qwen2<wbr>Moe<wbr>For<wbr>Causal<wbr>LM"
    assert breakable("GPT2LMHeadModel") == "GPT2LM<wbr>Head<wbr>Model"
    assert breakable("Meta-Llama-3.1-8B_instruct") == "Meta-<wbr>Llama-<wbr>3.1-<wbr>8B_<wbr>instruct"
    assert breakable("a<b>") == "a&lt;b&gt;"
    css = asset("report.css")
    assert "break-all" not in css and "anywhere" not in css


def test_trace_adds_the_forward_pass_with_the_numbers_of_trace(llama_dir, tmp_path, cli):
    """--trace: the forward pass section gives `trace`'s own totals and one column per layer."""
    page = render(cli, llama_dir, tmp_path, "--trace", "--lang", "en")
    assert_valid_and_offline(page)
    traced = json.loads(cli("trace", llama_dir, "--json").out)
    forward = page[page.index('<section id="forward">') :]
    forward = forward[: forward.index("</section>")]
    assert (
        f"One forward pass over input_ids [1, 256] on the meta device (LlamaForCausalLM, transformers {checkpoints.TRANSFORMERS_VERSION})"
        in forward
    )
    assert f'<td>Prefill FLOPs</td><td class="num">{traced["total_flops"]:,} ' in forward
    assert f'<td>Attention (q kᵀ and scores × v)</td><td class="num">{traced["attention_flops"]:,}</td>' in forward
    assert f'<td>Peak activation memory</td><td class="num">{traced["peak_activation_bytes"]:,} ' in forward
    assert forward.count("<svg") == 2 and forward.count(">0</text>") >= 2  # FLOPs and bytes, both from 0
    assert '<a href="#forward">Forward pass</a>' in page
    assert '<section id="forward">' not in render(cli, llama_dir, tmp_path, "--lang", "en")


def test_layer_costs_are_the_layer_s_flops_and_its_innermost_outputs():
    from llm_anatomy.analysis.trace import AttentionCall, TensorMeta, Trace, TracedModule, layer_costs

    def module(path, flops=0, out=0):
        return TracedModule(path, "M", 0, 1, (), (), flops, out)

    modules = (
        module(""),
        module("layers"),
        module("layers.0", 100, 8),
        module("layers.0.attn", 60, 8),
        module("layers.0.attn.q", 30, 16),
        module("layers.0.mlp", 40, 4),
        module("layers.1", 90, 8),
        module("layers.1.mlp", 90, 2),
        module("norm", 0, 8),
    )
    scores = TensorMeta((1, 2, 3, 3), "float32")
    call = AttentionCall("layers.0.attn", scores, scores, scores, scores, 10)
    trace = Trace("m", "M", "5", 1, 3, 0, modules, 190, 0, "float32", (call,), (), 0, None, None, None, None, "")
    assert [tuple(c) for c in layer_costs(trace)] == [(0, 100, 16 + 4 + 18 * 4), (1, 90, 2)]


def _forward_section(page):
    forward = page[page.index('<section id="forward">') :]
    return forward[: forward.index("</section>")]


def test_chinese_forward_pass_formulas_are_in_chinese(llama_dir, tmp_path, cli):
    """--trace --lang zh: the formulas column is worded from the zh table, numbers as in English."""
    forward = _forward_section(render(cli, llama_dir, tmp_path, "--trace", "--lang", "zh"))
    parser = VisibleText()
    parser.feed(forward)
    assert [t for t in parser.texts if ENGLISH_RUN.search(t)] == []
    assert "<td>1 x 256 个 token，FlopCounterMode 计数</td>" in forward
    assert "<td>2 层 x 2 x 批量 1 x 头数 4 x 查询 256 x 键 256 x (head_dim 16 + 16) = 33,554,432</td>" in forward
    total = json.loads(cli("trace", llama_dir, "--json").out)["total_flops"]
    assert f"<td>{total:,} / 256 个 token，上下文 256 个 token</td>" in forward
    assert "<td>不含 KV 缓存和权重</td>" in forward
    assert "<td>2 x DynamicLayer 键 [1, 2, 256, 16] 值 [1, 2, 256, 16] float32</td>" in forward
    english = _forward_section(render(cli, llama_dir, tmp_path, "--trace", "--lang", "en"))
    assert (
        "<td>2 layers x 2 x batch 1 x heads 4 x queries 256 x keys 256 x (head_dim 16 + 16) = 33,554,432</td>"
        in english
    )
    assert "<td>2 x DynamicLayer keys [1, 2, 256, 16] values [1, 2, 256, 16] float32</td>" in english


def test_an_encoder_has_flops_per_token_not_per_generated_token(bert_dir, llama_dir, tmp_path, cli):
    forward = _forward_section(render(cli, bert_dir, tmp_path, "--trace", "--lang", "en"))
    assert "<td>FLOPs per token</td>" in forward and "generated" not in forward
    assert "<td>FLOPs per generated token</td>" in _forward_section(
        render(cli, llama_dir, tmp_path, "--trace", "--lang", "en")
    )


def test_the_legend_of_what_is_outside_the_layers_names_what_is_there(bert_dir, llama_tied_dir, tmp_path, cli):
    """BERT has no final norm and no head: its embeddings and its pooler (other) sit outside."""
    assert 'aria-label="By layer"' in render(cli, bert_dir, tmp_path, "--lang", "en")
    assert ">outside them (embeddings, other)</text>" in render(cli, bert_dir, tmp_path, "--lang", "en")
    assert ">层外（嵌入、其他）</text>" in render(cli, bert_dir, tmp_path, "--lang", "zh")
    assert ">outside them (embeddings, final norm, head)</text>" in render(
        cli, llama_tied_dir, tmp_path, "--lang", "en"
    )


def test_a_file_without_tensors_has_nothing_to_check(tmp_path, cli):
    from test_implied import _vocab_only

    page = render(cli, _vocab_only(str(tmp_path / "vocab.gguf")), tmp_path, "--lang", "en")
    assert (
        '<p class="note">Nothing to check: the checkpoint holds no tensors, and every count on this page is what its config implies.</p>'
        in page
    )
    assert "The tensor shapes agree with config.json." not in page


# The font advance each kind of chart text is laid out with (render/svg.py).
def _advances():
    from llm_anatomy.render import svg

    return {"box-row": svg.MONO_ADVANCE, "box-title": svg.TITLE_ADVANCE, "repeat-label": 0.62 * 15}


def _measured(text, advance):
    """The width a browser gives text: the font's advance per character, a full em (Chinese) per wide one."""
    import unicodedata

    return sum(advance / 0.6 if unicodedata.east_asian_width(c) in "WF" else advance for c in text)


def _text_boxes(page):
    """(svg width, text, left, right) of every <text> with x and an anchor, as _measured measures it."""
    from llm_anatomy.render import svg

    advances = _advances()
    boxes = []
    for width, body in re.findall(r'<svg [^>]*viewBox="0 0 ([\d.]+) [\d.]+"[^>]*>(.*?)</svg>', page, re.S):
        for x, anchor, klass, text in re.findall(
            r'<text x="([\d.-]+)" y="[\d.-]+" text-anchor="(\w+)"(?: class="([\w-]+)")?>([^<]*)</text>', body
        ):
            text = html.unescape(text)
            w = _measured(text, advances.get(klass, svg.SANS_ADVANCE))
            left = float(x) - {"start": 0, "middle": w / 2, "end": w}[anchor]
            boxes.append((float(width), text, left, left + w))
    return boxes


def test_cjk_text_is_measured_a_full_em_wide():
    from llm_anatomy.render import svg

    assert svg._text_width("注意力") == 36.0  # 3 x 12 px, where 0.6 em each would clip the first
    assert svg._text_width("norms") == 36.0
    assert svg._text_width("归一化 (x)") == 3 * 12 + 4 * 7.2


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_chart_label_fits_inside_its_chart(llama_tied_dir, bert_dir, tmp_path, cli, lang):
    """No clipped label: each text's estimated box lies within its SVG (the first character of
    "注意力" fell off the left edge of the component chart)."""
    pages = [
        render(cli, llama_tied_dir, tmp_path, "--lang", lang, "--stats", "--trace"),
        render(cli, bert_dir, tmp_path, "--lang", lang),
    ]
    boxes = [box for page in pages for box in _text_boxes(page)]
    assert len(boxes) > 100
    assert [b for b in boxes if b[2] < 0 or b[3] > b[0]] == []
    labels = [b[1] for b in boxes]
    if lang == "zh":
        assert {"注意力", "归一化", "嵌入", "层外（嵌入、最终归一化、输出头）"} <= set(labels)


def test_legend_entries_do_not_overlap(tmp_path):
    """Each legend entry starts after the previous one's text ends, CJK names included."""
    from llm_anatomy.render import svg

    series = [
        svg.Series(name, (1.0, 2.0))
        for name in ("编号层内", "层外（嵌入、最终归一化、输出头）", "自注意力", "前馈网络")
    ]
    chart = svg.column_chart(["0", "1"], series, str, "层", "参数量", "按层")
    swatches = [float(x) for x in re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="12" height="12"', chart)]
    texts = [
        (float(x), html.unescape(t))
        for x, t in re.findall(
            r'<text x="([\d.]+)" y="[\d.]+" text-anchor="start" class="legend">([^<]*)</text>', chart
        )
    ]
    assert len(swatches) == len(texts) == 4
    for (x, text), next_swatch in zip(texts, swatches[1:]):
        assert x + _measured(text, svg.SANS_ADVANCE) < next_swatch


def test_every_role_of_a_wide_layer_has_its_own_colour():
    """Gemma's layers have 13 to 16 roles: each line and legend swatch a colour of its own;
    ten series or fewer keep Tableau 10, as before."""
    from llm_anatomy.render import svg

    for count in (9, 10, 13, 16, 20):
        series = [svg.Series(f"role{i}", (0.1 + i, 0.2 + i)) for i in range(count)]
        chart = svg.line_chart(["0", "1"], series, str, "layer", "std", "std")
        strokes = re.findall(r'<polyline points="[^"]*" fill="none" stroke="(#[0-9a-f]{6})"', chart)
        swatches = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})" class="swatch"', chart)
        assert len(strokes) == len(set(strokes)) == count
        assert swatches == strokes
        if count <= 10:
            assert strokes == list(svg.PALETTE[:count])
