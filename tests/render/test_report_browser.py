"""The report in a real browser: headless Chromium (Debian's `chromium`) loads the page
with no console error, every chart has drawn, the table script sorts and filters, and a
screenshot is taken. Driven over the DevTools protocol on a pipe (--remote-debugging-pipe),
so nothing listens on a port and the page needs no test hooks."""

import base64
import json
import os
import select
import shutil
import subprocess
import time

import pytest

from llm_anatomy.core.catalog import natural_key
from llm_anatomy.locate import open_catalog

CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 60  # seconds for any single answer from the browser

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does) to run the browser test",
    ),
]


class Browser:
    """Chromium reading DevTools commands on fd 3 and answering on fd 4, NUL-separated JSON."""

    def __init__(self, profile):
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()

        def wire_pipes():  # runs in the child: the protocol pipes must be fds 3 and 4
            read_end, write_end = os.dup(to_browser), os.dup(from_browser)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
        ]
        # stderr to a file, not a pipe: chromium's chatter must never fill a buffer nobody reads.
        self._log_path = os.path.join(profile, "chromium.log")
        os.makedirs(profile, exist_ok=True)
        self._log = open(self._log_path, "wb")
        self.process = subprocess.Popen(
            [CHROMIUM, *flags, "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=wire_pipes,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._last_id = 0
        self.events = []

    def send(self, method, session=None, **params):
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        answer = self._until(lambda m: m.get("id") == self._last_id)
        assert "error" not in answer, f"{method}: {answer['error']}"
        return answer.get("result", {})

    def wait_for(self, event):
        return self._until(lambda m: m.get("method") == event)

    def _until(self, wanted):
        deadline = time.monotonic() + TIMEOUT
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium gave no answer within {TIMEOUT} s")
            if select.select([self._answers], [], [], left)[0]:
                chunk = os.read(self._answers, 1 << 20)
                if not chunk:
                    with open(self._log_path, "rb") as log:
                        raise RuntimeError("chromium exited: " + log.read().decode(errors="replace")[-2000:])
                self._buffer += chunk

    def close(self):
        try:
            self.send("Browser.close")
        except (AssertionError, OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        os.close(self._commands)
        os.close(self._answers)

    def problems(self):
        """Uncaught exceptions, console errors and warnings, and browser log errors
        (blocked or failed loads, Content Security Policy violations)."""
        found = []
        for event in self.events:
            method, params = event["method"], event["params"]
            if method == "Runtime.exceptionThrown":
                found.append(
                    params["exceptionDetails"].get("exception", {}).get("description")
                    or params["exceptionDetails"]["text"]
                )
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(params["entry"]["text"])
        return found


# Every SVG on the page, with how many shapes it holds and the size it was laid out at.
CHARTS = """JSON.stringify(Array.from(document.querySelectorAll('svg')).map(function (svg) {
  var box = svg.getBoundingClientRect();
  return {label: svg.getAttribute('aria-label'), shapes: svg.querySelectorAll('rect,circle,polyline,polygon,line,path').length,
          texts: svg.querySelectorAll('text').length, width: box.width, height: box.height};
}))"""

FILTER = """(function () {
  var input = document.querySelector('input[data-filter]');
  input.value = 'self_attn k_proj';
  input.dispatchEvent(new Event('input'));
  var visible = Array.from(document.querySelectorAll('#tensor-table tbody tr')).filter(function (r) { return !r.hidden; });
  return JSON.stringify({names: visible.map(function (r) { return r.cells[0].textContent; }), counter: document.getElementById('tensor-count').textContent});
})()"""

SORT = """(function () {
  var input = document.querySelector('input[data-filter]');
  input.value = '';
  input.dispatchEvent(new Event('input'));
  document.querySelectorAll('#tensor-table th')[3].click();  // Parameters: ascending
  document.querySelectorAll('#tensor-table th')[3].click();  // and descending
  var rows = document.querySelectorAll('#tensor-table tbody tr');
  return JSON.stringify(Array.from(rows).map(function (r) { return r.cells[0].textContent; }));
})()"""


def evaluate(browser, session, expression):
    result = browser.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
    assert "exceptionDetails" not in result, result
    return json.loads(result["result"]["value"])


def open_page(browser, path):
    """A new tab, 1200 px wide, with console and log events on, loaded with `path`; its session id."""
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
        browser.send(domain, session)
    browser.send(
        "Emulation.setDeviceMetricsOverride", session, width=1200, height=900, deviceScaleFactor=1, mobile=False
    )
    browser.send("Page.navigate", session, url=path.as_uri())
    browser.wait_for("Page.loadEventFired")
    return session


def test_the_harness_sees_script_errors_and_blocked_fetches(tmp_path):
    """The check that the report has no problem is only worth something if problems show."""
    from llm_anatomy.render.html import page

    bad = tmp_path / "bad.html"
    bad.write_text(
        page(
            "bad",
            "en",
            '<img src="https://example.invalid/x.png" alt="">',
            "",
            "console.error('boom'); undefinedFunction();",
        )
    )
    browser = Browser(tmp_path / "profile")
    try:
        open_page(browser, bad)
        problems = browser.problems()
    finally:
        browser.close()
    assert len(problems) == 3, problems
    assert "example.invalid/x.png" in problems[0] and "Content Security Policy" in problems[0]
    assert problems[1] == "boom"
    assert problems[2].startswith("ReferenceError: undefinedFunction is not defined")


def test_report_loads_without_errors_and_draws_its_charts(llama_tied_dir, tmp_path, cli):
    page = tmp_path / "report.html"
    assert cli("report", llama_tied_dir, "-o", page, "--stats", "--lang", "en").code == 0
    browser = Browser(tmp_path / "profile")
    try:
        session = open_page(browser, page)
        charts = evaluate(browser, session, CHARTS)
        filtered = evaluate(browser, session, FILTER)
        by_size = evaluate(browser, session, SORT)
        size = browser.send("Page.getLayoutMetrics", session)["cssContentSize"]
        shot = browser.send(
            "Page.captureScreenshot",
            session,
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        problems = browser.problems()
    finally:
        browser.close()

    assert problems == []
    assert [c["label"] for c in charts] == [
        "One transformer layer",
        "By component",
        "By layer",
        "Standard deviation per layer, by role",
        "Largest |value| per layer, by role",
    ]
    for chart in charts:
        assert chart["shapes"] > 3 and chart["texts"] > 3, chart
        assert chart["width"] > 300 and chart["height"] > 100, chart
    assert filtered == {
        "names": ["model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.k_proj.weight"],
        "counter": "2",
    }
    # Largest first; the sort is stable, so equal counts keep the table's name order.
    tensors = sorted(open_catalog(str(llama_tied_dir)).tensors, key=lambda t: natural_key(t.name))
    assert by_size == [t.name for t in sorted(tensors, key=lambda t: -t.numel)]
    assert (by_size[0], by_size[-1]) == ("model.embed_tokens.weight", "model.norm.weight")
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(png)
    # Keep the picture for a person to look at when asked (e.g. in CI artifacts).
    if os.environ.get("LLM_ANATOMY_SCREENSHOT_DIR"):
        shutil.copy(screenshot, os.path.join(os.environ["LLM_ANATOMY_SCREENSHOT_DIR"], "report.png"))


# Every chart text as the browser laid it out, in the SVG's own units: its box and whether it
# lies within the SVG; and each legend row's entries, left to right.
TEXT_BOXES = """JSON.stringify(Array.from(document.querySelectorAll('svg')).map(function (svg) {
  var width = svg.viewBox.baseVal.width;
  var texts = Array.from(svg.querySelectorAll('text')).map(function (t) {
    var box = t.getBBox();
    return {text: t.textContent, cls: t.getAttribute('class') || '', x: box.x, y: box.y, right: box.x + box.width, rotated: t.hasAttribute('transform')};
  });
  return {label: svg.getAttribute('aria-label'), width: width, texts: texts};
}))"""


def _screenshot(browser, session, path):
    size = browser.send("Page.getLayoutMetrics", session)["cssContentSize"]
    shot = browser.send(
        "Page.captureScreenshot",
        session,
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    )
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    path.write_bytes(png)
    if os.environ.get("LLM_ANATOMY_SCREENSHOT_DIR"):
        shutil.copy(path, os.path.join(os.environ["LLM_ANATOMY_SCREENSHOT_DIR"], path.name))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_no_chart_text_is_clipped_or_overlaps_in_either_language(llama_tied_dir, bert_dir, tmp_path, cli, lang):
    """As the browser measures the text: every label inside its chart (the zh component chart
    lost the first character of 注意力 and 归一化), and no two legend entries overlapping."""
    pages = []
    for name, model, extra in (("llama", llama_tied_dir, ("--stats", "--trace")), ("bert", bert_dir, ())):
        page = tmp_path / f"report-{name}-{lang}.html"
        assert cli("report", model, "-o", page, "--lang", lang, *extra).code == 0
        pages.append(page)
    browser = Browser(tmp_path / "profile")
    try:
        measured = []
        for page in pages:
            session = open_page(browser, page)
            measured += evaluate(browser, session, TEXT_BOXES)
            _screenshot(browser, session, page.with_suffix(".png"))
        problems = browser.problems()
    finally:
        browser.close()
    assert problems == []
    clipped = [
        (chart["label"], t["text"], round(t["x"], 1), round(t["right"], 1), chart["width"])
        for chart in measured
        for t in chart["texts"]
        if not t["rotated"] and (t["x"] < -0.5 or t["right"] > chart["width"] + 0.5)
    ]
    assert clipped == []
    for chart in measured:
        legend = sorted((t for t in chart["texts"] if t["cls"] == "legend"), key=lambda t: (round(t["y"]), t["x"]))
        for left, right in zip(legend, legend[1:]):
            if round(left["y"]) == round(right["y"]):
                assert left["right"] + 12 < right["x"], (chart["label"], left["text"], right["text"])
    labels = {t["text"] for chart in measured for t in chart["texts"]}
    if lang == "zh":
        assert {"注意力", "归一化", "层外（嵌入、其他）", "层外（嵌入、最终归一化、输出头）"} <= labels
