"""The config as a user sees it after from_pretrained: `print(model.config)` from the cached
skeleton when transformers can build the model, else config.json as stored, printed the same way."""

from __future__ import annotations

import json
import re
from collections import namedtuple

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from ..core.catalog import Catalog
from ..hf import mlx_lora
from ..hf.peft import is_adapter_config, is_lora_gguf
from ..hf.skeleton import SkeletonUnavailable, load_skeleton

# LlamaForCausalLM / GPT2LMHeadModel / BertModel -> Llama / GPT2 / Bert: transformers' own naming
# of config classes, used only to label config.json when transformers is not there to ask.
ARCHITECTURE_SUFFIX = re.compile(r"(For[A-Z]\w*|LMHeadModel|Model)$")
BASE_CONFIG_CLASS = "PreTrainedConfig"


class ConfigView(namedtuple("ConfigView", "model class_name values text from_transformers notes", defaults=((),))):
    """class_name: "LlamaConfig"; values: what the printout shows, in its order; text: the
    printout, character for character; from_transformers: False when it is config.json as stored."""

    __slots__ = ()


def printout(class_name: str, values: dict[str, Any]) -> str:
    """PreTrainedConfig.__repr__: the class name, then the dict as sorted, indented JSON."""
    return f"{class_name} {json.dumps(values, indent=2, sort_keys=True)}\n"


def guess_class_name(config: dict[str, Any]) -> str:
    architectures = config.get("architectures")
    first = (
        architectures[0]
        if isinstance(architectures, list) and architectures and isinstance(architectures[0], str)
        else ""
    )
    stem = ARCHITECTURE_SUFFIX.sub("", first)
    return f"{stem}Config" if stem and stem != first else BASE_CONFIG_CLASS


ADAPTER_CLASS = "LoraConfig"  # PEFT's config class of a LoRA adapter (others are refused by the adapter views)
LORA_GGUF_CLASS = "LoRA GGUF key/values"  # llama.cpp's adapter: key/values, no config class
MLX_ADAPTER_CLASS = "mlx-lm adapter config"  # mlx-lm saves a dict of its arguments, no class


def load_config_view(catalog: Catalog) -> ConfigView:
    if catalog.format == "gguf" and is_lora_gguf(catalog.metadata):  # no model: the config derived would be a guess
        values = dict(catalog.metadata)
        note = f"note: {catalog.name} is a LoRA GGUF: it holds no model config; these are its key/values as stored; `config --explain` explains each"
        return ConfigView(catalog.name, LORA_GGUF_CLASS, values, json.dumps(values, indent=2), False, (note,))
    config = catalog.require_config()
    if is_adapter_config(config):  # no model transformers could build: the JSON as PEFT wrote it
        note = f"note: this is {catalog.config_file}, a PEFT adapter's config, as stored; `config --explain` explains each field"
        return ConfigView(catalog.name, ADAPTER_CLASS, config, json.dumps(config, indent=2), False, (note,))
    if mlx_lora.is_adapter_config(config):  # mlx-lm's training arguments, as it saved them
        note = f"note: this is {catalog.config_file}, an mlx-lm adapter's config, as stored; `config --explain` explains each field"
        return ConfigView(catalog.name, MLX_ADAPTER_CLASS, config, json.dumps(config, indent=4), False, (note,))
    try:
        skeleton = load_skeleton(catalog)
    except SkeletonUnavailable as exc:
        class_name = guess_class_name(config)
        stored = catalog.config_file or "the config derived from the checkpoint"
        note = f"note: this is {stored} as stored, not as transformers would print it ({exc.found}); class name {class_name} guessed from `architectures`"
        return ConfigView(catalog.name, class_name, config, printout(class_name, config), False, (note,))
    values = json.loads(skeleton.config_text.partition(" ")[2])
    if catalog.format == "gguf" and catalog.files:
        # from_pretrained(..., gguf_file=NAME) loads through transformers' GGUF quantizer, which
        # sets model.config.quantization_config to GgufConfig(gguf_file=NAME), whatever the types.
        values["quantization_config"] = {
            "dequantize": False,
            "gguf_file": catalog.files[0].rpartition("/")[2],
            "quant_method": "gguf",
        }
        return ConfigView(catalog.name, skeleton.config_class, values, printout(skeleton.config_class, values), True)
    return ConfigView(catalog.name, skeleton.config_class, values, skeleton.config_text, True)
