"""The checks of the GELU exercise: GPT-2's tanh-form GELU and its hand-derived derivative."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_close, failing_case, for_all
from scratchformers.exercises.checks.strategies import row_shapes, seeds

_C = math.sqrt(2.0 / math.pi)


def expected(x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F.gelu (tanh form) and its gradient by autograd, float64."""
    xt = torch.tensor(x, requires_grad=True)
    y = F.gelu(xt, approximate="tanh")
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


@for_all(shape=row_shapes(lead_dims=2, lead=5, last=6), seed=seeds)
def forward(learner, shape, seed):
    x = np.random.default_rng(seed).normal(size=shape) * 4
    with failing_case(x=x):
        expect_close("y", learner.gelu(x.copy()), expected(x, x)[0])


@for_all(side=st.sampled_from([-1.0, 1.0]), seed=seeds)
def large_inputs(learner, side, seed):
    x = side * np.random.default_rng(seed).uniform(5, 50, size=6)
    with failing_case(x=x):
        expect_close("y", learner.gelu(x.copy()), expected(x, x)[0])


@for_all(shape=row_shapes(lead_dims=2, lead=5, last=6), seed=seeds)
def backward(learner, shape, seed):
    rng = np.random.default_rng(seed)
    x, dy = rng.normal(size=shape) * 4, rng.normal(size=shape)
    with failing_case(dy=dy, x=x):
        expect_close("dx", learner.gelu_backward(dy.copy(), x.copy()), expected(x, dy)[1])


def _gelu(x, cube=3, c=_C):
    return 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x**cube)))


def _erf_gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _backward(dy, x, product_rule=True, three=3.0, sech2=True):
    t = np.tanh(_C * (x + 0.044715 * x**3))
    slope = 0.5 * (1.0 + t)
    if product_rule:
        slope = slope + 0.5 * x * ((1.0 - t**2) if sech2 else (1.0 - t)) * _C * (1.0 + three * 0.044715 * x**2)
    return dy * slope


_X = np.linspace(-4.0, 4.0, 9)
_DY = np.cos(np.arange(9.0))

EXERCISE = Exercise(
    name="gelu",
    summary="gelu(x) in GPT-2's tanh form, and gelu_backward(dy, x) by hand",
    signatures=("gelu(x)", "gelu_backward(dy, x)"),
    checks=(
        Check("gelu matches F.gelu(x, approximate='tanh') on random shapes (float64, to 1e-10)", forward,
              "GELU(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), elementwise"),
        Check("gelu of large |x| (5 to 50): x on the right, 0 on the left, no NaN", large_inputs,
              "np.tanh saturates cleanly to +-1; avoid formulas that divide by exp(x) or cosh(x)"),
        Check("gelu_backward(dy, x) matches autograd on random shapes", backward,
              "dx = dy * GELU'(x), GELU'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) with "
              "t = tanh(sqrt(2/pi) (x + 0.044715 x^3))"),
    ),
    mistakes=(
        Mistake("x^2 instead of x^3 inside the tanh", "the inner term is x + 0.044715 x^3 (a cube)",
                {"gelu": lambda x: _gelu(x, cube=2)}),
        Mistake("the exact erf GELU, not GPT-2's tanh approximation",
                "GPT-2 was trained with the tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
                {"gelu": _erf_gelu}),
        Mistake("2/pi instead of sqrt(2/pi)", "the factor inside the tanh is sqrt(2 / pi) ~ 0.7979",
                {"gelu": lambda x: _gelu(x, c=2.0 / math.pi)}),
        Mistake("the derivative of x * (...) without the product rule: only 0.5 (1 + t)",
                "GELU = 0.5 x (1 + t) is a product: add 0.5 x (1 - t^2) du/dx, the derivative of the tanh term",
                {"gelu_backward": lambda dy, x: _backward(dy, x, product_rule=False)}),
        Mistake("du/dx without the 3 from differentiating x^3",
                "u = sqrt(2/pi) (x + 0.044715 x^3) gives du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)",
                {"gelu_backward": lambda dy, x: _backward(dy, x, three=1.0)}),
        Mistake("tanh' taken as 1 - t instead of 1 - t^2", "d/du tanh(u) = 1 - tanh(u)^2",
                {"gelu_backward": lambda dy, x: _backward(dy, x, sech2=False)}),
    ),
    probes=(("gelu", lambda f: f.gelu(_X.copy())), ("gelu_backward", lambda f: f.gelu_backward(_DY.copy(), _X.copy()))),
)
