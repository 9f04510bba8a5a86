"""The checks of the positional exercise: the sinusoidal position table of Vaswani et al. (2017)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_close, failing_case, for_all


def shape_and_dtype(learner):
    with failing_case(max_len=7, dim=6):
        expect_close("table", learner.sinusoidal_positions(7, 6), oracles.sinusoidal_positions(7, 6), atol=1e-12,
                     dtype=np.float64)


@for_all(max_len=st.integers(1, 40), dim=st.integers(1, 33))
def random_sizes(learner, max_len, dim):
    with failing_case(max_len=max_len, dim=dim):
        expect_close("table", learner.sinusoidal_positions(max_len, dim), oracles.sinusoidal_positions(max_len, dim),
                     atol=1e-12)


def far_positions(learner):
    with failing_case(max_len=2048, dim=8):
        expect_close("table", learner.sinusoidal_positions(2048, 8), oracles.sinusoidal_positions(2048, 8),
                     atol=1e-10)


def _table(max_len, dim, exponent, start=0, first=np.sin, second=np.cos, interleave=True):
    """Sinusoidal tables, right and wrong: ``exponent(i, dim)`` gives column i's power of 10000."""
    position = np.arange(start, start + max_len, dtype=np.float64)[:, None]
    if not interleave:
        half = (dim + 1) // 2
        angle = position / 10000.0 ** (2 * np.arange(half) / dim)
        return np.concatenate([first(angle), second(angle)], axis=1)[:, :dim]
    angle = position / 10000.0 ** exponent(np.arange(dim), dim)
    return np.where(np.arange(dim) % 2 == 0, first(angle), second(angle))


def _pairs(i, dim):
    return 2 * (i // 2) / dim


MISTAKES = (
    Mistake("exponent j/d for column j: a sin/cos pair must share one frequency",
            "columns 2i and 2i+1 share the angle pos / 10000^(2i/d): use the even index 2i = 2 * (j // 2) for both",
            {"sinusoidal_positions": lambda max_len, dim: _table(max_len, dim, lambda j, d: j / d)}),
    Mistake("exponent i/d for pair i: the 2 of 2i/d is missing",
            "pair i (columns 2i and 2i+1) uses pos / 10000^(2i/d): with np.arange(0, dim, 2) the 2 is already in it",
            {"sinusoidal_positions": lambda max_len, dim: _table(max_len, dim, lambda j, d: (j // 2) / d)}),
    Mistake("sin and cos swapped", "even columns (0, 2, 4, ...) hold the sines, odd columns the cosines",
            {"sinusoidal_positions": lambda max_len, dim: _table(max_len, dim, _pairs, first=np.cos, second=np.sin)}),
    Mistake("all the sines first, then all the cosines (not interleaved)",
            "interleave them: table[:, 0::2] = sin(angle) and table[:, 1::2] = cos(angle)",
            {"sinusoidal_positions": lambda max_len, dim: _table(max_len, dim, _pairs, interleave=False)}),
    Mistake("positions counted from 1", "positions are 0, 1, ..., max_len - 1: row 0 is [0, 1, 0, 1, ...]",
            {"sinusoidal_positions": lambda max_len, dim: _table(max_len, dim, _pairs, start=1)}),
)

EXERCISE = Exercise(
    name="positional",
    summary="sinusoidal_positions(max_len, dim): the sin/cos position table, odd dims included",
    signatures=("sinusoidal_positions(max_len, dim)",),
    checks=(
        Check("a (max_len, dim) float64 table: PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...)",
              shape_and_dtype, "return np.float64 values of shape (max_len, dim), row pos holding position pos"),
        Check("the paper's formula on random sizes, odd dims included (the last cosine column dropped)", random_sizes,
              "for odd dim there are (dim + 1) // 2 sines and dim // 2 cosines: drop the last cosine column"),
        Check("positions up to 2047 stay exact", far_positions,
              "compute the angle as pos / 10000^(2i/d) in float64 (no float32, no rounding of the frequencies)"),
    ),
    mistakes=MISTAKES,
    probes=tuple(("sinusoidal_positions", lambda f, size=size: f.sinusoidal_positions(*size))
                 for size in ((6, 4), (5, 6), (4, 3))),
)
