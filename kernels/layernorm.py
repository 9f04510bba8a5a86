"""LayerNorm (forward and backward) in Triton.

LayerNorm normalises each row x (length N) of an (M, N) matrix and applies a learned per-column affine map::

    mean = sum(x) / N        rstd = 1 / sqrt(sum((x - mean)²) / N + eps)
    x̂ = (x - mean) · rstd    y = x̂ ⊙ weight + bias

It is memory bound: a handful of flops per element, so speed is bytes moved. The forward reads x once and writes y
once: a program loads a tile of BLOCK_M whole rows (N padded to a power of two, padding masked out), computes both
statistics on chip in float32 and writes y. It also saves mean and rstd (two floats per row) for the backward.

Mean and variance: a corrected two-pass
---------------------------------------
The row is on chip, so extra passes over it cost arithmetic, not memory. In float32, per row::

    m₁   = sum(x) / N                     first estimate; the rounding of a long sum leaves m₁ off by a few ulps
    d    = x - m₁                         (padding columns: 0)
    mean = m₁ + sum(d) / N                the correction: sum(d) / N is exactly the error of m₁, up to rounding
    xc   = x - mean                       (padding columns: 0)
    var  = sum(xc²) / N                   two-pass variance: a sum of squares of centred values, never E[x²] - mean²

Without the correction a row of 1000.1 at N = 768 has xc ≈ 1e-4 instead of 0, which rstd ≈ 1/√eps ≈ 316 turns into
|y - bias| ≈ 0.04. With it, a constant row gives mean = c exactly (c - m₁ is exact, as is N copies of it summed and
divided by N), so xc = 0, x̂ = 0 and y = bias exactly, as ``F.layer_norm`` gives; the backward rebuilds x̂ from the
saved mean, so dweight gets exactly 0 from such rows too. Every operation is float32 whatever the storage dtype.

Backward
--------
With g = dy ⊙ weight (the gradient reaching x̂) the input gradient is, per row::

    dx = rstd · (g - mean(g) - x̂ · mean(g ⊙ x̂))

(the two means remove the components of g along the directions that normalisation projects out: a constant shift
and a rescaling of x̂). Again one read of x and dy, one write of dx per row.

The parameter gradients are sums over all rows, ``dweight = Σ_rows dy ⊙ x̂`` and ``dbias = Σ_rows dy``: a reduction
across programs. Instead of atomics (non-deterministic, and contended for small N), we launch a fixed number G of
programs (about two per SM); program g walks over row tiles g, g + G, g + 2G, ... accumulating its partial dweight and
dbias in registers, and writes one row of a (G, N) float32 buffer at the end. A final sum over those G rows (tiny
next to the (M, N) activations) gives dweight and dbias, deterministically.

Weight and bias may be any strided (N,) views (a column of a matrix, an ``expand``ed scalar): the kernels read them
through their strides.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from scratchformers.kernels.common import (as_rows, device_guard, fixed_tile, interpreted_bf16, launch,
                                           prune_row_configs, row_configs, row_tile, rows_per_program)


def _num_partials(M: int, block_m: int, device: torch.device) -> int:
    """Number of backward programs G (= rows of the partial dweight/dbias buffers): about two per SM on a GPU."""
    tiles = triton.cdiv(M, block_m)
    if device.type != "cuda":
        return min(tiles, 3)
    return min(tiles, 2 * torch.cuda.get_device_properties(device).multi_processor_count)


@triton.jit
def _centre(x, mask, N):
    """Corrected two-pass mean of each row of the tile, and x - mean (0 outside the row); see the module docstring."""
    first = tl.sum(x, axis=1) / N
    mean = first + tl.sum(tl.where(mask, x - first[:, None], 0.0), axis=1) / N
    return mean, tl.where(mask, x - mean[:, None], 0.0)


@triton.jit
def _column(P, cols, stride, N):
    """A length-N parameter read through its stride, as float32 (0 past N)."""
    return tl.load(P + cols.to(tl.int64) * stride, mask=cols < N, other=0.0).to(tl.float32)


# Tuning, for both kernels. A row kernel has one knob, its number of warps (``common.row_configs``), tried afresh for
# each tile shape (the autotuning key) and pruned to the counts that leave each thread at most 64 elements of the
# tile (32 in the backward, which holds about six tiles at once), so that the live tiles stay in registers
# (``common.prune_row_configs``). BLOCK_M, the rows per program, is set on the host from the row length.
@triton.autotune(configs=row_configs(), key=["BLOCK_N", "BLOCK_M"], prune_configs_by=prune_row_configs(64))
@triton.jit
def _layer_norm_fwd(X,  # input rows, (M, N), unit stride along a row
                    Y,  # output rows, (M, N), X's dtype
                    WEIGHT, BIAS,  # weight γ and bias β, (N,) each, any stride; BIAS is None without a bias
                    MEAN, RSTD,  # (M,) float32 outputs: each row's mean and 1 / std, saved for the backward
                    M,  # number of rows
                    N,  # row length (the normalised dimension)
                    stride_x, stride_y,  # elements from one row to the next, in X and in Y
                    stride_weight, stride_bias,  # elements from one entry of WEIGHT (of BIAS) to the next
                    eps,  # added to the variance inside the square root
                    HAS_BIAS: tl.constexpr,  # BIAS is not None
                    BLOCK_M: tl.constexpr,  # rows per program
                    BLOCK_N: tl.constexpr,  # N rounded up to a power of two: one tile holds whole rows
                    ):
    """One program: BLOCK_M whole rows normalised, with their mean and rstd saved."""
    rows, cols, row_ok, mask = row_tile(tl.program_id(0) * BLOCK_M, M, N, BLOCK_M, BLOCK_N)
    x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    mean, xc = _centre(x, mask, N)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / N + eps)
    y = xc * rstd[:, None] * _column(WEIGHT, cols, stride_weight, N)[None, :]
    if HAS_BIAS:
        y += _column(BIAS, cols, stride_bias, N)[None, :]
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(MEAN + rows, mean, mask=row_ok)
    tl.store(RSTD + rows, rstd, mask=row_ok)


@triton.autotune(configs=row_configs(), key=["BLOCK_N", "BLOCK_M"], prune_configs_by=prune_row_configs(32))
@triton.jit
def _layer_norm_bwd(X,  # the forward's input rows, (M, N)
                    DY,  # the gradient reaching Y, (M, N)
                    DX,  # the gradient of X, (M, N), X's dtype
                    WEIGHT,  # weight γ, (N,), any stride
                    MEAN, RSTD,  # (M,) float32, saved by the forward
                    DWEIGHT_PARTIAL, DBIAS_PARTIAL,  # (NUM_PROGRAMS, N) float32: a row of partial dγ, dβ per program
                    M,  # number of rows
                    N,  # row length
                    stride_x, stride_dy, stride_dx,  # elements from one row to the next, in X, DY and DX
                    stride_weight,  # elements from one entry of WEIGHT to the next
                    NUM_PROGRAMS,  # G, the size of the grid: program g takes the row tiles g, g + G, g + 2G, ...
                    BLOCK_M: tl.constexpr,  # rows per tile
                    BLOCK_N: tl.constexpr,  # N rounded up to a power of two
                    ):
    """One program: dx for its row tiles, and one row of the partial dweight and dbias sums (see the module
    docstring)."""
    pid = tl.program_id(0)
    weight = _column(WEIGHT, tl.arange(0, BLOCK_N), stride_weight, N)
    dweight = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    dbias = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for start in range(pid * BLOCK_M, M, NUM_PROGRAMS * BLOCK_M):
        rows, cols, row_ok, mask = row_tile(start, M, N, BLOCK_M, BLOCK_N)
        x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        mean = tl.load(MEAN + rows, mask=row_ok, other=0.0)
        rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)
        xhat = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
        g = dy * weight[None, :]
        mean_g = tl.sum(g, axis=1) / N
        mean_gx = tl.sum(g * xhat, axis=1) / N
        dx = (g - mean_g[:, None] - xhat * mean_gx[:, None]) * rstd[:, None]
        tl.store(DX + rows[:, None] * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
        dweight += dy * xhat
        dbias += dy
    cols = tl.arange(0, BLOCK_N)
    tl.store(DWEIGHT_PARTIAL + pid * N + cols, tl.sum(dweight, axis=0), mask=cols < N)
    tl.store(DBIAS_PARTIAL + pid * N + cols, tl.sum(dbias, axis=0), mask=cols < N)


def layer_norm_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float = 1e-5, *,
                       block_m: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y = LayerNorm(x) over the last dim (N <= MAX_HIDDEN). Returns y (x's shape and dtype), mean and rstd (float32,
    one per row, for the backward; NaN for rows of length 0, whose mean is 0/0). block_m: rows per program (a power
    of two) instead of the tuned choice."""
    fixed_tile("block_m", block_m, 1)
    if interpreted_bf16(x, weight, bias):
        y, mean, rstd = layer_norm_forward(x.float(), weight.float(), None if bias is None else bias.float(), eps,
                                           block_m=block_m)
        return y.to(x.dtype), mean, rstd
    rows = as_rows(x)
    M, N = rows.shape
    y = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    mean = torch.full((M,), float("nan"), dtype=torch.float32, device=x.device)
    rstd = torch.full((M,), float("nan"), dtype=torch.float32, device=x.device)
    if M > 0 and N > 0:
        block_n = triton.next_power_of_2(N)
        rows_each = block_m or rows_per_program(block_n)
        with device_guard(x):
            launch(_layer_norm_fwd, (triton.cdiv(M, rows_each),), rows, y, weight, bias, mean, rstd, M, N,
                   rows.stride(0), y.stride(0), weight.stride(0), 0 if bias is None else bias.stride(0), eps,
                   fixed=block_m is not None, HAS_BIAS=bias is not None, BLOCK_M=rows_each, BLOCK_N=block_n)
    return y.view(x.shape), mean, rstd


