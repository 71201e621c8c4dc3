"""Published peak dense matrix throughput (bf16, or fp16 where the chip has no faster bf16
path) and memory bandwidth of the accelerators `trace --device` bounds a forward pass with.

Sources (vendor datasheets unless noted; sparse "2:4" figures halved to dense):
- NVIDIA H100 SXM5 / PCIe: H100 Tensor Core GPU datasheet (BF16 1,979 / 1,513 TFLOPS with
  sparsity; 3.35 / 2.0 TB/s).
- NVIDIA H200 SXM: H200 datasheet (BF16 1,979 TFLOPS with sparsity; 4.8 TB/s).
- NVIDIA A100 80GB SXM: A100 datasheet (BF16 312 TFLOPS dense; 2,039 GB/s).
- NVIDIA L40S: L40S datasheet (BF16 362.05 TFLOPS dense, 733 with sparsity; 864 GB/s).
- NVIDIA RTX 4090: Ada Lovelace architecture whitepaper, appendix (BF16 with FP32 accumulate
  165.2 TFLOPS dense; 1,008 GB/s).
- NVIDIA RTX 3090: Ampere GA102 architecture whitepaper (BF16 with FP32 accumulate 71 TFLOPS
  dense; 936 GB/s).
- AMD Instinct MI300X / MI325X: AMD product pages (BF16 1,307.4 TFLOPS dense; 5.3 / 6.0 TB/s).
- Apple M2 Max (38-core GPU), M3 Max (40-core GPU), M4 Max (40-core GPU): memory bandwidth from
  Apple's announcements (400, 400, 546 GB/s); Apple publishes no FLOPs for these GPUs, so the
  figure is derived as GPU cores x 128 ALUs x 2 (a fused multiply-add) x clock, fp16 running at
  the fp32 rate on Apple GPUs (clocks as reported by third parties: 1.398, 1.398, 1.578 GHz).
"""

from __future__ import annotations

from collections import namedtuple


class Device(namedtuple("Device", "name peak_flops bandwidth precision source")):
    """peak_flops: dense FLOP/s at `precision`; bandwidth: bytes/s; source: where they come from."""

    __slots__ = ()

    @property
    def ridge(self) -> float:
        """FLOPs per byte where the compute roof meets the memory roof."""
        return self.peak_flops / self.bandwidth


TERA, GIGA = 10**12, 10**9

DEVICES = {
    d.name: d
    for d in (
        Device("H100-SXM", 989.4 * TERA, 3350 * GIGA, "bf16", "NVIDIA H100 datasheet"),
        Device("H100-PCIe", 756.5 * TERA, 2000 * GIGA, "bf16", "NVIDIA H100 datasheet"),
        Device("H200", 989.4 * TERA, 4800 * GIGA, "bf16", "NVIDIA H200 datasheet"),
        Device("A100-80GB", 312 * TERA, 2039 * GIGA, "bf16", "NVIDIA A100 datasheet (SXM)"),
        Device("L40S", 362.05 * TERA, 864 * GIGA, "bf16", "NVIDIA L40S datasheet"),
        Device("RTX-4090", 165.2 * TERA, 1008 * GIGA, "bf16", "NVIDIA Ada Lovelace whitepaper"),
        Device("RTX-3090", 71 * TERA, 936 * GIGA, "bf16", "NVIDIA Ampere GA102 whitepaper"),
        Device("MI300X", 1307.4 * TERA, 5300 * GIGA, "bf16", "AMD Instinct MI300X product page"),
        Device("MI325X", 1307.4 * TERA, 6000 * GIGA, "bf16", "AMD Instinct MI325X product page"),
        Device(
            "M2-Max",
            38 * 128 * 2 * 1.398 * GIGA,
            400 * GIGA,
            "fp16",
            "Apple (bandwidth); FLOPs derived from 38 GPU cores at 1.398 GHz",
        ),
        Device(
            "M3-Max",
            40 * 128 * 2 * 1.398 * GIGA,
            400 * GIGA,
            "fp16",
            "Apple (bandwidth); FLOPs derived from 40 GPU cores at 1.398 GHz",
        ),
        Device(
            "M4-Max",
            40 * 128 * 2 * 1.578 * GIGA,
            546 * GIGA,
            "fp16",
            "Apple (bandwidth); FLOPs derived from 40 GPU cores at 1.578 GHz",
        ),
    )
}

# What people call them without the variant: the variant the name usually means.
ALIASES = {"H100": "H100-SXM", "A100": "A100-80GB", "4090": "RTX-4090", "3090": "RTX-3090"}


def _plain(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def find_device(name: str) -> Device | None:
    """The device by name, case, spaces and dashes ignored ("h100 sxm", "RTX4090"), or None."""
    wanted = _plain(name)
    for key in (*DEVICES, *ALIASES):
        if _plain(key) == wanted:
            return DEVICES[ALIASES.get(key, key)]
    return None
