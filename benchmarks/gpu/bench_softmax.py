"""GPU check, softmax over rows: our fused Triton kernels against ``torch.softmax``, forward and backward, GB/s.

M rows of N columns with M · N = 2²⁶ (128 MiB of bfloat16 per tensor: far past the L2 cache), N = 256 ... 16384.
"""
from __future__ import annotations

import sys

import torch

from harness import Harness, Settings, free_memory, section_main

NAME = "softmax"
LENGTHS = (256, 1024, 4096, 16384)
ELEMENTS = 2**26
DTYPE = "bfloat16"


def shapes(s: Settings) -> list[tuple[int, int]]:
    """(M, N) pairs, shortest rows first."""
    if s.dry_run:
        return [(64, 32)]
    return [(ELEMENTS // n, n) for n in LENGTHS]


def inputs(M: int, N: int, dtype: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """x (requiring grad) and dy, both (M, N)."""
    gen = torch.Generator(device=device).manual_seed(N)
    x, grad = (torch.randn(M, N, device=device, dtype=getattr(torch, dtype), generator=gen) for _ in range(2))
    return x.requires_grad_(), grad


def run(h: Harness, rows: list[dict]) -> None:
    """Copy, torch and ours at every shape into ``rows``."""
    for M, N in shapes(h.settings):
        measure_shape(h, rows, M, N)
        free_memory()


def measure_shape(h: Harness, rows: list[dict], M: int, N: int) -> None:
    from scratchformers.fast.softmax import softmax

    x, grad = inputs(M, N, DTYPE, h.settings.device)
    row = dict(dtype=DTYPE, M=M, N=N)
    h.measure_copy(rows, row, x.detach())
    h.measure_fwd_bwd(rows, dict(row, impl="torch"), lambda: torch.softmax(x, dim=-1), [x], grad)
    h.measure_fwd_bwd(rows, dict(row, impl="ours-triton"), lambda: softmax(x), [x], grad)


if __name__ == "__main__":
    sys.exit(section_main(NAME, run))
