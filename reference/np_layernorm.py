"""Layer normalisation in NumPy, forward and hand-derived backward.

Each vector x of C features (the last axis) is standardised on its own, then scaled and shifted:

    μ = mean(x),   σ² = mean((x − μ)²),   x̂ = (x − μ) / √(σ² + ε),   y = γ ⊙ x̂ + β

with the *biased* variance (divide by C, not C − 1) and ε = 1e-5, as in PyTorch and GPT-2.
"""
from __future__ import annotations

import numpy as np


def layer_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None, eps: float = 1e-5
) -> tuple[np.ndarray, tuple]:
    """LayerNorm over the last axis of ``x`` (..., C) with ``gamma``, ``beta`` (C,); returns ``(y, cache)``.

    ``beta=None`` means no shift (a LayerNorm without bias).
    """
    if gamma.shape != x.shape[-1:] or (beta is not None and beta.shape != x.shape[-1:]):
        raise ValueError(f"gamma and beta must have shape {x.shape[-1:]} for x of shape {x.shape}")
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    inv_sigma = 1.0 / np.sqrt(var + eps)  # (..., 1)
    x_hat = (x - mu) * inv_sigma  # (..., C)
    y = gamma * x_hat if beta is None else gamma * x_hat + beta  # (..., C)
    return y, (x_hat, inv_sigma, gamma, beta is not None)


def layer_norm_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(dx, dgamma, dbeta)`` given ``dy`` = ∂L/∂y (``dbeta`` is None when there was no beta).

    The affine part is easy: dβ = Σ dy and dγ = Σ dy ⊙ x̂, summed over every axis but the last.
    Let g = dy ⊙ γ = ∂L/∂x̂ and σ = √(σ² + ε). Differentiating x̂ = (x − μ)/σ, using ∂μ/∂x_j = 1/C and
    ∂σ/∂x_j = x̂_j / (C σ):

        ∂x̂_i/∂x_j = (δ_ij − 1/C − x̂_i x̂_j / C) / σ

    and summing g_i ∂x̂_i/∂x_j over i gives

        dx = (1/σ) (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))

    (the two subtracted terms remove the components of g along the constant vector and along x̂, the two
    directions in which the normalisation makes x̂ insensitive to x).
    """
    x_hat, inv_sigma, gamma, has_beta = cache
    leading = tuple(range(dy.ndim - 1))
    dgamma = np.sum(dy * x_hat, axis=leading)  # (C,)
    dbeta = np.sum(dy, axis=leading) if has_beta else None  # (C,)
    g = dy * gamma  # (..., C)
    dx = inv_sigma * (
        g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)
    )  # (..., C)
    return dx, dgamma, dbeta
