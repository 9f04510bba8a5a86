"""GPU parity of the compiled Triton kernels at GPT-2 shapes (B up to 12, H 12, T 1024, D 64), mostly bfloat16.

Skipped without CUDA. The CPU suite (test_kernels_*.py) checks the same properties on small shapes in the Triton
interpreter, which cannot run the real bf16 tensor-core path; these tests do. Tolerances follow the CPU suite: the
kernel's max abs error against a float64 reference must be at most 2x the error of the same plain-torch computation
run in the half dtype, plus one storage quantum eps(dtype) · max|reference|, plus 1e-5 (float32 attention: 1e-4
absolute, its dots use exact fp32, not TF32; float32 LayerNorm at 12·1024 rows: the half-dtype rule with torch's own
float32 error, as its weight gradients sum 12,288 rows).

The bf16 versions at GPT-2 shapes of the kernel fixes of issue 18 (items 1-3) are here too: q, k, v as the strided
views that ``c_attn(x).split(C)`` makes, and views whose row offsets pass 2³¹ elements (int64 offsets), must give the
same bits as contiguous copies; LayerNorm must honour non-contiguous and expanded weight and bias, and normalise a
constant row to exactly its bias. ``benchmarks/gpu/check.py`` runs this file as its first section, each test in its
own process beside the others; a test that may hold more GPU memory than benchmarks/gpu/parity.py's default (2 GiB)
declares its peak, CUDA context included, as ``@pytest.mark.gpu(gib=...)``.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scratchformers.exercises.checks.oracles import reference_attention
from scratchformers.exercises.checks.tolerances import FP32_ATOL, FLOOR, half_tolerance
from scratchformers.fast.attention import flash_attention
from scratchformers.fast.layernorm import LayerNorm, layer_norm
from scratchformers.fast.softmax import softmax

pytestmark = pytest.mark.gpu


def with_grads(fn, inputs, grad_out):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out] + [t.grad for t in leaves]


def assert_close(name_list, fast, exact, half_ref, dtype):
    """``half_ref``: the plain-torch results in ``dtype`` (None: float32 against FP32_ATOL)."""
    for i, (name, got, want) in enumerate(zip(name_list, fast, exact)):
        tol = FP32_ATOL + FLOOR if half_ref is None else half_tolerance(half_ref[i], want)
        err = (got.double() - want).abs().max().item()
        assert torch.isfinite(got).all(), name
        assert err <= tol, f"{name}: max abs error {err:.3g} > {tol:.3g} ({dtype})"


def check_attention(B, H, Tq, Tk, D, dtype, causal, lengths=None, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=gen, device="cuda").to(dtype) for T in (Tq, Tk, Tk))
    go = torch.randn(B, H, Tq, D, generator=gen, device="cuda").to(dtype)
    mask = None
    if lengths is not None:
        mask = (torch.arange(Tk, device="cuda")[None, :] < torch.tensor(lengths, device="cuda")[:, None]).long()
    scale = D**-0.5
    fast = with_grads(lambda q, k, v: flash_attention(q, k, v, causal=causal, attention_mask=mask), (q, k, v), go)
    visible = None if mask is None else mask.bool()

    def ref(q, k, v):
        return reference_attention(q, k, v, causal, visible, scale)

    exact = with_grads(ref, [t.double() for t in (q, k, v)], go.double())
    half = None if dtype == torch.float32 else with_grads(ref, (q, k, v), go)  # float32: FP32_ATOL
    assert_close(("out", "dq", "dk", "dv"), fast, exact, half, dtype)


@pytest.mark.gpu(gib=10)  # the float64 reference: several (12, 12, 1024, 1024) tensors of 1.2 GB
@pytest.mark.parametrize("causal", [True, False])
def test_attention_gpt2_shape_bf16(causal):
    check_attention(12, 12, 1024, 1024, 64, torch.bfloat16, causal)


@pytest.mark.gpu(gib=10)
def test_attention_padding_bf16():
    check_attention(12, 12, 1024, 1024, 64, torch.bfloat16, True, lengths=[1024, 1000, 513, 0] * 3)


def test_attention_kv_cache_decoding_bf16():
    check_attention(12, 12, 1, 1024, 64, torch.bfloat16, True, lengths=[1024, 700, 1, 0] * 3)


@pytest.mark.gpu(gib=3)  # the same at batch 2
@pytest.mark.parametrize("dtype,D,T", [(torch.float16, 64, 1024), (torch.float32, 64, 1000), (torch.bfloat16, 128, 777),
                                       (torch.bfloat16, 80, 1024), (torch.float16, 16, 300)])
def test_attention_dtypes_and_head_dims(dtype, D, T):
    check_attention(2, 12, T, T, D, dtype, True, lengths=[T, T // 3])


def test_attention_dropout_rate_and_reproducibility():
    """V = identity (D = Tk) makes the output the dropped, rescaled probability matrix itself."""
    gen = torch.Generator(device="cuda").manual_seed(1)
    q, k = (torch.randn(4, 12, 128, 128, generator=gen, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    eye = torch.eye(128, device="cuda", dtype=torch.bfloat16).expand(4, 12, 128, 128).contiguous()
    torch.manual_seed(3)
    a = flash_attention(q, k, eye, causal=True, dropout_p=0.1)
    torch.manual_seed(3)
    b = flash_attention(q, k, eye, causal=True, dropout_p=0.1)
    assert torch.equal(a, b)
    visible = torch.tril(torch.ones(128, 128, dtype=torch.bool, device="cuda")).expand_as(a)
    keep_rate = ((a != 0) & visible).sum().item() / visible.sum().item()
    assert abs(keep_rate - 0.9) < 0.01, keep_rate  # ~400k draws
    assert not ((a != 0) & ~visible).any()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_layernorm_gpt2_shape(dtype):
    gen = torch.Generator(device="cuda").manual_seed(2)
    x = torch.randn(12, 1024, 768, generator=gen, device="cuda").to(dtype)
    w, b = (torch.randn(768, generator=gen, device="cuda").to(dtype) for _ in range(2))
    go = torch.randn(12, 1024, 768, generator=gen, device="cuda").to(dtype)
    fast = with_grads(layer_norm, (x, w, b), go)
    exact = with_grads(lambda x, w, b: F.layer_norm(x, (768,), w, b), [t.double() for t in (x, w, b)], go.double())
    same_dtype = with_grads(lambda x, w, b: F.layer_norm(x, (768,), w, b), (x, w, b), go)
    assert_close(("y", "dx", "dw", "db"), fast, exact, same_dtype, dtype)


def test_layernorm_module_with_fp32_parameters_on_bf16_activations():
    gen = torch.Generator(device="cuda").manual_seed(3)
    ln = LayerNorm(768).cuda()
    x = torch.randn(4, 1024, 768, generator=gen, device="cuda").to(torch.bfloat16).requires_grad_()
    y = ln(x)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert ln.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.bfloat16
    want = F.layer_norm(x.detach().float(), (768,), ln.weight.detach(), ln.bias.detach())
    torch.testing.assert_close(y.float(), want, rtol=0, atol=2 * 2**-8 * want.abs().max().item())


@pytest.mark.gpu(gib=10)  # 144 x 1024 x 1024 rows: 1.2 GB per float64 tensor
def test_softmax_attention_rows_bf16():
    gen = torch.Generator(device="cuda").manual_seed(4)
    x = (torch.randn(12 * 12, 1024, 1024, generator=gen, device="cuda") * 3).to(torch.bfloat16)
    go = torch.randn(x.shape, generator=gen, device="cuda").to(torch.bfloat16)
    fast = with_grads(softmax, (x,), go)
    exact = with_grads(lambda x: torch.softmax(x, -1), (x.double(),), go.double())
    half = with_grads(lambda x: torch.softmax(x, -1), (x,), go)
    assert_close(("y", "dx"), fast, exact, half, torch.bfloat16)


def test_inductor_compiles_around_the_custom_ops():
    """A block-shaped function under the default (inductor) backend: same loss and gradients as eager."""
    gen = torch.Generator(device="cuda").manual_seed(5)
    ln = LayerNorm(768).cuda()
    x = torch.randn(2, 256, 768, generator=gen, device="cuda", requires_grad=True)

    def block(x):
        h = ln(x)
        q, k, v = (h.view(2, 256, 12, 64).transpose(1, 2) for _ in range(3))
        return flash_attention(q, k, v, causal=True).square().mean()

    compiled = torch.compile(block, fullgraph=True)
    got = torch.autograd.grad(compiled(x), (x, ln.weight, ln.bias))
    want = torch.autograd.grad(block(x), (x, ln.weight, ln.bias))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------- issue 18, kernels items 1-3, bf16 at GPT-2 shapes


def grads_keeping_strides(fn, inputs, grad_out):
    """Like ``with_grads``, but the leaves keep the inputs' strides (``detach`` is a view; ``clone`` of a view with
    gaps would be contiguous)."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out] + [t.grad for t in leaves]


