"""GPU parity of the compiled Triton kernels at GPT-2 shapes (B up to 12, H 12, T 1024, D 64), mostly bfloat16.

Skipped without CUDA. The CPU suite (test_kernels_*.py) checks the same properties on small shapes in the Triton
interpreter, which cannot run the real bf16 tensor-core path; these tests do. Tolerances follow the CPU suite: the
kernel's max abs error against a float64 reference must be at most 2x the error of the same plain-torch computation
run in the half dtype, plus one storage quantum eps(dtype) · max|reference|, plus 1e-5 (float32: 1e-4 absolute;
float32 dots use exact fp32, not TF32).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scratchformers.fast.attention import flash_attention
from scratchformers.fast.layernorm import LayerNorm, layer_norm
from scratchformers.fast.softmax import softmax
from tolerances import FP32_ATOL, FLOOR, half_tolerance

pytestmark = pytest.mark.gpu


def reference_attention(q, k, v, causal: bool, visible_keys: torch.Tensor | None, scale: float) -> torch.Tensor:
    """softmax(scale · Q Kᵀ, masked) V; causal bottom-right aligned; rows with no visible key give 0."""
    Tq, Tk = q.shape[2], k.shape[2]
    scores = (q @ k.transpose(-2, -1)) * scale
    visible = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device)
    if causal:
        visible = torch.tril(visible, diagonal=Tk - Tq)
    visible = visible[None, None]
    if visible_keys is not None:
        visible = visible & visible_keys[:, None, None, :]
    has_key = visible.any(-1, keepdim=True)
    scores = scores.masked_fill(~visible, float("-inf")).masked_fill(~has_key, 0.0)
    return (torch.softmax(scores, dim=-1) * visible) @ v


def with_grads(fn, inputs, grad_out):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out] + [t.grad for t in leaves]


def assert_close(name_list, fast, exact, half_ref, dtype):
    for i, (name, got, want) in enumerate(zip(name_list, fast, exact)):
        tol = FP32_ATOL + FLOOR if dtype == torch.float32 else half_tolerance(half_ref[i], want)
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
    half = None if dtype == torch.float32 else with_grads(ref, (q, k, v), go)
    assert_close(("out", "dq", "dk", "dv"), fast, exact, half, dtype)


@pytest.mark.parametrize("causal", [True, False])
def test_attention_gpt2_shape_bf16(causal):
    check_attention(12, 12, 1024, 1024, 64, torch.bfloat16, causal)


def test_attention_padding_bf16():
    check_attention(12, 12, 1024, 1024, 64, torch.bfloat16, True, lengths=[1024, 1000, 513, 0] * 3)


def test_attention_kv_cache_decoding_bf16():
    check_attention(12, 12, 1, 1024, 64, torch.bfloat16, True, lengths=[1024, 700, 1, 0] * 3)


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


def test_layernorm_gpt2_shape_bf16():
    gen = torch.Generator(device="cuda").manual_seed(2)
    x = torch.randn(12, 1024, 768, generator=gen, device="cuda").to(torch.bfloat16)
    w, b = (torch.randn(768, generator=gen, device="cuda").to(torch.bfloat16) for _ in range(2))
    go = torch.randn(12, 1024, 768, generator=gen, device="cuda").to(torch.bfloat16)
    fast = with_grads(layer_norm, (x, w, b), go)
    exact = with_grads(lambda x, w, b: F.layer_norm(x, (768,), w, b), [t.double() for t in (x, w, b)], go.double())
    half = with_grads(lambda x, w, b: F.layer_norm(x, (768,), w, b), (x, w, b), go)
    assert_close(("y", "dx", "dw", "db"), fast, exact, half, torch.bfloat16)


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
