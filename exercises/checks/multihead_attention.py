"""The checks of the multi-head attention exercise: attention over all heads at once in torch, with the signature
of a backend of the model (``reference/backends.py``), plugged into GPT-2 and compared with the reference model."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.core import (Check, Exercise, Failure, Mistake, as_array, expect_close,
                                                 failing_case, for_all)
from scratchformers.exercises.checks.strategies import attention_sizes, seeds
from scratchformers.reference import backends
from scratchformers.reference.attention import scaled_dot_product_attention
from scratchformers.reference.config import GPTConfig
from scratchformers.reference.model import GPT

BACKEND = "exercise"  # the name the learner's attention is registered under
MODEL = dict(vocab_size=31, max_len=16, num_layers=2, num_heads=2, emb_dim=8)


def qkv(sizes: dict, seed: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    B, H, Tq, Tk, D = (sizes[n] for n in ("B", "H", "Tq", "Tk", "D"))
    return [torch.from_numpy(rng.normal(size=(B, H, T, D))) for T in (Tq, Tk, Tk)]


def out_and_weights(result, where: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Failure(f"{where} should return (out, weights), as every attention backend does; got "
                      f"{type(result).__name__}")
    return result[0], result[1]


def compare(learner, q, k, v, causal, mask, defaults=False) -> None:
    attention_mask = None if mask is None else torch.from_numpy(mask)
    with failing_case(q=q, k=k, v=v, **({} if defaults else dict(causal=causal, attention_mask=mask))):
        if defaults:  # attention(q, k, v): causal=False, attention_mask=None, dropout_p=0.0
            result = learner.attention(q.clone(), k.clone(), v.clone())
        else:
            result = learner.attention(q.clone(), k.clone(), v.clone(), causal=causal, attention_mask=attention_mask,
                                       dropout_p=0.0)
        out, weights = out_and_weights(result, "attention")
        want_out, want_weights = scaled_dot_product_attention(q, k, v, causal=causal, attention_mask=attention_mask)
        expect_close("out", out, want_out.numpy())
        expect_close("weights", weights, want_weights.numpy())


@for_all(sizes=attention_sizes(), defaults=st.booleans(), seed=seeds)
def no_mask(learner, sizes, defaults, seed):
    compare(learner, *qkv(sizes, seed), False, None, defaults)


@for_all(sizes=attention_sizes(), causal=st.booleans(), padded=st.booleans(), seed=seeds)
def masks(learner, sizes, causal, padded, seed):
    mask = oracles.padding_mask(np.random.default_rng(seed), sizes["B"], sizes["Tk"]) if padded else None
    compare(learner, *qkv(sizes, seed), causal, mask)


@for_all(examples=15, sizes=attention_sizes(), causal=st.booleans(), seed=seeds)
def gradients(learner, sizes, causal, seed):
    q, k, v = qkv(sizes, seed)
    mask = oracles.padding_mask(np.random.default_rng(seed), sizes["B"], sizes["Tk"])
    dout = torch.from_numpy(np.random.default_rng(seed + 1).normal(size=q.shape[:3] + v.shape[3:]))
    with failing_case(q=q, k=k, v=v, causal=causal, attention_mask=mask, dout=dout):
        grads = []
        for attend in (learner.attention, scaled_dot_product_attention):
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            out, _ = out_and_weights(attend(*leaves, causal=causal, attention_mask=torch.from_numpy(mask),
                                            dropout_p=0.0), "attention")
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                raise Failure("out carries no gradient: compute it from q, k and v with torch operations (no "
                              ".numpy(), .item() or .detach())")
            grads.append(torch.autograd.grad(out, leaves, dout, allow_unused=True))
        for name, got, want in zip(("dq", "dk", "dv"), *grads):
            expect_close(name, torch.zeros_like(want) if got is None else got, want.numpy())


def models(learner, seed: int) -> tuple[GPT, GPT]:
    """The reference GPT-2 (random weights, float64) and the same weights with the learner's attention."""
    backends.register("attention", BACKEND, lambda config: learner.attention)
    torch.manual_seed(seed)
    reference = GPT(GPTConfig(**MODEL)).double().eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_(0.0, 0.5)
    theirs = GPT(GPTConfig(**MODEL, attention=BACKEND)).double().eval()
    theirs.load_state_dict(reference.state_dict())
    return reference, theirs


