"""Launch settings shared by the row-wise kernels (LayerNorm, softmax): one program handles BLOCK_M whole rows.

A row of up to BLOCK_N elements is loaded in one tile, so the only tuning knobs are the number of warps (autotuned)
and how many rows a program takes (set on the host from the row length).
"""
from __future__ import annotations

import os

import triton

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def row_configs() -> list[triton.Config]:
    """Autotune the number of warps; BLOCK_M (rows per program) is set on the host from the row length."""
    if INTERPRET:
        return [triton.Config({}, num_warps=4)]
    return [triton.Config({}, num_warps=w) for w in (1, 2, 4, 8, 16)]


def rows_per_program(block_n: int) -> int:
    """Several short rows per program (about 4K elements in flight on a GPU), one long row per program."""
    if INTERPRET:  # small tiles, but still several rows per program so the row masking is exercised
        return max(1, min(4, 64 // block_n))
    return max(1, min(16, 4096 // block_n))
