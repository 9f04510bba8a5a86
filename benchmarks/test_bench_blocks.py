"""Building blocks on the CPU: the NumPy reference vs the torch reference vs ``torch.nn.functional``, side by side.

    pytest benchmarks/test_bench_blocks.py              # GPT-2-like small shapes
    pytest benchmarks/test_bench_blocks.py --quick      # tiny shapes, a smoke test

Four operations, each forward and forward+backward, at the shapes of a small GPT-2 (6 heads of 32, 384 wide,
T = 128, batch 4), all float32 on one thread:

- ``attention``: causal scaled dot-product attention, q, k, v (4, 6, 128, 32).
  NumPy ``np_attention.attention_forward``/``attention_backward``; the torch reference
  ``attention.scaled_dot_product_attention`` (materialises the (T, T) weights); ``F.scaled_dot_product_attention``.
- ``layernorm``: x (4, 128, 384) with weight γ and bias β. NumPy ``np_layernorm``; the torch reference ``layernorm.LayerNorm``
  (the formula in torch ops); ``F.layer_norm``.
- ``softmax``: the attention scores (4, 6, 128, 128) over the last axis. NumPy ``np_softmax``; softmax spelled out in
  torch ops (the project's torch path calls ``torch.softmax`` directly, so this stands in for a torch reference);
  ``F.softmax``.
- ``gelu``: the MLP's hidden activations (4, 128, 1536), tanh form. NumPy ``np_gelu``; the torch reference
  ``gelu.gelu``; ``F.gelu(approximate="tanh")``.

Each group (``<op>-forward``, ``<op>-forward-backward``) holds the three implementations, so the table's ratios
column reads "times slower than the fastest". Forward+backward means: the forward pass, then the gradients of every
input (and of γ, β) for a fixed upstream gradient — the NumPy reference's hand-derived backward, or
``torch.autograd.grad`` through the graph. The torch forward-only runs build no graph. Every implementation's
result is checked against ``torch.nn.functional`` once per test, so a benchmark cannot time a wrong answer.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scratchformers.reference import np_attention, np_gelu, np_layernorm, np_softmax
from scratchformers.reference.attention import scaled_dot_product_attention
from scratchformers.reference.gelu import gelu
from scratchformers.reference.layernorm import LayerNorm

QUICK = os.environ.get("SCRATCHFORMERS_BENCH_QUICK") == "1"
if QUICK:
    B, H, T, D, ROUNDS = 1, 2, 16, 8, 3
else:
    B, H, T, D, ROUNDS = 4, 6, 128, 32, 50
C = H * D  # model width: 384 at full size

IMPLS = ["numpy", "torch-reference", "torch-functional"]
OPS = ["attention", "layernorm", "softmax", "gelu"]

pytestmark = pytest.mark.usefixtures("single_thread")


def softmax_spelled_out(x: torch.Tensor) -> torch.Tensor:
    """softmax(x)_i = exp(x_i − max x) / Σ_j exp(x_j − max x) over the last dimension, in plain torch ops."""
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))  # (..., N)
    return e / e.sum(dim=-1, keepdim=True)


def make_inputs(op: str) -> list[np.ndarray]:
    """The float32 inputs of ``op`` (parameters included) and, last, the upstream gradient of its output."""
    rng = np.random.default_rng(0)
    if op == "attention":
        shapes = [(B, H, T, D)] * 4  # q, k, v, dout
    elif op == "layernorm":
        shapes = [(B, T, C), (C,), (C,), (B, T, C)]  # x, γ, β, dy
    elif op == "softmax":
        shapes = [(B, H, T, T)] * 2  # x, dy
    else:
        shapes = [(B, T, 4 * C)] * 2  # x, dy
    return [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]


def numpy_forward(op: str, *xs: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``(out, saved)`` of the NumPy reference: ``saved`` is what its backward takes after the upstream gradient."""
    if op == "attention":
        out, _weights, cache = np_attention.attention_forward(*xs, causal=True)
        return out, (cache,)
    if op == "layernorm":
        x, weight, bias = xs
        y, mean, rstd = np_layernorm.layer_norm_forward(x, weight, bias)
        return y, (x, weight, mean, rstd)
    if op == "softmax":
        y = np_softmax.softmax_forward(*xs)
        return y, (y,)
    out, cache = np_gelu.gelu_forward(*xs, approximate="tanh")
    return out, (cache,)


