"""Every record the API returns prints as the command prints it (issue 22, item 7): print(m.summary())
writes `llm-anatomy summary`'s stdout, and so on; repr() is one short line; in Jupyter each
shows as tables and figures with the report's styles, never as a dump of its fields."""

import contextlib
import io
import re

import pytest

import llm_anatomy as la
from llm_anatomy.render.html import NOTEBOOK_CLASS, PRE_STYLE


def _printed(value):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print(value)
    return buffer.getvalue()


# (method call, the command's arguments after the model)
RECORDS = [
    (lambda m: m.summary(), ["summary"]),
    (
        lambda m: m.summary(context=(128, 1024), batch=(1, 4), kv_dtype="fp8"),
        ["summary", "--context", "128,1024", "--batch", "1,4", "--kv-dtype", "fp8"],
    ),
    (lambda m: m.explain(), ["config", "--explain", "--lang", "en"]),
    (lambda m: m.explain("zh"), ["config", "--explain", "--lang", "zh"]),
    (lambda m: m.trace(), ["trace"]),
    (lambda m: m.trace(batch=2, seq=8), ["trace", "--batch", "2", "--seq", "8"]),
    (
        lambda m: m.trace(decode=True, context=16, node="model.layers.0"),
        ["trace", "--decode", "--context", "16", "--node", "model.layers.0"],
    ),
    (lambda m: m.stats(), ["stats"]),
    (lambda m: m.stats(by="role"), ["stats", "--by", "role"]),
]


@pytest.mark.parametrize("call, args", RECORDS, ids=lambda x: " ".join(x) if isinstance(x, list) else "")
@pytest.mark.parametrize("fixture", ["llama_tied_dir", "bert_dir"])
def test_print_of_a_record_is_the_commands_stdout(call, args, fixture, request, cli):
    folder = str(request.getfixturevalue(fixture))
    if fixture == "bert_dir" and ("--decode" in args or "--node" in args):
        pytest.skip("an encoder has no decoding step")
    result = cli(args[0], folder, *args[1:])
    assert result.code == 0, result.err
    record = call(la.open(folder))
    assert _printed(record) == result.out
    assert str(record) == result.out.removesuffix("\n")


def test_config_prints_as_the_config_command(llama_dir, cli):
    assert _printed(la.open(str(llama_dir)).config) == cli("config", llama_dir).out


def test_reprs_are_one_short_line(llama_tied_dir):
    m = la.open(str(llama_tied_dir))
    name = m.name
    assert repr(m.summary()) == f"<Summary {name}: 69,952 parameters, 273.25 KiB>"
    assert repr(m.explain()) == f"<Explanation {name}: 27 fields, 0 unexplained, en>"
    assert repr(m.trace(seq=8)) == "<Trace LlamaForCausalLM [1, 8]: 1.15 MFLOPs>"
    assert (
        repr(m.trace(decode=True, context=16, node="model.layers.0"))
        == "<Trace LlamaForCausalLM model.layers.0 [1, 1] decode over 16: 147.97 KFLOPs>"
    )
    assert repr(m.stats(by="layer")) == f"<StatsReport {name} by layer: 4 rows, 20 tensors, 273.25 KiB, 0 unreadable>"


@pytest.mark.parametrize(
    "call, svgs, tables",
    [
        (lambda m: m.summary(), 0, 4),
        (lambda m: m.explain(), 0, 2),
        (lambda m: m.trace(seq=8), 2, 1),
        (lambda m: m.stats(), 2, 2),
        (lambda m: m, 1, 0),
        (lambda m: m.model.layers[0], 1, 0),
        (lambda m: m.model.layers[0].mlp, 0, 0),
    ],
)
def test_jupyter_views_are_tables_and_figures_with_their_styles(llama_tied_dir, call, svgs, tables):
    html = call(la.open(str(llama_tied_dir)))._repr_html_()
    assert html.startswith(f'<div class="{NOTEBOOK_CLASS}"><style>')
    style = html[html.index("<style>") + 7 : html.index("</style>")]
    assert (
        f".{NOTEBOOK_CLASS} svg .box.attention {{fill: #fff4e8; stroke: #f28e2b;}}" in style.splitlines()
    )  # the diagram's boxes
    assert all(
        rule.startswith(f".{NOTEBOOK_CLASS}") for rule in style.splitlines()
    )  # nothing styles the notebook around it
    assert (html.count("<svg"), html.count("<table")) == (svgs, tables)
    assert not re.search(r"\w+\((model|name|rows)=", html)  # no record dump
    for pre in re.findall(r"<pre[^>]*>", html):
        assert pre == f'<pre style="{PRE_STYLE}">'
