"""The fused row softmax in NumPy, tile by tile: the Triton kernels of ``kernels/softmax.py``, line for line.

One program loads a (BLOCK_M, BLOCK_N) tile of whole rows (BLOCK_N = the row length rounded up to a power of two,
the padding filled with -inf so that it contributes exp(-inf) = 0), computes max, exp, sum and divide on the tile,
and stores it: one read and one write of the matrix. The backward, ``dx = y ⊙ (dy - rowsum(y ⊙ dy))``, is one
tile of y and dy per program in the same way. See the kernel's module docstring for the derivation, and
``reference/np_flash_attention.py`` for how Triton's vocabulary maps onto NumPy (``np_tiles``).

``block_m`` (rows per program) is an argument: the kernel's host sets it from the row length
(``rows_per_program`` in ``kernels/common.py``). Arithmetic is float32 as in the kernel, float64 for float64 inputs.
The host functions have the kernel's contract, ``softmax_forward(x) -> y`` and ``softmax_backward(dy, y) -> dx``,
which is also the textbook's (``np_softmax.py``) but for its mask.
"""
from __future__ import annotations

import numpy as np

from scratchformers.reference.np_tiles import cdiv, launch, load, next_power_of_2, store


def _softmax_fwd(program_id, X, Y, M, N, ACC, BLOCK_M, BLOCK_N):
    rows = program_id[0] * BLOCK_M + np.arange(BLOCK_M)
    cols = np.arange(BLOCK_N)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    x = load(X, (rows[:, None], cols[None, :]), mask=mask, other=-np.inf).astype(ACC)
    row_max = np.max(x, axis=1)
    row_max = np.where(row_max == -np.inf, 0.0, row_max)  # all -inf row: exp(-inf - 0) = 0, not NaN
    e = np.exp(x - row_max[:, None])
    total = np.sum(e, axis=1)
    y = e / np.where(total == 0.0, 1.0, total)[:, None]
    store(Y, (rows[:, None], cols[None, :]), y, mask=mask)


def _softmax_bwd(program_id, Y, DY, DX, M, N, ACC, BLOCK_M, BLOCK_N):
    rows = program_id[0] * BLOCK_M + np.arange(BLOCK_M)
    cols = np.arange(BLOCK_N)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    y = load(Y, (rows[:, None], cols[None, :]), mask=mask, other=0.0).astype(ACC)
    dy = load(DY, (rows[:, None], cols[None, :]), mask=mask, other=0.0).astype(ACC)
    dx = y * (dy - np.sum(y * dy, axis=1)[:, None])
    store(DX, (rows[:, None], cols[None, :]), dx, mask=mask)


def _as_rows(x: np.ndarray) -> np.ndarray:
    """View x as (M, N) rows."""
    return x.reshape(-1, x.shape[-1])


def _launch(kernel, arrays: list[np.ndarray], block_m: int) -> None:
    """One program per block_m rows of the (M, N) first array."""
    M, N = arrays[0].shape
    if M == 0 or N == 0:
        return
    block_n = next_power_of_2(N)
    ACC = np.promote_types(arrays[0].dtype, np.float32).type
    launch(kernel, (cdiv(M, block_m),), *arrays, M, N, ACC=ACC, BLOCK_M=block_m, BLOCK_N=block_n)


def softmax_forward(x: np.ndarray, *, block_m: int = 4) -> np.ndarray:
    """softmax over the last axis of x (any leading shape), ``block_m`` rows per program; a new array like x."""
    rows = _as_rows(x)
    y = np.zeros(rows.shape, dtype=x.dtype)
    _launch(_softmax_fwd, [rows, y], block_m)
    return y.reshape(x.shape)


def softmax_backward(dy: np.ndarray, y: np.ndarray, *, block_m: int = 4) -> np.ndarray:
    """dx = y ⊙ (dy - rowsum(y ⊙ dy)), given the incoming gradient dy and the forward output y."""
    y_rows, dy_rows = _as_rows(y), _as_rows(dy)
    dx = np.zeros(y_rows.shape, dtype=y.dtype)
    _launch(_softmax_bwd, [y_rows, dy_rows, dx], block_m)
    return dx.reshape(y.shape)
