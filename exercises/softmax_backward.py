"""The backward of softmax, derived by hand.

Given y = softmax(x) over the last axis and dy = dL/dy, write ``softmax_backward(dy, y)``: dx = dL/dx.

The Jacobian of softmax is dy_i/dx_j = y_i (delta_ij - y_j), so summing dy_j dy_j/dx_i over j:

    dx = y * (dy - sum(y * dy))        the sum over the last axis, one number per row

    dy, y: (..., N)  ->  dx: (..., N)

Entries where y = 0 (masked out of the softmax) get dx = 0 by themselves. Only y is needed, not x: that is why the
library's softmax_forward returns y alone and softmax_backward takes (dy, y), at every level.

About 2 lines. The library's version is reference/np_softmax.py; try it yourself first. Check it with

    scratchformers check softmax_backward softmax_backward.py
"""
import numpy as np


def softmax_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dL/dx of y = softmax(x), given dy = dL/dy and the forward's output y."""
    raise NotImplementedError
