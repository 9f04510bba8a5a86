"""GELU with np.power, and its derivative with sech^2 = 1 / cosh^2."""
import numpy as np

K = np.sqrt(2 / np.pi)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(K * (x + 0.044715 * np.power(x, 3))))


def gelu_backward(dy, x):
    u = K * (x + 0.044715 * np.power(x, 3))
    sech2 = 1.0 / np.cosh(u) ** 2
    return dy * (0.5 * (1 + np.tanh(u)) + 0.5 * x * sech2 * K * (1 + 3 * 0.044715 * x**2))
