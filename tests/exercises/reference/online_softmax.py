"""The online softmax written out (the library has it only inside flash attention, np_flash_attention._fwd_inner)."""
import numpy as np


def online_softmax(x, block_n):
    M, N = x.shape
    m, total = np.full((M, 1), -np.inf), np.zeros((M, 1))
    for start in range(0, N, block_n):
        tile = x[:, start:start + block_n]  # (M, <= block_n)
        m_new = np.maximum(m, tile.max(axis=1, keepdims=True))
        total = total * np.exp(m - m_new) + np.exp(tile - m_new).sum(axis=1, keepdims=True)
        m = m_new
    y = np.empty_like(x)
    for start in range(0, N, block_n):
        y[:, start:start + block_n] = np.exp(x[:, start:start + block_n] - m) / total
    return y
