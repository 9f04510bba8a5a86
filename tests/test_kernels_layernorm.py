"""Parity of the Triton LayerNorm kernels with torch's layer_norm (CPU: Triton interpreter).

Tolerances follow tests/test_kernels_attention.py: float32 within 1e-4 absolute of a float64 reference; float16 and
bfloat16 within 2x the error of torch's own layer_norm run in that dtype (against float64), plus one storage quantum
eps(dtype) · max|reference|, plus 1e-5. Measured over 60 random cases before fixing the rule, the kernels' error was
at most 1.0x torch's (median 0.4-1.0x): both compute in float32 and round once. Under the interpreter bf16 runs the
fp32 kernels on upcast inputs (the interpreter gets bf16 arithmetic wrong); the real bf16 kernels are checked on GPU
by test_gpu_parity.py.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scratchformers.exercises.checks.tolerances import FP32_ATOL, half_tolerance
from scratchformers.fast.layernorm import LayerNorm, _forward_op, layer_norm

# CPU tensors into the kernels: the Triton interpreter's tests. Where CUDA is present the kernels are compiled for the
# GPU instead and these skip with their reason (tests/conftest.py); tests/test_gpu_parity.py checks the GPU.
pytestmark = pytest.mark.interpreter


def gradients(fn, inputs, grad_out):
    """[output, *input grads] of fn(*inputs) for upstream gradient grad_out (None inputs get None)."""
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out] + [None if t is None else t.grad for t in leaves]


def torch_layer_norm(x, weight, bias, eps):
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


def torch_in_storage_dtypes(x, weight, bias, grad_out, eps):
    """What torch achieves at these storage dtypes: its own half layer_norm when all dtypes agree; for half x with
    fp32 parameters (which torch's CPU layer_norm rejects), the fp32 computation rounded to each tensor's dtype."""
    if weight.dtype == x.dtype:
        return gradients(lambda *t: torch_layer_norm(*t, eps), (x, weight, bias), grad_out)
    up = [None if t is None else t.float() for t in (x, weight, bias)]
    out = gradients(lambda *t: torch_layer_norm(*t, eps), up, grad_out.float())
    return [None if t is None else t.to(d.dtype) for t, d in zip(out, (x, x, weight, weight))]


def assert_matches_reference(x, weight, bias, grad_out, eps=1e-5):
    fast = gradients(lambda *t: layer_norm(*t, eps), (x, weight, bias), grad_out)
    exact = gradients(lambda *t: torch_layer_norm(*t, eps),
                      [None if t is None else t.double() for t in (x, weight, bias)], grad_out.double())
    half = x.dtype != torch.float32 or weight.dtype != torch.float32
    if half:
        torch_half = torch_in_storage_dtypes(x, weight, bias, grad_out, eps)
    for i, (name, got, want, like) in enumerate(zip(("y", "dx", "dw", "db"), fast, exact, (x, x, weight, bias))):
        if want is None:
            assert got is None
            continue
        assert got.dtype == like.dtype and got.shape == like.shape, name
        tol = half_tolerance(torch_half[i], want) if half else FP32_ATOL
        err = (got.double() - want).abs().max().item()
        assert err <= tol, f"{name}: max abs error {err:.3g} > {tol:.3g} (x {x.dtype}, weight {weight.dtype})"


@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(1, 7), min_size=1, max_size=2), N=st.integers(1, 300),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]), param_fp32=st.booleans(),
       has_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_layer_norm_matches_reference(lead, N, dtype, param_fp32, has_bias, seed):
    gen = torch.Generator().manual_seed(seed)
    param_dtype = torch.float32 if param_fp32 else dtype  # mixed: half activations with fp32 parameters
    x = (torch.randn(*lead, N, generator=gen) * 3 + 1).to(dtype)
    weight = torch.randn(N, generator=gen).to(param_dtype)
    bias = torch.randn(N, generator=gen).to(param_dtype) if has_bias else None
    grad_out = torch.randn(*lead, N, generator=gen).to(dtype)
    assert_matches_reference(x, weight, bias, grad_out)


@pytest.mark.parametrize("M,N", [(3, 8192), (203, 16), (5, 768)])
def test_large_hidden_and_many_rows(M, N):
    """The hidden-size limit, and more row tiles than backward programs (each program reduces several tiles)."""
    gen = torch.Generator().manual_seed(M + N)
    x, grad_out = torch.randn(M, N, generator=gen), torch.randn(M, N, generator=gen)
    assert_matches_reference(x, torch.randn(N, generator=gen), torch.randn(N, generator=gen), grad_out)


def test_non_contiguous_input_and_eps():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=gen).t()  # (6, 40), last dim strided
    assert_matches_reference(x, torch.randn(40, generator=gen), torch.randn(40, generator=gen),
                             torch.randn(6, 40, generator=gen), eps=1e-2)


def test_module_matches_torch_layer_norm_and_shares_state_dict_keys():
    gen = torch.Generator().manual_seed(2)
    torch_ln = torch.nn.LayerNorm(24)
    with torch.no_grad():
        torch_ln.weight.copy_(torch.randn(24, generator=gen))
        torch_ln.bias.copy_(torch.randn(24, generator=gen))
    fast_ln = LayerNorm(24)
    assert (fast_ln.weight == 1).all() and (fast_ln.bias == 0).all()
    fast_ln.load_state_dict(torch_ln.state_dict())  # strict: same keys
    x = torch.randn(2, 5, 24, generator=gen)
    torch.testing.assert_close(fast_ln(x), torch_ln(x), rtol=0, atol=1e-5)
    assert list(LayerNorm(24, bias=False).state_dict()) == ["weight"]


def test_without_bias():
    gen = torch.Generator().manual_seed(3)
    ln = LayerNorm(32, bias=False)
    x = torch.randn(3, 32, generator=gen, requires_grad=True)
    ln(x).square().sum().backward()
    assert ln.bias is None and ln.weight.grad is not None and torch.isfinite(x.grad).all()


def test_torch_compile_and_op_registration():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(4, 10, 48, generator=gen, requires_grad=True)
    ln = LayerNorm(48)

    def loss(x):
        return ln(x).square().sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    got = torch.autograd.grad(compiled(x), (x, ln.weight, ln.bias))
    want = torch.autograd.grad(loss(x), (x, ln.weight, ln.bias))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-6)
    torch.library.opcheck(_forward_op, (x, ln.weight, ln.bias, 1e-5))


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="8192"):
        layer_norm(torch.randn(2, 8193), torch.ones(8193), None)
    with pytest.raises(ValueError, match="shape"):
        layer_norm(torch.randn(2, 8), torch.ones(7), None)
    with pytest.raises(TypeError, match="float32"):
        layer_norm(torch.randn(2, 8).double(), torch.ones(8).double(), None)


# ---------------------------------------------------------------------------------------------------------------------
# Numerics of the statistics, strided parameters, edge shapes
# ---------------------------------------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=4), N=st.integers(1, 1024),
       seed=st.integers(0, 2**16))
@example(rows=[1000.1], N=768, seed=0)
def test_constant_rows_give_exactly_the_bias(rows, N, seed):
    """A constant row has mean = c exactly (the corrected two-pass), so x - mean = 0: y is the bias bit for bit, and
    the row adds exactly 0 to dw (an error in the mean would be amplified by rstd = 1/sqrt(eps) ~ 316). float32 rows:
    half-precision values have so few significant bits that even a one-pass sum of them is exact."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.tensor(rows)[:, None].expand(-1, N).contiguous().requires_grad_()
    weight = torch.randn(N, generator=gen, requires_grad=True)
    bias = torch.randn(N, generator=gen, requires_grad=True)
    y = layer_norm(x, weight, bias)
    assert torch.equal(y, bias.detach().expand_as(y))
    y.backward(torch.randn(y.shape, generator=gen))
    assert torch.equal(weight.grad, torch.zeros(N))
    assert torch.isfinite(x.grad).all()


@settings(max_examples=10, deadline=None)
@given(shift=st.floats(-100, 100), N=st.integers(64, 1024), seed=st.integers(0, 2**16))
def test_rows_far_from_zero_match_float64(shift, N, seed):
    """Rows c + noise with |c| up to 100 (a residual stream drifting from zero): float32 results within FP32_ATOL of
    float64 forward and backward. A one-pass fp32 mean misses by ~N·ulp(c)/2 here."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, N, generator=gen) + shift
    assert_matches_reference(x, torch.randn(N, generator=gen), torch.randn(N, generator=gen),
                             torch.randn(3, N, generator=gen))


def strided_parameter(kind: str, N: int, gen: torch.Generator) -> torch.Tensor:
    """A length-N parameter that is not contiguous (a view of a leaf that requires grad): a column of a matrix,
    every other element, or an expanded scalar."""
    if kind == "column":
        return torch.randn(N, 3, generator=gen).requires_grad_()[:, 1]
    if kind == "every_other":
        return torch.randn(2 * N, generator=gen).requires_grad_()[::2]
    return torch.randn(1, generator=gen).requires_grad_().expand(N)


def output_and_view_grads(x, weight, bias, grad_out) -> list[torch.Tensor]:
    """y and the gradients wrt x, weight, bias themselves (views stay views: no clone, no copy)."""
    inputs = [t for t in (x, weight, bias) if t is not None]
    y = layer_norm(x, weight, bias)
    return [y, *torch.autograd.grad(y, inputs, grad_out)]


@settings(max_examples=20, deadline=None)
@given(N=st.integers(1, 200), w_kind=st.sampled_from(["column", "every_other", "expanded"]),
       b_kind=st.sampled_from(["column", "every_other", "expanded", None]), seed=st.integers(0, 2**16))
def test_strided_weight_and_bias_equal_contiguous_copies(N, w_kind, b_kind, seed):
    gen = torch.Generator().manual_seed(seed)
    x, grad_out = torch.randn(5, N, generator=gen).requires_grad_(), torch.randn(5, N, generator=gen)
    weight = strided_parameter(w_kind, N, gen)
    bias = None if b_kind is None else strided_parameter(b_kind, N, gen)
    assert not weight.is_contiguous() or N == 1
    got = output_and_view_grads(x, weight, bias, grad_out)
    copies = [None if t is None else t.detach().contiguous().requires_grad_() for t in (weight, bias)]
    want = output_and_view_grads(x, *copies, grad_out)
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_empty_last_dim_returns_empty_like_torch():
    x = torch.randn(3, 0, requires_grad=True)
    weight, bias = torch.ones(0, requires_grad=True), torch.zeros(0, requires_grad=True)
    y = layer_norm(x, weight, bias)
    want = F.layer_norm(x, (0,), weight, bias)
    assert y.shape == want.shape == (3, 0) and y.dtype == want.dtype
    y.sum().backward()
    assert x.grad.shape == (3, 0) and weight.grad.shape == bias.grad.shape == (0,)


def test_missing_weight_is_a_clear_error():
    with pytest.raises(TypeError, match="needs weight, a tensor of shape"):
        layer_norm(torch.randn(2, 8), None, None)