@for_all(examples=10, batch=st.integers(1, 3), length=st.integers(1, MODEL["max_len"]), padded=st.booleans(),
         seed=seeds)
def whole_model(learner, batch, length, padded, seed):
    reference, theirs = models(learner, seed)
    rng = np.random.default_rng(seed)
    idx = torch.from_numpy(rng.integers(0, MODEL["vocab_size"], size=(batch, length)))
    mask = (np.arange(length) < rng.integers(1, length + 1, size=batch)[:, None]).astype(np.int64)  # right padding
    with failing_case(idx=idx, attention_mask=mask if padded else None):
        attention_mask = torch.from_numpy(mask) if padded else None
        with torch.no_grad():
            expect_close("logits", theirs(idx, attention_mask=attention_mask)[0],
                         reference(idx, attention_mask=attention_mask)[0].numpy())


@for_all(examples=5, prompt=st.integers(1, 8), seed=seeds)
def kv_cache(learner, prompt, seed):
    reference, theirs = models(learner, seed)
    idx = torch.from_numpy(np.random.default_rng(seed).integers(0, MODEL["vocab_size"], size=(2, 12)))
    cache = theirs.new_kv_cache(batch_size=2)
    with failing_case(idx=idx, prompt_length=prompt), torch.no_grad():
        pieces = [theirs(idx[:, :prompt], kv_cache=cache)[0]]
        pieces += [theirs(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(prompt, idx.shape[1])]
        expect_close("logits", torch.cat(pieces, dim=1), reference(idx)[0].numpy())


def dropout_pattern(attend, seed: int = 0, p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """With v the identity, out is the dropped weights themselves: (out, the weights returned, the true weights)."""
    rng = np.random.default_rng(seed)
    q, k = (torch.from_numpy(rng.normal(size=(2, 2, 6, 6))) for _ in range(2))
    v = torch.eye(6, dtype=torch.float64).expand(2, 2, 6, 6)
    torch.manual_seed(seed)
    out, weights = out_and_weights(attend(q, k, v, causal=False, attention_mask=None, dropout_p=p), "attention")
    return as_array(out), as_array(weights), scaled_dot_product_attention(q, k, v)[1].numpy()


def dropout_ratios(attend) -> tuple[float, ...]:
    """The distinct ratios (dropped weight) / (weight): {0, 1 / (1 - p)} = {0, 2} when dropout is right."""
    out, _, probs = dropout_pattern(attend)
    return tuple(sorted(set(np.round(out / probs, 6).ravel().tolist())))


def dropout(learner):
    out, weights, probs = dropout_pattern(learner.attention)
    with failing_case(q="(2, 2, 6, 6) random", k="(2, 2, 6, 6) random", v="the identity", dropout_p=0.5):
        expect_close("weights", weights, probs)
        kept = np.isclose(out, 2.0 * probs, rtol=1e-9, atol=1e-12)
        dropped = out == 0.0
        if not np.all(kept | dropped) or not kept.any() or not dropped.any():
            ratios = sorted(set(np.round(out / probs, 4).ravel().tolist()))[:6]
            raise Failure(f"with v the identity, out is the dropped weights: each should be 0 or weight / (1 - p) = "
                          f"2 x weight; out / weight takes the values {ratios}")


def _attention(q, k, v, causal=False, attention_mask=None, dropout_p=0.0, scale=None, after=False, top_left=False,
               drop="right"):
    """The reference backend's attention, right and wrong; the keywords after ``dropout_p`` make the mistakes."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1) * (q.shape[-1] ** -0.5 if scale is None else scale)
    allowed = torch.ones(Tq, Tk, dtype=torch.bool)
    if causal:
        allowed = torch.ones(Tq, Tk, dtype=torch.bool).tril(0 if top_left else Tk - Tq)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, None, :]
    if after:
        weights = torch.softmax(scores, -1) * allowed
    else:
        weights = torch.softmax(scores.masked_fill(~allowed, torch.finfo(scores.dtype).min), -1) * allowed
    dropped = weights
    if drop != "ignored" and dropout_p > 0:
        dropped = torch.nn.functional.dropout(weights, dropout_p)
        dropped = dropped * (1 - dropout_p) if drop == "unscaled" else dropped
    return dropped @ v, dropped if drop == "weights after" else weights


def _variant(**wrong):
    return {"attention": lambda q, k, v, causal=False, attention_mask=None, dropout_p=0.0:
            _attention(q, k, v, causal, attention_mask, dropout_p, **wrong)}


def _probe(B, H, Tq, Tk, D, causal, mask, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (torch.from_numpy(rng.normal(size=(B, H, T, D))) for T in (Tq, Tk, Tk))
    mask = None if mask is None else torch.tensor(mask)
    return lambda f: tuple(f.attention(q, k, v, causal=causal, attention_mask=mask, dropout_p=0.0))


EXERCISE = Exercise(
    name="multihead_attention",
    summary="attention over all heads in torch, a backend of the model: GPT-2's logits equal the reference's",
    signatures=("attention(q, k, v, causal=False, attention_mask=None, dropout_p=0.0)",),
    checks=(
        Check("no mask: out and weights equal the reference backend's on random (B, H, T, D) (float64)", no_mask,
              "weights = softmax(q @ k.transpose(-2, -1) / sqrt(D)) over the keys; out = weights @ v; return (out, "
              "weights); attention(q, k, v) alone means no mask and no dropout"),
        Check("causal (bottom-right) and padding masks, any Tq and Tk: out and weights", masks,
              "hide future keys (key j from query i when j > i + Tk - Tq) and padding keys (attention_mask[:, None, "
              "None, :] == 0) before the softmax; a query that sees no key gets zero weights"),
        Check("autograd through your attention: dq, dk, dv equal the reference's", gradients,
              "build out from q, k, v with differentiable torch operations (masked_fill, softmax, @)"),
        Check("plugged into GPT-2 through backends.register: whole-model logits equal, with and without padding",
              whole_model, "the model calls attention(q, k, v, causal=True, attention_mask=..., dropout_p=...) with "
              "q, k, v of shape (B, H, T, D); return (out, weights)"),
        Check("KV-cache decoding through the model (Tq = 1 against the cached keys) gives the full forward's logits",
              kv_cache, "with a KV cache the queries are the last Tq of Tk positions: causal must be aligned "
              "bottom-right, key j visible to query i when j <= i + Tk - Tq"),
        Check("dropout_p: each weight dropped to 0 or scaled by 1 / (1 - p); the weights returned are before dropout",
              dropout, "apply torch.nn.functional.dropout(weights, dropout_p) to the weights you multiply v with, "
              "and return the weights from before dropout"),
    ),
    mistakes=(
        Mistake("scores not scaled by 1/sqrt(D)", "multiply q @ k^T by D ** -0.5 before the softmax",
                _variant(scale=1.0)),
        Mistake("the mask applied after the softmax (the weights no longer sum to 1)",
                "mask the scores before the softmax, so the visible weights sum to 1", _variant(after=True)),
        Mistake("causal mask aligned top-left: with a KV cache the queries are the last positions",
                "align it bottom-right: torch.ones(Tq, Tk).tril(Tk - Tq)", _variant(top_left=True)),
        Mistake("dropout_p ignored", "drop the weights: torch.nn.functional.dropout(weights, dropout_p)",
                _variant(drop="ignored")),
        Mistake("the kept weights not scaled by 1 / (1 - p)",
                "torch.nn.functional.dropout scales what it keeps by 1 / (1 - p); a hand-made mask must too",
                _variant(drop="unscaled")),
        Mistake("the weights returned after dropout",
                "return the weights from before dropout (they sum to 1); use the dropped ones only for out",
                _variant(drop="weights after")),
    ),
    probes=(("attention", _probe(2, 2, 3, 3, 4, False, None, 1)), ("attention", _probe(1, 2, 2, 5, 3, True, None, 2)),
            ("attention", _probe(2, 1, 4, 4, 2, True, [[1, 1, 1, 0], [0, 0, 0, 0]], 3)),
            ("attention", lambda f: dropout_ratios(f.attention)),
            ("attention", lambda f: bool(np.allclose(dropout_pattern(f.attention)[1].sum(-1), 1.0)))),
)