NUMPY_BACKWARD = {
    "attention": np_attention.attention_backward,
    "layernorm": np_layernorm.layer_norm_backward,
    "softmax": lambda dy, y: (np_softmax.softmax_backward(dy, y),),
    "gelu": lambda dy, cache: (np_gelu.gelu_backward(dy, cache),),
}


def torch_case(op: str, impl: str, arrays: list[np.ndarray], grad: bool) -> tuple[Callable[[], torch.Tensor], list]:
    """The torch implementation ``impl`` of ``op`` on ``arrays``, as ``(run, leaves)``: ``run()`` computes the output
    and ``leaves`` are the tensors (inputs, then parameters) it depends on, tracking gradients when ``grad``."""
    x, *rest = [torch.from_numpy(a).requires_grad_(grad) for a in arrays]
    reference = impl == "torch-reference"
    if op == "attention":
        k, v = rest
        if reference:
            return lambda: scaled_dot_product_attention(x, k, v, causal=True)[0], [x, k, v]
        return lambda: F.scaled_dot_product_attention(x, k, v, is_causal=True), [x, k, v]
    if op == "layernorm":
        if reference:
            ln = LayerNorm(C)
            with torch.no_grad():
                ln.weight.copy_(rest[0])
                ln.bias.copy_(rest[1])
            return lambda: ln(x), [x, ln.weight, ln.bias]
        weight, bias = rest
        return lambda: F.layer_norm(x, (C,), weight, bias), [x, weight, bias]
    if op == "softmax":
        run = (lambda: softmax_spelled_out(x)) if reference else (lambda: F.softmax(x, dim=-1))
    else:
        run = (lambda: gelu(x)) if reference else (lambda: F.gelu(x, approximate="tanh"))
    return run, [x]


def expected(op: str, arrays: list[np.ndarray]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Output and input gradients from ``torch.nn.functional``, the yardstick for every implementation."""
    *xs, dout = arrays
    run, leaves = torch_case(op, "torch-functional", xs, grad=True)
    out = run()
    return out.detach(), torch.autograd.grad(out, leaves, torch.from_numpy(dout))


def check(got: list, want: list) -> None:
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(torch.as_tensor(g), w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", OPS)
def test_forward(benchmark, op: str, impl: str) -> None:
    benchmark.group = f"{op}-forward"
    *xs, _dout = make_inputs(op)
    if impl == "numpy":
        out = benchmark.pedantic(lambda: numpy_forward(op, *xs)[0], rounds=ROUNDS, warmup_rounds=1)
    else:
        run, _leaves = torch_case(op, impl, xs, grad=False)
        with torch.no_grad():
            out = benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    check([out], [expected(op, make_inputs(op))[0]])
    benchmark.extra_info.update(op=op, impl=impl, shape=list(xs[0].shape), dtype="float32", threads=1)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", OPS)
def test_forward_backward(benchmark, op: str, impl: str) -> None:
    benchmark.group = f"{op}-forward-backward"
    *xs, dout = make_inputs(op)
    if impl == "numpy":

        def step() -> tuple[np.ndarray, ...]:
            _out, saved = numpy_forward(op, *xs)
            return NUMPY_BACKWARD[op](dout, *saved)

    else:
        run, leaves = torch_case(op, impl, xs, grad=True)
        upstream = torch.from_numpy(dout)

        def step() -> tuple[torch.Tensor, ...]:
            return torch.autograd.grad(run(), leaves, upstream)

    grads = benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1)
    check(list(grads), list(expected(op, make_inputs(op))[1]))
    benchmark.extra_info.update(op=op, impl=impl, shape=list(xs[0].shape), dtype="float32", threads=1)
