"""The numerical rank of a change B - A to a matrix (`diff --low-rank`), so that a merged LoRA
is recognised as such, and the verdict lines that group the changes by layer and module.

Numerical rank: the number of singular values of D = B - A above a tolerance that stands for
the rounding noise of the stored values, not for D's own size. numpy.linalg.matrix_rank's
default, S.max * max(M, N) * eps, cannot serve with the stored dtype's eps: for BF16
(eps = 2^-7) it is above S.max itself as soon as max(M, N) >= 128, so every change would have
rank 0. And the noise in D does not scale with D: a merge rounds W + s.B@A to the stored dtype,
each element within u |w'| (u: the dtype's unit roundoff, eps / 2), and PEFT's merge in BF16 or
F16 rounds twice (the product, then the sum): an error matrix E with elements of at most
2u |w'|. A matrix of m x n independent errors of root mean square sigma has a largest singular
value of about sigma (sqrt(m) + sqrt(n)) (Bai-Yin), so

    tolerance = 4 u rms (sqrt(m) + sqrt(n)),  rms = max(rms(A), rms(B)),  u of the coarser dtype

(twice the two roundings' bound, a factor of two of margin), and never below numpy's default
for the precision D is computed in (float32; float64 when a side is F64), which covers the
arithmetic. u per dtype is UNIT_ROUNDOFF; a dtype without one (GGML quants, integers) is
given BF16's, and says so (`tolerance_dtype`).

The singular values come from a randomised SVD (Halko, Martinsson and Tropp 2011, algorithm
4.4: a Gaussian sketch of k = probe + OVERSAMPLE columns, POWER_ITERATIONS subspace
iterations, each step re-orthonormalised by QR, then the SVD of the k x n matrix Q^T D),
seeded with SEED for every tensor, so a result never depends on the order or the worker.
A probe of PROBES[0] is tried first; when the rank found exceeds the probe, the next probe;
past the last one the rank is reported as above it. When k reaches min(m, n) the exact
singular values are computed (numpy.linalg.svd). Memory: D (4 bytes per element, 8 for F64)
plus O((m + n) k) for the sketch, its orthonormal bases and Q^T D."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..core.catalog import natural_key

if TYPE_CHECKING:
    import numpy as np

UNIT_ROUNDOFF = {
    "F64": 2.0**-53,
    "F32": 2.0**-24,
    "F16": 2.0**-11,
    "BF16": 2.0**-8,
    "F8_E4M3": 2.0**-4,
    "F8_E5M2": 2.0**-3,
}
FALLBACK_DTYPE = "BF16"  # a dtype without a rounding model (quants, integers) is given BF16's
PROBES = (16, 64, 256)  # ranks a sketch is sized for, in turn
OVERSAMPLE = 8
POWER_ITERATIONS = 2
SEED = 0
MAX_DIFFERENCE_ELEMS = 1 << 29  # D is held whole: 2 GiB as float32 (Llama-3's embedding fits)
LOW_SHARE = 0.5  # a change is low-rank when its rank is under this share of min(m, n)


@dataclass(frozen=True)
class LowRank:
    """The rank of one matrix's change. rank: singular values above tolerance (a lower bound
    when `above` is True: past the last probe); energy: the share of ||B - A||_F^2 in the top
    `rank` singular values; full: min(m, n); sketch: the columns of the last sketch (full when
    the exact SVD was taken)."""

    rank: int
    above: bool
    full: int
    energy: float
    sigma_max: float
    tolerance: float
    tolerance_dtype: str
    sketch: int

    @property
    def low(self) -> bool:
        return not self.above and self.rank < LOW_SHARE * self.full

    def words(self) -> str:
        """'rank 16', 'full rank', 'rank 40 of 64 (not low-rank)', 'rank above 256 of 4096 (not low-rank)'."""
        if self.low:
            return f"rank {self.rank}"
        if self.rank == self.full and not self.above:
            return "full rank"
        return f"rank {'above ' if self.above else ''}{self.rank} of {self.full} (not low-rank)"


def singular_values(difference: "np.ndarray", k: int, seed: int = SEED) -> "np.ndarray":
    """The top k singular values of DIFFERENCE (m x n): randomised (module docstring) while k
    is under min(m, n), exact from there."""
    import numpy as np

    m, n = difference.shape
    if k >= min(m, n):
        return np.linalg.svd(difference.astype(np.float64, copy=False), compute_uv=False)
    rng = np.random.default_rng(seed)
    sketch = rng.standard_normal((n, k)).astype(difference.dtype)
    basis, _ = np.linalg.qr(difference @ sketch)
    for _ in range(POWER_ITERATIONS):
        row_basis, _ = np.linalg.qr(difference.T @ basis)
        basis, _ = np.linalg.qr(difference @ row_basis)
    return np.linalg.svd((basis.T @ difference).astype(np.float64), compute_uv=False)


def tolerance(
    sigma_max: float, shape: tuple[int, int], dtypes: Sequence[str], rms: float, arithmetic: float
) -> tuple[float, str]:
    """(tolerance, the dtype whose roundoff it took): module docstring."""
    known = [d for d in dtypes if d in UNIT_ROUNDOFF]
    coarsest = max(known, key=UNIT_ROUNDOFF.__getitem__) if len(known) == len(dtypes) else FALLBACK_DTYPE
    m, n = shape
    noise = 4 * UNIT_ROUNDOFF[coarsest] * rms * (math.sqrt(m) + math.sqrt(n))
    return max(noise, sigma_max * max(m, n) * arithmetic), coarsest


def _one_blas_thread() -> Any:
    """threadpoolctl's limit of one BLAS thread (the `stats` extra installs it); where numpy came
    without it (the `gguf` or `transformers` extra alone), the same products on BLAS's own threads:
    the same result, only slower on a loaded machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def estimate(difference: "np.ndarray", dtypes: Sequence[str], sum_aa: float, sum_bb: float, sum_dd: float) -> LowRank:
    """The numerical rank of DIFFERENCE (B - A, m x n, float32 or float64) and its energy share;
    sum_aa, sum_bb, sum_dd: ||A||^2, ||B||^2 and ||B - A||^2 over the finite pairs."""
    import numpy as np

    m, n = difference.shape
    full = min(m, n)
    rms = math.sqrt(max(sum_aa, sum_bb) / max(m * n, 1))
    arithmetic = float(np.finfo(difference.dtype).eps)
    for probe in PROBES:
        k = min(full, probe + OVERSAMPLE)
        # One BLAS thread: the workers already keep every core busy, and OpenBLAS's threads
        # spinning beside them made the products 10x slower on a loaded machine (bench/RESULTS.md).
        with _one_blas_thread():
            values = singular_values(difference, k)
        sigma_max = float(values[0]) if values.size else 0.0
        limit, dtype = tolerance(sigma_max, (m, n), dtypes, rms, arithmetic)
        rank = int(np.count_nonzero(values > limit))
        if k == full or rank <= probe:
            break
    above = k < full and rank > probe
    rank = probe if above else rank
    energy = float(np.sum(values[:rank] ** 2)) / sum_dd if sum_dd else math.nan
    return LowRank(rank, above, full, min(energy, 1.0), sigma_max, limit, dtype, k)


