"""The NumPy blocks against PyTorch: every forward against its torch.nn.functional twin, every hand-derived
backward against torch.autograd, in float64 to 1e-10, on hypothesis-generated shapes and masks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.strategies import attention_sizes, row_shapes, seeds
from scratchformers.exercises.checks.tolerances import FP64_ATOL
from scratchformers.reference.attention import visibility_mask as torch_visibility_mask
from scratchformers.reference.np_attention import (
    attention_backward,
    attention_forward,
    merge_heads,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_heads,
    visibility_mask,
)
from scratchformers.reference.np_gelu import gelu_backward, gelu_forward
from scratchformers.reference.np_layernorm import layer_norm_backward, layer_norm_forward
from scratchformers.reference.np_linear import linear_backward, linear_forward, mlp_backward, mlp_forward
from scratchformers.reference.np_positional import embedding_backward, embedding_forward, sinusoidal_positions
from scratchformers.reference.np_softmax import softmax_backward, softmax_forward

EXAMPLES = settings(max_examples=30, deadline=None)


def assert_close(actual: np.ndarray, expected: torch.Tensor | np.ndarray, tol: float = FP64_ATOL) -> None:
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    err = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert err <= tol, f"max abs error {err:.3e} > {tol:.0e}"


def leaf(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, requires_grad=True)


def attention_params(rng: np.random.Generator, c: int) -> list[np.ndarray]:
    """c_attn weight (3C, C) and bias (3C,), c_proj weight (C, C) and bias (C,)."""
    scale = 1 / math.sqrt(c)
    weights = [rng.normal(size=(3 * c, c)) * scale, rng.normal(size=(c, c)) * scale]
    return [weights[0], rng.normal(size=3 * c), weights[1], rng.normal(size=c)]


def torch_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor):
    weights = oracles.masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), allowed)
    return weights @ v, weights


# --- softmax -------------------------------------------------------------------------------------------------------


@EXAMPLES
@given(shape=row_shapes(), masked=st.booleans(), seed=seeds)
def test_softmax_matches_torch(shape: tuple[int, ...], masked: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * rng.uniform(0.1, 20)
    dy = rng.normal(size=shape)
    mask = rng.random(shape) < 0.6 if masked else None
    if masked and mask.ndim > 1:
        mask[(0,) * (mask.ndim - 1)] = False  # at least one fully masked row

    y = softmax_forward(x, mask)
    dx = softmax_backward(dy, y)

    xt = leaf(x)
    yt = oracles.masked_softmax(xt, torch.tensor(mask)) if masked else F.softmax(xt, dim=-1)
    yt.backward(torch.tensor(dy))
    assert_close(y, yt)
    assert_close(dx, xt.grad)
    if masked:
        assert np.all(y[~np.broadcast_to(mask, shape)] == 0)
        assert np.allclose(y.sum(-1), mask.any(-1))


def test_softmax_is_numerically_stable() -> None:
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])
    y = softmax_forward(x)
    assert_close(y, F.softmax(torch.tensor(x), dim=-1), tol=1e-15)
    with np.errstate(all="raise", under="ignore"):
        y32 = softmax_forward(x.astype(np.float32) * 100)
    assert y32.dtype == np.float32 and np.all(np.isfinite(y32))


def test_softmax_fully_masked_rows_are_zero_without_warnings() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4))
    mask = np.array([[True, False, True, True], [False] * 4, [False, False, False, True]])
    with np.errstate(all="raise", under="ignore"):
        y = softmax_forward(x, mask)
        dx = softmax_backward(np.ones_like(x), y)
    assert np.all(y[1] == 0) and np.all(dx[1] == 0)
    assert y[2, 3] == 1.0
    assert np.allclose(y.sum(-1), [1, 0, 1])


# --- LayerNorm, GELU, linear, MLP ---------------------------------------------------------------------------------


@EXAMPLES
@given(shape=row_shapes(lead_dims=2, lead=4, last=16), has_bias=st.booleans(), seed=seeds)
def test_layer_norm_matches_torch(shape: tuple[int, ...], has_bias: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.normal(size=shape) * rng.uniform(0.01, 10) + rng.normal()
    weight, bias = rng.normal(size=c), (rng.normal(size=c) if has_bias else None)
    dy = rng.normal(size=shape)

    y, mean, rstd = layer_norm_forward(x, weight, bias)
    dx, dweight, dbias = layer_norm_backward(dy, x, weight, mean, rstd)

    xt, wt = leaf(x), leaf(weight)
    bt = leaf(bias) if has_bias else None
    yt = F.layer_norm(xt, (c,), wt, bt, eps=1e-5)
    yt.backward(torch.tensor(dy))
    assert_close(y, yt)
    assert_close(mean, xt.mean(-1, keepdim=True))
    assert_close(dx, xt.grad)
    assert_close(dweight, wt.grad)
    assert_close(dbias, dy.sum(axis=tuple(range(len(shape) - 1))))  # a LayerNorm without bias ignores it
    if has_bias:
        assert_close(dbias, bt.grad)


@EXAMPLES
@given(shape=row_shapes(lead_dims=2, lead=6, last=6), approximate=st.sampled_from(["tanh", "none"]), seed=seeds)
def test_gelu_matches_torch(shape: tuple[int, ...], approximate: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 4
    dy = rng.normal(size=shape)

    y, cache = gelu_forward(x, approximate)
    dx = gelu_backward(dy, cache)

    xt = leaf(x)
    yt = F.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(dy))
    assert_close(y, yt)
    assert_close(dx, xt.grad)


@EXAMPLES
@given(
    lead=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    n_in=st.integers(1, 8),
    n_out=st.integers(1, 8),
    bias=st.booleans(),
    seed=seeds,
)
def test_linear_matches_torch(lead: list[int], n_in: int, n_out: int, bias: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(*lead, n_in)), rng.normal(size=(n_out, n_in))
    b = rng.normal(size=n_out) if bias else None
    dy = rng.normal(size=(*lead, n_out))

    y, cache = linear_forward(x, w, b)
    dx, dw, db = linear_backward(dy, cache)

    xt, wt = leaf(x), leaf(w)
    bt = leaf(b) if bias else None
    yt = F.linear(xt, wt, bt)
    yt.backward(torch.tensor(dy))
    assert_close(y, yt)
    assert_close(dx, xt.grad)
    assert_close(dw, wt.grad)
    if bias:
        assert_close(db, bt.grad)
    else:
        assert db is None


@EXAMPLES
@given(
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    c=st.integers(1, 8),
    f=st.integers(1, 16),
    seed=seeds,
)
def test_mlp_matches_torch(lead: list[int], c: int, f: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, dy = rng.normal(size=(*lead, c)), rng.normal(size=(*lead, c))
    params = [rng.normal(size=(f, c)), rng.normal(size=f), rng.normal(size=(c, f)), rng.normal(size=c)]

    y, cache = mlp_forward(x, *params)
    grads = mlp_backward(dy, cache)

    xt, *pt = (leaf(a) for a in (x, *params))
    yt = F.linear(F.gelu(F.linear(xt, pt[0], pt[1]), approximate="tanh"), pt[2], pt[3])
    yt.backward(torch.tensor(dy))
    assert_close(y, yt)
    for grad, tensor in zip(grads, (xt, *pt)):
        assert_close(grad, tensor.grad)


# --- attention -----------------------------------------------------------------------------------------------------


@EXAMPLES
@given(sizes=attention_sizes(), dv=st.integers(1, 5), causal=st.booleans(), padded=st.booleans(), seed=seeds)
def test_attention_matches_torch(sizes, dv, causal, padded, seed) -> None:
    b, h, tq, tk, d = (sizes[name] for name in ("B", "H", "Tq", "Tk", "D"))
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=(b, h, tq, d)), rng.normal(size=(b, h, tk, d)), rng.normal(size=(b, h, tk, dv))
    dout = rng.normal(size=(b, h, tq, dv))
    pad = oracles.padding_mask(rng, b, tk) if padded else None

    with np.errstate(divide="raise", invalid="raise", over="raise"):
        out, weights, cache = attention_forward(q, k, v, causal=causal, attention_mask=pad)
        dq, dk, dv_ = attention_backward(dout, cache)

    allowed = oracles.allowed(b, tq, tk, causal, pad)
    qt, kt, vt = leaf(q), leaf(k), leaf(v)
    out_t, weights_t = torch_attention(qt, kt, vt, allowed)
    out_t.backward(torch.tensor(dout))
    assert_close(out, out_t)
    assert_close(weights, weights_t)
    for grad, tensor in zip((dq, dk, dv_), (qt, kt, vt)):
        assert_close(grad, tensor.grad)

    empty_rows = ~allowed.any(-1).expand(b, h, tq).numpy()  # (B, H, Tq)
    assert np.all(weights[empty_rows] == 0) and np.all(out[empty_rows] == 0) and np.all(dq[empty_rows] == 0)
    if not empty_rows.any():  # older torch versions give NaN for fully masked rows
        qt, kt, vt = leaf(q), leaf(k), leaf(v)
        sdpa = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=allowed)
        sdpa.backward(torch.tensor(dout))
        assert_close(out, sdpa)
        for grad, tensor in zip((dq, dk, dv_), (qt, kt, vt)):
            assert_close(grad, tensor.grad)


def test_causal_mask_is_bottom_right_aligned() -> None:
    from torch.nn.attention.bias import causal_lower_right

    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(2, 3, 2, 4)), rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 5, 4))
    out, weights, _ = attention_forward(q, k, v, causal=True)
    t = [torch.tensor(a) for a in (q, k, v)]
    assert_close(out, F.scaled_dot_product_attention(*t, attn_mask=causal_lower_right(2, 5)))
    assert np.all(weights[..., 0, 4] == 0) and np.all(weights[..., 0, :4] > 0)  # query 0 sits at position 3
    assert np.all(weights[..., 1, :] > 0)  # the last query sees every key
    full, _, _ = attention_forward(q[:, :, -1:], k, v, causal=True)  # one new token attends to the whole cache
    assert_close(full, out[:, :, -1:], tol=1e-14)


@EXAMPLES
@given(b=st.integers(1, 3), tq=st.integers(1, 7), tk=st.integers(1, 7), causal=st.booleans(), padded=st.booleans(),
       seed=seeds)
def test_the_numpy_mask_is_the_torch_mask(b, tq, tk, causal, padded, seed) -> None:
    """One mask, two spellings: the NumPy visibility_mask equals the torch reference's, shape and values."""
    pad = oracles.padding_mask(np.random.default_rng(seed), b, tk) if padded else None
    got = visibility_mask(tq, tk, causal=causal, attention_mask=pad)
    want = torch_visibility_mask(tq, tk, causal=causal, attention_mask=None if pad is None else torch.tensor(pad))
    assert (got is None) == (want is None) == (not causal and not padded)
    if want is not None:
        assert got.shape == tuple(want.shape) and np.array_equal(got, want.numpy())


