"""The checks of the softmax-backward exercise: ``softmax_backward(dy, y)``, by hand, against autograd."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_close, failing_case, for_all
from scratchformers.exercises.checks.strategies import row_shapes, seeds


def expected(x: np.ndarray, dy: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """y = softmax(x) (masked where ``keep`` is False) and dx by autograd, float64."""
    xt = torch.tensor(x, requires_grad=True)
    y = oracles.softmax(xt) if keep is None else oracles.masked_softmax(xt, torch.from_numpy(keep))
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


def run(learner, x, dy, keep=None):
    y, dx = expected(x, dy, keep)
    with failing_case(dy=dy, y=y):
        expect_close("dx", learner.softmax_backward(dy.copy(), y.copy()), dx)


@for_all(shape=row_shapes(), spread=st.sampled_from([0.3, 3.0]), seed=seeds)
def random_inputs(learner, shape, spread, seed):
    rng = np.random.default_rng(seed)
    run(learner, rng.normal(size=shape) * spread, rng.normal(size=shape))


@for_all(shape=row_shapes(lead_dims=2).filter(lambda s: len(s) > 1), seed=seeds)
def masked_entries(learner, shape, seed):
    rng = np.random.default_rng(seed)
    keep = rng.random(shape) < 0.6
    keep[(0,) * (len(shape) - 1)] = False  # one fully masked row
    run(learner, rng.normal(size=shape), rng.normal(size=shape), keep)


def _backward(dy, y, diagonal=False, weighted=True, sign=1.0, axis=-1):
    if diagonal:
        return dy * y * (1.0 - y)
    total = np.sum(y * dy if weighted else dy, axis=axis, keepdims=axis is not None)
    return sign * y * (dy - total)


def _variant(**wrong):
    return {"softmax_backward": lambda dy, y: _backward(dy, y, **wrong)}


def _y(shape, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    return np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)


_PROBES = ((np.random.default_rng(1).normal(size=(3, 4)), _y((3, 4), 2)),
           (np.random.default_rng(3).normal(size=(2, 2, 5)), _y((2, 2, 5), 4)))

EXERCISE = Exercise(
    name="softmax_backward",
    summary="softmax_backward(dy, y): the gradient of softmax by hand, dx = y * (dy - sum(y * dy))",
    signatures=("softmax_backward(dy, y)",),
    checks=(
        Check("matches autograd of softmax on random shapes (float64, to 1e-10)", random_inputs,
              "dx = y * (dy - sum(y * dy)), the sum over the last axis (keepdims=True): the Jacobian "
              "dy_i/dx_j = y_i (delta_ij - y_j) applied to dy"),
        Check("masked entries (y = 0) and fully masked rows get a zero gradient", masked_entries,
              "with dx = y * (dy - sum(y * dy)), entries where y = 0 get 0 by themselves: no special case needed"),
    ),
    mistakes=(
        Mistake("only the diagonal of the Jacobian: dx = dy * y * (1 - y)",
                "every output depends on every input: dx_i = y_i (dy_i - sum_j y_j dy_j)", _variant(diagonal=True)),
        Mistake("y missing inside the sum: dx = y * (dy - sum(dy))",
                "the sum is weighted by y: sum(y * dy, axis=-1, keepdims=True)", _variant(weighted=False)),
        Mistake("the sign flipped: dx = y * (sum(y * dy) - dy)", "dx = y * (dy - sum(y * dy))",
                _variant(sign=-1.0)),
        Mistake("the sum taken over the whole array, not each row",
                "sum over the last axis only: np.sum(y * dy, axis=-1, keepdims=True)", _variant(axis=None)),
        Mistake("the arguments swapped: softmax_backward(y, dy)",
                "the gradient comes first: softmax_backward(dy, y), the forward's output y second",
                {"softmax_backward": lambda dy, y: _backward(y, dy)}),
    ),
    probes=tuple(("softmax_backward", lambda f, p=p: f.softmax_backward(p[0].copy(), p[1].copy())) for p in _PROBES),
)
