"""Layer normalisation in NumPy, forward and hand-derived backward.

Each vector x of C features (the last axis) is standardised on its own, then scaled and shifted:

    μ = mean(x),   σ² = mean((x − μ)²),   rstd = 1 / √(σ² + ε),   x̂ = (x − μ) · rstd,   y = γ ⊙ x̂ + β

with the *biased* variance (divide by C, not C − 1) and ε = 1e-5, as in PyTorch and GPT-2. In code γ is ``weight``
and β is ``bias``, the names of ``torch.nn.LayerNorm``'s parameters and of every LayerNorm in this library.

The forward returns y with the two per-row statistics the backward needs, ``mean`` and ``rstd``, and the backward
takes them back with x and the weight: the contract of the Triton kernels (``kernels/layernorm.py``) and their tiled
twin (``np_tiled_layernorm.py``). One difference, on purpose: here ``mean`` and ``rstd`` keep the row axis,
(..., 1), so that they broadcast against x; the kernels store them as one flat vector, one number per row.
"""
from __future__ import annotations

import numpy as np


def layer_norm_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNorm over the last axis of ``x`` (..., C) with ``weight`` (γ) and ``bias`` (β) (C,).

    Returns ``(y, mean, rstd)``: y like x, and the mean and 1/√(σ² + ε) of each row, (..., 1). ``bias=None`` means
    no shift (a LayerNorm without bias).
    """
    if weight.shape != x.shape[-1:] or (bias is not None and bias.shape != x.shape[-1:]):
        raise ValueError(f"weight and bias must have shape {x.shape[-1:]} for x of shape {x.shape}")
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    rstd = 1.0 / np.sqrt(var + eps)  # (..., 1)
    x_hat = (x - mean) * rstd  # (..., C)
    y = weight * x_hat if bias is None else weight * x_hat + bias  # (..., C)
    return y, mean, rstd


def layer_norm_backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, mean: np.ndarray, rstd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dweight, dbias)`` given ``dy`` = ∂L/∂y and the forward's ``x``, ``weight``, ``mean``, ``rstd``.

    The affine part is easy: dβ = Σ dy and dγ = Σ dy ⊙ x̂, summed over every axis but the last (a LayerNorm without
    bias ignores dbias). Let g = dy ⊙ γ = ∂L/∂x̂ and σ = √(σ² + ε) = 1 / rstd. Differentiating x̂ = (x − μ)/σ, using
    ∂μ/∂x_j = 1/C and ∂σ/∂x_j = x̂_j / (C σ):

        ∂x̂_i/∂x_j = (δ_ij − 1/C − x̂_i x̂_j / C) / σ

    and summing g_i ∂x̂_i/∂x_j over i gives

        dx = rstd · (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))

    (the two subtracted terms remove the components of g along the constant vector and along x̂, the two
    directions in which the normalisation makes x̂ insensitive to x).
    """
    x_hat = (x - mean) * rstd  # (..., C)
    leading = tuple(range(dy.ndim - 1))
    dweight = np.sum(dy * x_hat, axis=leading)  # (C,)
    dbias = np.sum(dy, axis=leading)  # (C,)
    g = dy * weight  # (..., C)
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True))  # (..., C)
    return dx, dweight, dbias