def test_attention_fully_masked_rows_are_zero_never_nan() -> None:
    rng = np.random.default_rng(2)
    q, k, v = (rng.normal(size=(2, 2, 4, 3)) for _ in range(3))
    pad = np.array([[0, 0, 0, 0], [0, 0, 1, 1]])  # sequence 0 is all padding; sequence 1 is left-padded
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        out, weights, cache = attention_forward(q, k, v, causal=True, attention_mask=pad)
        dq, dk, dv = attention_backward(np.ones_like(out), cache)
    for a in (out, weights, dq, dk, dv):
        assert np.all(np.isfinite(a))
    assert np.all(weights[0] == 0) and np.all(out[0] == 0)
    assert np.all(dq[0] == 0) and np.all(dk[0] == 0) and np.all(dv[0] == 0)
    assert np.all(weights[1, :, :2] == 0) and np.all(out[1, :, :2] == 0)  # padded queries see only padded keys
    assert np.allclose(weights[1, :, 2:].sum(-1), 1.0)
    assert np.all(dk[1, :, :2] == 0) and np.all(dv[1, :, :2] == 0)  # padding keys get no gradient


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 5), h=st.integers(1, 4), d=st.integers(1, 4), seed=seeds)
def test_split_and_merge_heads(b: int, t: int, h: int, d: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=(b, t, h * d))
    heads = split_heads(x, h)
    expected = torch.tensor(x).view(b, t, h, d).transpose(1, 2)
    assert_close(heads, expected, tol=0)
    assert_close(merge_heads(heads), x, tol=0)


