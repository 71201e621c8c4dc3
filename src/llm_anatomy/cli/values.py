"""`llm-anatomy values`: tensors' values as torch prints them, reading only the elements shown."""

from __future__ import annotations

import argparse
import glob

from ..analysis.values import (
    PrintOptions,
    dequantized,
    grad_fn,
    loader_transform,
    parameter_views,
    parse_index,
    prefetch,
    show,
    split_index,
    tensor_views,
)
from ..api import Model, open as open_model
from ..io.sources import is_local
from ..core.catalog import no_match
from ..core.errors import UsageError
from ..core.text import escape
from ..render import torch_values as render
from ..decode.elements import ElementReader
from ._adapter import add_base_argument, base_of, check
from ._args import add_model_argument, shown_argument, whole_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

DEFAULTS = PrintOptions()

HELP = (
    "Print tensors' values as torch prints them (threshold 1000, edgeitems 3, precision 4, linewidth 80 "
    "unless changed), reading only the elements the summary shows. TENSOR may carry an index: "
    "integers, start:stop:step slices and '...', e.g. 'lm_head.weight[0, :8]'."
)
EXAMPLE = """  llm-anatomy values meta-llama/Llama-2-7b-chat-hf 'lm_head.weight[0, :8]'
  llm-anatomy values ./Llama-2-7b-chat-hf --filter 'model.layers.0.*' --edgeitems 2
  llm-anatomy values ./Llama-2-7b-chat-hf --style torch   # as `for p in model.parameters(): print(p)`
  llm-anatomy values ./my-lora 'model.layers.0.self_attn.q_proj.weight[0, :8]' --base ./Llama-2-7b-hf --merged"""


# Sane ranges of torch.set_printoptions' settings. Past MAX_THRESHOLD elements a tensor's
# text is built in memory at once; --full prints any size, streaming.
MAX_PRECISION = 100
MAX_EDGEITEMS = 1_000
MAX_LINEWIDTH = 100_000
MAX_THRESHOLD = 1_000_000


def _threshold(text: str) -> float:
    try:
        value = float(text) if len(text) <= 40 else None
    except ValueError:
        value = None
    if value is None or not 0 <= value <= MAX_THRESHOLD:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"expected a number in 0..{MAX_THRESHOLD:,} (--full prints every element, streaming), found {shown_argument(text)}"
        )
    return int(value) if value.is_integer() else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "tensor",
        metavar="TENSOR[INDEX]",
        nargs="?",
        help="one tensor by exact name, optionally indexed: 'lm_head.weight[0, :8]'",
    )
    parser.add_argument(
        "--filter",
        metavar="GLOB",
        help="tensors whose names match this shell pattern; a trailing [INDEX] indexes each one",
    )
    parser.add_argument(
        "--style",
        choices=("named", "torch"),
        default="named",
        help="torch: exactly `for p in model.parameters(): print(p)` (transformers' order, tied weights once); with an index, print(p[INDEX])",
    )
    parser.add_argument(
        "--edgeitems",
        metavar="N",
        type=whole_number(0, MAX_EDGEITEMS),
        default=DEFAULTS.edgeitems,
        help=f"items shown at each end of a summarized dimension (default 3, at most {MAX_EDGEITEMS:,})",
    )
    parser.add_argument(
        "--precision",
        metavar="N",
        type=whole_number(0, MAX_PRECISION),
        default=DEFAULTS.precision,
        help=f"digits after the decimal point (default 4, at most {MAX_PRECISION})",
    )
    parser.add_argument(
        "--threshold",
        metavar="N",
        type=_threshold,
        default=DEFAULTS.threshold,
        help=f"summarize tensors with more elements than this (default 1000, at most {MAX_THRESHOLD:,}; --full for every element)",
    )
    parser.add_argument(
        "--linewidth",
        metavar="N",
        type=whole_number(0, MAX_LINEWIDTH),
        default=DEFAULTS.linewidth,
        help=f"characters per line before wrapping (default 80, at most {MAX_LINEWIDTH:,})",
    )
    parser.add_argument(
        "--full", action="store_true", help="print every element (threshold=inf); reads whole tensors, streaming"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="machine-readable: shape, dtype, the shown positions per dimension and their values",
    )
    parser.add_argument(
        "--stored",
        action="store_true",
        help="tensors as stored: a quantized model's packed words, FP8 values and scales, not dequantized; with --hf-names, a GGUF's values before the loader's transforms (Gemma's 1 + w norms, llama.cpp's q/k row order)",
    )
    parser.add_argument(
        "--hf-names",
        action="store_true",
        help="name GGUF and Meta tensors by their Hugging Face names (blk.0.attn_q -> model.layers.0.self_attn.q_proj), with the values transformers holds under them",
    )
    add_base_argument(parser)
    parser.add_argument(
        "--merged",
        action="store_true",
        help="for a LoRA adapter, base weight TENSOR as PEFT's merge_and_unload() leaves it (W + scaling * B @ A), reading only the rows of B and columns of A the shown elements need",
    )
    _allow_options_before_tensor(parser)


