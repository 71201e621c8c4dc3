"""The Jupyter views in a real browser (issue 22, item 8): a notebook holding what Jupyter stores
for `m.model.layers[0]` is exported by nbconvert to HTML, as a user shares it, and headless
Chromium shows its layer diagram as the report draws it (a screenshot of each, compared pixel
by pixel in the browser) and its tree text in aligned columns (monospace, no line wrapped)."""

import base64
import json
import os

import pytest

import llm_anatomy as la
from test_report_browser import CHROMIUM, Browser, evaluate, open_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does) to run the browser test",
    ),
]

# The diagram's box in page coordinates (the page may scroll), and its computed colours.
DIAGRAM = """(function () {
  var svg = document.querySelector('svg.diagram');
  var box = svg.getBoundingClientRect();
  var attention = getComputedStyle(svg.querySelector('.box.attention'));
  return JSON.stringify({x: box.left + window.scrollX, y: box.top + window.scrollY, width: box.width, height: box.height,
                         fill: attention.fill, stroke: attention.stroke});
})()"""

# Every line of the tree's <pre>: how many boxes it is laid out in (2 or more: wrapped) and its
# width per character (the same for every line only in a monospace font).
TREE_LINES = """(function () {
  var pre = document.querySelector('.jp-OutputArea-output pre');  // the cell's result, not its source
  var text = pre.firstChild, at = 0, lines = [];
  pre.textContent.split('\\n').forEach(function (line) {
    var range = document.createRange();
    range.setStart(text, at);
    range.setEnd(text, at + line.length);
    var width = range.getBoundingClientRect().width;
    if (line.length) lines.push({boxes: range.getClientRects().length, perChar: width / line.length});
    at += line.length + 1;
  });
  return JSON.stringify({lines: lines, whiteSpace: getComputedStyle(pre).whiteSpace, visible: pre.clientWidth < pre.scrollWidth});
})()"""

# Two screenshots drawn on canvases: the share of pixels whose colour differs by more than 64 in
# some channel, and the share of near-black pixels in each.
COMPARE = """new Promise(function (done) {
  var images = [new Image(), new Image()], loaded = 0;
  images.forEach(function (image, i) {
    image.onload = function () { if (++loaded == 2) done(compare()); };
    image.src = 'data:image/png;base64,' + [%s, %s][i];
  });
  function pixels(image) {
    var canvas = document.createElement('canvas');
    canvas.width = image.width; canvas.height = image.height;
    var context = canvas.getContext('2d');
    context.drawImage(image, 0, 0);
    return context.getImageData(0, 0, image.width, image.height).data;
  }
  function compare() {
    var a = pixels(images[0]), b = pixels(images[1]), differ = 0, darkA = 0, darkB = 0, n = a.length / 4;
    for (var i = 0; i < a.length; i += 4) {
      if (Math.max(Math.abs(a[i] - b[i]), Math.abs(a[i + 1] - b[i + 1]), Math.abs(a[i + 2] - b[i + 2])) > 64) differ++;
      if (a[i] + a[i + 1] + a[i + 2] < 60) darkA++;
      if (b[i] + b[i + 1] + b[i + 2] < 60) darkB++;
    }
    return JSON.stringify({sizes: [images[0].width, images[0].height, images[1].width, images[1].height], differ: differ / n, dark: [darkA / n, darkB / n]});
  }
})"""


def _exported_notebook(llama_tied_dir, path):
    """The notebook as Jupyter stores `m.model.layers[0]` in a cell's output, exported by nbconvert (its lab template)."""
    nbconvert = pytest.importorskip("nbconvert")
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    layer = la.open(str(llama_tied_dir)).model.layers[0]
    cell = new_code_cell(
        "m.model.layers[0]",
        outputs=[
            new_output(
                "execute_result", data={"text/html": layer._repr_html_(), "text/plain": repr(layer)}, execution_count=1
            )
        ],
        execution_count=1,
    )
    notebook = new_notebook(
        cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.from_dict(notebook))
    path.write_text(body, encoding="utf-8")
    return path


def _shot(browser, session, box):
    clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"], "scale": 1}
    return browser.send("Page.captureScreenshot", session, format="png", captureBeyondViewport=True, clip=clip)["data"]


def test_the_layer_diagram_in_an_exported_notebook_draws_as_in_the_report(llama_tied_dir, tmp_path, cli):
    report = tmp_path / "report.html"
    assert cli("report", llama_tied_dir, "-o", report, "--lang", "en").code == 0
    exported = _exported_notebook(llama_tied_dir, tmp_path / "notebook.html")
    browser = Browser(tmp_path / "profile")
    try:
        boxes, shots = [], []
        for page in (report, exported):
            session = open_page(browser, page)
            browser.send(
                "Emulation.setDeviceMetricsOverride", session, width=1400, height=900, deviceScaleFactor=1, mobile=False
            )
            box = evaluate(browser, session, DIAGRAM)
            boxes.append(box)
            shots.append(_shot(browser, session, box))
        answer = browser.send(
            "Runtime.evaluate",
            session,
            expression=COMPARE % (json.dumps(shots[0]), json.dumps(shots[1])),
            returnByValue=True,
            awaitPromise=True,
        )
        compared = json.loads(answer["result"]["value"])
    finally:
        browser.close()
    report_box, notebook_box = boxes
    assert (
        (notebook_box["fill"], notebook_box["stroke"])
        == (report_box["fill"], report_box["stroke"])
        == ("rgb(255, 244, 232)", "rgb(242, 142, 43)")
    )
    assert (round(notebook_box["width"]), round(notebook_box["height"])) == (
        round(report_box["width"]),
        round(report_box["height"]),
    )
    assert compared["differ"] < 0.01, compared  # anti-aliasing at another sub-pixel offset, no more
    assert compared["dark"][1] < 0.05, compared  # no solid black box
    for name, data in zip(("report", "notebook"), shots):
        (tmp_path / f"diagram-{name}.png").write_bytes(base64.b64decode(data))
        if os.environ.get("LLM_ANATOMY_SCREENSHOT_DIR"):  # for a person to look at (CI artifacts)
            with open(os.path.join(os.environ["LLM_ANATOMY_SCREENSHOT_DIR"], f"diagram-{name}.png"), "wb") as handle:
                handle.write(base64.b64decode(data))


def test_the_tree_in_an_exported_notebook_keeps_its_columns(llama_tied_dir, tmp_path, cli):
    """At a width narrower than the tree's lines, they scroll rather than wrap, in one monospace font."""
    exported = _exported_notebook(llama_tied_dir, tmp_path / "notebook.html")
    browser = Browser(tmp_path / "profile")
    try:
        session = open_page(browser, exported)
        browser.send(
            "Emulation.setDeviceMetricsOverride", session, width=420, height=900, deviceScaleFactor=1, mobile=False
        )
        tree = evaluate(browser, session, TREE_LINES)
    finally:
        browser.close()
    assert tree["whiteSpace"] == "pre" and tree["visible"]  # wider than its box: it scrolls
    assert len(tree["lines"]) == len(
        [line for line in cli("tree", llama_tied_dir, "--node", "model.layers.0").out.splitlines() if line]
    )
    assert all(line["boxes"] == 1 for line in tree["lines"]), tree
    widths = [line["perChar"] for line in tree["lines"]]
    assert max(widths) - min(widths) < 0.01, widths
