"""Parity of the fused Triton row softmax (forward and backward) with torch (CPU: Triton interpreter).

Tolerances follow tests/test_kernels_attention.py: float32 within 1e-4 absolute of a float64 reference (values are
probabilities, so this is tight); float16 / bfloat16 within 2x the error of torch's own softmax in that dtype, plus
one storage quantum eps(dtype) · max|reference|, plus 1e-5 (measured over 60 random cases: at most 1.0x torch's).
Rows that are entirely -inf give 0 (torch gives NaN), the convention masked attention needs.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.exercises.checks.oracles import softmax as reference_softmax
from scratchformers.exercises.checks.tolerances import FP32_ATOL, half_tolerance
from scratchformers.fast.softmax import _forward_op, softmax

# CPU tensors into the kernels: the Triton interpreter's tests. Where CUDA is present the kernels are compiled for the
# GPU instead and these skip with their reason (tests/conftest.py); tests/test_gpu_parity.py checks the GPU.
pytestmark = pytest.mark.interpreter


def output_and_grad(fn, x, grad_out):
    x = x.detach().clone().requires_grad_()
    y = fn(x)
    y.backward(grad_out)
    return y, x.grad


@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(1, 6), min_size=1, max_size=3), N=st.integers(1, 200),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]), masked=st.floats(0.0, 0.9),
       seed=st.integers(0, 2**16))
def test_softmax_matches_reference(lead, N, dtype, masked, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, N, generator=gen) * 4
    hide = torch.rand(*lead, N, generator=gen) < masked  # -inf entries, sometimes whole rows
    x = x.masked_fill(hide, float("-inf")).to(dtype)
    grad_out = torch.randn(*lead, N, generator=gen).to(dtype)
    got = output_and_grad(softmax, x, grad_out)
    exact = output_and_grad(reference_softmax, x.double(), grad_out.double())
    if dtype == torch.float32:
        tols = [FP32_ATOL, FP32_ATOL]
    else:
        torch_half = output_and_grad(reference_softmax, x, grad_out)
        tols = [half_tolerance(h, e) for h, e in zip(torch_half, exact)]
    for name, g, e, tol in zip(("y", "dx"), got, exact, tols):
        assert g.dtype == dtype and torch.isfinite(g).all()
        err = (g.double() - e).abs().max().item()
        assert err <= tol, f"{name}: max abs error {err:.3g} > {tol:.3g} ({dtype})"


@pytest.mark.parametrize("N", [1, 1000, 32768])
def test_row_lengths(N):
    gen = torch.Generator().manual_seed(N)
    x, grad_out = torch.randn(3, N, generator=gen), torch.randn(3, N, generator=gen)
    for got, want in zip(output_and_grad(softmax, x, grad_out), output_and_grad(reference_softmax, x, grad_out)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_non_contiguous_input():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(30, 7, generator=gen).t()  # (7, 30), last dim strided
    grad_out = torch.randn(7, 30, generator=gen)
    for got, want in zip(output_and_grad(softmax, x, grad_out), output_and_grad(reference_softmax, x, grad_out)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_torch_compile_and_op_registration():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 20, generator=gen, requires_grad=True)
    w = torch.randn(5, 20, generator=gen)

    def loss(x):
        return (softmax(x) * w).sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(torch.autograd.grad(compiled(x), x)[0], torch.autograd.grad(loss(x), x)[0],
                               rtol=0, atol=1e-7)
    torch.library.opcheck(_forward_op, (x,))


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="32768"):
        softmax(torch.randn(1, 32769))
    with pytest.raises(TypeError, match="float32"):
        softmax(torch.randn(3).double())


def test_empty_last_dim_returns_empty_like_torch():
    x = torch.randn(2, 3, 0, requires_grad=True)
    y = softmax(x)
    assert y.shape == torch.softmax(x, -1).shape == (2, 3, 0)
    y.sum().backward()
    assert x.grad.shape == (2, 3, 0)