def _allow_options_before_tensor(parser: argparse.ArgumentParser) -> None:
    """Parse this command intermixed, so `values MODEL --full TENSOR` works: before Python
    3.13, argparse gives an optional positional its (empty) value with the first one and then
    rejects TENSOR after an option as unrecognized."""
    plain = parser.parse_known_args

    def intermixed(args=None, namespace=None):  # type: ignore[no-untyped-def]
        parser.parse_known_args = plain  # parse_known_intermixed_args calls it twice itself
        try:
            return parser.parse_known_intermixed_args(args, namespace)
        finally:
            parser.parse_known_args = intermixed  # type: ignore[method-assign]

    parser.parse_known_args = intermixed  # type: ignore[method-assign]


def _views(model: Model, catalog, args: argparse.Namespace) -> list:
    """(view, grad_fn) of each tensor to print; catalog: the model's, under the names the command
    shows (transformers' names: the values transformers holds, unless --stored); quantized
    weights dequantized unless --stored (their stored tensors still found by their names);
    grad_fn: torch's, for a parameter indexed in torch style, else None."""
    if args.tensor is not None and args.filter is not None:
        raise UsageError(args.tensor, "either TENSOR or --filter", "both", "drop one of them")
    shown = catalog if args.stored else dequantized(catalog)
    loaded = loader_transform(model.catalog)  # GGUF's loader transforms go by the names as stored
    if args.style != "torch":
        under_hf_names = catalog is not model.catalog and not args.stored
        return [
            (view, None)
            for view in tensor_views(shown, args.tensor, args.filter, catalog, loaded if under_hf_names else None)
        ]
    from ..analysis.values import no_tensors

    if not catalog.tensors:
        raise no_tensors(catalog)

    text, is_glob = (args.filter, True) if args.tensor is None else (args.tensor, False)
    name, index = split_index(text, glob=is_glob) if text is not None else (None, None)
    views = parameter_views(shown, model.skeleton, name if is_glob else glob.escape(name), loaded)
    if not views:
        if is_glob:
            raise no_match(catalog.name, text, "parameter", "llm-anatomy params --style torch")
        raise UsageError(
            catalog.name,
            f"a parameter named {text!r}",
            "none",
            "list the names with `llm-anatomy params --style torch`",
        )
    if index is None:
        return [(view, None) for view in views]
    indexed = []
    for view in views:  # print(p[index]) of each
        target = f"{view.name}[{index}]"
        items = parse_index(target, index)
        indexed.append((view.index(target, items), grad_fn(items, view.shape)))
    return indexed


# Views whose bytes a remote model fetches together (in parallel requests), then lets go.
PREFETCH_VIEWS = 256


def _merged(model: Model, args: argparse.Namespace, options: PrintOptions, out: TextIO) -> int:
    """values ADAPTER NAME --merged: one base weight as the merged model holds it."""
    from ..analysis.adapter import merge_base, merged_shown, require_mergeable

    if model.adapter is None:
        raise UsageError(model.name, "a PEFT adapter with --merged", "a model", "drop --merged")
    require_mergeable(model.adapter)
    if args.tensor is None or args.filter is not None or args.style != "named" or args.json or args.full:
        raise UsageError(
            model.name,
            "one base weight by name with --merged (no --filter, --style torch, --json or --full)",
            "other options",
            "name the weight, e.g. 'model.layers.0.self_attn.q_proj.weight[0, :8]'",
        )
    base = base_of(model, args)
    if base is None:
        raise UsageError(
            model.name,
            "the base model with --merged",
            f"base_model_name_or_path {escape(model.adapter.base_model or 'unset')}, not on this machine",
            "pass --base BASE",
        )
    if check(model, base, out):
        return 1
    with ElementReader() as reader:
        out.write(
            "".join(
                render.named_text(
                    merged_shown(
                        reader, model.adapter, merge_base(base.catalog, base.hf_catalog), args.tensor, options
                    ),
                    options,
                    True,
                )
            )
        )
    return 0


def run(args: argparse.Namespace, out: TextIO) -> int:
    model = open_model(args.model, args.revision)
    if args.merged:
        return _merged(model, args, PrintOptions(args.precision, args.threshold, args.edgeitems, args.linewidth), out)
    if args.base is not None:
        raise UsageError(
            args.base,
            "--base with --merged (values of a LoRA adapter merged into its base)",
            "--base alone",
            "add --merged, or drop --base",
        )
    # transformers' view needs transformers' names
    catalog = model.hf_catalog if args.hf_names or args.style == "torch" else model.catalog
    threshold = float("inf") if args.full else args.threshold
    options = PrintOptions(args.precision, threshold, args.edgeitems, args.linewidth)
    views = _views(model, catalog, args)
    if args.json:
        from ..render import values_json

        out.write(values_json.json_head(catalog.name, options))
    remote = not all(is_local(view.tensor.file) for view, _ in views)  # a model on the Hub
    with ElementReader() as reader:
        for number, (view, indexed) in enumerate(views):
            if remote and number % PREFETCH_VIEWS == 0:
                prefetch(reader, [v for v, _ in views[number : number + PREFETCH_VIEWS]], options)
            shown = show(reader, view, options)
            if args.json:
                pieces = values_json.json_tensor(shown, number == 0)
            elif args.style == "torch":
                pieces = (
                    render.parameter_text(shown, options)
                    if indexed is None
                    else render.indexed_parameter_text(shown, options, indexed)
                )
            else:
                pieces = render.named_text(shown, options, number == 0)
            if args.full:  # stream: a whole tensor's text may not fit in memory
                for piece in pieces:
                    out.write(piece)
            else:
                out.write("".join(pieces))
    if args.json:
        out.write(values_json.JSON_TAIL)
    return 0
