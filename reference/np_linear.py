"""The linear layer and GPT-2's MLP in NumPy, forward and hand-derived backward.

Weights are stored as in ``torch.nn.Linear``: ``weight`` has shape (out_features, in_features), so

    y = x Wᵀ + b

and a torch ``state_dict`` converts without transposes. The MLP is GPT-2's feed-forward block:

    MLP(x) = c_proj(GELU_tanh(c_fc(x))),   c_fc: C → F,  c_proj: F → C   (F = 4C in GPT-2)
"""
from __future__ import annotations

import numpy as np

from scratchformers.reference.np_gelu import gelu_backward, gelu_forward


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, tuple]:
    """y = x Wᵀ + b for ``x`` (..., in), ``weight`` (out, in), ``bias`` (out,) or None; returns ``(y, cache)``."""
    if weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"weight must have shape (out_features, {x.shape[-1]}), got {weight.shape}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must have shape {weight.shape[:1]}, got {bias.shape}")
    y = x @ weight.T  # (..., out)
    if bias is not None:
        y = y + bias
    return y, (x, weight, bias is not None)


def linear_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(dx, dweight, dbias)`` given ``dy`` = ∂L/∂y (``dbias`` is None when there was no bias).

    From y_…o = Σ_i x_…i W_oi + b_o:

        dx = dy W                     (..., in)
        dW = Σ_rows dyᵀ x             (out, in): every row (every token of every batch) adds its outer product
        db = Σ_rows dy                (out,)
    """
    x, weight, has_bias = cache
    dx = dy @ weight  # (..., in)
    dy_rows = dy.reshape(-1, dy.shape[-1])  # (N, out), N = number of rows
    x_rows = x.reshape(-1, x.shape[-1])  # (N, in)
    dweight = dy_rows.T @ x_rows  # (out, in)
    dbias = dy_rows.sum(axis=0) if has_bias else None  # (out,)
    return dx, dweight, dbias


def mlp_forward(
    x: np.ndarray,
    fc_weight: np.ndarray,
    fc_bias: np.ndarray | None,
    proj_weight: np.ndarray,
    proj_bias: np.ndarray | None,
) -> tuple[np.ndarray, tuple]:
    """GPT-2's MLP: ``x`` (..., C) → c_fc (F, C) → GELU (tanh) → c_proj (C, F); returns ``(y, cache)``."""
    h, fc_cache = linear_forward(x, fc_weight, fc_bias)  # (..., F)
    a, gelu_cache = gelu_forward(h, approximate="tanh")  # (..., F)
    y, proj_cache = linear_forward(a, proj_weight, proj_bias)  # (..., C)
    return y, (fc_cache, gelu_cache, proj_cache)


def mlp_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dfc_weight, dfc_bias, dproj_weight, dproj_bias)`` given ``dy`` = ∂L/∂y.

    The chain rule, run backwards through the three steps: linear (c_proj), then GELU, then linear (c_fc).
    """
    fc_cache, gelu_cache, proj_cache = cache
    da, dproj_weight, dproj_bias = linear_backward(dy, proj_cache)  # (..., F)
    dh = gelu_backward(da, gelu_cache)  # (..., F)
    dx, dfc_weight, dfc_bias = linear_backward(dh, fc_cache)  # (..., C)
    return dx, dfc_weight, dfc_bias, dproj_weight, dproj_bias
