"""Attention with einsum and a boolean mask built with np.tril."""
import numpy as np


def attention(q, k, v, causal=False, mask=None):
    Tq, Tk, D = q.shape[2], k.shape[2], q.shape[3]
    scores = np.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(D)
    visible = np.ones((1, 1, Tq, Tk), dtype=bool)
    if causal:
        visible = visible & np.tril(np.ones((Tq, Tk), dtype=bool), k=Tk - Tq)
    if mask is not None:
        visible = visible & (np.asarray(mask)[:, None, None, :] == 1)
    scores = np.where(visible, scores, -np.inf)
    row_max = np.max(scores, axis=-1, keepdims=True)
    row_max[np.isneginf(row_max)] = 0.0
    weights = np.exp(scores - row_max)
    sums = weights.sum(axis=-1, keepdims=True)
    weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    return np.einsum("bhqk,bhkd->bhqd", weights, v)