@EXAMPLES
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 6),
    h=st.integers(1, 3),
    d=st.integers(1, 4),
    causal=st.booleans(),
    padded=st.booleans(),
    seed=seeds,
)
def test_multi_head_attention_matches_torch(b, t, h, d, causal, padded, seed) -> None:
    rng = np.random.default_rng(seed)
    c = h * d
    x, dout = rng.normal(size=(b, t, c)), rng.normal(size=(b, t, c))
    params = attention_params(rng, c)
    pad = oracles.padding_mask(rng, b, t) if padded else None

    with np.errstate(divide="raise", invalid="raise", over="raise"):
        out, weights, cache = multi_head_attention_forward(x, *params, num_heads=h, causal=causal, attention_mask=pad)
        grads = multi_head_attention_backward(dout, cache)

    xt, *pt = (leaf(a) for a in (x, *params))
    q, k, v = F.linear(xt, pt[0], pt[1]).split(c, dim=-1)
    q, k, v = (z.view(b, t, h, d).transpose(1, 2) for z in (q, k, v))
    y, weights_t = torch_attention(q, k, v, oracles.allowed(b, t, t, causal, pad))
    out_t = F.linear(y.transpose(1, 2).reshape(b, t, c), pt[2], pt[3])
    out_t.backward(torch.tensor(dout))
    assert_close(out, out_t)
    assert_close(weights, weights_t)
    for grad, tensor in zip(grads, (xt, *pt)):
        assert_close(grad, tensor.grad)


