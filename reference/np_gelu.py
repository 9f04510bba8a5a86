"""GELU in NumPy, forward and hand-derived backward: exact (erf) and GPT-2's tanh approximation.

    exact:  GELU(x) = x · Φ(x),   Φ(x) = ½ (1 + erf(x / √2))          (the standard normal CDF)
    tanh:   GELU(x) ≈ ½ x (1 + tanh(u)),   u = √(2/π) (x + 0.044715 x³)

GPT-2 was trained with the tanh form, so loading its weights needs that one (``F.gelu(x, approximate="tanh")``).
NumPy has no ``erf``; ``math.erf`` applied element by element is slow but exact, which is what a reference wants.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

Approximate = Literal["tanh", "none"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _check(approximate: str) -> None:
    if approximate not in ("tanh", "none"):
        raise ValueError(f"approximate must be 'tanh' (GPT-2) or 'none' (exact erf), got {approximate!r}")


def gelu_forward(x: np.ndarray, approximate: Approximate = "tanh") -> tuple[np.ndarray, tuple]:
    """GELU of ``x`` (any shape); returns ``(y, cache)``. Default: the tanh approximation, as in GPT-2."""
    _check(approximate)
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
        y = 0.5 * x * (1.0 + t)
    else:
        t = (0.5 * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype)  # Φ(x)
        y = x * t
    return y, (x, t, approximate)


def gelu_backward(dy: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient with respect to ``x``, given ``dy`` = ∂L/∂y (element-wise, so dx = dy ⊙ GELU'(x)).

    exact:  d/dx [x Φ(x)] = Φ(x) + x φ(x),   φ(x) = exp(−x²/2) / √(2π)   (the normal density)

    tanh:   with t = tanh(u), u = √(2/π)(x + 0.044715 x³), and tanh' = 1 − t²:
            d/dx [½ x (1 + t)] = ½ (1 + t) + ½ x (1 − t²) · √(2/π)(1 + 3 · 0.044715 x²)
    """
    x, t, approximate = cache
    if approximate == "tanh":
        du_dx = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x**2)
        dgelu = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * du_dx
    else:
        pdf = np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)  # φ(x)
        dgelu = t + x * pdf
    return dy * dgelu
