"""The checks of the softmax exercise: ``softmax(x)`` in NumPy, over the last axis, exact for large inputs."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_close, failing_case, for_all
from scratchformers.exercises.checks.strategies import row_shapes, seeds


def expected(x: np.ndarray) -> np.ndarray:
    return oracles.softmax(torch.from_numpy(x)).numpy()


@for_all(shape=row_shapes(), spread=st.sampled_from([0.1, 1.0, 20.0]), seed=seeds)
def random_inputs(learner, shape, spread, seed):
    x = np.random.default_rng(seed).normal(size=shape) * spread
    with failing_case(x=x):
        expect_close("y", learner.softmax(x.copy()), expected(x))


@for_all(shape=row_shapes(), seed=seeds)
def large_inputs(learner, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1e4, 1e4, size=shape)
    with failing_case(x=x):
        expect_close("y", learner.softmax(x.copy()), expected(x))


def keeps_dtype(learner):
    for shape, dtype in (((2, 3, 5), np.float64), ((4, 7), np.float32)):
        x = np.random.default_rng(0).normal(size=shape).astype(dtype)
        with failing_case(x=x):
            expect_close("y", learner.softmax(x.copy()), expected(x.astype(np.float64)), atol=1e-6, dtype=dtype)


def _no_max(x):
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def _global_max(x):
    e = np.exp(x - x.max())
    return e / e.sum(-1, keepdims=True)


def _first_axis(x):
    e = np.exp(x - x.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


def _whole_sum(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum()


def _no_keepdims(x):
    e = np.exp(x - x.max(-1))
    return e / e.sum(-1)


_rng = np.random.default_rng(2024)
_PROBES = (_rng.normal(size=(3, 4)) * 3, np.array([[900.0, 901.0, 903.0], [-900.0, -902.0, -901.0]]),
           _rng.normal(size=(4, 4)), _rng.normal(size=5) * 2, _rng.normal(size=(2, 3, 4)))

EXERCISE = Exercise(
    name="softmax",
    summary="softmax(x) over the last axis in NumPy, exact for |x| up to 1e4",
    signatures=("softmax(x)",),
    checks=(
        Check("matches torch.softmax on random shapes (float64, to 1e-10)", random_inputs,
              "the softmax of each row over the last axis: y = exp(x - max) / sum(exp(x - max)), every row summing "
              "to 1, for any number of leading axes"),
        Check("exact for large inputs (|x| up to 1e4): nothing overflows", large_inputs,
              "subtract each row's maximum before np.exp: exp(x - max) <= 1 never overflows, and the ratio is "
              "unchanged"),
        Check("returns x's shape and dtype (float32 stays float32)", keeps_dtype,
              "compute in x's dtype (np.exp and np.max keep float32) and return an array of x's shape"),
    ),
    mistakes=(
        Mistake("no max subtraction: exp(x) overflows to inf for large x",
                "subtract each row's maximum before np.exp: x - x.max(axis=-1, keepdims=True)",
                {"softmax": _no_max}),
        Mistake("the maximum of the whole array subtracted, not each row's",
                "take each row's maximum, x.max(axis=-1, keepdims=True): a row far below the array's maximum "
                "underflows to 0 / 0", {"softmax": _global_max}),
        Mistake("normalised over the first axis instead of the last",
                "reduce over the last axis (axis=-1): each row of the last axis sums to 1", {"softmax": _first_axis}),
        Mistake("divided by the sum of the whole array, not each row's sum",
                "sum each row: e.sum(axis=-1, keepdims=True)", {"softmax": _whole_sum}),
        Mistake("reduced axis dropped (no keepdims): (..., N) - (...) broadcasts against the wrong axis",
                "keep the reduced axis, x.max(axis=-1, keepdims=True), so that it broadcasts row by row",
                {"softmax": _no_keepdims}),
    ),
    probes=tuple(("softmax", lambda f, x=x: f.softmax(x.copy())) for x in _PROBES),
)
