"""GPU check, LayerNorm: our fused Triton kernels against ``F.layer_norm``, forward and backward, in GB/s.

12·1024 rows (GPT-2's tokens per batch at B = 12, T = 1024) of hidden size 768 (GPT-2 small), 1024, 2048, 4096 and
8192 (the kernel's limit), bfloat16 activations, weights and biases.
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from harness import Harness, Settings, free_memory, section_main

NAME = "layernorm"
HIDDEN = (768, 1024, 2048, 4096, 8192)
ROWS = 12 * 1024
DTYPE = "bfloat16"


def shapes(s: Settings) -> list[tuple[int, int]]:
    """(M, N) pairs, narrowest first."""
    if s.dry_run:
        return [(64, 32)]
    return [(ROWS, n) for n in HIDDEN]


def inputs(M: int, N: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """x (M, N), weight and bias (N,), all requiring grad, and dy (M, N)."""
    gen = torch.Generator(device=device).manual_seed(N)
    dtype = getattr(torch, DTYPE)
    x, grad = (torch.randn(M, N, device=device, dtype=dtype, generator=gen) for _ in range(2))
    weight, bias = (torch.randn(N, device=device, dtype=dtype, generator=gen) for _ in range(2))
    return x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_(), grad


def run(h: Harness, rows: list[dict]) -> None:
    """Copy, torch and ours at every hidden size into ``rows``."""
    for M, N in shapes(h.settings):
        measure_shape(h, rows, M, N)
        free_memory()


def measure_shape(h: Harness, rows: list[dict], M: int, N: int) -> None:
    from scratchformers.fast.layernorm import layer_norm

    x, weight, bias, grad = inputs(M, N, h.settings.device)
    leaves = [x, weight, bias]
    row = dict(dtype=DTYPE, M=M, N=N)
    h.measure_copy(rows, row, x.detach())
    h.measure_fwd_bwd(rows, dict(row, impl="torch"), lambda: F.layer_norm(x, (N,), weight, bias), leaves, grad)
    h.measure_fwd_bwd(rows, dict(row, impl="ours-triton"), lambda: layer_norm(x, weight, bias), leaves, grad)


if __name__ == "__main__":
    sys.exit(section_main(NAME, run))