def layer_norm_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor,
                        rstd: torch.Tensor, *, block_m: int | None = None, num_programs: int | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dx, dweight, dbias) of LayerNorm; dx in x's dtype, dweight and dbias in weight's dtype. block_m
    (rows per program, a power of two) and num_programs (G, the rows of the partial dweight/dbias buffers) replace
    the tuned choices."""
    fixed_tile("block_m", block_m, 1)
    if num_programs is not None and (not isinstance(num_programs, int) or num_programs < 1):
        raise ValueError(f"num_programs must be a positive integer; got {num_programs!r}")
    if interpreted_bf16(dy, x, weight):
        dx, dweight, dbias = layer_norm_backward(dy.float(), x.float(), weight.float(), mean, rstd, block_m=block_m,
                                                 num_programs=num_programs)
        return dx.to(x.dtype), dweight.to(weight.dtype), dbias.to(weight.dtype)
    rows, dy_rows = as_rows(x), as_rows(dy)
    M, N = rows.shape
    dx = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    if M == 0 or N == 0:
        zeros = torch.zeros(N, dtype=weight.dtype, device=weight.device)
        return dx.view(x.shape), zeros, zeros.clone()
    block_n = triton.next_power_of_2(N)
    rows_each = block_m or rows_per_program(block_n)
    programs = num_programs or _num_partials(M, rows_each, x.device)
    dweight_partial = torch.empty((programs, N), dtype=torch.float32, device=x.device)
    dbias_partial = torch.empty((programs, N), dtype=torch.float32, device=x.device)
    with device_guard(x):
        launch(_layer_norm_bwd, (programs,), rows, dy_rows, dx, weight, mean, rstd, dweight_partial, dbias_partial, M,
               N, rows.stride(0), dy_rows.stride(0), dx.stride(0), weight.stride(0), programs,
               fixed=block_m is not None or num_programs is not None, BLOCK_M=rows_each, BLOCK_N=block_n)
    return dx.view(x.shape), dweight_partial.sum(0).to(weight.dtype), dbias_partial.sum(0).to(weight.dtype)
