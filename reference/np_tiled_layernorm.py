"""LayerNorm in NumPy, tile by tile: the Triton kernels of ``kernels/layernorm.py``, line for line.

Forward: one program per tile of BLOCK_M whole rows (BLOCK_N = the row length rounded up to a power of two, the
padding masked out). It computes the mean with a correction pass (a first mean m₁, then the mean of x - m₁ added
back: exact for a constant row), the two-pass variance of the centred row, and y = x̂ ⊙ weight + bias; it saves mean
and rstd for the backward. See the kernel's module docstring for why each step is there.

Backward: ``dx = rstd · (g - mean(g) - x̂ · mean(g ⊙ x̂))`` with g = dy ⊙ weight, per row. The parameter gradients
dweight = Σ dy ⊙ x̂ and dbias = Σ dy are sums over all rows: G programs each walk the row tiles g, g + G, g + 2G,
..., accumulate a partial dweight and dbias, and write one row of a (G, N) buffer; the host sums the G rows. No
atomics, and the same answer every run.

``block_m`` (rows per program) and ``num_programs`` (G) are arguments: the kernel's host sets them from the row
length and the GPU (``rows_per_program`` in ``kernels/common.py``, ``_num_partials`` in the kernel's file) unless
given the same keywords. Arithmetic is float32 as in the kernel, float64 for
float64 inputs. How Triton's vocabulary maps onto NumPy: ``reference/np_flash_attention.py`` and ``np_tiles``.
"""
from __future__ import annotations

import numpy as np

from scratchformers.reference.np_tiles import cdiv, launch, load, next_power_of_2, row_tile, store


def _centre(x, mask, N):
    """Corrected two-pass mean of each row of the tile, and x - mean (0 outside the row)."""
    first = np.sum(x, axis=1) / N
    mean = first + np.sum(np.where(mask, x - first[:, None], 0.0), axis=1) / N
    return mean, np.where(mask, x - mean[:, None], 0.0)


def _column(P, cols, N, ACC):
    """A length-N parameter, in the arithmetic dtype (0 past N)."""
    return load(P, (cols,), mask=cols < N, other=0.0).astype(ACC)


def _layer_norm_fwd(program_id, X, Y, WEIGHT, BIAS, MEAN, RSTD, M, N, eps, HAS_BIAS, ACC, BLOCK_M, BLOCK_N):
    rows, cols, row_ok, mask = row_tile(program_id[0] * BLOCK_M, M, N, BLOCK_M, BLOCK_N)
    x = load(X, (rows[:, None], cols[None, :]), mask=mask, other=0.0).astype(ACC)
    mean, xc = _centre(x, mask, N)
    rstd = 1.0 / np.sqrt(np.sum(xc * xc, axis=1) / N + eps)
    y = xc * rstd[:, None] * _column(WEIGHT, cols, N, ACC)[None, :]
    if HAS_BIAS:
        y += _column(BIAS, cols, N, ACC)[None, :]
    store(Y, (rows[:, None], cols[None, :]), y, mask=mask)
    store(MEAN, (rows,), mean, mask=row_ok)
    store(RSTD, (rows,), rstd, mask=row_ok)


