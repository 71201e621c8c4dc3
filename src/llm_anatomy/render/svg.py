"""Small inline-SVG charts drawn in Python: horizontal bars, stacked columns, lines, and a
block-diagram flow. No library and no script: the page works offline and prints as is.

Text sizes are estimated from the characters (labels that hold names and shapes use the
monospace font, whose advance is 0.6 em; wide characters, Chinese among them, take 1 em),
which is enough to lay out axes and boxes."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Callable, Sequence

from .html import esc

# Tableau 10: distinguishable, and still readable for the common colour-blindness types.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
# Tableau 20 (ten hues, each dark then light), for charts of more than ten series: the roles
# of a Gemma layer number 13 to 16, and Tableau 10 has near twins of Tableau 20's lights.
PALETTE_20 = (
    "#4e79a7",
    "#a0cbe8",
    "#f28e2b",
    "#ffbe7d",
    "#59a14f",
    "#8cd17d",
    "#b6992d",
    "#f1ce63",
    "#499894",
    "#86bcb6",
    "#e15759",
    "#ff9d9a",
    "#79706e",
    "#bab0ac",
    "#d37295",
    "#fabfd2",
    "#b07aa1",
    "#d4a6c8",
    "#9d7660",
    "#d7b5a6",
)
FONT = 12  # px, the size of every chart label
MONO_ADVANCE = 0.6 * FONT
SANS_ADVANCE = 0.6 * FONT  # a little generous for system-ui, so labels never collide
TITLE_ADVANCE = 0.64 * 13  # the diagram's bold 13 px box titles
WIDTH = 960  # the page's content width; the SVGs scale down on narrow screens


def color(index: int, palette: Sequence[str] = PALETTE) -> str:
    return palette[index % len(palette)]


def palette_for(series: Sequence[object]) -> Sequence[str]:
    """Tableau 10 while it gives every series its own colour, else Tableau 20."""
    return PALETTE if len(series) <= len(PALETTE) else PALETTE_20


def _text_width(text: str, advance: float = SANS_ADVANCE) -> float:
    """advance per character, and a full em (advance / 0.6) per wide one ("注", "Ａ")."""
    wide = sum(unicodedata.east_asian_width(c) in "WF" for c in text)
    return (len(text) - wide) * advance + wide * advance / 0.6


def _num(value: float) -> str:
    """Coordinates with one decimal: small files, exact enough on screen."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(width: float, height: float, body: str, label: str, css_class: str = "chart") -> str:
    # Inline SVG in HTML needs no xmlns, and the page must not contain any URL.
    return (
        f'<svg class="{css_class}" viewBox="0 0 {_num(width)} {_num(height)}" width="{_num(width)}" '
        f'height="{_num(height)}" role="img" aria-label="{esc(label)}">{body}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", css_class: str = "") -> str:
    klass = f' class="{css_class}"' if css_class else ""
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}"{klass}>{esc(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, css_class: str) -> str:
    return f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" class="{css_class}"/>'


def _rect(
    x: float,
    y: float,
    w: float,
    h: float,
    fill: str = "",
    css_class: str = "",
    tip: str = "",
    rx: float = 0,
    stroke: str = "",
) -> str:
    parts = [f'x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0))}" height="{_num(max(h, 0))}"']
    if rx:
        parts.append(f'rx="{_num(rx)}"')
    if fill:
        parts.append(f'fill="{fill}"')
    if stroke:
        parts.append(f'stroke="{stroke}" stroke-width="2"')
    if css_class:
        parts.append(f'class="{css_class}"')
    title = f"<title>{esc(tip)}</title>" if tip else ""
    return f"<rect {' '.join(parts)}>{title}</rect>" if title else f"<rect {' '.join(parts)}/>"


# ---------------------------------------------------------------- horizontal bars


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # what is written after the bar ("6.74B (98.2%)")
    tone: int = -1  # palette index, so a category keeps its colour across charts; -1: by row


