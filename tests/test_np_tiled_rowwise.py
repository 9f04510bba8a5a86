"""The tiled NumPy twins of the row-wise kernels: softmax (reference/np_tiled_softmax.py) and LayerNorm
(reference/np_tiled_layernorm.py).

* float64: tiled NumPy == plain NumPy (reference/np_softmax.py, np_layernorm.py) == torch autograd to 1e-10, for any
  rows per program;
* float32: tiled NumPy == the Triton kernel at the kernel's own rows per program: bit for bit under the interpreter,
  within FP32_ATOL on a GPU (see tests/twins.py).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.reference import np_tiled_softmax as tiled_softmax
from scratchformers.reference.np_softmax import softmax_backward, softmax_forward
from scratchformers.reference.np_tiles import next_power_of_2
from twins import assert_same_as_kernel, assert_twins_in_order

TEXTBOOK_ATOL = 1e-10
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def assert_close(got: list[np.ndarray], want: list[np.ndarray], names: tuple[str, ...]) -> None:
    for name, g, w in zip(names, got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        err = np.abs(g - w).max(initial=0.0)
        assert err <= TEXTBOOK_ATOL, f"{name}: max abs error {err:.3g}"


def kernel_rows_per_program(N: int) -> int:
    from scratchformers.kernels.rowwise import rows_per_program

    return rows_per_program(next_power_of_2(N))


def interpreted() -> bool:
    from scratchformers.kernels.rowwise import INTERPRET

    return INTERPRET


shapes = st.lists(st.integers(1, 6), min_size=1, max_size=3).flatmap(
    lambda lead: st.integers(1, 70).map(lambda n: (*lead, n)))


# ----------------------------------------------------------------------------------------------------------------------
# Softmax
# ----------------------------------------------------------------------------------------------------------------------

def softmax_inputs(shape: tuple[int, ...], hidden: float, seed: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Scores with a fraction ``hidden`` of -inf entries (masked keys; sometimes whole rows), and a gradient."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 4
    x[rng.random(shape) < hidden] = -np.inf
    return x.astype(dtype), rng.standard_normal(shape).astype(dtype)


def torch_softmax(x: np.ndarray, dy: np.ndarray) -> list[np.ndarray]:
    """y and dx by torch autograd; rows that are all -inf give 0 (the kernel's convention), not NaN."""
    xt = torch.tensor(x, requires_grad=True)
    empty = (xt == -torch.inf).all(-1, keepdim=True)
    y = torch.softmax(xt.masked_fill(empty, 0.0), dim=-1).masked_fill(empty, 0.0)
    y.backward(torch.tensor(dy))
    return [y.detach().numpy(), xt.grad.numpy()]


@settings(max_examples=25, deadline=None)
@given(shape=shapes, hidden=st.sampled_from([0.0, 0.3, 0.9]), block_m=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_softmax_equals_plain_numpy_and_torch_autograd(shape, hidden, block_m, seed):
    x, dy = softmax_inputs(shape, hidden, seed)
    y = tiled_softmax.softmax_forward(x, block_m=block_m)
    got = [y, tiled_softmax.softmax_backward(y, dy, block_m=block_m)]
    assert_close(got, torch_softmax(x, dy), ("y", "dx"))
    kept = np.isfinite(x)
    plain, cache = softmax_forward(np.where(kept, x, 0.0), kept)
    assert_close(got, [plain, softmax_backward(dy, cache)], ("y", "dx"))


@settings(max_examples=12, deadline=None)
@given(shape=shapes, hidden=st.sampled_from([0.0, 0.3, 0.9]), seed=st.integers(0, 2**16))
def test_softmax_equals_the_triton_kernel(shape, hidden, seed):
    from scratchformers.kernels.softmax import softmax_backward as kernel_backward
    from scratchformers.kernels.softmax import softmax_forward as kernel_forward

    x, dy = softmax_inputs(shape, hidden, seed, np.float32)
    block_m = kernel_rows_per_program(shape[-1])
    y = tiled_softmax.softmax_forward(x, block_m=block_m)
    got = [y, tiled_softmax.softmax_backward(y, dy, block_m=block_m)]
    y_kernel = kernel_forward(torch.tensor(x, device=DEVICE))
    dx_kernel = kernel_backward(y_kernel, torch.tensor(dy, device=DEVICE))
    assert_same_as_kernel(got, [y_kernel.cpu().numpy(), dx_kernel.cpu().numpy()], ("y", "dx"), interpreted())


def test_softmax_twins_in_order():
    assert_twins_in_order("softmax.py", "np_tiled_softmax.py")
