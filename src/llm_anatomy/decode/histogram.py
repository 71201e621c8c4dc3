"""How often each raw 8- or 16-bit code occurs in a buffer: the one pass over the data that
`stats` makes for F16, BF16, the F8s and the 8/16-bit integers (analysis/stats.py derives every
statistic exactly from these counts).

Two implementations with the same results: the C loop built at install (`_codes.c`, about
0.5 ns a value) and numpy's bincount (about 1.4 ns: it widens each code to int64 first), used
when the package was installed without a C compiler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import numpy as np

NUMPY_SLICE = 1 << 19  # values per np.bincount call: its int64 copy of them (4 MiB) stays in L2


def count_with_numpy(data: np.ndarray, counts: np.ndarray) -> None:
    """Add each code's occurrences in `data` (uint8 bytes, 2-byte codes little-endian) to
    `counts` (256 or 65536 int64, which says the code width)."""
    import numpy as np

    codes = data.view(np.uint8 if counts.size == 256 else np.dtype("<u2"))
    for start in range(0, codes.size, NUMPY_SLICE):
        counts += np.bincount(codes[start : start + NUMPY_SLICE], minlength=counts.size)


def _compiled() -> Callable[[np.ndarray, np.ndarray], None] | None:
    try:
        from ._codes import count  # type: ignore[import-not-found]
    except ImportError:  # installed without a C compiler, or sources run from a checkout
        return None
    return count  # type: ignore[no-any-return]


count_compiled = _compiled()
count = count_compiled or count_with_numpy