def assert_same_bits_as_contiguous(q, k, v, go):
    def attend(q, k, v):
        return flash_attention(q, k, v, causal=True)

    got = grads_keeping_strides(attend, (q, k, v), go)
    want = grads_keeping_strides(attend, [t.contiguous() for t in (q, k, v)], go)
    for name, g, w in zip(("out", "dq", "dk", "dv"), got, want):
        assert torch.equal(g, w), f"{name}: max abs difference {(g.float() - w.float()).abs().max().item():.3g}"


def test_attention_on_views_of_c_attn_split_bf16():
    """MultiHeadAttention hands the kernel views of c_attn(x).split(C): row stride 3·C, head stride D."""
    B, T, H, D = 12, 1024, 12, 64
    C = H * D
    gen = torch.Generator(device="cuda").manual_seed(6)
    qkv = torch.randn(B, T, 3 * C, generator=gen, device="cuda").to(torch.bfloat16)  # what c_attn(x) returns
    q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in qkv.split(C, dim=2))
    assert q.stride() == (T * 3 * C, D, 3 * C, 1)
    go = torch.randn(B, H, T, D, generator=gen, device="cuda").to(torch.bfloat16)
    assert_same_bits_as_contiguous(q, k, v, go)


@pytest.mark.gpu(gib=8)  # a 5.4 GB buffer
def test_attention_row_offsets_past_int32_bf16():
    """Views whose row offsets t · stride_t pass 2³¹ elements (a 5.4 GB buffer; only the viewed elements are
    written): with int32 offsets the kernel would read the wrong rows, or fault."""
    B, H, T, D = 2, 12, 640, 64
    row = 2**22  # stride_t: (T - 1) · 2²² = 2.68e9 > 2³¹
    gen = torch.Generator(device="cuda").manual_seed(7)
    buffer = torch.empty((T - 1) * row + 3 * B * H * D, dtype=torch.bfloat16, device="cuda")
    views = [buffer.as_strided((B, H, T, D), (3 * H * D, D, row, 1), storage_offset=j * H * D) for j in range(3)]
    for view in views:
        view.copy_(torch.randn(B, H, T, D, generator=gen, device="cuda"))
    assert (T - 1) * views[0].stride(2) >= 2**31
    go = torch.randn(B, H, T, D, generator=gen, device="cuda").to(torch.bfloat16)
    assert_same_bits_as_contiguous(*views, go)


