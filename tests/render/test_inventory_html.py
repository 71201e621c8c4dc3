"""scan --html: the inventory page, one row per checkpoint, self-contained (no external URL),
every name escaped (hostile names), findings as pills by severity, rows sortable."""

import re
from html.parser import HTMLParser

import pytest

from llm_anatomy.analysis.inventory import Row
from llm_anatomy.cli.main import main
from llm_anatomy.render.inventory_html import page_of

HOSTILE = '<script>alert("x")</script>&\\x1b[31m'  # as a row holds it: control characters already escaped


class Cells(HTMLParser):
    """The text of every body cell, row by row, the class of each row and the tags seen."""

    def __init__(self):
        super().__init__()
        self.rows, self.classes, self.tags = [], [], []
        self.in_body = self.cell = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append([])
            self.classes.append(dict(attrs).get("class"))
        elif tag == "td" and self.in_body:
            self.rows[-1].append("")
            self.cell = True

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = False
        elif tag == "tbody":
            self.in_body = False

    def handle_data(self, data):
        if self.cell:
            self.rows[-1][-1] += data


def parsed(page):
    cells = Cells()
    cells.feed(page)
    return cells


ROWS = [
    Row(location="zoo/ok", content="1", format="safetensors", architecture="LlamaForCausalLM", parameters=78144,
        bytes=312576, dtypes="F32:100%", bits_per_weight=32.0, weights_memory=312576,
        kv_cache_per_1k_tokens=524288, context_length=256, license="mit", findings="0"),
    Row(location=f"zoo/{HOSTILE}", content="2", format="gguf", architecture=HOSTILE, parameters=10,
        dtypes="Q4_0:100%", quantization="Q4_0", bits_per_weight=4.5, weights_memory=6,
        license=HOSTILE, findings="critical:1 medium:2 low:1"),
    Row(location="s3://bucket/broken", content="3", error="s3://bucket/broken: expected x, found y; do z",
        findings=None),
    Row(location="s3://bucket/remote", content="4", format="torch", parameters=5, weights_memory=20,
        findings="0 (pickles not read)"),
]  # fmt: skip


def test_rows_sorted_by_location_and_escaped():
    page = page_of(ROWS)
    cells = parsed(page)
    assert [row[0] for row in cells.rows] == [
        "s3://bucket/broken",
        "s3://bucket/remote",
        f"zoo/{HOSTILE}",  # shown as text, never markup
        "zoo/ok",
    ]
    assert cells.rows[3] == [
        "zoo/ok", "safetensors", "LlamaForCausalLM", "78.14K", "", "F32:100%", "", "32", "305.25 KiB",
        "512.00 KiB", "256", "mit", "0", "",
    ]  # fmt: skip
    assert cells.rows[2][2] == HOSTILE and cells.rows[2][11] == HOSTILE
    assert cells.rows[2][12] == "critical 1 medium 2 low 1"
    assert cells.rows[0][12:] == ["not inspected", "s3://bucket/broken: expected x, found y; do z"]
    assert cells.rows[1][12] == "0 (pickles not read)"
    assert cells.classes == ["bad", None, "bad", None]  # unreadable; a critical finding
    assert [t for t, _ in cells.tags].count("script") == 1  # the table script, and no other
    assert "<script>alert" not in page


def test_self_contained_and_sortable():
    page = page_of(ROWS)
    assert not re.search(r"(?i)(https?:|\bsrc=|\bhref=|\baction=|@import|url\()", page)
    assert not [a for _, a in parsed(page).tags if {"src", "href", "action", "data"} & set(a)]
    assert 'http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;' in page
    tags = parsed(page).tags
    assert ("table", {"class": "sortable", "id": "inventory-table"}) in tags
    findings_cells = [a for t, a in tags if t == "td" and a.get("data-sort") and "class" not in a]
    assert [a["data-sort"] for a in findings_cells] == ["0", "5000004", "0"]  # worst severity, then count
    pills = [a["class"] for t, a in tags if t == "span" and "pill" in a.get("class", "")]
    assert pills == ["pill bad", "pill warn", "pill ok"]


def test_deep_rows_add_their_columns():
    deep = Row(location="m", content="1", format="safetensors", parameters=1, findings="high:1", sha256="{}",
               nan_values=2, inf_values=1, absmax=1.5e5)  # fmt: skip
    cells = parsed(page_of([deep]))
    assert cells.rows[0][12:] == ["2", "1", "1.5e+05", "high 1", ""]


@pytest.fixture
def two(tmp_path, llama_tied_dir):
    import shutil

    for name in ("a", "b"):
        shutil.copytree(llama_tied_dir, tmp_path / "models" / name)
    return tmp_path


def test_cli_writes_the_page_and_never_into_a_checkpoint(two, capsys):
    page = two / "inventory.html"
    assert main(["scan", str(two / "models"), "--html", str(page)]) == 0
    assert [row[0] for row in parsed(page.read_text()).rows] == [str(two / "models" / n) for n in ("a", "b")]
    assert main(["scan", str(two / "models"), "--html", str(page)]) == 0  # a page we wrote: replaced
    capsys.readouterr()
    inside = two / "models" / "a" / "inventory.html"
    assert main(["scan", str(two / "models"), "--html", str(inside)]) == 2
    assert capsys.readouterr().err == (
        f"llm-anatomy: {inside}: expected an output path outside the model folder, found a path inside "
        f"{two / 'models' / 'a'}; pass -o with another folder; llm-anatomy never writes into a model folder\n"
    )
    assert not inside.exists()
    mine = two / "notes.html"
    mine.write_text("<p>mine</p>")
    assert main(["scan", str(two / "models"), "--html", str(mine)]) == 2
    assert "a file llm-anatomy did not write" in capsys.readouterr().err
    assert mine.read_text() == "<p>mine</p>"
