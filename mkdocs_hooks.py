"""MkDocs hooks (mkdocs.yml: hooks): pages that show a file kept elsewhere, so that it is
written once. A line `<!-- notebook: PATH -->` in a page becomes the notebook's cells and
stored outputs (docs/tutorial.md and docs/api-tour.md show their notebooks so);
`<!-- include: PATH -->` becomes the file's Markdown (bench/RESULTS.md on the benchmarks
page). PATH is relative to the page's own file. Pure Python and offline: the notebook is
JSON, no nbconvert nor kernel (the tests run the notebook itself)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

MARKER = re.compile(r"^<!-- (notebook|include): (\S+) -->$", re.M)
# Raw HTML outputs (tables, figures) go in after Markdown has run, where these placeholders stand.
PLACEHOLDER = "NOTEBOOK-OUTPUT-{}"


def _fence(text: str, language: str = "") -> str:
    """A fenced block longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip(chr(10))}\n{fence}"


def _joined(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def _outputs(outputs: list[dict[str, Any]], html: list[str]) -> list[str]:
    """Markdown for a cell's outputs: stdout and text results fenced, HTML results by placeholder.
    stderr (library warnings) is left out, as the tests leave it out of what the notebook shows."""
    parts = []
    for output in outputs:
        kind = output["output_type"]
        if kind == "stream" and output.get("name") == "stdout":
            parts.append(_fence(_joined(output["text"]), "text"))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "text/html" in data:
                html.append(_joined(data["text/html"]))
                parts.append(PLACEHOLDER.format(len(html) - 1))
            elif "text/plain" in data:
                parts.append(_fence(_joined(data["text/plain"]), "text"))
        elif kind == "error":
            parts.append(_fence(f"{output['ename']}: {output['evalue']}", "text"))
    return parts


def _notebook_markdown(path: str, html: list[str]) -> str:
    with open(path, encoding="utf-8") as handle:
        notebook = json.load(handle)
    parts = []
    for cell in notebook["cells"]:
        source = _joined(cell["source"])
        if cell["cell_type"] == "markdown":  # one level down: the page's own title is the only h1
            parts.append(re.sub(r"^(#{1,5}) ", r"#\1 ", source, flags=re.M))
        elif cell["cell_type"] == "code":
            parts.append(_fence(source, "python"))
            parts.extend(_outputs(cell.get("outputs", []), html))
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    folder = os.path.dirname(page.file.abs_src_path)
    html: list[str] = []

    def expand(match: re.Match[str]) -> str:
        path = os.path.normpath(os.path.join(folder, match.group(2)))
        if match.group(1) == "notebook":
            return _notebook_markdown(path, html)
        with open(path, encoding="utf-8") as handle:
            return handle.read()

    markdown = MARKER.sub(expand, markdown)
    page.notebook_html = html
    return markdown


def on_page_content(content: str, page: Any, config: Any, files: Any) -> str:
    for index, fragment in enumerate(getattr(page, "notebook_html", [])):
        content = content.replace(f"<p>{PLACEHOLDER.format(index)}</p>", f'<div class="notebook-output">{fragment}</div>', 1)
    return content