def test_layernorm_noncontiguous_weight_and_bias_bf16():
    """Weight every other element of a longer tensor (stride 2), bias one value expanded (stride 0): the same bits
    as with contiguous copies, forward and backward."""
    gen = torch.Generator(device="cuda").manual_seed(8)
    x = torch.randn(12, 1024, 768, generator=gen, device="cuda").to(torch.bfloat16)
    go = torch.randn(12, 1024, 768, generator=gen, device="cuda").to(torch.bfloat16)
    w_base = torch.randn(2 * 768, generator=gen, device="cuda").to(torch.bfloat16).requires_grad_()
    b_base = torch.randn(1, generator=gen, device="cuda").to(torch.bfloat16).requires_grad_()
    x1 = x.clone().requires_grad_()
    y1 = layer_norm(x1, w_base[::2], b_base.expand(768))
    y1.backward(go)
    x2 = x.clone().requires_grad_()
    w2 = w_base.detach()[::2].contiguous().requires_grad_()
    b2 = b_base.detach().expand(768).contiguous().requires_grad_()
    y2 = layer_norm(x2, w2, b2)
    y2.backward(go)
    assert torch.isfinite(y1).all()
    assert torch.equal(y1, y2)
    assert torch.equal(x1.grad, x2.grad)
    assert torch.equal(w_base.grad[::2], w2.grad) and not w_base.grad[1::2].any()
    assert torch.equal(b_base.grad, b2.grad.sum_to_size(b_base.shape))  # what autograd does for expand


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_layernorm_constant_rows_give_the_bias(dtype):
    """A constant row has x - mean = 0, so y is exactly the bias and dγ exactly 0, also around 1000.1, where a
    one-pass float32 sum of the row is inexact and 1/sqrt(eps) ≈ 316 amplifies the residue (bf16 and fp16 rows of
    768 sum exactly in float32; float32 rows are the ones a one-pass mean gets wrong)."""
    gen = torch.Generator(device="cuda").manual_seed(9)
    levels = 1000.1 + 100 * torch.randn(12, 1024, 1, generator=gen, device="cuda")
    x = levels.expand(12, 1024, 768).to(dtype).contiguous().requires_grad_()
    w, b = (torch.randn(768, generator=gen, device="cuda").to(dtype).requires_grad_() for _ in range(2))
    go = torch.randn(12, 1024, 768, generator=gen, device="cuda").to(dtype)
    y = layer_norm(x, w, b)
    y.backward(go)
    is_bias = torch.equal(y, b.detach().expand_as(y))
    assert is_bias, f"max |y - bias| = {(y - b).abs().max().item():.3g}"
    no_dw = not w.grad.any()
    assert no_dw, f"max |dγ| = {w.grad.abs().max().item():.3g}"
