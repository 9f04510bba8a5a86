"""Sinusoidal positional encodings (Vaswani et al., 2017).

Write ``sinusoidal_positions(max_len, dim)``: the (max_len, dim) table whose row pos encodes position pos,

    PE[pos, 2i]   = sin(pos / 10000^(2i / dim))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / dim))

so columns 2i and 2i+1 share one frequency, from 1 (the first pair) down to nearly 1/10000. Positions are
0, 1, ..., max_len - 1. For an odd dim the last column is a sine (its cosine partner is dropped).

    max_len, dim: positive ints  ->  table: (max_len, dim) float64

About 6 lines. The library's version is reference/np_positional.py; try it yourself first. Check it with

    scratchformers check positional positional.py
"""
import numpy as np


def sinusoidal_positions(max_len: int, dim: int) -> np.ndarray:
    """The (max_len, dim) sinusoidal table."""
    raise NotImplementedError
