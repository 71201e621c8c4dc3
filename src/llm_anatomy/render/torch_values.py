"""torch's tensor printing (torch/_tensor_str.py) re-implemented over plain Python values.

Text is produced as a stream of pieces so that `--full` can print a tensor of any size
in bounded memory; every rule below mirrors a line of _Formatter, _vector_str,
_tensor_str_with_formatter, _str_intern or _add_suffixes."""

from __future__ import annotations

import itertools

from ..core.text import escape
from .text import shape_text

# Dtypes torch leaves out of the printout (torch.get_default_dtype() is float32).
DEFAULT_DTYPES = {"torch.float32", "torch.complex64", "torch.int64", "torch.bool"}
LINES_PER_PIECE = 1024

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Callable, Iterable, Iterator

    from ..analysis.values import PrintOptions, ShownTensor


class Formatter:
    """torch's _Formatter: integer / fixed / scientific mode and the column width.

    Formatted widths grow with |value| (and by one for a minus sign), so the widest
    string is that of an extreme value: only the extremes of each sign are formatted."""

    def __init__(self, kind: str, precision: int, values: Iterable) -> None:
        self.floating = kind == "float"
        self.precision = precision
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        if self.floating:
            self._float_stats(values)
        else:
            low = high = None
            for value in values:
                if low is None or value < low:
                    low = value
                if high is None or value > high:
                    high = value
            if low is not None:
                self.max_width = max(len(f"{low}"), len(f"{high}"), 1)
        self.format = self._formatter()

    def _float_stats(self, values: Iterable) -> None:
        positive: list[float] = []  # [min, max] of the positive nonzero finite values
        negative: list[float] = []  # [min, max] of |v| for the negative finite ones
        for value in values:
            if value == 0 or value - value != 0:  # zero, inf or nan: torch ignores them here
                continue
            if self.int_mode and not value.is_integer():
                self.int_mode = False
            side, magnitude = (positive, value) if value > 0 else (negative, -value)
            if not side:
                side.extend((magnitude, magnitude))
            elif magnitude < side[0]:
                side[0] = magnitude
            elif magnitude > side[1]:
                side[1] = magnitude
        if not positive and not negative:
            return
        smallest = min(side[0] for side in (positive, negative) if side)
        largest = max(side[1] for side in (positive, negative) if side)
        self.sci_mode = largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4
        extremes = positive + [-m for m in negative]
        if self.sci_mode:
            widths = (len(f"{v:.{self.precision}e}") for v in extremes)
        elif self.int_mode:
            widths = (len(f"{v:.0f}") + 1 for v in extremes)
        else:
            widths = (len(f"{v:.{self.precision}f}") for v in extremes)
        self.max_width = max(self.max_width, *widths)

    def _formatter(self) -> Callable[[object], str]:
        """format(value) -> text right-aligned to max_width, as _Formatter.format does."""
        width, precision = self.max_width, self.precision
        if not self.floating:
            return lambda value: f"{value}".rjust(width)  # f"{}" keeps True/False for bool
        if self.sci_mode:
            spec = f"{width}.{precision}e"
        elif self.int_mode:  # integers in a float tensor end in "." (not inf and nan)
            return lambda value: (f"{value:.0f}." if value - value == 0 else f"{value:.0f}").rjust(width)
        else:
            spec = f">{width}.{precision}f"
        return lambda value: format(value, spec)


