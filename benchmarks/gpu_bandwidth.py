"""GPU benchmark helper for memory-bound operations: forward and backward in GB/s and as a share of peak bandwidth.

LayerNorm and softmax do a few FLOPs per byte, so their speed limit is memory bandwidth. Each is credited with the
least traffic it could possibly make, one read of every input and one write of every output:

    forward    read x, write y                  2 · M · N · element size
    backward   read x (or y) and dy, write dx   3 · M · N · element size     (per-column parameters ignored)

Achieved GB/s = those bytes / the median time; ``% of peak`` divides by the datasheet bandwidth. A plain copy
(``x.clone()``: read + write) shows what the memory system actually delivers, usually 85-95% of the datasheet.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from gpu_harness import Harness


def rate(ms: float, nbytes: float, peak_gbps: float | None) -> dict:
    """Time, bandwidth in GB/s, and percent of ``peak_gbps`` (None when the peak is unknown)."""
    gbps = nbytes / ms / 1e6
    return dict(ms=ms, gbps=gbps, pct_peak=100 * gbps / peak_gbps if peak_gbps else None)


def measure_copy(h: Harness, rows: list[dict], row: dict, x: torch.Tensor) -> None:
    """One row: ``x.clone()``, 2 · bytes of x."""
    nbytes = 2 * x.numel() * x.element_size()
    h.record(rows, dict(row, impl="copy", mode="fwd"),
             lambda: rate(h.bench(lambda: x.clone()), nbytes, h.settings.peak_gbps))


def measure_fwd_bwd(h: Harness, rows: list[dict], row: dict, fn: Callable[[], torch.Tensor],
                    leaves: Sequence[torch.Tensor], grad: torch.Tensor) -> None:
    """Two rows, ``fwd`` (``fn()`` without autograd) and ``bwd`` (the backward of one retained ``fn()`` graph).

    ``leaves``: the tensors ``fn`` differentiates wrt (their .grad is reset between runs); ``grad``: dy, shaped like
    the output; ``row`` says what is measured. Traffic as in the module docstring, from ``grad``'s size.
    """
    nbytes = grad.numel() * grad.element_size()
    peak = h.settings.peak_gbps

    def forward() -> dict:
        with torch.no_grad():
            fn()
            return rate(h.bench(fn), 2 * nbytes, peak)

    def backward() -> dict:
        y = fn()
        ms = h.bench(lambda: y.backward(grad, retain_graph=True), grad_to_none=leaves)
        return rate(ms, 3 * nbytes, peak)

    h.record(rows, dict(row, mode="fwd"), forward)
    h.record(rows, dict(row, mode="bwd"), backward)
