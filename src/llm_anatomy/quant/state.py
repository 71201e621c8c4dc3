"""The small JSON documents some schemes store as uint8 tensors beside a weight (bitsandbytes'
`quant_state.bitsandbytes__nf4`: the weight's logical shape, dtype and block size, which its
header does not carry). A few hundred bytes each, read once per weight when counting."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Sequence

from ..io import bounded_json
from ..io.sources import open_bytes
from ..core.catalog import Catalog, TensorInfo
from ..core.errors import AnatomyError
from ..core.text import escape

# bitsandbytes writes ~170 bytes; a state past this is not one, and is never read whole.
MAX_STATE_BYTES = 16 * 1024
MAX_STATE_VALUES = 256


def read_states(catalog: Catalog, bases: Sequence[str], suffixes: Sequence[str]) -> dict[str, dict[str, Any] | str]:
    """base -> its parsed state, or why there is none (a phrase for a finding), for the
    weights whose state tensor (the first of suffixes present) exists; {} without suffixes."""
    if not suffixes:
        return {}
    found: dict[str, TensorInfo] = {}
    for base in bases:
        tensor = next((catalog.by_name[base + s] for s in suffixes if base + s in catalog.by_name), None)
        if tensor is not None:
            found[base] = tensor
    states: dict[str, dict[str, Any] | str] = {}
    by_file: dict[str, list[tuple[str, TensorInfo]]] = {}
    for base, tensor in found.items():
        if tensor.dtype != "U8" or len(tensor.shape) != 1 or tensor.nbytes > MAX_STATE_BYTES:
            states[base] = (
                f"{escape(tensor.name)} as JSON bytes (U8, at most {MAX_STATE_BYTES} bytes): {tensor.dtype} {list(tensor.shape)}"
            )
        else:
            by_file.setdefault(tensor.file, []).append((base, tensor))
    for path, wanted in by_file.items():
        with open_bytes(path) as source:
            source.prefetch([(t.offset, t.nbytes) for _, t in wanted])
            for base, tensor in wanted:
                states[base] = _parse(
                    source.read(tensor.offset, tensor.nbytes, f"tensor {escape(tensor.name)}"), tensor.name
                )
    return states


def _parse(raw: bytes, name: str) -> dict[str, Any] | str:
    try:
        value = bounded_json.loads(raw, name, "a JSON object", "", MAX_STATE_VALUES)
    except AnatomyError as exc:
        return f"{escape(name)} as a JSON object: {exc.found}"
    return value if isinstance(value, dict) else f"{escape(name)} as a JSON object: {type(value).__name__}"
