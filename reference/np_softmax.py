"""Softmax in NumPy, forward and hand-derived backward, with an optional mask.

    y_i = exp(x_i - m) / Σ_j exp(x_j - m),      m = max_j x_j

Subtracting the row maximum m changes nothing mathematically (it cancels between numerator and denominator) but
keeps every exponent ≤ 0, so ``exp`` cannot overflow: this is the "numerically stable" softmax.

A boolean ``mask`` (True = keep) removes entries from the row: they get probability exactly 0. A row with no kept
entry at all (a *fully masked row*) is defined here as all zeros, not NaN: there is nothing to attend to, so
nothing is attended to. Its gradient is zero as well.

The backward needs nothing but the forward's output y, so ``softmax_forward`` returns y alone and
``softmax_backward(dy, y)`` takes it back: the contract of the Triton kernels (``kernels/softmax.py``) and their
tiled twin (``np_tiled_softmax.py``), which differ from this file on purpose in one way only: they take no ``mask``
(masked attention writes -inf into the scores instead, and a row of -inf gives zeros there too).
"""
from __future__ import annotations

import numpy as np


def softmax_forward(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Softmax over the last axis of ``x``; returns y, the shape and dtype of ``x``.

    ``mask`` is a boolean array broadcastable to ``x`` (True = keep). Masked entries get y = 0; a row whose entries
    are all masked is all zeros.
    """
    if mask is None:
        mask = np.ones(x.shape[-1:], dtype=bool)  # (N,), broadcasts: keep everything
    x_max = np.max(np.where(mask, x, -np.inf), axis=-1, keepdims=True)  # (..., 1), −inf on fully masked rows
    e = np.exp(np.where(mask, x - x_max, -np.inf))  # (..., N), exp(−inf) = 0 for every masked entry
    total = e.sum(axis=-1, keepdims=True)  # (..., 1), 0 only for fully masked rows
    y = e / np.where(total > 0, total, 1.0)  # (..., N)
    return y


def softmax_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the loss with respect to ``x``, given ``dy`` = ∂L/∂y and the forward's output ``y``.

    The Jacobian of softmax is ∂y_i/∂x_j = y_i (δ_ij − y_j), so

        dx_i = Σ_j dy_j · y_j (δ_ji − y_i) = y_i (dy_i − Σ_j y_j dy_j),    i.e.  dx = y ⊙ (dy − Σ y ⊙ dy).

    Masked entries and fully masked rows have y = 0, so their gradient is 0 without any special case.
    """
    return y * (dy - np.sum(y * dy, axis=-1, keepdims=True))
