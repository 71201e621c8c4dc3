"""`report MODEL --compare B`: verify's verdict, its findings and a heat map of the error per
layer and role (exact tiles for a pair with a fault planted in one layer), escaped, offline,
and in Chinese with --lang zh."""

import html
import re

import pytest
import torch

import checkpoints
from test_report import ENGLISH_RUN, VisibleText, _text_boxes, assert_valid_and_offline, size_text
from test_verify import MIXED, _scale, converted, hf  # noqa: F401  (hf: test_verify's fixture of the tiny Llama)

ROLES = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
    "input_layernorm",
    "post_attention_layernorm",
)
IDENTICAL = "#a6d9a0"
TILE = re.compile(
    r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" fill="(#[0-9a-f]{6})"( stroke="#1f2328" stroke-width="2")? class="tile ?([\w ]*)"><title>([^<]*)</title></rect>'
)
# Every type gguf writes (test_verify.MIXED), and layer 0's o_proj 1% larger in B: beyond Q8_0's noise.
FAULT = dict(types={**MIXED, "blk.0.attn_output": "Q8_0"}, edit=_scale)


@pytest.fixture(scope="module")
def faulty(hf, tmp_path_factory):  # noqa: F811
    return converted(hf, str(tmp_path_factory.mktemp("faulty")), **FAULT)


def compare(cli, a, b, tmp_path, *extra):
    out = tmp_path / "report.html"
    result = cli("report", a, "-o", out, "--compare", b, *extra)
    return result, out.read_text(encoding="utf-8")


def section(page):
    start = page.index('<section id="compare">')
    return page[start : page.index("</section>", start)]


def tiles(page):
    """(fill, class, title) of each tile; an outlined tile's class says beyond."""
    found = [
        (fill, klass, html.unescape(title), bool(outline))
        for fill, outline, klass, title in TILE.findall(section(page))
    ]
    assert all(outlined == ("beyond" in klass) for _, klass, _, outlined in found)
    return [tile[:3] for tile in found]


def identical(layer, role):
    return (
        IDENTICAL,
        "identical",
        f"layer {layer} · {role}: identical; relative RMSE 0, SQNR inf dB, max |B − A| 0 · model.layers.{layer}.{role}.weight",
    )


def test_one_tile_per_layer_and_role_coloured_by_its_error(hf, faulty, tmp_path, cli):  # noqa: F811
    """Identical tiles green, the ones within their noise on the scale, the planted fault outlined;
    the numbers are verify's (tests/analysis/test_verify.py)."""
    result, page = compare(cli, hf, faulty, tmp_path)
    assert (result.code, result.err) == (3, "")
    assert (
        result.out
        == f"wrote {tmp_path / 'report.html'} ({size_text(len(page.encode()))})\ncompared with model.gguf: fail\n"
    )
    assert_valid_and_offline(page)
    found = {title.split(":")[0]: (fill, klass, title) for fill, klass, title in tiles(page)}
    assert list(found) == [f"layer {i} · {role}" for i in (0, 1) for role in ROLES]
    assert found["layer 0 · self_attn.o_proj"] == (
        "#f56832",
        "beyond",
        "layer 0 · self_attn.o_proj: different; relative RMSE 0.01144, SQNR 38.83 dB, max |B − A| 0.0008343 · model.layers.0.self_attn.o_proj.weight",
    )
    assert found["layer 0 · mlp.gate_proj"] == (
        "#e82e22",  # Q4_0: red
        "",
        "layer 0 · mlp.gate_proj: same within noise; relative RMSE 0.08837, SQNR 21.07 dB, max |B − A| 0.009019 · model.layers.0.mlp.gate_proj.weight",
    )
    assert found["layer 1 · mlp.down_proj"] == (
        "#fa7e38",  # Q8_0: orange
        "",
        "layer 1 · mlp.down_proj: same within noise; relative RMSE 0.005302, SQNR 45.51 dB, max |B − A| 0.0002826 · model.layers.1.mlp.down_proj.weight",
    )
    quantized = {(0, "self_attn.q_proj"), (0, "self_attn.k_proj"), (1, "self_attn.q_proj"), (1, "self_attn.k_proj")}
    quantized |= {(0, "self_attn.o_proj"), (0, "mlp.gate_proj"), (0, "mlp.up_proj"), (1, "mlp.down_proj")}
    assert [key for key, tile in found.items() if tile[0] == IDENTICAL] == [
        f"layer {i} · {role}" for i in (0, 1) for role in ROLES if (i, role) not in quantized
    ]
    assert all(
        tile == identical(*key.removeprefix("layer ").split(" · "))
        for key, tile in found.items()
        if tile[0] == IDENTICAL
    )
    text = section(page)
    assert "<strong>Verdict: fail, not the same model</strong>" in text
    assert (
        '<li><span class="pill bad">!</span> <code>model.layers.0.self_attn.o_proj.weight (blk.0.attn_output.weight in B): differs beyond Q8_0 rounding (per block of 32)'
        in text
    )
    # the legend: the decades of the fixed scale, and what the marked tiles mean
    assert [t for t in re.findall(r'class="tick">(1e-?\d+)</text>', text)] == [f"1e{p}" for p in range(-6, 2)]
    assert ">identical</text>" in text and ">beyond the noise</text>" in text
    # outside the layers: the embedding in F16, the head in BF16, the final norm identical
    assert [re.sub("<[^>]+>", "", row) for row in re.findall(r"<tr(?: class=\"bad\")?><td><code>.*?</tr>", text)] == [
        "lm_head.weightsame within noise0.00166755.560.0002179",
        "model.embed_tokens.weightsame within noise0.000209373.592.79e-05",
        "model.norm.weightidentical0inf0",
    ]


def test_the_api_returns_the_verdict(hf, tmp_path):  # noqa: F811
    import llm_anatomy as la

    pair = converted(hf, str(tmp_path / "pair"))
    written = la.open(hf).report(str(tmp_path / "page.html"), compare=pair, lang="en")
    assert (written.verdict, written.errors) == ("pass", ())
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "Nothing found: every tensor is identical or within its noise." in page
    assert {klass for _, klass, _ in tiles(page)} == {"identical"}


def test_hostile_names_are_escaped_in_labels_and_titles(tmp_path, cli):
    hostile = 'model.layers.0.<script>alert(1)</script>"&amp;.weight'
    a = checkpoints.safetensors_file(str(tmp_path / "a" / "model.safetensors"), {hostile: torch.zeros(2, 2)})
    b = checkpoints.safetensors_file(str(tmp_path / "b" / "model.safetensors"), {hostile: torch.ones(2, 2)})
    result, page = compare(cli, a, b, tmp_path)
    assert result.code == 3
    assert_valid_and_offline(page)
    assert "<script>alert" not in page
    role = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;amp;"
    assert f'class="tick">{role}</text>' in page
    assert (
        f"<title>layer 0 · {role}: different; relative RMSE inf, SQNR -inf dB, max |B − A| 1 · model.layers.0.{role}.weight</title>"
        in page
    )


def test_chinese_labels_and_every_label_inside_the_chart(hf, faulty, tmp_path, cli):  # noqa: F811
    _, english = compare(cli, hf, faulty, tmp_path, "--lang", "en")
    result, page = compare(cli, hf, faulty, tmp_path, "--lang", "zh")
    assert result.code == 3
    assert_valid_and_offline(page)
    text = section(page)
    for label in (
        "<h2>与 model.gguf 的比较</h2>",
        "<strong>结论：失败，不是同一个模型</strong>",
        "<h3>按层和角色的误差</h3>",
        ">相对 RMSE（对数刻度）</text>",
        ">完全相同</text>",
        ">超出噪声</text>",
        "<title>第 0 层 · self_attn.o_proj：不同；相对 RMSE 0.01144，SQNR（dB）38.83，最大 |B − A| 0.0008343 · model.layers.0.self_attn.o_proj.weight</title>",
        '<a href="#compare">比较</a>',
    ):
        assert label in text or label in page, label
    parser = VisibleText()
    parser.feed(text)
    assert [t for t in parser.texts if ENGLISH_RUN.search(t)] == []
    boxes = _text_boxes(section(english)) + _text_boxes(text)
    assert len(boxes) > 40
    assert [b for b in boxes if b[2] < 0 or b[3] > b[0]] == []
