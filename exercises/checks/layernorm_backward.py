"""The checks of the LayerNorm-backward exercise: ``layer_norm_backward(dy, x, gamma, mean, rstd)`` against
autograd of ``F.layer_norm``."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from scratchformers.exercises.checks.core import (Check, Exercise, Failure, Mistake, as_array, expect_close,
                                                 failing_case, for_all)
from scratchformers.exercises.checks.strategies import row_shapes, seeds


def statistics(x: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """mean and rstd = 1 / sqrt(var + eps) of each row, (..., 1): what the forward hands to the backward."""
    mean = x.mean(-1, keepdims=True)
    return mean, 1.0 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)


def expected(dy, x, gamma, beta) -> list[np.ndarray]:
    """dx, dgamma, dbeta by autograd of F.layer_norm, float64."""
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    F.layer_norm(leaves[0], leaves[0].shape[-1:], leaves[1], leaves[2], 1e-5).backward(torch.tensor(dy))
    return [t.grad.numpy() for t in leaves]


def run(learner, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * rng.uniform(0.1, 5) + rng.normal()
    gamma, beta, dy = rng.normal(size=shape[-1]), rng.normal(size=shape[-1]), rng.normal(size=shape)
    mean, rstd = statistics(x)
    with failing_case(dy=dy, x=x, gamma=gamma, mean=mean, rstd=rstd):
        got = learner.layer_norm_backward(dy.copy(), x.copy(), gamma.copy(), mean.copy(), rstd.copy())
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise Failure(f"layer_norm_backward should return (dx, dgamma, dbeta); got {type(got).__name__}"
                          + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""))
        for name, g, w in zip(("dx", "dgamma", "dbeta"), got, expected(dy, x, gamma, beta)):
            expect_close(name, as_array(g), w)


@for_all(rows=row_shapes(lead_dims=1, lead=5, last=16).filter(lambda s: len(s) == 2), seed=seeds)
def matrices(learner, rows, seed):
    run(learner, rows, seed)


@for_all(shape=row_shapes(lead_dims=3, lead=3, last=8).filter(lambda s: len(s) >= 3), seed=seeds)
def more_axes(learner, shape, seed):
    run(learner, shape, seed)


def _backward(dy, x, gamma, mean, rstd, mean_term=True, x_hat_term=True, with_gamma=True, swap=False,
              first_axis=False, divide=False):
    x_hat = (x - mean) * rstd
    axes = 0 if first_axis else tuple(range(dy.ndim - 1))
    dgamma, dbeta = np.sum(dy * x_hat, axis=axes), np.sum(dy, axis=axes)
    g = dy * gamma if with_gamma else dy
    inner = g - (g.mean(-1, keepdims=True) if mean_term else 0.0)
    inner = inner - (x_hat * (g * x_hat).mean(-1, keepdims=True) if x_hat_term else 0.0)
    dx = inner / rstd if divide else inner * rstd
    return (dx, dbeta, dgamma) if swap else (dx, dgamma, dbeta)


def _variant(**wrong):
    return {"layer_norm_backward": lambda dy, x, gamma, mean, rstd: _backward(dy, x, gamma, mean, rstd, **wrong)}


def _probe(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 2 + 1
    return (rng.normal(size=shape), x, rng.normal(size=shape[-1]), *statistics(x))


_PROBES = (_probe((4, 6), 1), _probe((2, 3, 5), 2))

EXERCISE = Exercise(
    name="layernorm_backward",
    summary="layer_norm_backward(dy, x, gamma, mean, rstd): dx, dgamma, dbeta of LayerNorm by hand",
    signatures=("layer_norm_backward(dy, x, gamma, mean, rstd)",),
    checks=(
        Check("matches autograd of F.layer_norm on (rows, features) inputs (float64, to 1e-10)", matrices,
              "with x_hat = (x - mean) * rstd and g = dy * gamma: dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)) "
              "(means over the last axis), dgamma = sum(dy * x_hat), dbeta = sum(dy)"),
        Check("3-D and 4-D inputs: dgamma and dbeta sum over every leading axis", more_axes,
              "dgamma and dbeta have shape (C,): sum over all axes but the last, axis=tuple(range(dy.ndim - 1))"),
    ),
    mistakes=(
        Mistake("dx without the -mean(g) term",
                "the mean of x depends on every x_j: subtract mean(g) (over the last axis) inside the bracket",
                _variant(mean_term=False)),
        Mistake("dx without the -x_hat * mean(g * x_hat) term",
                "the variance depends on every x_j too: subtract x_hat * mean(g * x_hat) inside the bracket",
                _variant(x_hat_term=False)),
        Mistake("g = dy: gamma missing from dx", "the gradient reaching x_hat is g = dy * gamma",
                _variant(with_gamma=False)),
        Mistake("dgamma and dbeta swapped", "dgamma = sum(dy * x_hat) and dbeta = sum(dy); return (dx, dgamma, dbeta)",
                _variant(swap=True)),
        Mistake("dgamma and dbeta summed over the first axis only",
                "sum over every axis but the last: axis=tuple(range(dy.ndim - 1))", _variant(first_axis=True)),
        Mistake("rstd used as the standard deviation (divided by it)",
                "rstd is 1 / sqrt(var + eps): multiply by it", _variant(divide=True)),
    ),
    probes=tuple(("layer_norm_backward", lambda f, p=p: tuple(f.layer_norm_backward(*(a.copy() for a in p))))
                 for p in _PROBES),
)
