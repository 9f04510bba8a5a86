"""Positional encodings in NumPy: the fixed sinusoidal table and the learned table lookup (with its backward).

Sinusoidal (Vaswani et al., 2017), no parameters:

    PE[pos, 2i]   = sin(pos / 10000^(2i / d))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d))

Learned (GPT-2's ``wpe``, and also the token embedding ``wte``): a table of vectors, one row per position (or
token id); the forward is row lookup ``table[ids]``, the backward scatter-adds the incoming gradients into the rows
that were read.
"""
from __future__ import annotations

import numpy as np


def sinusoidal_positions(max_len: int, dim: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """The (max_len, dim) sinusoidal table; for odd ``dim`` the last cosine column is dropped."""
    if max_len <= 0 or dim <= 0:
        raise ValueError(f"max_len and dim must be positive, got {max_len} and {dim}")
    position = np.arange(max_len, dtype=np.float64)[:, None]  # (L, 1)
    frequency = 10000.0 ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)  # (⌈d/2⌉,), 1 / 10000^(2i/d)
    angle = position * frequency  # (L, ⌈d/2⌉)
    table = np.zeros((max_len, dim), dtype=np.float64)  # (L, d)
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle)[:, : dim // 2]
    return table.astype(dtype)


def embedding_forward(table: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Row lookup ``table[ids]`` for ``table`` (N, C) and integer ``ids`` of any shape; returns ``(out, cache)``."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
        raise ValueError(f"ids must be in [0, {table.shape[0]}), got values in [{ids.min()}, {ids.max()}]")
    return table[ids], (ids, table.shape)  # (..., C)


def embedding_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient of the table, given ``dout`` = ∂L/∂out (..., C).

    out[n] = table[ids[n]] copies row ids[n], so ∂L/∂table[r] = Σ_{n : ids[n] = r} dout[n]: every position adds its
    gradient into the row it read, and a row read twice (a repeated token) gets the sum. ``np.add.at`` does this
    unbuffered scatter-add; plain ``dtable[ids] += dout`` would keep only one of the repeated updates.
    """
    ids, table_shape = cache
    dtable = np.zeros(table_shape, dtype=dout.dtype)  # (N, C)
    np.add.at(dtable, ids, dout)
    return dtable
