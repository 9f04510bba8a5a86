"""The sinusoidal table written as a learner might: stack sin and cos, interleave by reshaping, cut to dim."""
import numpy as np


def sinusoidal_positions(max_len, dim):
    pos = np.arange(max_len)[:, None]
    freq = np.power(10000.0, -np.arange(0, dim, 2) / dim)[None, :]
    both = np.stack([np.sin(pos * freq), np.cos(pos * freq)], axis=-1)  # (L, ceil(d/2), 2)
    return both.reshape(max_len, -1)[:, :dim]
