"""Softmax backward through the full Jacobian, with einsum."""
import numpy as np


def softmax_backward(dy, y):
    jacobian = np.einsum("...i,ij->...ij", y, np.eye(y.shape[-1])) - np.einsum("...i,...j->...ij", y, y)
    return np.einsum("...ij,...i->...j", jacobian, dy)
