"""GELU, the activation of GPT-2's MLP, in the tanh form GPT-2 was trained with, and its derivative by hand.

Write ``gelu(x)``, elementwise:

    GELU(x) = 0.5 x (1 + tanh(u)),    u = sqrt(2 / pi) (x + 0.044715 x^3)

(an approximation of the exact x * Phi(x), Phi the standard normal CDF), and ``gelu_backward(dy, x)``, the gradient
dx = dy * GELU'(x). With t = tanh(u) and tanh' = 1 - t^2, the product rule gives

    GELU'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,    du/dx = sqrt(2 / pi) (1 + 3 * 0.044715 x^2)

    x, dy: any shape  ->  the same shape

About 2 lines each. The library's version is reference/np_gelu.py; try it yourself first. Check it with

    scratchformers check gelu gelu.py
"""
import numpy as np


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU of ``x`` (tanh form)."""
    raise NotImplementedError


def gelu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dL/dx of y = gelu(x), given dy = dL/dy."""
    raise NotImplementedError
