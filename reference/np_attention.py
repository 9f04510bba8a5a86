"""Scaled dot-product attention and GPT-2's multi-head attention in NumPy, forward and hand-derived backward.

    S = Q Kᵀ / √D          scores: how well each query matches each key           (B, H, Tq, Tk)
    P = softmax(S + mask)  attention weights: each query's distribution over keys  (B, H, Tq, Tk)
    O = P V                output: the weighted average of the values              (B, H, Tq, D)

Masks (True = "may attend"):

* causal: query i may only see keys at or before its own position. When Tq ≤ Tk (decoding with a KV cache: the
  Tq new queries come after Tk − Tq cached keys) the mask is aligned bottom-right, so query i sits at absolute
  position Tk − Tq + i and sees keys j ≤ Tk − Tq + i.
* key padding: ``attention_mask`` (B, Tk) in the Hugging Face convention, 1 = real token, 0 = padding; no query
  attends to a padding key.

A query whose every key is masked (a *fully masked row*, e.g. a padded-out sequence, or a causal mask with
Tq > Tk) gets all-zero weights, an all-zero output and a zero gradient, never NaN.

Multi-head attention (GPT-2): one linear layer ``c_attn`` (3C, C) makes q, k and v at once, in that order along the
last axis; they are split into H heads of D = C / H dimensions, attended per head, merged back and projected by
``c_proj`` (C, C). Weights are stored as in ``torch.nn.Linear``: (out_features, in_features).

The same attention computed tile by tile, never holding the (Tq, Tk) weights, is flash attention:
``flash_attention_forward`` / ``flash_attention_backward`` in ``np_flash_attention.py`` and in the Triton kernels.
It has another name because it has another contract: per-sequence key lengths instead of a mask, an explicit scale
and dropout, and the saved log-sum-exp instead of the weights.
"""
from __future__ import annotations

import math

import numpy as np

from scratchformers.reference.np_linear import linear_backward, linear_forward
from scratchformers.reference.np_softmax import softmax_backward, softmax_forward


def visibility_mask(
    num_queries: int, num_keys: int, *, causal: bool, attention_mask: np.ndarray | None = None
) -> np.ndarray | None:
    """Boolean mask, True where query i may attend to key j: (B or 1, 1, Tq, Tk), or None if all visible.

    The NumPy twin of :func:`scratchformers.reference.attention.visibility_mask` (same arguments, same result).
    """
    mask = None
    if causal:
        query_pos = np.arange(num_queries)[:, None] + (num_keys - num_queries)  # (Tq, 1) bottom-right aligned
        key_pos = np.arange(num_keys)[None, :]  # (1, Tk)
        mask = (key_pos <= query_pos)[None, None]  # (1, 1, Tq, Tk)
    if attention_mask is not None:
        padding = (np.asarray(attention_mask) != 0)[:, None, None, :]  # (B, 1, 1, Tk)
        mask = padding if mask is None else mask & padding
    return mask


def _check_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray, attention_mask: np.ndarray | None) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"q, k, v must be (B, H, T, D); got shapes {q.shape}, {k.shape}, {v.shape}")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[3] != k.shape[3]:
        raise ValueError(
            f"incompatible shapes q {q.shape}, k {k.shape}, v {v.shape}: need q (B, H, Tq, D), "
            "k (B, H, Tk, D), v (B, H, Tk, Dv)"
        )
    if attention_mask is not None and np.shape(attention_mask) != (q.shape[0], k.shape[2]):
        raise ValueError(
            f"attention_mask must have shape (B, Tk) = {(q.shape[0], k.shape[2])}, got {np.shape(attention_mask)}"
        )


def attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    causal: bool = False,
    attention_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Scaled dot-product attention; returns ``(out, weights, cache)``.

    ``q`` (B, H, Tq, D), ``k`` (B, H, Tk, D), ``v`` (B, H, Tk, Dv); ``causal`` adds the bottom-right causal mask,
    ``attention_mask`` (B, Tk) marks real tokens with 1 and padding with 0. ``out`` is (B, H, Tq, Dv) and
    ``weights`` (B, H, Tq, Tk); fully masked rows give zeros in both.
    """
    _check_qkv(q, k, v, attention_mask)
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.swapaxes(-1, -2)) * scale  # (B, H, Tq, Tk)
    allowed = visibility_mask(q.shape[2], k.shape[2], causal=causal, attention_mask=attention_mask)  # (B|1, 1, Tq, Tk)
    weights = softmax_forward(scores, allowed)  # (B, H, Tq, Tk)
    out = weights @ v  # (B, H, Tq, Dv)
    return out, weights, (q, k, v, weights, scale)


def attention_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dq, dk, dv)`` given ``dout`` = ∂L/∂O (B, H, Tq, Dv).

    Backwards through O = P V, P = softmax(S), S = Q Kᵀ · s with s = 1/√D, one matrix product at a time
    (for C = A B: dA = dC Bᵀ and dB = Aᵀ dC):

        dV = Pᵀ dO                       (B, H, Tk, Dv)
        dP = dO Vᵀ                       (B, H, Tq, Tk)
        dS = P ⊙ (dP − Σ_k P ⊙ dP)       the softmax backward, row by row (masked entries: P = 0, so dS = 0)
        dQ = s · dS K                    (B, H, Tq, D)
        dK = s · dSᵀ Q                   (B, H, Tk, D)
    """
    q, k, v, weights, scale = cache
    dv = weights.swapaxes(-1, -2) @ dout  # (B, H, Tk, Dv)
    dweights = dout @ v.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    dscores = softmax_backward(dweights, weights)  # (B, H, Tq, Tk)
    dq = (dscores @ k) * scale  # (B, H, Tq, D)
    dk = (dscores.swapaxes(-1, -2) @ q) * scale  # (B, H, Tk, D)
    return dq, dk, dv


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, T, C) → (B, H, T, D) with D = C / H: head h owns channels h·D … (h+1)·D − 1."""
    B, T, C = x.shape
    return x.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3)  # (B, H, T, D)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, H, T, D) → (B, T, C): the inverse of :func:`split_heads` (and so also its backward)."""
    B, H, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)  # (B, T, C)


def multi_head_attention_forward(
    x: np.ndarray,
    attn_weight: np.ndarray,
    attn_bias: np.ndarray | None,
    proj_weight: np.ndarray,
    proj_bias: np.ndarray | None,
    num_heads: int,
    causal: bool = True,
    attention_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """GPT-2's multi-head self-attention; returns ``(out, weights, cache)``.

    ``x`` (B, T, C); ``attn_weight`` (3C, C) and ``attn_bias`` (3C,) are ``c_attn``; ``proj_weight`` (C, C) and
    ``proj_bias`` (C,) are ``c_proj``. ``out`` is (B, T, C) and ``weights`` (B, H, T, T).
    """
    if x.ndim != 3:
        raise ValueError(f"x must be (B, T, C), got shape {x.shape}")
    C = x.shape[-1]
    if num_heads <= 0 or C % num_heads != 0:
        raise ValueError(f"the width C = {C} must be divisible by num_heads = {num_heads}")
    qkv, attn_cache = linear_forward(x, attn_weight, attn_bias)  # (B, T, 3C)
    q, k, v = np.split(qkv, 3, axis=-1)  # 3 × (B, T, C)
    q, k, v = (split_heads(t, num_heads) for t in (q, k, v))  # 3 × (B, H, T, D)
    y, weights, sdpa_cache = attention_forward(q, k, v, causal, attention_mask)  # (B, H, T, D)
    out, proj_cache = linear_forward(merge_heads(y), proj_weight, proj_bias)  # (B, T, C)
    return out, weights, (attn_cache, sdpa_cache, proj_cache, num_heads)


def multi_head_attention_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dattn_weight, dattn_bias, dproj_weight, dproj_bias)`` given ``dout`` = ∂L/∂out (B, T, C).

    The forward steps in reverse. Reshapes and transposes only move numbers around, so their backward moves the
    gradients back (split ↔ merge), and the split of qkv into thirds is undone by concatenating dq, dk, dv.
    """
    attn_cache, sdpa_cache, proj_cache, num_heads = cache
    dy_merged, dproj_weight, dproj_bias = linear_backward(dout, proj_cache)  # (B, T, C)
    dq, dk, dv = attention_backward(split_heads(dy_merged, num_heads), sdpa_cache)  # 3 × (B, H, T, D)
    dqkv = np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)  # (B, T, 3C)
    dx, dattn_weight, dattn_bias = linear_backward(dqkv, attn_cache)  # (B, T, C)
    return dx, dattn_weight, dattn_bias, dproj_weight, dproj_bias
