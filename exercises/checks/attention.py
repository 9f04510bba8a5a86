"""The checks of the attention exercise: ``attention(q, k, v, causal=False, mask=None)`` in NumPy, against the
library's torch oracle, with causal (bottom-right) and padding masks and queries that see no key."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_close, failing_case, for_all
from scratchformers.exercises.checks.strategies import attention_sizes, seeds


def expected(q, k, v, causal, mask) -> np.ndarray:
    visible = None if mask is None else torch.from_numpy(np.asarray(mask) != 0)
    t = [torch.from_numpy(a) for a in (q, k, v)]
    return oracles.reference_attention(*t, causal, visible, q.shape[-1] ** -0.5).numpy()


def run(learner, sizes, seed, causal=False, padded=False, mask=None, spread=1.0, defaults=False):
    rng = np.random.default_rng(seed)
    B, H, Tq, Tk, D = (sizes[n] for n in ("B", "H", "Tq", "Tk", "D"))
    q, k, v = (rng.normal(size=(B, H, T, D)) * s for T, s in ((Tq, spread), (Tk, spread), (Tk, 1.0)))
    if padded:
        mask = oracles.padding_mask(rng, B, Tk)
    with failing_case(q=q, k=k, v=v, **({} if defaults else dict(causal=causal, mask=mask))):
        if defaults:  # attention(q, k, v): causal=False, mask=None
            got = learner.attention(q.copy(), k.copy(), v.copy())
        else:
            got = learner.attention(q.copy(), k.copy(), v.copy(), causal=causal, mask=mask)
        expect_close("out", got, expected(q, k, v, causal, mask))


@for_all(sizes=attention_sizes(), defaults=st.booleans(), seed=seeds)
def no_mask(learner, sizes, defaults, seed):
    run(learner, sizes, seed, defaults=defaults)


@for_all(sizes=attention_sizes(), causal=st.booleans(), seed=seeds)
def large_scores(learner, sizes, causal, seed):
    run(learner, sizes, seed, causal=causal, spread=40.0)


@for_all(sizes=attention_sizes().map(lambda s: {**s, "Tk": s["Tq"]}), seed=seeds)
def causal_square(learner, sizes, seed):
    run(learner, sizes, seed, causal=True)


@for_all(sizes=attention_sizes(length=8).filter(lambda s: s["Tq"] < s["Tk"]), seed=seeds)
def causal_kv_cache(learner, sizes, seed):
    run(learner, sizes, seed, causal=True)


@for_all(sizes=attention_sizes(), seed=seeds)
def padding(learner, sizes, seed):
    run(learner, sizes, seed, padded=True)


@for_all(sizes=attention_sizes(), seed=seeds, how=st.sampled_from(["all padding", "causal, Tq > Tk"]))
def hidden_queries(learner, sizes, seed, how):
    if how == "all padding":
        mask = np.ones((sizes["B"], sizes["Tk"]), dtype=np.int64)
        mask[0] = 0
        run(learner, sizes, seed, mask=mask)
    else:
        run(learner, {**sizes, "Tq": sizes["Tk"] + sizes["Tq"]}, seed, causal=True)


@for_all(sizes=attention_sizes(), causal=st.booleans(), seed=seeds)
def everything(learner, sizes, causal, seed):
    run(learner, sizes, seed, causal=causal, padded=True)


def _attention(q, k, v, causal=False, mask=None, scale=lambda d: d ** -0.5, queries=False, after=False, shift=0,
               top_left=False, fill=None, stable=True):
    """Attention right and wrong; the keywords after ``mask`` each make one classic mistake."""
    Tq, Tk = q.shape[2], k.shape[2]
    scores = q @ k.swapaxes(-1, -2) * scale(q.shape[-1])
    allowed = np.ones((1, 1, Tq, Tk), dtype=bool)
    if causal:
        allowed = allowed & (np.arange(Tk) <= np.arange(Tq)[:, None] + (0 if top_left else Tk - Tq) + shift)
    if mask is not None:
        real = np.asarray(mask) != 0
        allowed = allowed & (real[:, None, :, None] if queries else real[:, None, None, :])
    if after:
        e = np.exp(scores - scores.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True) * allowed) @ v
    scores = np.where(allowed, scores, -np.inf if fill is None else fill)
    top = scores.max(-1, keepdims=True) if stable else 0.0
    e = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = e.sum(-1, keepdims=True)
    return e / np.where(total > 0, total, 1.0) @ v


def _variant(**wrong):
    return {"attention": lambda q, k, v, causal=False, mask=None: _attention(q, k, v, causal, mask, **wrong)}


def _probe(B, H, Tq, Tk, D, causal, mask, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(B, H, Tq, D)) * spread, rng.normal(size=(B, H, Tk, D)) * spread,
            rng.normal(size=(B, H, Tk, D)), causal, None if mask is None else np.array(mask))


_PROBES = (_probe(2, 2, 3, 3, 4, False, None, 1), _probe(1, 2, 4, 4, 3, True, None, 2),
           _probe(1, 1, 2, 5, 3, True, None, 3), _probe(2, 1, 4, 4, 2, False, [[1, 1, 1, 0], [1, 1, 0, 0]], 4),
           _probe(2, 1, 4, 4, 2, True, [[0, 0, 0, 0], [1, 1, 1, 0]], 5), _probe(1, 1, 4, 2, 2, True, None, 6),
           _probe(1, 1, 3, 3, 2, False, None, 7, spread=300.0))

EXERCISE = Exercise(
    name="attention",
    summary="attention(q, k, v, causal=False, mask=None) in NumPy: softmax(QK^T/sqrt(D) + masks) V",
    signatures=("attention(q, k, v, causal=False, mask=None)",),
    checks=(
        Check("no mask: softmax(Q K^T / sqrt(D)) V on random shapes, Tq != Tk included (float64, to 1e-10)", no_mask,
              "scores = q @ k.swapaxes(-1, -2) / sqrt(D) (B, H, Tq, Tk); softmax over the keys (the last axis); "
              "then weights @ v; attention(q, k, v) alone means causal=False, mask=None"),
        Check("large scores (|q . k| / sqrt(D) up to ~1e4): the softmax does not overflow", large_scores,
              "subtract each row's maximum score before np.exp (rows whose every key is hidden have no maximum: "
              "subtract 0 there)"),
        Check("causal, Tq = Tk: query i sees keys 0 ... i", causal_square,
              "hide key j from query i when j > i (itself included: j = i is visible), before the softmax"),
        Check("causal, Tq < Tk (decoding with a KV cache): query i sees keys 0 ... i + Tk - Tq", causal_kv_cache,
              "the Tq queries are the last Tq positions: query i sits at position Tk - Tq + i, so key j is visible "
              "when j <= i + Tk - Tq (np.tril(..., k=Tk - Tq))"),
        Check("padding mask (B, Tk): no query attends to a key whose mask is 0", padding,
              "mask marks keys: broadcast it as mask[:, None, None, :] over (B, H, Tq, Tk) and give hidden keys "
              "weight exactly 0 (-inf before the softmax)"),
        Check("a query that sees no key gets zeros, not NaN (an all-padding sequence; causal with Tq > Tk)",
              hidden_queries, "a row with every key hidden has no maximum: give it all-zero weights, e.g. divide "
              "by 1 where the sum of exponentials is 0"),
        Check("causal and padding together on random shapes", everything,
              "apply both masks: a key is visible when it is real (mask 1) and not in the query's future"),
    ),
    mistakes=(
        Mistake("scores not scaled by 1/sqrt(D)", "divide q @ k^T by sqrt(D), D = q.shape[-1], before the softmax",
                _variant(scale=lambda d: 1.0)),
        Mistake("scores scaled by 1/D instead of 1/sqrt(D)", "the scale is 1 / sqrt(D), not 1 / D",
                _variant(scale=lambda d: 1.0 / d)),
        Mistake("the padding mask applied to the queries (the wrong axis)",
                "the mask marks keys, the last axis of the scores: mask[:, None, None, :]", _variant(queries=True)),
        Mistake("the mask applied after the softmax (the weights no longer sum to 1)",
                "mask the scores before the softmax (hidden ones at -inf), so the visible weights sum to 1",
                _variant(after=True)),
        Mistake("causal mask off by one: a query cannot see its own key",
                "query i sees key i too: visible when j <= i + Tk - Tq (np.tril keeps the diagonal)",
                _variant(shift=-1)),
        Mistake("causal mask off by one: a query sees the next key",
                "the next key is the future: visible only when j <= i + Tk - Tq", _variant(shift=1)),
        Mistake("causal mask aligned top-left: with Tq < Tk the queries are the last positions",
                "align it bottom-right: query i sits at position Tk - Tq + i (np.tril(ones, k=Tk - Tq))",
                _variant(top_left=True)),
        Mistake("the softmax without subtracting each row's maximum score: large scores overflow",
                "subtract each row's maximum score before np.exp (0 for a row whose every key is hidden)",
                _variant(stable=False)),
        Mistake("hidden keys set to a large negative number: a query that sees no key averages all of them",
                "a query with no visible key must get zero weights: hide keys with -inf and divide by 1 where the sum "
                "of exponentials is 0", _variant(fill=-1e9)),
    ),
    probes=tuple(("attention", lambda f, p=p: f.attention(p[0].copy(), p[1].copy(), p[2].copy(), causal=p[3],
                                                           mask=p[4])) for p in _PROBES),
)
