"""The three attention backends and the fast LayerNorm / softmax under ``torch.autocast`` (CPU: Triton interpreter).

What autocast does to each piece (the policy, decided in fast/runtime.py, fast/layernorm.py and fast/softmax.py):

* attention (``fast``, ``torch_sdpa``, ``reference``): q, k, v and the output in the autocast dtype, as
  ``F.scaled_dot_product_attention``; the KV cache holds what the layers produce (the autocast dtype);
* fast LayerNorm and softmax: no cast; output in the input's dtype, arithmetic in float32 (see their modules).

Dtype flow is checked in bf16 and fp16; numbers in fp16 (the interpreter gets bf16 arithmetic wrong), against a
float64 model, within the parity tests' rule: at most twice the error torch itself makes under the same autocast.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scratchformers.exercises.checks.tolerances import half_tolerance
from scratchformers.fast.attention import flash_attention
from scratchformers.fast.layernorm import layer_norm
from scratchformers.fast.softmax import softmax
from scratchformers.reference.config import GPTConfig
from scratchformers.reference.generate import generate
from scratchformers.reference.model import GPT

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SMALL = dict(vocab_size=61, max_len=24, num_layers=2, num_heads=2, emb_dim=32)
BACKENDS = {"fast": dict(attention="fast", layernorm="fast"), "torch_sdpa": dict(attention="torch_sdpa",
            layernorm="torch"), "reference": dict(attention="reference", layernorm="reference")}


def autocast(dtype: torch.dtype) -> torch.autocast:
    """Autocast on the test device, skipping where this torch build cannot autocast to ``dtype`` there."""
    try:
        return torch.autocast(DEVICE, dtype=dtype)
    except (RuntimeError, ValueError) as error:  # older CPU builds: bf16 only
        pytest.skip(f"torch.autocast({DEVICE!r}, {dtype}) is not available here: {error}")


def model(backend: str) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**SMALL, **BACKENDS[backend])).to(DEVICE).eval()


def record_attention_dtypes(gpt: GPT) -> list[tuple[torch.dtype, ...]]:
    """Wrap every layer's attention function; the list fills with the (q, k, v, out) dtypes of each call."""
    seen = []
    for block in gpt.transformer.h:
        def attend(q, k, v, *, inner=block.attn.attend, **kwargs):
            out, weights = inner(q, k, v, **kwargs)
            seen.append((q.dtype, k.dtype, v.dtype, out.dtype))
            return out, weights
        block.attn.attend = attend
    return seen


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_generation_with_kv_cache_under_autocast(backend, dtype):
    """Issue 12's crash: prefill and cached decoding steps run, and attention sees and returns the autocast dtype."""
    gpt = model(backend)
    seen = record_attention_dtypes(gpt)
    prompt = torch.zeros(1, 3, dtype=torch.long, device=DEVICE)
    with autocast(dtype):
        out = generate(gpt, prompt, 4, temperature=0)
        cache = gpt.new_kv_cache(1)
        gpt(prompt, kv_cache=cache)
    assert out.shape == (1, 7)
    assert cache.keys.dtype == cache.values.dtype == dtype and cache.length == 3
    assert len(seen) == 2 * (4 + 1) and all(call == (dtype,) * 4 for call in seen)


def test_kv_cache_refuses_a_second_dtype():
    gpt = model("reference")
    cache = gpt.new_kv_cache(1)
    prompt = torch.zeros(1, 3, dtype=torch.long, device=DEVICE)
    with autocast(torch.bfloat16):
        gpt(prompt, kv_cache=cache)
    with pytest.raises(TypeError, match="same autocast setting"):
        gpt(prompt[:, :1], kv_cache=cache)
    cache.reset()
    gpt(prompt, kv_cache=cache)
    assert cache.keys.dtype == torch.float32


def decode_logits(gpt: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Logits of a prefill of all but the last token, then one cached decoding step (Tq = 1): (B, T, V) float64."""
    cache = gpt.new_kv_cache(idx.shape[0])
    prefill, _ = gpt(idx[:, :-1], kv_cache=cache)
    step, _ = gpt(idx[:, -1:], kv_cache=cache)
    return torch.cat([prefill, step], dim=1).double()


def test_fast_model_numbers_under_fp16_autocast():
    """Logits with the KV cache, and parameter gradients: the fast model under fp16 autocast is within twice the
    error of the torch model (torch_sdpa + F.layer_norm) under the same autocast, both against float64."""
    fast, torch_model, exact = model("fast"), model("torch_sdpa"), model("reference").double()
    idx = torch.randint(0, 61, (2, 12), generator=torch.Generator().manual_seed(1)).to(DEVICE)
    with torch.no_grad():
        want = decode_logits(exact, idx)
        with autocast(torch.float16):
            got, torch_half = decode_logits(fast, idx), decode_logits(torch_model, idx)
    err = (got - want).abs().max().item()
    assert err <= half_tolerance(torch_half.half(), want), err

    grads = []
    for gpt, dtype in ((fast, torch.float16), (torch_model, torch.float16), (exact, None)):
        with autocast(dtype) if dtype else torch.autocast(DEVICE, enabled=False):
            _, loss = gpt.train()(idx[:, :-1], idx[:, 1:])
        loss.backward()
        grads.append({name: p.grad for name, p in gpt.named_parameters()})
    for name, want_grad in grads[2].items():
        got_grad, torch_grad = grads[0][name], grads[1][name]
        assert got_grad.dtype == torch.float32, name
        err = (got_grad.double() - want_grad).abs().max().item()
        assert err <= half_tolerance(torch_grad.half(), want_grad), f"{name}: {err:.3g}"


def test_flash_attention_op_casts_like_sdpa():
    """Mixed q/k/v dtypes meet in the autocast dtype; gradients reach fp32 leaves in fp32; outside autocast a dtype
    mix stays an error."""
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(1, 2, 5, 16, generator=gen).to(DEVICE).requires_grad_()
    k, v = (torch.randn(1, 2, 7, 16, generator=gen).to(DEVICE, torch.bfloat16) for _ in range(2))
    with autocast(torch.float16):
        out = flash_attention(q, k, v, causal=True)
        sdpa = F.scaled_dot_product_attention(q[:, :, :, :], k.float(), v.float())
    assert out.dtype == sdpa.dtype == torch.float16
    out.float().sum().backward()
    assert q.grad.dtype == torch.float32 and torch.isfinite(q.grad).all()
    with pytest.raises(TypeError, match="one dtype"):
        flash_attention(q, k, v)


def test_flash_attention_compiles_under_autocast():
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 9, 16, generator=gen).to(DEVICE).requires_grad_() for _ in range(3))

    def loss(q, k, v):
        with autocast(torch.float16):
            return flash_attention(q, k, v, causal=True).float().square().sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    got = torch.autograd.grad(compiled(q, k, v), (q, k, v))
    want = torch.autograd.grad(loss(q, k, v), (q, k, v))
    for g, w in zip(got, want):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, w, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_layer_norm_and_softmax_keep_their_input_dtype_under_autocast(dtype):
    """No cast at the op boundary: inside autocast the result is bit-identical to the call outside it."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 40, generator=gen).to(DEVICE, dtype)
    weight, bias = torch.randn(40, generator=gen).to(DEVICE), torch.randn(40, generator=gen).to(DEVICE)
    plain = layer_norm(x, weight, bias), softmax(x)
    with autocast(torch.bfloat16):
        cast = layer_norm(x, weight, bias), softmax(x)
    for a, b in zip(plain, cast):
        assert b.dtype == dtype and torch.equal(a, b)