class _Printer:
    """One tensor's printout: formatters (two for complex values: real and imaginary parts) and options."""

    def __init__(self, shown: ShownTensor, options: PrintOptions) -> None:
        self.options = options
        self.summarize = shown.summarize
        if shown.decoder.kind == "complex":
            self.real = Formatter("float", options.precision, (v.real for v in shown.values()))
            self.imag: Formatter | None = Formatter("float", options.precision, (v.imag for v in shown.values()))
        else:
            self.real = Formatter(shown.decoder.kind, options.precision, shown.values())
            self.imag = None
            self.value = self.real.format

    def value(self, value) -> str:
        """A complex value: real part, then the imaginary part with its sign and "j"."""
        real = self.real.format(value.real)
        imag = (self.imag.format(value.imag) + "j").lstrip()
        return real + imag if imag[0] in "+-" else real + "+" + imag

    def vector(self, rows: Iterator[Iterable], size: int, indent: int) -> Iterator[str]:
        edge = self.options.edgeitems
        if self.summarize and not edge:
            yield "[...]"  # nothing shown, so no row to take
            return
        row = next(rows)
        element_length = self.real.max_width + 2 + (self.imag.max_width + 1 if self.imag else 0)
        per_line = max(1, (self.options.linewidth - indent) // element_length)
        texts: Iterator[str] = map(self.value, row)
        if self.summarize and size > 2 * edge:
            texts = itertools.chain(itertools.islice(texts, edge), [" ..."], texts)
        lines = iter(lambda: ", ".join(itertools.islice(texts, per_line)), "")
        newline = ",\n" + " " * (indent + 1)
        # A row is one piece; a very long one (--full) comes in pieces of LINES_PER_PIECE lines.
        piece, following = "[", newline.join(itertools.islice(lines, LINES_PER_PIECE))
        while following:
            piece, following = piece + following, newline.join(itertools.islice(lines, LINES_PER_PIECE))
            if following:
                yield piece
                piece = newline
        yield piece + "]"

    def tensor(self, shape: tuple[int, ...], rows: Iterator[Iterable], indent: int) -> Iterator[str]:
        if not shape:
            yield self.value(next(iter(next(rows))))
            return
        if len(shape) == 1:
            yield from self.vector(rows, shape[0], indent)
            return
        edge = self.options.edgeitems
        folded = self.summarize and shape[0] > 2 * edge
        parts: Iterable[int | None] = (
            itertools.chain([0] * edge, [None], [0] * edge) if folded else itertools.repeat(0, shape[0])
        )
        separator = "," + "\n" * (len(shape) - 1) + " " * (indent + 1)
        yield "["
        for number, part in enumerate(parts):
            if number:
                yield separator
            if part is None:
                yield "..."
            else:
                yield from self.tensor(shape[1:], rows, indent + 1)
        yield "]"


def tensor_text(shown: ShownTensor, options: PrintOptions, autograd: str | None = None) -> Iterator[str]:
    """What print(tensor) writes, without the final newline (torch's _str_intern + _add_suffixes);
    autograd: its last suffix, "requires_grad=True" or "grad_fn=<SliceBackward0>", if any."""
    prefix = "tensor("
    indent = len(prefix)
    torch_dtype = shown.decoder.torch_dtype
    suffixes = []
    if shown.numel == 0:
        if len(shown.shape) != 1:
            suffixes.append(f"size={tuple(shown.shape)}")
        if torch_dtype != "torch.float32":
            suffixes.append(f"dtype={torch_dtype}")
        body: Iterator[str] = iter(["[]"])
    else:
        if not options.edgeitems:
            suffixes.append(f"size={tuple(shown.shape)}")
        if torch_dtype not in DEFAULT_DTYPES:
            suffixes.append(f"dtype={torch_dtype}")
        body = _Printer(shown, options).tensor(shown.shape, shown.rows(), indent)
    if autograd is not None:
        suffixes.append(autograd)
    last_line = 0
    for piece in itertools.chain([prefix], body):
        newline = piece.rfind("\n")
        last_line = len(piece) - newline - 1 if newline >= 0 else last_line + len(piece)
        yield piece
    # torch counts the last line two characters longer than it is (len - rfind("\n") + 1).
    last_line += 2
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > options.linewidth:
            yield ",\n" + " " * indent + suffix
            last_line = indent + len(suffix)
        else:
            yield ", " + suffix
            last_line += len(suffix) + 2
    yield ")"


def parameter_text(shown: ShownTensor, options: PrintOptions) -> Iterator[str]:
    """`print(p)` for a parameter of a model: `Parameter containing:` then the tensor, requires_grad=True."""
    yield "Parameter containing:\n"
    yield from tensor_text(shown, options, "requires_grad=True")
    yield "\n"


def indexed_parameter_text(shown: ShownTensor, options: PrintOptions, grad_fn: str) -> Iterator[str]:
    """`print(p[index])` for a parameter of a model: a plain tensor with the grad_fn of the indexing."""
    yield from tensor_text(shown, options, f"grad_fn=<{grad_fn}>")
    yield "\n"


def named_text(shown: ShownTensor, options: PrintOptions, first: bool) -> Iterator[str]:
    """The default style: a header line (name, shape, dtype) above the tensor's printout."""
    yield ("" if first else "\n") + f"{escape(shown.name)}  {shape_text(shown.shape)}  {shown.tensor.dtype}\n"
    yield from tensor_text(shown, options)
    yield "\n"