def test_multi_head_attention_on_an_all_padding_sequence() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 4))
    params = attention_params(rng, 4)
    pad = np.array([[0, 0, 0], [1, 1, 1]])
    out, weights, cache = multi_head_attention_forward(x, *params, num_heads=2, attention_mask=pad)
    dx, *_ = multi_head_attention_backward(np.ones_like(out), cache)
    assert np.all(weights[0] == 0)
    assert_close(out[0], np.broadcast_to(params[3], (3, 4)), tol=0)  # only the c_proj bias is left
    assert np.all(dx[0] == 0) and np.any(dx[1] != 0)


# --- positional encodings and embeddings ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_len, dim", [(7, 6), (5, 1), (9, 7), (50, 32)])
def test_sinusoidal_positions_follow_the_paper(max_len: int, dim: int) -> None:
    table = sinusoidal_positions(max_len, dim)
    assert_close(table, oracles.sinusoidal_positions(max_len, dim), tol=1e-12)
    assert sinusoidal_positions(max_len, dim, dtype=np.float32).dtype == np.float32


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 5), shape=st.lists(st.integers(1, 5), min_size=1, max_size=2), seed=seeds)
def test_embedding_backward_scatter_adds(n: int, c: int, shape: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    table, ids = rng.normal(size=(n, c)), rng.integers(0, n, size=shape)  # small n: repeated ids are common
    dout = rng.normal(size=(*shape, c))

    out, cache = embedding_forward(table, ids)
    dtable = embedding_backward(dout, cache)

    tt = leaf(table)
    out_t = F.embedding(torch.tensor(ids), tt)
    out_t.backward(torch.tensor(dout))
    assert_close(out, out_t, tol=0)
    assert_close(dtable, tt.grad)


# --- dtypes and errors ---------------------------------------------------------------------------------------------


def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    p32 = [a.astype(np.float32) for a in attention_params(rng, 4)]
    pad = np.array([[1, 1, 0], [0, 0, 0]])

    out, weights, cache = multi_head_attention_forward(x, *p32, num_heads=2, attention_mask=pad)
    assert out.dtype == weights.dtype == np.float32
    assert all(g.dtype == np.float32 for g in multi_head_attention_backward(out, cache))
    for approximate in ("tanh", "none"):
        y, cache = gelu_forward(x, approximate)
        assert y.dtype == gelu_backward(y, cache).dtype == np.float32
    y, mean, rstd = layer_norm_forward(x, p32[3], p32[3])
    assert y.dtype == mean.dtype == rstd.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer_norm_backward(y, x, p32[3], mean, rstd))
    y, cache = mlp_forward(x, p32[0], p32[1], p32[0].T.copy(), p32[3])
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in mlp_backward(y, cache))
    y = softmax_forward(x)
    assert y.dtype == softmax_backward(y, y).dtype == np.float32


def test_bad_inputs_give_clear_errors() -> None:
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        multi_head_attention_forward(x, np.zeros((12, 4)), None, np.zeros((4, 4)), None, num_heads=3)
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        multi_head_attention_forward(x[0], np.zeros((12, 4)), None, np.zeros((4, 4)), None, num_heads=2)
    with pytest.raises(ValueError, match="incompatible shapes"):
        attention_forward(np.zeros((1, 1, 2, 3)), np.zeros((1, 1, 2, 4)), np.zeros((1, 1, 2, 4)))
    with pytest.raises(ValueError, match=r"\(B, H, T, D\)"):
        attention_forward(x, x, x)
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        qkv = np.zeros((2, 1, 3, 4))
        attention_forward(qkv, qkv, qkv, attention_mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="weight must have shape"):
        linear_forward(x, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="bias must have shape"):
        linear_forward(x, np.zeros((5, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="weight and bias"):
        layer_norm_forward(x, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="approximate"):
        gelu_forward(x, "erf")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\)"):
        embedding_forward(np.zeros((3, 2)), np.array([0, 3]))
    with pytest.raises(TypeError, match="integers"):
        embedding_forward(np.zeros((3, 2)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="positive"):
        sinusoidal_positions(0, 4)
