"""The online softmax: the trick inside flash attention, in NumPy, tile by tile.

Write ``online_softmax(x, block_n)``: the softmax of each row of x (M, N), reading x in tiles of block_n columns and
never holding anything near the size of x besides the output. Two passes over the tiles:

    pass 1, for each tile t = x[:, start:start + block_n]:      m, l: (M, 1), starting at -inf and 0
        m_new = maximum(m, max(t))                             the running maximum of each row
        l     = l * exp(m - m_new) + sum(exp(t - m_new))       the running sum, rescaled to the new maximum
        m     = m_new
    pass 2, for each tile: y[:, start:start + block_n] = exp(t - m) / l

The last tile may be narrower than block_n. The rescaling by exp(m - m_new) is exact, not an approximation: it
turns a sum of exp(x - m_old) into a sum of exp(x - m_new). Flash attention does the same with an output
accumulator instead of pass 2 (reference/np_flash_attention.py, _fwd_inner).

    x: (M, N) float64, block_n >= 1  ->  y: (M, N)

About 12 lines. Check it with

    scratchformers check online_softmax online_softmax.py
"""
import numpy as np


def online_softmax(x: np.ndarray, block_n: int) -> np.ndarray:
    """The softmax of each row of ``x``, computed over tiles of ``block_n`` columns."""
    raise NotImplementedError
