"""Layer normalisation (Ba et al., 2016), as GPT-2 and torch.nn.functional.layer_norm compute it.

Write ``layer_norm(x, gamma, beta, eps=1e-5)``: each vector of C features (the last axis) is standardised on its
own, then scaled by gamma and shifted by beta:

    mean = mean(x),   var = mean((x - mean)^2),   x_hat = (x - mean) / sqrt(var + eps),   y = gamma * x_hat + beta

The variance is the biased one (divide by C, not C - 1) and eps is inside the square root. gamma and beta are what
a model's LayerNorm calls weight and bias.

    x: (..., C), gamma, beta: (C,)  ->  y: (..., C), the dtype of x

About 4 lines. The library's version is reference/np_layernorm.py; try it yourself first. Check it with

    scratchformers check layernorm layernorm.py
"""
import numpy as np


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis of ``x``."""
    raise NotImplementedError
