"""The checks of the GPT-2 forward exercise: ``gpt2_forward(ids, state_dict, num_heads)`` in NumPy, from the
``state_dict`` of the reference torch model, whose logits it must reproduce."""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from hypothesis import strategies as st

from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_close, failing_case, for_all
from scratchformers.exercises.checks.strategies import seeds
from scratchformers.reference.config import GPTConfig
from scratchformers.reference.model import GPT

VOCAB, MAX_LEN = 23, 12


@functools.lru_cache(maxsize=8)
def model(num_layers: int, num_heads: int, head_dim: int, seed: int) -> tuple[GPT, dict[str, np.ndarray]]:
    """A GPT-2 with random weights in float64 (every parameter ~ N(0, 0.5), LayerNorms and biases included, so no
    term can be left out unnoticed) and its state_dict as NumPy arrays."""
    torch.manual_seed(seed)
    gpt = GPT(GPTConfig(vocab_size=VOCAB, max_len=MAX_LEN, num_layers=num_layers, num_heads=num_heads,
                        emb_dim=num_heads * head_dim)).double().eval()
    with torch.no_grad():
        for parameter in gpt.parameters():
            parameter.normal_(0.0, 0.5)
    return gpt, {key: value.numpy().copy() for key, value in gpt.state_dict().items()}


def run(learner, num_layers, num_heads, head_dim, ids, seed=0):
    gpt, state_dict = model(num_layers, num_heads, head_dim, seed)
    with failing_case(num_layers=num_layers, num_heads=num_heads, model_dim=num_heads * head_dim, ids=ids):
        got = learner.gpt2_forward(ids.copy(), {key: value.copy() for key, value in state_dict.items()}, num_heads)
        with torch.no_grad():
            want = gpt(torch.from_numpy(ids))[0].numpy()
        expect_close("logits", got, want)


def one_block(learner):
    run(learner, 1, 1, 4, np.array([[3, 1, 4, 1, 5]]))


@for_all(examples=12, num_layers=st.integers(1, 3), num_heads=st.integers(1, 3), head_dim=st.integers(1, 4),
         batch=st.integers(1, 2), length=st.integers(1, MAX_LEN), seed=seeds)
def random_models(learner, num_layers, num_heads, head_dim, batch, length, seed):
    ids = np.random.default_rng(seed).integers(0, VOCAB, size=(batch, length))
    run(learner, num_layers, num_heads, head_dim, ids, seed % 3)


def _layer_norm(x, sd, name):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * sd[f"{name}.weight"] + sd[f"{name}.bias"]


def _linear(x, sd, name):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def _forward(ids, sd, num_heads, prenorm=True, final=True, exact_gelu=False, positions=True, causal=True,
             reshape=False):
    """GPT-2's forward right and wrong; the keywords after ``num_heads`` each make one classic mistake."""
    B, T = ids.shape
    x = sd["transformer.wte.weight"][ids] + (sd["transformer.wpe.weight"][:T] if positions else 0.0)
    layers = sum(key.endswith(".ln_1.weight") for key in sd)
    for layer in range(layers):
        h = f"transformer.h.{layer}"
        norm = (lambda y, name: _layer_norm(y, sd, f"{h}.{name}")) if prenorm else (lambda y, name: y)
        q, k, v = np.split(_linear(norm(x, "ln_1"), sd, f"{h}.attn.c_attn"), 3, axis=-1)
        C = q.shape[-1]
        if reshape:
            q, k, v = (t.reshape(B, num_heads, T, C // num_heads) for t in (q, k, v))
        else:
            q, k, v = (t.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3) for t in (q, k, v))
        scores = q @ k.swapaxes(-1, -2) / math.sqrt(C // num_heads)
        if causal:
            scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        merged = (weights @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + _linear(merged, sd, f"{h}.attn.c_proj")
        if not prenorm:
            x = _layer_norm(x, sd, f"{h}.ln_1")
        a = _linear(norm(x, "ln_2"), sd, f"{h}.mlp.c_fc")
        if exact_gelu:
            a = 0.5 * a * (1.0 + np.vectorize(math.erf)(a / math.sqrt(2.0)))
        else:
            a = 0.5 * a * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * a**3)))
        x = x + _linear(a, sd, f"{h}.mlp.c_proj")
        if not prenorm:
            x = _layer_norm(x, sd, f"{h}.ln_2")
    if final:
        x = _layer_norm(x, sd, "transformer.ln_f")
    return x @ sd["lm_head.weight"].T


def _variant(**wrong):
    return {"gpt2_forward": lambda ids, state_dict, num_heads: _forward(ids, state_dict, num_heads, **wrong)}


def _probe(num_layers, num_heads, head_dim, ids):
    return lambda f: f.gpt2_forward(np.array(ids), dict(model(num_layers, num_heads, head_dim, 0)[1]), num_heads)


EXERCISE = Exercise(
    name="gpt2_forward",
    summary="gpt2_forward(ids, state_dict, num_heads) in NumPy: GPT-2's logits from the torch model's weights",
    signatures=("gpt2_forward(ids, state_dict, num_heads)",),
    checks=(
        Check("one block, one sequence: logits equal the reference model's (float64, to 1e-10)", one_block,
              "x = wte[ids] + wpe[:T]; per block x = x + attn(ln_1(x)), x = x + mlp(ln_2(x)); logits = "
              "ln_f(x) @ lm_head.weight.T; a Linear's weight is (out, in): y = x @ W.T + b"),
        Check("random models (1-3 layers, 1-3 heads of size 1-4), batches and lengths", random_models,
              "loop over transformer.h.0, .1, ... for as many layers as the state_dict holds; split c_attn's output "
              "into q, k, v (C each), then each into heads: (B, T, C) -> (B, T, H, D) -> (B, H, T, D)"),
    ),
    mistakes=(
        Mistake("LayerNorm after the residual addition (post-norm), not before each sub-layer (GPT-2's pre-norm)",
                "GPT-2 normalises the input of each sub-layer: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))",
                _variant(prenorm=False)),
        Mistake("the final LayerNorm (ln_f) left out", "apply transformer.ln_f to x before the output layer",
                _variant(final=False)),
        Mistake("the exact erf GELU, not the tanh form GPT-2 uses",
                "GPT-2's MLP uses GELU's tanh approximation: 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))",
                _variant(exact_gelu=True)),
        Mistake("no position embeddings", "add the learned positions: x = wte[ids] + wpe[:T]",
                _variant(positions=False)),
        Mistake("attention not causal", "a token may only attend to itself and the tokens before it: mask the "
                "scores above the diagonal with -inf before the softmax", _variant(causal=False)),
        Mistake("heads split by reshaping (B, T, C) straight to (B, H, T, D)",
                "head h owns channels h*D ... (h+1)*D - 1 of every token: reshape to (B, T, H, D), then transpose "
                "to (B, H, T, D) (and back before c_proj)", _variant(reshape=True)),
    ),
    probes=(("gpt2_forward", _probe(2, 2, 4, [[1, 5, 2, 7, 3], [4, 4, 0, 9, 1]])),
            ("gpt2_forward", _probe(1, 3, 2, [[6, 2, 8, 1]]))),
)
