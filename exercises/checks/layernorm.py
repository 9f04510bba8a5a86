"""The checks of the LayerNorm exercise: ``layer_norm(x, gamma, beta, eps=1e-5)`` as ``F.layer_norm`` computes it."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_close, failing_case, for_all
from scratchformers.exercises.checks.strategies import row_shapes, seeds


def expected(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    t = [torch.from_numpy(a) for a in (x, gamma, beta)]
    return F.layer_norm(t[0], t[0].shape[-1:], t[1], t[2], eps).numpy()


def inputs(shape: tuple[int, ...], seed: int, spread: float = 1.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * spread * rng.uniform(0.1, 10) + rng.normal() * 5
    return x, rng.normal(size=shape[-1]), rng.normal(size=shape[-1])


def run(learner, x, gamma, beta, dtype=None, atol=1e-10, **eps):
    with failing_case(x=x, gamma=gamma, beta=beta, **eps):
        got = learner.layer_norm(x.copy(), gamma.copy(), beta.copy(), **eps)
        want = expected(*(a.astype(np.float64) for a in (x, gamma, beta)), **eps)
        expect_close("y", got, want, atol=atol, dtype=dtype)


@for_all(shape=row_shapes(lead_dims=2, lead=4, last=16), seed=seeds)
def random_inputs(learner, shape, seed):
    run(learner, *inputs(shape, seed))


@for_all(shape=row_shapes(lead_dims=1, lead=4, last=16).filter(lambda s: s[-1] > 1), seed=seeds)
def small_variance(learner, shape, seed):
    x, gamma, beta = inputs(shape, seed)
    run(learner, 3.0 + (x - x.mean()) / (x.std() + 1e-12) * 3e-3, gamma, beta)  # variance ~ 1e-5, like eps


@for_all(eps=st.sampled_from([0.1, 1.0]), seed=seeds)
def given_eps(learner, eps, seed):
    x, gamma, beta = inputs((3, 6), seed, spread=0.1)
    run(learner, x, gamma, beta, eps=eps)


def keeps_dtype(learner):
    x, gamma, beta = (a.astype(np.float32) for a in inputs((4, 8), 0))
    run(learner, x, gamma, beta, dtype=np.float32, atol=1e-4)


def _layer_norm(x, gamma, beta, eps=1e-5, ddof=0, eps_outside=False, shift=True, axis=-1, fixed_eps=False):
    eps = 1e-5 if fixed_eps else eps
    mean = x.mean(axis, keepdims=True)
    var = x.var(axis, keepdims=True, ddof=ddof)
    x_hat = (x - mean) / (np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps))
    return gamma * x_hat + beta if shift else gamma * x_hat


def _variant(**wrong):
    return {"layer_norm": lambda x, gamma, beta, eps=1e-5: _layer_norm(x, gamma, beta, eps, **wrong)}


_rng = np.random.default_rng(7)
_PROBES = ((_rng.normal(size=(3, 5)) * 2 + 1, _rng.normal(size=5), _rng.normal(size=5), {}),
           (2.0 + _rng.normal(size=(4, 4)) * 1e-3, _rng.normal(size=4), _rng.normal(size=4), {}),
           (_rng.normal(size=(3, 6)) * 0.1, _rng.normal(size=6), _rng.normal(size=6), {"eps": 0.5}),
           (_rng.normal(size=(2, 3, 4)), _rng.normal(size=4), _rng.normal(size=4), {}))

EXERCISE = Exercise(
    name="layernorm",
    summary="layer_norm(x, gamma, beta, eps=1e-5) over the last axis: biased variance, eps inside the root",
    signatures=("layer_norm(x, gamma, beta, eps=1e-5)",),
    checks=(
        Check("matches F.layer_norm on random shapes, scales and offsets (float64, to 1e-10)", random_inputs,
              "normalise each row over the last axis: (x - mean) / sqrt(var + eps), then * gamma + beta"),
        Check("rows whose variance is near eps: eps inside the square root", small_variance,
              "divide by sqrt(var + eps), with the biased variance (mean of (x - mean)^2)"),
        Check("the eps it is given (0.1, 1.0), not always 1e-5", given_eps, "use the eps argument"),
        Check("returns x's shape and dtype (float32 stays float32)", keeps_dtype,
              "compute in x's dtype and return an array of x's shape"),
    ),
    mistakes=(
        Mistake("the unbiased variance (divided by C - 1, as np.var(ddof=1) or torch.var by default)",
                "LayerNorm uses the biased variance: the mean of (x - mean)^2 over the C features (np.var's default "
                "ddof=0)", _variant(ddof=1)),
        Mistake("eps outside the square root: (x - mean) / (sqrt(var) + eps)",
                "put eps inside the root: (x - mean) / sqrt(var + eps)", _variant(eps_outside=True)),
        Mistake("beta forgotten", "add the shift: y = gamma * x_hat + beta", _variant(shift=False)),
        Mistake("normalised over the first axis instead of the last",
                "each vector of C features (the last axis) is normalised on its own: mean and var over axis=-1, "
                "keepdims=True", _variant(axis=0)),
        Mistake("the eps argument ignored", "use the eps the caller gives, not a fixed 1e-5", _variant(fixed_eps=True)),
    ),
    probes=tuple(("layer_norm", lambda f, p=p: f.layer_norm(p[0].copy(), p[1], p[2], **p[3])) for p in _PROBES),
)
