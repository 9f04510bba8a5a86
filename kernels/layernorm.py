"""LayerNorm (forward and backward) in Triton.

LayerNorm normalises each row x (length N) of an (M, N) matrix and applies a learned per-column affine map::

    mean = sum(x) / N        rstd = 1 / sqrt(sum((x - mean)²) / N + eps)
    x̂ = (x - mean) · rstd    y = x̂ ⊙ w + b

It is memory bound: a handful of flops per element, so speed is bytes moved. The forward reads x once and writes y
once: a program loads a tile of BLOCK_M whole rows (N padded to a power of two, padding masked out), computes both
statistics on chip in float32 and writes y. It also saves mean and rstd (two floats per row) for the backward.

Backward
--------
With g = dy ⊙ w (the gradient reaching x̂) the input gradient is, per row::

    dx = rstd · (g - mean(g) - x̂ · mean(g ⊙ x̂))

(the two means remove the components of g along the directions that normalisation projects out: a constant shift
and a rescaling of x̂). Again one read of x and dy, one write of dx per row.

The parameter gradients are sums over all rows, ``dw = Σ_rows dy ⊙ x̂`` and ``db = Σ_rows dy``: a reduction across
programs. Instead of atomics (non-deterministic, and contended for small N), we launch a fixed number G of programs
(about two per SM); program g walks over row tiles g, g + G, g + 2G, ... accumulating its partial dw and db in
registers, and writes one row of a (G, N) float32 buffer at the end. A final sum over those G rows (tiny next to the
(M, N) activations) gives dw and db, deterministically.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from scratchformers.kernels.rowwise import INTERPRET, row_configs, rows_per_program

MAX_HIDDEN = 8192


def _num_partials(M: int, block_m: int, device: torch.device) -> int:
    """Number of backward programs G (= rows of the partial dw/db buffers): about two per SM on a GPU."""
    tiles = triton.cdiv(M, block_m)
    if device.type != "cuda":
        return min(tiles, 3)
    return min(tiles, 2 * torch.cuda.get_device_properties(device).multi_processor_count)


@triton.autotune(configs=row_configs(), key=["BLOCK_N", "BLOCK_M"])
@triton.jit
def _layernorm_fwd(X, Y, W, B, MEAN, RSTD, M, N, stride_x, stride_y, eps,
                   HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    row_ok = rows < M
    mask = row_ok[:, None] & (cols[None, :] < N)
    rows = rows.to(tl.int64)
    x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=1) / N
    xc = tl.where(mask, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / N + eps)
    w = tl.load(W + cols, mask=cols < N, other=0.0).to(tl.float32)
    y = xc * rstd[:, None] * w[None, :]
    if HAS_BIAS:
        y += tl.load(B + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(MEAN + rows, mean, mask=row_ok)
    tl.store(RSTD + rows, rstd, mask=row_ok)


@triton.autotune(configs=row_configs(), key=["BLOCK_N", "BLOCK_M"])
@triton.jit
def _layernorm_bwd(X, DY, DX, W, MEAN, RSTD, DW_PARTIAL, DB_PARTIAL, M, N, stride_x, stride_dy, stride_dx,
                   NUM_PROGRAMS, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < N
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    db = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for start in range(pid * BLOCK_M, M, NUM_PROGRAMS * BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        mask = row_ok[:, None] & col_ok[None, :]
        rows = rows.to(tl.int64)
        x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        mean = tl.load(MEAN + rows, mask=row_ok, other=0.0)
        rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)
        xhat = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
        g = dy * w[None, :]
        mean_g = tl.sum(g, axis=1) / N
        mean_gx = tl.sum(g * xhat, axis=1) / N
        dx = (g - mean_g[:, None] - xhat * mean_gx[:, None]) * rstd[:, None]
        tl.store(DX + rows[:, None] * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
        dw += dy * xhat
        db += dy
    tl.store(DW_PARTIAL + pid * N + cols, tl.sum(dw, axis=0), mask=col_ok)
    tl.store(DB_PARTIAL + pid * N + cols, tl.sum(db, axis=0), mask=col_ok)


def _interpreted_bf16(*tensors: torch.Tensor | None) -> bool:
    """The Triton interpreter gets bfloat16 wrong (its arithmetic, and fp32 -> bf16 stores, which it truncates); GPUs
    get it right. Under the interpreter, bf16 calls run the fp32 kernels on upcast copies and torch rounds back."""
    return INTERPRET and any(t is not None and t.dtype == torch.bfloat16 for t in tensors)


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """View x as (M, N) rows with unit stride along N (copies only if it must)."""
    x = x if x.stride(-1) == 1 else x.contiguous()
    return x.reshape(-1, x.shape[-1])


def layernorm_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y = LayerNorm(x) over the last dim (N <= MAX_HIDDEN). Returns y (x's shape and dtype), mean and rstd (float32,
    one per row, for the backward)."""
    if _interpreted_bf16(x, weight, bias):
        y, mean, rstd = layernorm_forward(x.float(), weight.float(), None if bias is None else bias.float(), eps)
        return y.to(x.dtype), mean, rstd
    rows = _as_rows(x)
    M, N = rows.shape
    y = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    mean = torch.empty(M, dtype=torch.float32, device=x.device)
    rstd = torch.empty(M, dtype=torch.float32, device=x.device)
    if M > 0:
        block_n = triton.next_power_of_2(N)
        block_m = rows_per_program(block_n)
        _layernorm_fwd[(triton.cdiv(M, block_m),)](rows, y, weight, bias, mean, rstd, M, N, rows.stride(0),
                                                   y.stride(0), eps, HAS_BIAS=bias is not None, BLOCK_M=block_m,
                                                   BLOCK_N=block_n)
    return y.view(x.shape), mean, rstd


def layernorm_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor,
                       rstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dx, dw, db) of LayerNorm; dx in x's dtype, dw and db in weight's dtype."""
    if _interpreted_bf16(dy, x, weight):
        dx, dw, db = layernorm_backward(dy.float(), x.float(), weight.float(), mean, rstd)
        return dx.to(x.dtype), dw.to(weight.dtype), db.to(weight.dtype)
    rows, dy_rows = _as_rows(x), _as_rows(dy)
    M, N = rows.shape
    dx = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    if M == 0:
        return dx.view(x.shape), torch.zeros_like(weight), torch.zeros_like(weight)
    block_n = triton.next_power_of_2(N)
    block_m = rows_per_program(block_n)
    programs = _num_partials(M, block_m, x.device)
    dw_partial = torch.empty((programs, N), dtype=torch.float32, device=x.device)
    db_partial = torch.empty((programs, N), dtype=torch.float32, device=x.device)
    _layernorm_bwd[(programs,)](rows, dy_rows, dx, weight, mean, rstd, dw_partial, db_partial, M, N, rows.stride(0),
                                dy_rows.stride(0), dx.stride(0), programs, BLOCK_M=block_m, BLOCK_N=block_n)
    return dx.view(x.shape), dw_partial.sum(0).to(weight.dtype), db_partial.sum(0).to(weight.dtype)
