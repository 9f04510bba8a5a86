"""What every Triton kernel module shares: the interpreter switch, launch settings of the row-wise kernels, and the
host-side helpers that prepare tensors and pick the device to launch on.

Row-wise kernels (LayerNorm, softmax): one program handles BLOCK_M whole rows. A row of up to BLOCK_N elements is
loaded in one tile, so the only tuning knobs are the number of warps (autotuned) and how many rows a program takes
(set on the host from the row length).
"""
from __future__ import annotations

import contextlib
import math
import os

import torch
import triton
import triton.language as tl

# Triton reads TRITON_INTERPRET when a kernel is defined: modules that import this one define their kernels for the
# interpreter (CPU tensors, numpy arithmetic) exactly when this flag is set.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def interpreted_bf16(*tensors: torch.Tensor | None) -> bool:
    """The Triton interpreter gets bfloat16 wrong (its arithmetic, and fp32 -> bf16 stores, which it truncates); GPUs
    get it right. Under the interpreter, bf16 calls run the fp32 kernels on upcast copies and torch rounds back."""
    return INTERPRET and any(t is not None and t.dtype == torch.bfloat16 for t in tensors)


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """View x (..., N) as (M, N) rows with unit stride along N (copies only if it must); N may be 0."""
    x = x if x.stride(-1) == 1 else x.contiguous()
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def device_guard(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Launch on x's device, not on whichever CUDA device is current (a tensor on cuda:1 while cuda:0 is current)."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


def row_configs() -> list[triton.Config]:
    """Autotune the number of warps; BLOCK_M (rows per program) is set on the host from the row length."""
    if INTERPRET:
        return [triton.Config({}, num_warps=4)]
    return [triton.Config({}, num_warps=w) for w in (1, 2, 4, 8, 16)]


def prune_row_configs(max_per_thread: int) -> dict:
    """``prune_configs_by`` for a row kernel: keep the warp counts that leave each thread at most ``max_per_thread``
    elements of the (BLOCK_M, BLOCK_N) tile, so that the kernel's live tiles fit in registers. Measured on sm_90 with
    tools/compile_sm90.py (4 x 1024 tiles): the LayerNorm backward (about six live tiles) spills at 64 elements a
    thread, the forward needs 223-254 of the 255 registers at 128, the softmax kernels 124-168 at 128."""
    def prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        elements = kwargs["BLOCK_M"] * kwargs["BLOCK_N"]
        kept = [c for c in configs if elements <= max_per_thread * 32 * c.num_warps]
        return kept or [max(configs, key=lambda c: c.num_warps)]
    return {"early_config_prune": prune}


def rows_per_program(block_n: int) -> int:
    """Several short rows per program (about 4K elements in flight on a GPU), one long row per program."""
    if INTERPRET:  # small tiles, but still several rows per program so the row masking is exercised
        return max(1, min(4, 64 // block_n))
    return max(1, min(16, 4096 // block_n))


@triton.jit
def row_tile(start, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Rows [start, start + BLOCK_M) of an (M, N) matrix: int64 row indices (row * stride may pass 2**31), column
    indices, and which rows / which elements of the (BLOCK_M, BLOCK_N) tile exist."""
    rows = start + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    row_ok = rows < M
    mask = row_ok[:, None] & (cols[None, :] < N)
    return rows.to(tl.int64), cols, row_ok, mask


def fixed_tile(name: str, value: int | None, minimum: int) -> int | None:
    """Check a tile size given to bypass autotuning (a power of two >= minimum); None means "autotune"."""
    if value is not None and (not isinstance(value, int) or value < minimum or value & (value - 1)):
        raise ValueError(f"{name} must be a power of two >= {minimum}; got {value!r}")
    return value


def launch(kernel, grid, *args, fixed: bool = False, **meta) -> None:
    """``kernel[grid](*args, **meta)`` through its autotuner, or, with ``fixed``, straight to the JIT function with
    the tile sizes in ``meta`` and 4 warps (what a tile-by-tile mirror of the kernel needs to compare against)."""
    if fixed:
        kernel.fn[grid](*args, num_warps=4, num_stages=2, **meta)
    else:
        kernel[grid](*args, **meta)
