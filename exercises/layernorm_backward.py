"""The backward of LayerNorm, derived by hand.

The forward computed, per row of C features, mean, rstd = 1 / sqrt(var + eps), x_hat = (x - mean) * rstd and
y = gamma * x_hat + beta. Given dy = dL/dy, write ``layer_norm_backward(dy, x, gamma, mean, rstd)`` returning
(dx, dgamma, dbeta):

    dbeta  = sum(dy)                 over every axis but the last
    dgamma = sum(dy * x_hat)         over every axis but the last
    g      = dy * gamma              the gradient reaching x_hat
    dx     = rstd * (g - mean(g) - x_hat * mean(g * x_hat))      means over the last axis

(The two subtracted terms are there because the mean and the variance of a row depend on every x of the row.)

    dy, x: (..., C), gamma: (C,), mean, rstd: (..., 1)  ->  dx: (..., C), dgamma, dbeta: (C,)

About 6 lines. The library's version is reference/np_layernorm.py; try it yourself first. Check it with

    scratchformers check layernorm_backward layernorm_backward.py
"""
import numpy as np


def layer_norm_backward(dy: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray, rstd: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta) of y = LayerNorm(x), given dy = dL/dy and the forward's mean and rstd."""
    raise NotImplementedError