def _layer_norm_bwd(program_id, X, DY, DX, WEIGHT, MEAN, RSTD, DWEIGHT_PARTIAL, DBIAS_PARTIAL, M, N, NUM_PROGRAMS,
                    ACC, BLOCK_M, BLOCK_N):
    pid = program_id[0]
    weight = _column(WEIGHT, np.arange(BLOCK_N), N, ACC)
    dweight = np.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    dbias = np.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for start in range(pid * BLOCK_M, M, NUM_PROGRAMS * BLOCK_M):
        rows, cols, row_ok, mask = row_tile(start, M, N, BLOCK_M, BLOCK_N)
        x = load(X, (rows[:, None], cols[None, :]), mask=mask, other=0.0).astype(ACC)
        dy = load(DY, (rows[:, None], cols[None, :]), mask=mask, other=0.0).astype(ACC)
        mean = load(MEAN, (rows,), mask=row_ok, other=0.0)
        rstd = load(RSTD, (rows,), mask=row_ok, other=0.0)
        xhat = np.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
        g = dy * weight[None, :]
        mean_g = np.sum(g, axis=1) / N
        mean_gx = np.sum(g * xhat, axis=1) / N
        dx = (g - mean_g[:, None] - xhat * mean_gx[:, None]) * rstd[:, None]
        store(DX, (rows[:, None], cols[None, :]), dx, mask=mask)
        dweight += dy * xhat
        dbias += dy
    cols = np.arange(BLOCK_N)
    store(DWEIGHT_PARTIAL, (pid * N + cols,), np.sum(dweight, axis=0), mask=cols < N)
    store(DBIAS_PARTIAL, (pid * N + cols,), np.sum(dbias, axis=0), mask=cols < N)


def _as_rows(x: np.ndarray) -> np.ndarray:
    """View x (..., N) as (M, N) rows."""
    return x.reshape(-1, x.shape[-1])


def _arithmetic(*arrays: np.ndarray | None) -> type:
    """float32, the kernel's arithmetic, or float64 when every input is float64 (for exact textbook checks)."""
    return np.result_type(np.float32, *(a.dtype for a in arrays if a is not None)).type


def layer_norm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, eps: float = 1e-5, *,
                       block_m: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y = LayerNorm(x) over the last axis, ``block_m`` rows per program. Returns y (x's shape and dtype), mean and
    rstd (one per row, a flat (M,) vector in the arithmetic dtype, for the backward): the kernel's contract, and the
    textbook's (``np_layernorm.py``) but for the shape of mean and rstd, which the textbook keeps as (..., 1)."""
    rows = _as_rows(x)
    M, N = rows.shape
    ACC = _arithmetic(x, weight, bias)
    y = np.zeros(rows.shape, dtype=x.dtype)
    mean = np.full(M, np.nan, dtype=ACC)
    rstd = np.full(M, np.nan, dtype=ACC)
    if M > 0 and N > 0:
        launch(_layer_norm_fwd, (cdiv(M, block_m),), rows, y, weight, bias, mean, rstd, M, N, ACC(eps),
               HAS_BIAS=bias is not None, ACC=ACC, BLOCK_M=block_m, BLOCK_N=next_power_of_2(N))
    return y.reshape(x.shape), mean, rstd


def layer_norm_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, mean: np.ndarray, rstd: np.ndarray, *,
                        block_m: int = 4, num_programs: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dweight, dbias): ``min(row tiles, num_programs)`` programs of ``block_m`` rows each, then the
    host's sum of their partial dweight and dbias."""
    rows, dy_rows = _as_rows(x), _as_rows(dy)
    M, N = rows.shape
    ACC = _arithmetic(dy, x, weight)
    dx = np.zeros(rows.shape, dtype=x.dtype)
    if M == 0 or N == 0:
        return dx.reshape(x.shape), np.zeros(N, weight.dtype), np.zeros(N, weight.dtype)
    programs = min(cdiv(M, block_m), num_programs)
    dweight_partial = np.empty(programs * N, dtype=ACC)
    dbias_partial = np.empty(programs * N, dtype=ACC)
    launch(_layer_norm_bwd, (programs,), rows, dy_rows, dx, weight, mean, rstd, dweight_partial, dbias_partial, M,
           N, programs, ACC=ACC, BLOCK_M=block_m, BLOCK_N=next_power_of_2(N))
    dweight = dweight_partial.reshape(programs, N).sum(0).astype(weight.dtype)
    dbias = dbias_partial.reshape(programs, N).sum(0).astype(weight.dtype)
    return dx.reshape(x.shape), dweight, dbias
