"""Scaled dot-product attention with causal and padding masks, in NumPy.

Write ``attention(q, k, v, causal=False, mask=None)``:

    S = q k^T / sqrt(D)          (B, H, Tq, Tk)   how well each query matches each key
    P = softmax(S + M)           over the keys    M is 0 where a query may look, -inf where it may not
    out = P v                    (B, H, Tq, D)

    q: (B, H, Tq, D), k, v: (B, H, Tk, D), mask: (B, Tk) or None  ->  out: (B, H, Tq, D)

* causal: query i may not see the future. With Tq < Tk (decoding with a KV cache) the queries are the LAST Tq
  positions, so query i sits at position Tk - Tq + i and sees keys j <= i + Tk - Tq ("bottom-right" alignment).
* mask: 1 for a real key, 0 for padding; no query attends to a padding key.
* A query that sees no key at all (an all-padding sequence, or causal with Tq > Tk) gets an all-zero output, not
  NaN and not an average of everything.

About 10 lines. The library's version is reference/np_attention.py (visibility_mask, attention_forward); try it
yourself first. Check it with

    scratchformers check attention attention.py
"""
import numpy as np


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False,
              mask: np.ndarray | None = None) -> np.ndarray:
    """softmax(q k^T / sqrt(D) + masks) v."""
    raise NotImplementedError
