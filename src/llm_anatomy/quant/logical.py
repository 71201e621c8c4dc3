"""The catalog as the model holds its weights: each quantized weight one Dequantized tensor
(quant.dequant) in place of its stored tensors, with the dequantizer of its scheme. The
table of dequantizers is here, apart from quant.dequant, so that the scheme modules it
imports by name import quant.dequant and nothing that imports them."""

from __future__ import annotations

from .dequant import Dequantized

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from ..core.catalog import Catalog
    from .dequant import Dequantizer

# scheme key (quant.schemes.SCHEMES) -> module of llm_anatomy.quant defining DEQUANTIZER.
DEQUANTIZERS = {
    "fp8": "fp8",
    "mxfp4": "mxfp4",
    "gptq": "integer",
    "awq": "integer",
    "mlx": "integer",
    "pack": "integer",
    "bnb4": "bnb4",
    "bnb8": "bnb8",
}


def dequantizer_for(scheme: str) -> Dequantizer | None:
    module = DEQUANTIZERS.get(scheme)
    if module is None:
        return None
    from importlib import import_module

    return import_module(f"{__package__}.{module}").DEQUANTIZER


def logical_catalog(catalog: Catalog, model_dtype: Callable[[], str | None]) -> Catalog:
    """The catalog as the model holds its weights: each quantized weight one Dequantized
    tensor in place of its stored tensors; unquantized tensors as stored. model_dtype() (asked
    only of a quantized model): the dtype from_pretrained gives the model
    (analysis.values.load_dtype), None if unknown."""
    from . import view

    qview = view(catalog)
    if qview is None or qview.scheme is None or not qview.quantized:
        return catalog
    dtype = model_dtype()
    tensors = []
    for weight in qview.weights:
        if not weight.scheme:
            tensors.append(weight.parts[0])
            continue
        found = dequantizer_for(weight.scheme)
        loaded = found.dtype(weight, dtype) if found is not None else (dtype or "BF16")
        settings = (
            weight.settings if weight.settings is not None else qview.settings
        )  # a weight's own (MLX per module, bnb state) first
        tensors.append(Dequantized(weight, settings or {}, loaded, qview.description, found))
    return catalog._replace(tensors=tuple(tensors))