def bar_chart(bars: Sequence[Bar], label: str, width: float = WIDTH) -> str:
    """One bar per row, labels on the left, values written after each bar."""
    row = 26
    label_width = max(_text_width(b.label) for b in bars) + 20
    text_width = max(_text_width(b.text) for b in bars) + 10
    area = max(width - label_width - text_width, 80)
    top = max((b.value for b in bars), default=0) or 1
    body = []
    for i, bar in enumerate(bars):
        y = 4 + i * row
        length = area * bar.value / top
        body.append(_text(label_width - 8, y + row / 2 + 4, bar.label, "end", "label"))
        body.append(
            _rect(
                label_width,
                y + 4,
                length,
                row - 8,
                color(bar.tone if bar.tone >= 0 else i),
                "bar",
                f"{bar.label}: {bar.text}",
                rx=2,
            )
        )
        body.append(_text(label_width + length + 6, y + row / 2 + 4, bar.text, "start", "value"))
    return _svg(width, 8 + len(bars) * row, "".join(body), label)


# ---------------------------------------------------------------- axes shared by columns and lines


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float | None, ...]  # one per category; None where there is no value


@dataclass(frozen=True)
class Scale:
    """Maps data values to the vertical pixel range [bottom, top] of a plot."""

    low: float
    high: float
    ticks: tuple[float, ...]
    log: bool = False

    def position(self, value: float, bottom: float, top: float) -> float:
        v, lo, hi = (
            (math.log10(value), math.log10(self.low), math.log10(self.high))
            if self.log
            else (value, self.low, self.high)
        )
        return bottom - (v - lo) / ((hi - lo) or 1) * (bottom - top)


def linear_scale(low: float, high: float, count: int = 5) -> Scale:
    """Ticks at 1, 2, 2.5 or 5 times a power of ten that cover [low, high]; zero is included."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(power * m for m in (1, 2, 2.5, 5, 10) if power * m >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = tuple(round(i * step, 12) for i in range(first, last + 1))  # 0.6, not 0.6000000000000001
    return Scale(ticks[0], ticks[-1], ticks)


def log_scale(low: float, high: float) -> Scale:
    """Decades covering [low, high] (both > 0); 2 and 5 added when the range is narrow."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    if last == first:
        last += 1
    ticks = [10.0**p for p in range(first, last + 1)]
    if last - first <= 2:
        ticks = sorted(ticks + [m * 10.0**p for p in range(first, last) for m in (2, 5)])
    return Scale(ticks[0], ticks[-1], tuple(ticks), log=True)


@dataclass(frozen=True)
class Frame:
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float

    def x_center(self, index: int, count: int) -> float:
        return self.left + (index + 0.5) * (self.right - self.left) / count


def _frame(series: Sequence[Series], y_tick_texts: Sequence[str], width: float) -> Frame:
    legend_rows = len(_legend_rows(series, width)) if len(series) > 1 else 0  # one series needs no legend
    left = max(_text_width(t) for t in y_tick_texts) + 30
    return Frame(width, 230 + 18 * legend_rows, left, width - 12, 14 + 18 * legend_rows, 230 + 18 * legend_rows - 44)


def _legend_rows(series: Sequence[Series], width: float) -> list[list[tuple[int, float]]]:
    """Legend entries (series index, width) wrapped into rows that fit the chart."""
    rows: list[list[tuple[int, float]]] = [[]]
    used = 0.0
    for i, s in enumerate(series):
        w = _text_width(s.name) + 30
        if rows[-1] and used + w > width - 20:
            rows.append([])
            used = 0.0
        rows[-1].append((i, w))
        used += w
    return rows


def _legend(series: Sequence[Series], width: float) -> str:
    if len(series) < 2:
        return ""
    palette = palette_for(series)
    out = []
    for r, row in enumerate(_legend_rows(series, width)):
        x, y = 12.0, 4 + 18 * r
        for i, w in row:
            out.append(_rect(x, y + 2, 12, 12, color(i, palette), "swatch", rx=2))
            out.append(_text(x + 17, y + 12, series[i].name, "start", "legend"))
            x += w
    return "".join(out)