_LAYER = re.compile(r"(?P<prefix>.*?)\blayers\.(?P<layer>\d+)\.(?P<rest>.+)")


def _module(rest: str) -> str:
    """A weight's short module name: 'self_attn.q_proj.weight' -> 'q_proj'."""
    parts = rest.split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] == "weight" else rest


def _layers_text(layers: list[int]) -> str:
    """'layer 3', 'layers 0 to 31', 'layers 0, 2 and 5 to 7'."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][1] + 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    pieces = [str(a) if a == b else f"{a} to {b}" for a, b in runs]
    if len(pieces) == 1 and runs[0][0] == runs[0][1]:
        return f"layer {pieces[0]}"
    return "layers " + (pieces[0] if len(pieces) == 1 else ", ".join(pieces[:-1]) + " and " + pieces[-1])


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def verdict(changes: Sequence[Any], errors: int = 0, header_changes: bool = False) -> list[str]:
    """verify-style lines: the changed tensors grouped by what changed (their rank words) and
    by module across layers, e.g. 'layers 0 to 31 q_proj and v_proj changed with rank 16';
    then what the rest is. CHANGES: diff.TensorChange rows (their low_rank set for matrices)."""
    changed = [c for c in changes if not c.identical]
    groups: dict[tuple[str, str, str], list[int]] = {}  # (words, prefix, module) -> layers
    alone: list[tuple[str, str]] = []  # (name, words)
    for change in sorted(changed, key=lambda c: natural_key(c.name)):
        words = f"with {change.low_rank.words()}" if change.low_rank is not None else "(not a matrix)"
        match = _LAYER.fullmatch(change.name)
        if match is None:
            alone.append((change.name, words))
        else:
            prefix = match["prefix"].removeprefix("model.").rstrip(".").replace(".", " ")  # 'encoder layers 0'
            key = (words, f"{prefix} " if prefix else "", _module(match["rest"]))
            groups.setdefault(key, []).append(int(match["layer"]))
    # modules with the same layers and the same words share a line
    lines: dict[tuple[str, str, tuple[int, ...]], list[str]] = {}
    for (words, prefix, module), layers in groups.items():
        lines.setdefault((words, prefix, tuple(sorted(set(layers)))), []).append(module)
    out = [
        f"{prefix}{_layers_text(list(layers))} {_and(modules)} changed {words}"
        for (words, prefix, layers), modules in sorted(lines.items(), key=lambda item: (item[0][2], item[0][0]))
    ]
    out += [f"{name} changed {words}" for name, words in alone]
    identical = len(changes) - len(changed)
    rest = (
        "everything else identical"
        if not errors and not header_changes
        else f"{identical} other tensor{'' if identical == 1 else 's'} identical"
    )
    if not changed:
        return ["no tensor changed" + ("" if not errors and not header_changes else f"; {identical} identical")]
    out[-1] += f"; {rest}"
    lowered = [c.low_rank for c in changed if c.low_rank is not None and c.low_rank.low]
    if len(lowered) == len(changed):
        ranks = sorted({r.rank for r in lowered})
        span = f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {ranks[0]} to {ranks[-1]}"
        matrices = f"{len(changed)} matri{'x' if len(changed) == 1 else 'ces'}"
        out.append(f"every change is low-rank ({span}, {matrices}): B is A with a LoRA merged into it")
    return out
