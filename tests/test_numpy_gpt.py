"""The NumPy GPT-2 against torch: a small functional GPT-2 written here with torch.nn.functional (float64, 1e-10),
and the library's own torch model ``scratchformers.reference.model.GPT`` (float32, 1e-5; greedy tokens)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.reference.config import GPTConfig
from scratchformers.reference.generate import generate
from scratchformers.reference.model import GPT
from scratchformers.reference.np_positional import sinusoidal_positions
from scratchformers.reference.numpy_gpt import generate_greedy, gpt2_forward, params_from_state_dict


def random_state_dict(
    gen: torch.Generator, vocab: int, max_len: int, c: int, num_layers: int, learned: bool, tied: bool, bias: bool
) -> dict[str, torch.Tensor]:
    """GPT-2 keys with random float64 values (large enough that a wrong formula shows in the logits)."""

    def rand(*shape: int, mean: float = 0.0) -> torch.Tensor:
        return mean + 0.3 * torch.randn(*shape, generator=gen, dtype=torch.float64)

    def affine(prefix: str, n_out: int, n_in: int | None = None) -> dict[str, torch.Tensor]:
        weight = rand(n_out) + 1 if n_in is None else rand(n_out, n_in)
        return {prefix + ".weight": weight, **({prefix + ".bias": rand(n_out)} if bias else {})}

    sd = {"transformer.wte.weight": rand(vocab, c)}
    if learned:
        sd["transformer.wpe.weight"] = rand(max_len, c)
    for i in range(num_layers):
        h = f"transformer.h.{i}"
        sd |= affine(f"{h}.ln_1", c) | affine(f"{h}.attn.c_attn", 3 * c, c) | affine(f"{h}.attn.c_proj", c, c)
        sd |= affine(f"{h}.ln_2", c) | affine(f"{h}.mlp.c_fc", 4 * c, c) | affine(f"{h}.mlp.c_proj", c, 4 * c)
    sd |= affine("transformer.ln_f", c)
    if not tied:
        sd["lm_head.weight"] = rand(vocab, c)
    return sd


def torch_gpt2(ids: torch.Tensor, sd: dict[str, torch.Tensor], num_heads: int, num_layers: int, max_len: int) -> torch.Tensor:
    """GPT-2 from its formulas with torch.nn.functional: pre-norm blocks, causal SDPA, GELU tanh, tied head."""
    (B, T), c = ids.shape, sd["transformer.wte.weight"].shape[1]
    # without a learned table: the sinusoidal one, itself checked against the paper's formula in test_numpy_blocks
    wpe = sd.get("transformer.wpe.weight", torch.tensor(sinusoidal_positions(max_len, c)))
    x = F.embedding(ids, sd["transformer.wte.weight"]) + wpe[:T]

    def ln(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (c,), sd[name + ".weight"], sd.get(name + ".bias"), eps=1e-5)

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, sd[name + ".weight"], sd.get(name + ".bias"))

    for i in range(num_layers):
        h = f"transformer.h.{i}"
        q, k, v = linear(ln(x, h + ".ln_1"), h + ".attn.c_attn").split(c, dim=-1)
        q, k, v = (z.view(B, T, num_heads, c // num_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, c)
        x = x + linear(y, h + ".attn.c_proj")
        x = x + linear(F.gelu(linear(ln(x, h + ".ln_2"), h + ".mlp.c_fc"), approximate="tanh"), h + ".mlp.c_proj")
    return ln(x, "transformer.ln_f") @ sd.get("lm_head.weight", sd["transformer.wte.weight"]).T


@settings(max_examples=25, deadline=None)
@given(
    num_layers=st.integers(1, 2),
    num_heads=st.integers(1, 3),
    head_dim=st.integers(1, 4),
    vocab=st.integers(2, 12),
    max_len=st.integers(1, 8),
    batch=st.integers(1, 2),
    learned=st.booleans(),
    tied=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_gpt2_forward_matches_functional_torch(
    num_layers, num_heads, head_dim, vocab, max_len, batch, learned, tied, bias, seed, data
) -> None:
    gen = torch.Generator().manual_seed(seed)
    sd = random_state_dict(gen, vocab, max_len, num_heads * head_dim, num_layers, learned, tied, bias)
    t = data.draw(st.integers(1, max_len), label="T")
    ids = torch.randint(0, vocab, (batch, t), generator=gen)

    expected = torch_gpt2(ids, sd, num_heads, num_layers, max_len).numpy()  # (B, T, V)
    params = params_from_state_dict(sd, max_len=max_len)
    logits = gpt2_forward(ids.numpy(), params, num_heads)
    assert logits.dtype == np.float64 and logits.shape == (batch, t, vocab)
    assert np.max(np.abs(logits - expected)) <= 1e-10
    assert np.max(np.abs(gpt2_forward(ids[0].numpy(), params, num_heads) - expected[0])) <= 1e-10  # unbatched (T,)

    sd32 = {key: value.float() for key, value in sd.items()}
    logits32 = gpt2_forward(ids.numpy(), params_from_state_dict(sd32, max_len=max_len), num_heads)
    assert logits32.dtype == np.float32
    assert np.max(np.abs(logits32 - expected)) <= 1e-4 * max(1.0, np.abs(expected).max())


def tiny_model(positional: str, attention: str) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(max_len=8, emb_dim=12, num_layers=2, num_heads=3, vocab_size=23, positional=positional)
    model = GPT(config.replace(attention=attention)).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # move biases and LayerNorm gains off their 0 / 1 initial values
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


@pytest.mark.parametrize("attention", ["reference", "torch_sdpa"])
@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_gpt2_forward_matches_the_torch_model_float32(positional: str, attention: str) -> None:
    model = tiny_model(positional, attention)
    ids = torch.randint(0, 23, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, _ = model(ids)
    params = params_from_state_dict(model.state_dict(), max_len=model.config.max_len)
    logits = gpt2_forward(ids.numpy(), params, num_heads=3)
    assert logits.dtype == np.float32
    assert np.max(np.abs(logits - expected.numpy())) <= 1e-5


def test_generate_greedy_matches_the_torch_model() -> None:
    model = tiny_model("learned", "reference").double()
    prompt = [3, 1, 4, 1, 5]
    expected = generate(model, prompt, max_new_tokens=7, temperature=0, use_cache=False)  # crops past max_len 8
    params = params_from_state_dict(model.state_dict())
    out = generate_greedy(np.array(prompt), params, num_heads=3, n_new=7)
    assert out.tolist() == expected and len(expected) == 12
    batch = generate_greedy(np.array([prompt, prompt[::-1]]), params, num_heads=3, n_new=7)
    assert batch.shape == (2, 12) and batch[0].tolist() == expected


def test_tied_head_and_bad_inputs() -> None:
    model = tiny_model("sinusoidal", "reference")
    sd = model.state_dict()
    params = params_from_state_dict(sd, max_len=8)
    untied = params_from_state_dict({k: v for k, v in sd.items() if k != "lm_head.weight"}, max_len=8)
    assert np.array_equal(untied["lm_head"], params["wte"])
    with pytest.raises(ValueError, match="pass max_len"):
        params_from_state_dict(sd)
    with pytest.raises(ValueError, match="transformer.ln_f.weight"):
        params_from_state_dict({k: v for k, v in sd.items() if k != "transformer.ln_f.weight"}, max_len=8)
    with pytest.raises(ValueError, match="max_len = 8"):
        gpt2_forward(np.zeros(9, dtype=np.int64), params, num_heads=3)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 23\)"):
        gpt2_forward(np.array([0, 23]), params, num_heads=3)
    with pytest.raises(ValueError, match="n_new"):
        generate_greedy(np.array([1]), params, num_heads=3, n_new=-1)
