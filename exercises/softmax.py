"""Softmax in NumPy, exact for large inputs.

Write ``softmax(x)``: the softmax of x over its last axis, for any number of leading axes.

    softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m),      m = max_j x_j   (each row's own maximum)

    x: (..., N)  ->  y: (..., N), the dtype of x; every row of y sums to 1

Subtracting the maximum changes nothing mathematically (it cancels between numerator and denominator), but it keeps
every exponent <= 0, so exp cannot overflow: the checks use |x| up to 1e4, where np.exp(x) alone is inf.

About 3 lines. The library's version is reference/np_softmax.py; try it yourself first. Check it with

    scratchformers check softmax softmax.py
"""
import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """The softmax of ``x`` over its last axis."""
    raise NotImplementedError
