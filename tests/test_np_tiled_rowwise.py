"""The tiled NumPy twins of the row-wise kernels: softmax (reference/np_tiled_softmax.py) and LayerNorm
(reference/np_tiled_layernorm.py).

* float64: tiled NumPy == plain NumPy (reference/np_softmax.py, np_layernorm.py) == torch autograd to 1e-10, for any
  rows per program;
* float32: tiled NumPy == the Triton kernel with the same rows per program (and LayerNorm backward programs), the
  kernel's own choice or its override: bit for bit under the interpreter, within FP32_ATOL on a GPU (tests/twins.py).
"""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.strategies import row_shapes
from scratchformers.exercises.checks.tolerances import FP64_ATOL
from scratchformers.reference import np_tiled_layernorm as tiled_layernorm
from scratchformers.reference import np_tiled_softmax as tiled_softmax
from scratchformers.reference.np_layernorm import layer_norm_backward, layer_norm_forward
from scratchformers.reference.np_softmax import softmax_backward, softmax_forward
from scratchformers.reference.np_tiles import next_power_of_2
from twins import assert_same_as_kernel, assert_twins_in_order

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def assert_close(got: list[np.ndarray], want: list[np.ndarray], names: tuple[str, ...]) -> None:
    for name, g, w in zip(names, got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        err = np.abs(g - w).max(initial=0.0)
        assert err <= FP64_ATOL, f"{name}: max abs error {err:.3g}"


def kernel_rows_per_program(N: int) -> int:
    from scratchformers.kernels.common import rows_per_program

    return rows_per_program(next_power_of_2(N))


def kernel_programs(M: int, block_m: int) -> int:
    """The number of LayerNorm backward programs the kernel's host launches for M rows by default."""
    from scratchformers.kernels.layernorm import _num_partials

    return _num_partials(M, block_m, torch.device(DEVICE))


def interpreted() -> bool:
    from scratchformers.kernels.common import INTERPRET

    return INTERPRET


shapes = row_shapes(lead_dims=3, lead=6, last=70)
rows_per_program = st.sampled_from([None, 1, 2, 4, 8])  # None: the kernel's own choice, which the twin is told


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
    y = oracles.softmax(xt)
    y.backward(torch.tensor(dy))
    return [y.detach().numpy(), xt.grad.numpy()]


@settings(max_examples=25, deadline=None)
@given(shape=shapes, hidden=st.sampled_from([0.0, 0.3, 0.9]), block_m=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_softmax_equals_plain_numpy_and_torch_autograd(shape, hidden, block_m, seed):
    x, dy = softmax_inputs(shape, hidden, seed)
    y = tiled_softmax.softmax_forward(x, block_m=block_m)
    got = [y, tiled_softmax.softmax_backward(dy, y, block_m=block_m)]
    assert_close(got, torch_softmax(x, dy), ("y", "dx"))
    kept = np.isfinite(x)
    plain = softmax_forward(np.where(kept, x, 0.0), kept)
    assert_close(got, [plain, softmax_backward(dy, plain)], ("y", "dx"))


@settings(max_examples=12, deadline=None)
@given(shape=shapes, hidden=st.sampled_from([0.0, 0.3, 0.9]), block_m=rows_per_program, seed=st.integers(0, 2**16))
def test_softmax_equals_the_triton_kernel(shape, hidden, block_m, seed):
    from scratchformers.kernels.softmax import softmax_backward as kernel_backward
    from scratchformers.kernels.softmax import softmax_forward as kernel_forward

    x, dy = softmax_inputs(shape, hidden, seed, np.float32)
    y_kernel = kernel_forward(torch.tensor(x, device=DEVICE), block_m=block_m)
    dx_kernel = kernel_backward(torch.tensor(dy, device=DEVICE), y_kernel, block_m=block_m)
    block_m = block_m or kernel_rows_per_program(shape[-1])
    y = tiled_softmax.softmax_forward(x, block_m=block_m)
    got = [y, tiled_softmax.softmax_backward(dy, y, block_m=block_m)]
    assert_same_as_kernel(got, [y_kernel.cpu().numpy(), dx_kernel.cpu().numpy()], ("y", "dx"), interpreted())


def test_softmax_twins_in_order():
    assert_twins_in_order("softmax.py", "np_tiled_softmax.py")


# ----------------------------------------------------------------------------------------------------------------------
# LayerNorm
# ----------------------------------------------------------------------------------------------------------------------

def layernorm_inputs(shape: tuple[int, ...], offset: float, has_bias: bool, seed: int, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3 + offset
    weight, bias = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    dy = rng.standard_normal(shape)
    return [None if a is None else a.astype(dtype) for a in (x, weight, bias if has_bias else None, dy)]


def torch_layer_norm(x, weight, bias, dy, eps=1e-5) -> list[np.ndarray]:
    """y, dx, dw, db by torch autograd of F.layer_norm (db is None without a bias)."""
    leaves = [None if a is None else torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    y = torch.nn.functional.layer_norm(leaves[0], leaves[0].shape[-1:], leaves[1], leaves[2], eps)
    y.backward(torch.tensor(dy))
    return [y.detach().numpy()] + [None if t is None else t.grad.numpy() for t in leaves]


@settings(max_examples=25, deadline=None)
@given(shape=shapes, offset=st.sampled_from([0.0, 100.0]), has_bias=st.booleans(), block_m=st.integers(1, 9),
       num_programs=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_layernorm_equals_plain_numpy_and_torch_autograd(shape, offset, has_bias, block_m, num_programs, seed):
    x, weight, bias, dy = layernorm_inputs(shape, offset, has_bias, seed)
    y, mean, rstd = tiled_layernorm.layer_norm_forward(x, weight, bias, 1e-5, block_m=block_m)
    dx, dw, db = tiled_layernorm.layer_norm_backward(dy, x, weight, mean, rstd, block_m=block_m,
                                                    num_programs=num_programs)
    names = ("y", "dx", "dw") + (("db",) if has_bias else ())
    want = torch_layer_norm(x, weight, bias, dy)
    assert_close([y, dx, dw, db][:len(names)], want[:len(names)], names)
    plain, plain_mean, plain_rstd = layer_norm_forward(x, weight, bias)
    assert_close([mean, rstd], [plain_mean[..., 0].reshape(-1), plain_rstd[..., 0].reshape(-1)], ("mean", "rstd"))
    plain_dx, plain_dw, plain_db = layer_norm_backward(dy, x, weight, plain_mean, plain_rstd)
    assert_close([y, dx, dw, db][:len(names)], [plain, plain_dx, plain_dw, plain_db][:len(names)], names)


def test_layernorm_of_a_constant_row_is_exactly_the_bias():
    """The correction pass makes the mean of a constant row exact in float32, so x - mean = 0 and y = b exactly."""
    x = np.full((3, 768), 1000.1, dtype=np.float32)
    weight, bias = np.ones(768, np.float32), np.arange(768, dtype=np.float32)
    y, mean, _ = tiled_layernorm.layer_norm_forward(x, weight, bias, 1e-5)
    assert np.array_equal(mean, x[:, 0]) and np.array_equal(y, np.broadcast_to(bias, y.shape))


@settings(max_examples=12, deadline=None)
@given(shape=shapes, offset=st.sampled_from([0.0, 100.0]), has_bias=st.booleans(), block_m=rows_per_program,
       num_programs=st.sampled_from([None, 1, 2, 3, 4]), seed=st.integers(0, 2**16))
def test_layernorm_equals_the_triton_kernel(shape, offset, has_bias, block_m, num_programs, seed):
    """G <= 4 partial rows: the host's final sum over them is torch's, which adds up to 4 rows one after another
    (as NumPy does); from 5 rows on it groups them otherwise and the last bit of dw, db may differ."""
    from scratchformers.kernels.layernorm import layer_norm_backward as kernel_backward
    from scratchformers.kernels.layernorm import layer_norm_forward as kernel_forward

    x, weight, bias, dy = layernorm_inputs(shape, offset, has_bias, seed, np.float32)
    x_, weight_, bias_, dy_ = (None if a is None else torch.tensor(a, device=DEVICE) for a in (x, weight, bias, dy))
    y, mean, rstd = kernel_forward(x_, weight_, bias_, 1e-5, block_m=block_m)
    kernel = [y, mean, rstd, *kernel_backward(dy_, x_, weight_, mean, rstd, block_m=block_m,
                                              num_programs=num_programs)]
    block_m = block_m or kernel_rows_per_program(shape[-1])
    num_programs = num_programs or kernel_programs(x.size // shape[-1], block_m)
    y, mean, rstd = tiled_layernorm.layer_norm_forward(x, weight, bias, 1e-5, block_m=block_m)
    got = [y, mean, rstd, *tiled_layernorm.layer_norm_backward(dy, x, weight, mean, rstd, block_m=block_m,
                                                             num_programs=num_programs)]
    assert_same_as_kernel(got, [t.cpu().numpy() for t in kernel], ("y", "mean", "rstd", "dx", "dw", "db"),
                          interpreted())


def test_layernorm_twins_in_order():
    assert_twins_in_order("layernorm.py", "np_tiled_layernorm.py")


def test_row_tile_twin():
    """The row-wise kernels' shared tile (kernels/common.py) has its twin in reference/np_tiles.py."""
    assert_twins_in_order("common.py", "np_tiles.py")