def _axes(
    frame: Frame, scale: Scale, y_text: Callable[[float], str], categories: Sequence[str], x_label: str, y_label: str
) -> str:
    out = []
    for tick in scale.ticks:
        y = scale.position(tick, frame.bottom, frame.top)
        out.append(_line(frame.left, y, frame.right, y, "grid"))
        out.append(_text(frame.left - 6, y + 4, y_text(tick), "end", "tick"))
    out.append(_line(frame.left, frame.bottom, frame.right, frame.bottom, "axis"))
    # Thin the category labels so that they never overlap.
    slot = (frame.right - frame.left) / max(len(categories), 1)
    widest = max((_text_width(c) for c in categories), default=0) + 8
    every = max(1, math.ceil(widest / slot))
    for i, category in enumerate(categories):
        if i % every == 0 or (i == len(categories) - 1 and i % every > every // 2):
            out.append(_text(frame.x_center(i, len(categories)), frame.bottom + 16, category, "middle", "tick"))
    out.append(_text((frame.left + frame.right) / 2, frame.height - 6, x_label, "middle", "axis-label"))
    mid = (frame.top + frame.bottom) / 2
    out.append(
        f'<text transform="translate(12 {_num(mid)}) rotate(-90)" text-anchor="middle" class="axis-label">{esc(y_label)}</text>'
    )
    return "".join(out)


# ---------------------------------------------------------------- stacked columns


def column_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    y_text: Callable[[float], str],
    x_label: str,
    y_label: str,
    label: str,
    width: float = WIDTH,
) -> str:
    """One column per category, the series stacked in order (e.g. parameters per layer by component)."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(categories))]
    scale = linear_scale(0, max(totals, default=0))
    frame = _frame(series, [y_text(t) for t in scale.ticks], width)
    slot = (frame.right - frame.left) / max(len(categories), 1)
    bar = max(min(slot * 0.72, 48), 1)
    body = [_legend(series, width), _axes(frame, scale, y_text, categories, x_label, y_label)]
    palette = palette_for(series)
    for i, category in enumerate(categories):
        base = 0.0
        x = frame.x_center(i, len(categories)) - bar / 2
        for k, s in enumerate(series):
            value = s.values[i] or 0
            if value <= 0:
                continue
            y_top = scale.position(base + value, frame.bottom, frame.top)
            y_bottom = scale.position(base, frame.bottom, frame.top)
            body.append(
                _rect(
                    x, y_top, bar, y_bottom - y_top, color(k, palette), "bar", f"{category} · {s.name}: {y_text(value)}"
                )
            )
            base += value
    return _svg(width, frame.height, "".join(body), label)


# ---------------------------------------------------------------- lines


def line_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    y_text: Callable[[float], str],
    x_label: str,
    y_label: str,
    label: str,
    log: bool = False,
    width: float = WIDTH,
) -> str:
    """One line per series over the categories (e.g. std of each role across layers)."""
    values = [v for s in series for v in s.values if v is not None and (v > 0 or not log)]
    if log and values:
        scale = log_scale(min(values), max(values))
    else:
        scale = linear_scale(min(values, default=0), max(values, default=1))
    frame = _frame(series, [y_text(t) for t in scale.ticks], width)
    body = [_legend(series, width), _axes(frame, scale, y_text, categories, x_label, y_label)]
    palette = palette_for(series)
    for k, s in enumerate(series):
        points = [
            (frame.x_center(i, len(categories)), scale.position(v, frame.bottom, frame.top), categories[i], v)
            for i, v in enumerate(s.values)
            if v is not None and (v > 0 or not log)
        ]
        if len(points) > 1:
            path = " ".join(f"{_num(x)},{_num(y)}" for x, y, _, _ in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{color(k, palette)}" class="series"/>')
        for x, y, category, v in points:
            body.append(
                f'<circle cx="{_num(x)}" cy="{_num(y)}" r="2.5" fill="{color(k, palette)}"><title>{esc(f"{s.name} · {category}: {y_text(v)}")}</title></circle>'
            )
    return _svg(width, frame.height, "".join(body), label)


# ---------------------------------------------------------------- block diagram


@dataclass(frozen=True)
class Box:
    title: str
    rows: tuple[str, ...] = ()  # monospace lines: tensor names with their shapes
    kind: str = "plain"  # css class: embedding, norm, attention, ffn, head
    subtitle: str = ""  # one line of facts under the title ("32 heads · head_dim 128")


@dataclass(frozen=True)
class Residual:
    """Boxes whose output is added to their input (the skip line goes around them); `after`:
    boxes applied to the sum (a post-norm layer's LayerNorm), drawn below the ⊕."""

    boxes: tuple[Box, ...]
    after: tuple[Box, ...] = ()


@dataclass(frozen=True)
class Flow:
    before: tuple[Box, ...]
    repeated: tuple[Residual, ...]
    after: tuple[Box, ...]
    repeat_label: str  # "× 32 decoder layers"


_BOX_TITLE, _BOX_ROW, _GAP, _PLUS = 22.0, 16.0, 26.0, 9.0


def _box_height(box: Box) -> float:
    return _BOX_TITLE + 8 + _BOX_ROW * (len(box.rows) + bool(box.subtitle)) + (4 if box.rows else 0)


def _arrow(x: float, y1: float, y2: float) -> str:
    head = f'<polygon points="{_num(x - 4)},{_num(y2 - 6)} {_num(x + 4)},{_num(y2 - 6)} {_num(x)},{_num(y2)}" class="arrowhead"/>'
    return _line(x, y1, x, y2 - 5, "flow") + head


def _draw_box(box: Box, x: float, y: float, width: float) -> str:
    height = _box_height(box)
    out = [
        _rect(x, y, width, height, css_class=f"box {box.kind}", rx=6),
        _text(x + width / 2, y + 19, box.title, "middle", "box-title"),
    ]
    if box.subtitle:
        out.append(_text(x + width / 2, y + _BOX_TITLE + 14, box.subtitle, "middle", "box-subtitle"))
        y += _BOX_ROW
    for i, row in enumerate(box.rows):
        out.append(_text(x + 14, y + _BOX_TITLE + 16 + i * _BOX_ROW, row, "start", "box-row"))
    return "".join(out)


def flow_diagram(flow: Flow, label: str) -> str:
    """Boxes top to bottom with arrows; the repeated part framed, each residual with its skip line and ⊕."""
    everything = flow.before + tuple(b for r in flow.repeated for b in r.boxes + r.after) + flow.after
    widest = max(
        (
            max(
                [_text_width(b.title, TITLE_ADVANCE) + 24, _text_width(b.subtitle) + 24]
                + [_text_width(r, MONO_ADVANCE) + 28 for r in b.rows]
            )
            for b in everything
        ),
        default=200,
    )
    box_width = max(widest, 300)
    skip_x = 54.0  # where residual skip lines run
    x = skip_x + 30
    width = x + box_width + 64 + _text_width(flow.repeat_label, 0.62 * 15)  # room on the right for the repeat label
    cx = x + box_width / 2
    out: list[str] = []
    y = 10.0

    def place(box: Box) -> None:
        nonlocal y
        out.append(_draw_box(box, x, y, box_width))
        y += _box_height(box)

    for i, box in enumerate(flow.before):
        if i:
            out.append(_arrow(cx, y, y + _GAP))
            y += _GAP
        place(box)
    frame_top = y + _GAP / 2
    for residual in flow.repeated:
        out.append(_arrow(cx, y, y + _GAP))
        branch = y + _GAP / 2
        y += _GAP
        for j, box in enumerate(residual.boxes):
            if j:
                out.append(_arrow(cx, y, y + _GAP * 0.7))
                y += _GAP * 0.7
            place(box)
        plus = y + _GAP * 0.7 + _PLUS
        out.append(_arrow(cx, y, plus - _PLUS))
        # skip line: from the branch point, left, down, and back into the ⊕
        out.append(
            f'<polyline points="{_num(cx)},{_num(branch)} {_num(skip_x)},{_num(branch)} {_num(skip_x)},{_num(plus)} {_num(cx - _PLUS - 5)},{_num(plus)}" class="skip" fill="none"/>'
        )
        out.append(
            f'<polygon points="{_num(cx - _PLUS - 6)},{_num(plus - 4)} {_num(cx - _PLUS - 6)},{_num(plus + 4)} {_num(cx - _PLUS)},{_num(plus)}" class="arrowhead"/>'
        )
        out.append(f'<circle cx="{_num(cx)}" cy="{_num(plus)}" r="{_num(_PLUS)}" class="plus"/>')
        out.append(_line(cx - 5, plus, cx + 5, plus, "plus-sign") + _line(cx, plus - 5, cx, plus + 5, "plus-sign"))
        y = plus + _PLUS
        for box in residual.after:
            out.append(_arrow(cx, y, y + _GAP * 0.7))
            y += _GAP * 0.7
            place(box)
    frame_bottom = y + _GAP / 2
    if flow.repeated:
        out.insert(
            0,
            _rect(
                skip_x - 30,
                frame_top,
                box_width + (x - skip_x) + 60,
                frame_bottom - frame_top,
                css_class="repeat",
                rx=10,
            ),
        )
        out.append(_text(x + box_width + 44, frame_top + 22, flow.repeat_label, "start", "repeat-label"))
    for box in flow.after:
        out.append(_arrow(cx, y, y + _GAP))
        y += _GAP
        place(box)
    return _svg(width, max(y, frame_bottom) + 10, "".join(out), label, "diagram")


# ---------------------------------------------------------------- heat map


@dataclass(frozen=True)
class Tile:
    fill: str
    tip: str  # the hover title: the exact numbers
    css_class: str = ""  # "identical", "beyond" (for whoever reads the page)
    outline: str = ""  # a colour: the tile is drawn outlined (beyond the noise)


@dataclass(frozen=True)
class HeatLegend:
    ramp: tuple[str, ...]  # the colour scale, low to high, in equal steps
    ticks: tuple[tuple[float, str], ...]  # (where along the ramp, 0 to 1; its text)
    title: str  # what the colour shows ("relative RMSE (log scale)")
    swatches: tuple[tuple[Tile, str], ...]  # the marked kinds of cell and what each means


HEAT_ROW = 14  # px per row: a 12 px layer number fits
HEAT_STEP = 14  # px per step of the legend's ramp


def heat_map(
    rows: Sequence[str],
    columns: Sequence[str],
    tiles: Sequence[Sequence[Tile | None]],
    legend: HeatLegend,
    row_axis: str,
    label: str,
) -> str:
    """A grid of coloured tiles (rows: layers; columns: roles), None left blank, each with its
    hover title; under it the colour ramp with its ticks and the marked kinds of tile."""
    # Dense grids (a 126-layer model) label every few rows so the numbers never overlap.
    row_height = HEAT_ROW if len(rows) <= 64 else 8
    every = math.ceil((FONT + 1) / row_height)
    left = max([_text_width(r) for r in rows] + [_text_width(row_axis)]) + 12
    widths = [max(_text_width(c) + 10, 28.0) for c in columns]
    top = FONT + 12
    starts = [left + sum(widths[:i]) for i in range(len(columns))]
    parts = [_text(left - 6, top - 6, row_axis, "end", "axis-label")]
    parts += [_text(x + w / 2, top - 6, c, "middle", "tick") for x, w, c in zip(starts, widths, columns)]
    for i, (row, line) in enumerate(zip(rows, tiles)):
        y = top + i * row_height
        if i % every == 0:
            parts.append(_text(left - 6, y + row_height / 2 + 4, row, "end", "tick"))
        for x, w, tile in zip(starts, widths, line):
            if tile is not None:
                parts.append(
                    _rect(
                        x + 1,
                        y + 1,
                        w - 2,
                        row_height - 2,
                        tile.fill,
                        f"tile {tile.css_class}".strip(),
                        tile.tip,
                        stroke=tile.outline,
                    )
                )
    y = top + len(rows) * row_height + 18
    title_width = _text_width(legend.title)
    parts.append(_text(0, y + 10, legend.title, "start", "legend"))
    ramp_x = title_width + 10
    for i, fill in enumerate(legend.ramp):
        parts.append(_rect(ramp_x + i * HEAT_STEP, y, HEAT_STEP, 12, fill))
    ramp_width = len(legend.ramp) * HEAT_STEP
    for where, text in legend.ticks:
        parts.append(_text(ramp_x + where * ramp_width, y + 26, text, "middle", "tick"))
    right = ramp_x + ramp_width + max((_text_width(t) / 2 for _, t in legend.ticks), default=0)
    y += 36
    x = 0.0
    for tile, text in legend.swatches:
        parts.append(_rect(x + 1, y + 1, 18, 10, tile.fill, f"tile {tile.css_class}".strip(), stroke=tile.outline))
        parts.append(_text(x + 24, y + 10, text, "start", "legend"))
        x += 24 + _text_width(text) + 18
    width = max(left + sum(widths) + 4, right + 4, x)
    return _svg(width, y + 18, "".join(parts), label)
