"""What params, summary and values share for a LoRA adapter: --base, which base model that is
(the option, else the adapter's base_model_name_or_path when it is on this machine), and the
base check's lines (one per mismatch, exit 1)."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from ..api import Model

from ..core.errors import UsageError
from ..core.text import escape


def add_base_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        metavar="BASE",
        help="for a LoRA adapter, the base model (default: the adapter's base_model_name_or_path when it is on this machine): checked against the adapter from the headers",
    )


def base_of(model: Model, args: argparse.Namespace) -> Model | None:
    """The base model --base names (refused for a model that is no adapter), else the adapter's
    own base_model_name_or_path if it is a folder here or a model whole in the local cache."""
    from ..api import open as open_model
    from ..hf import mlx_lora
    from ..hf.peft import is_lora_config

    if args.base is None:  # (another kind of adapter: its tensors are listed as they are)
        config = model.catalog.config
        return model.local_base() if is_lora_config(config) or mlx_lora.is_adapter_config(config) else None
    if model.adapter is None:
        raise UsageError(model.name, "a PEFT adapter (adapter_config.json) with --base", "a model", "drop --base")
    return open_model(args.base)


def check(model: Model, base: Model | None, out: TextIO) -> int:
    """1 when the base does not fit the adapter: each mismatch on its own line after the output."""
    if base is None:
        return 0
    mismatches = model.check_base(base)
    if not mismatches:
        return 0
    out.flush()
    for error in mismatches:
        print(f"llm-anatomy: {escape(error.line())}", file=sys.stderr)
    return 1
