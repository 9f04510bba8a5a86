"""Triton's tile vocabulary in NumPy: what the tiled twins of the kernels use in place of ``tl.load``, ``tl.store``.

A Triton program addresses memory through a base pointer plus offsets, ``X + rows[:, None] * stride + cols[None, :]``,
and guards the addresses outside the tensor with a boolean ``mask`` (masked loads read ``other``, masked stores write
nothing). In NumPy the base pointer is an array, the offsets are index arrays that broadcast into the tile's shape,
and the mask works the same way::

    tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0)
    load(X, (rows[:, None], cols[None, :]), mask=mask, other=0.0)

An unmasked load is the kernel's promise that every address is inside the tensor; here a broken promise raises
``IndexError`` instead of reading whatever lies past the end.

Also here: ``launch`` (``kernel[grid](...)``: the programs of a grid, one after another), ``rand`` (``tl.rand``,
Triton's Philox generator, bit for bit) and ``row_tile`` (the tile of the row-wise kernels, ``kernels/common.py``).
"""
from __future__ import annotations

import numpy as np


def cdiv(a: int, b: int) -> int:
    """Ceiling division, ``triton.cdiv`` / ``tl.cdiv``: how many blocks of b cover a."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """``triton.next_power_of_2``: the smallest power of two >= n (tile shapes are powers of two)."""
    return 1 << max(n - 1, 0).bit_length()


def _masked_index(offsets: tuple[np.ndarray, ...], mask: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The tile-shaped mask, and the indices of its True elements along each axis of the array."""
    shape = np.broadcast_shapes(*(np.shape(i) for i in offsets), np.shape(mask))
    mask = np.broadcast_to(mask, shape)
    return mask, tuple(np.broadcast_to(i, shape)[mask] for i in offsets)


def load(x: np.ndarray, offsets: tuple[np.ndarray, ...], mask: np.ndarray | None = None,
         other: float = 0.0) -> np.ndarray:
    """``tl.load``: the elements of ``x`` at ``offsets`` (one index array per axis, broadcast into the tile's shape);
    where ``mask`` is False the tile holds ``other`` and ``x`` is not read. Returns a new tile in x's dtype."""
    if mask is None:
        return x[offsets]  # the caller promises every index is in bounds (IndexError otherwise)
    mask, index = _masked_index(offsets, mask)
    tile = np.full(mask.shape, other, dtype=x.dtype)
    tile[mask] = x[index]
    return tile


def store(x: np.ndarray, offsets: tuple[np.ndarray, ...], value: np.ndarray, mask: np.ndarray | None = None) -> None:
    """``tl.store``: write ``value`` (cast to x's dtype) into ``x`` at ``offsets`` where ``mask`` is True."""
    if mask is None:
        x[offsets] = value
        return
    mask, index = _masked_index(offsets, mask)
    x[index] = np.broadcast_to(value, mask.shape)[mask]


def launch(kernel, grid: tuple[int, ...], *args, **kwargs) -> None:
    """``kernel[grid](*args)``: run ``kernel(program_id, *args)`` once per program id, axis 0 fastest.

    A GPU runs the programs in parallel; here they run one after another. Each writes its own part of the outputs,
    so the order cannot change the result.
    """
    for reversed_id in np.ndindex(*reversed(grid)):
        kernel(reversed_id[::-1], *args, **kwargs)


# Triton's Philox 4x32-10 (triton/language/random.py): the round and key constants, and the float conversion.
_PHILOX_ROUND_A, _PHILOX_ROUND_B = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_PHILOX_KEY_A, _PHILOX_KEY_B = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_UINT_TO_FLOAT = np.float32(4.6566127342e-10)  # the largest scale with (2**31 - 1) * scale < 1 in float32


def rand(seed: int, offset: np.ndarray) -> np.ndarray:
    """``tl.rand(seed, offset)``: float32 uniforms in [0, 1), one per offset, bit for bit as Triton draws them.

    Philox is counter based: the number at ``offset`` depends only on (seed, offset), so a kernel can redraw any
    element of a random mask without storing it. The 64-bit seed is the key (low and high 32 bits), the offset the
    counter; ten rounds of multiply-xor scramble them, and the first 32-bit output becomes a float.
    """
    offset = np.asarray(offset, dtype=np.int64).astype(np.uint64)
    seed = np.uint64(seed)
    k0, k1 = seed & _MASK32, (seed >> np.uint64(32)) & _MASK32
    c0, c1 = offset & _MASK32, offset >> np.uint64(32)
    c2 = c3 = np.zeros_like(c0)
    for _ in range(10):
        _c0, _c2 = c0, c2
        c0 = ((_PHILOX_ROUND_B * _c2) >> np.uint64(32)) ^ c1 ^ k0  # umulhi(B, c2) ^ c1 ^ k0
        c2 = ((_PHILOX_ROUND_A * _c0) >> np.uint64(32)) ^ c3 ^ k1  # umulhi(A, c0) ^ c3 ^ k1
        c1 = (_PHILOX_ROUND_B * _c2) & _MASK32
        c3 = (_PHILOX_ROUND_A * _c0) & _MASK32
        k0 = (k0 + _PHILOX_KEY_A) & _MASK32
        k1 = (k1 + _PHILOX_KEY_B) & _MASK32
    x = c0.astype(np.uint32).view(np.int32)
    x = np.where(x < 0, ~x, x)  # uint_to_uniform_float: fold the sign bit away
    return x.astype(np.float32) * _UINT_TO_FLOAT


def row_tile(start: int, M: int, N: int, BLOCK_M: int, BLOCK_N: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The row-wise kernels' tile (``kernels/common.py``: ``row_tile``): rows [start, start + BLOCK_M) of an (M, N)
    matrix, the column indices, and which rows / which elements of the (BLOCK_M, BLOCK_N) tile exist."""
    rows = start + np.arange(BLOCK_M)
    cols = np.arange(BLOCK_N)
    row_ok = rows < M
    mask = row_ok[:, None] & (cols[None, :] < N)
    return rows, cols, row_ok, mask
