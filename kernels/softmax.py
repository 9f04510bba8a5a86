"""Fused row softmax (forward and backward) in Triton.

In plain torch, ``softmax(x)`` over the last dim of an (M, N) matrix is several passes over memory: find the row max,
subtract it and exponentiate, sum, divide, each reading and writing the whole matrix. Here one program loads a tile
of BLOCK_M whole rows into registers (N padded to a power of two, the padding filled with -inf so it contributes
exp(-inf) = 0), does all of it on chip, and writes the result once: one read and one write of x, the least possible.

Forward, per row (subtracting the max changes nothing mathematically but keeps exp from overflowing)::

    y = exp(x - max(x)) / sum(exp(x - max(x)))

A row that is entirely -inf (every position masked, e.g. a padded query in masked attention) gives y = 0, not NaN.

Backward: with y = softmax(x) the Jacobian is diag(y) - y yᵀ, so

    dx = y ⊙ (dy - sum(y ⊙ dy))

which again needs one row at a time: one read of y and dy, one write of dx. Arithmetic is float32 whatever the
storage dtype.

The whole row must fit on chip, which limits N (``limits.MAX_COLS``); attention over longer rows is what the flash
kernel is for.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from scratchformers.kernels.common import (as_rows, device_guard, fixed_tile, interpreted_bf16, launch,
                                           prune_row_configs, row_configs, row_tile, rows_per_program)


# Tuning, for both kernels. A row kernel has one knob, its number of warps (``common.row_configs``), tried afresh for
# each tile shape (the autotuning key) and pruned to the counts that leave each thread at most 128 elements of the
# tile, so that the tile stays in registers (``common.prune_row_configs``). BLOCK_M, the rows per program, is set on
# the host from the row length (``common.rows_per_program``).
@triton.autotune(configs=row_configs(), key=["BLOCK_N", "BLOCK_M"], prune_configs_by=prune_row_configs(128))
@triton.jit
def _softmax_fwd(X,  # input rows, (M, N), unit stride along a row
                 Y,  # output rows, (M, N), X's dtype
                 M,  # number of rows
                 N,  # row length
                 stride_x, stride_y,  # elements from one row to the next, in X and in Y
                 BLOCK_M: tl.constexpr,  # rows per program
                 BLOCK_N: tl.constexpr,  # N rounded up to a power of two: one tile holds whole rows
                 ):
    """One program: the softmax of BLOCK_M whole rows, loaded once and stored once."""
    rows, cols, _, mask = row_tile(tl.program_id(0) * BLOCK_M, M, N, BLOCK_M, BLOCK_N)
    x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=float("-inf")).to(tl.float32)
    row_max = tl.max(x, axis=1)
    row_max = tl.where(row_max == float("-inf"), 0.0, row_max)  # all -inf row: exp(-inf - 0) = 0, not NaN
    e = tl.math.exp(x - row_max[:, None])
    total = tl.sum(e, axis=1)
    y = e / tl.where(total == 0.0, 1.0, total)[:, None]
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


@triton.autotune(configs=row_configs(), key=["BLOCK_N", "BLOCK_M"], prune_configs_by=prune_row_configs(128))
@triton.jit
def _softmax_bwd(Y,  # the forward's output rows, (M, N)
                 DY,  # the gradient reaching Y, (M, N)
                 DX,  # the gradient of the input, (M, N), Y's dtype
                 M,  # number of rows
                 N,  # row length
                 stride_y, stride_dy, stride_dx,  # elements from one row to the next, in Y, DY and DX
                 BLOCK_M: tl.constexpr,  # rows per program
                 BLOCK_N: tl.constexpr,  # N rounded up to a power of two
                 ):
    """One program: dx = y ⊙ (dy - rowsum(y ⊙ dy)) for BLOCK_M whole rows."""
    rows, cols, _, mask = row_tile(tl.program_id(0) * BLOCK_M, M, N, BLOCK_M, BLOCK_N)
    y = tl.load(Y + rows[:, None] * stride_y + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    dx = y * (dy - tl.sum(y * dy, axis=1)[:, None])
    tl.store(DX + rows[:, None] * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)


def _launch(kernel, tensors: list[torch.Tensor], block_m: int | None) -> None:
    """One program per block_m rows (the tuned choice if None) of the (M, N) first tensor."""
    M, N = tensors[0].shape
    if M == 0 or N == 0:
        return
    block_n = triton.next_power_of_2(N)
    rows_each = block_m or rows_per_program(block_n)
    with device_guard(tensors[0]):
        launch(kernel, (triton.cdiv(M, rows_each),), *tensors, M, N, *(t.stride(0) for t in tensors),
               fixed=block_m is not None, BLOCK_M=rows_each, BLOCK_N=block_n)


def softmax_forward(x: torch.Tensor, *, block_m: int | None = None) -> torch.Tensor:
    """softmax over the last dim of x (any leading shape, last dim <= MAX_COLS); returns a new tensor like x.
    block_m: rows per program (a power of two) instead of the tuned choice."""
    fixed_tile("block_m", block_m, 1)
    if interpreted_bf16(x):
        return softmax_forward(x.float(), block_m=block_m).to(x.dtype)
    rows = as_rows(x)
    y = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    _launch(_softmax_fwd, [rows, y], block_m)
    return y.view(x.shape)


def softmax_backward(dy: torch.Tensor, y: torch.Tensor, *, block_m: int | None = None) -> torch.Tensor:
    """dx = y ⊙ (dy - rowsum(y ⊙ dy)), given the incoming gradient dy and the forward output y."""
    fixed_tile("block_m", block_m, 1)
    if interpreted_bf16(y):
        return softmax_backward(dy.float(), y.float(), block_m=block_m).to(y.dtype)
    y_rows, dy_rows = as_rows(y), as_rows(dy)
    dx = torch.empty(y_rows.shape, dtype=y.dtype, device=y.device)
    _launch(_softmax_bwd, [y_rows, dy_rows, dx], block_m)
    return dx.view(y.shape)
