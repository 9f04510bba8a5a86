"""The whole model on the fast path: a GPT built from the Triton components and one built from the reference
components, loaded from the same state_dict, give the same logits and gradients (Triton interpreter on CPU)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from scratchformers.reference.config import GPTConfig
from scratchformers.reference.generate import generate
from scratchformers.reference.model import GPT

SMALL = dict(vocab_size=61, max_len=24, num_layers=2, num_heads=2, emb_dim=32)


def pair(**overrides) -> tuple[GPT, GPT]:
    torch.manual_seed(0)
    reference = GPT(GPTConfig(**SMALL, **overrides))
    fast = GPT(GPTConfig(**SMALL, **overrides, attention="fast", layernorm="fast"))
    fast.load_state_dict(reference.state_dict())
    return reference, fast


def test_fast_model_has_the_reference_state_dict_keys() -> None:
    reference, fast = pair()
    assert reference.state_dict().keys() == fast.state_dict().keys()


@pytest.mark.interpreter
def test_fast_model_matches_reference_logits_and_gradients() -> None:
    reference, fast = pair()
    idx, targets = torch.randint(0, 61, (2, 2, 19))
    mask = torch.ones(2, 19, dtype=torch.long)
    mask[1, 11:] = 0  # right padding, as in a padded batch
    targets[1, 11:] = -1
    losses = []
    for model in (reference, fast):
        logits, loss = model(idx, targets, attention_mask=mask)
        loss.backward()
        losses.append((logits, loss))
    torch.testing.assert_close(losses[1][0], losses[0][0], atol=1e-4, rtol=0)
    torch.testing.assert_close(losses[1][1], losses[0][1], atol=1e-5, rtol=0)
    for (name, p), q in zip(reference.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.interpreter
def test_fast_model_trains_like_the_reference() -> None:
    reference, fast = pair()
    data = torch.randint(0, 61, (4, 17))
    curves = []
    for model in (reference, fast):
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        curve = []
        for _ in range(5):
            _, loss = model(data[:, :-1], data[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.append(loss.item())
        curves.append(curve)
    assert curves[0][-1] < curves[0][0]
    assert curves[1] == pytest.approx(curves[0], abs=1e-4)


@pytest.mark.interpreter
def test_fast_kv_cache_decoding_matches_reference_generation() -> None:
    reference, fast = pair()
    prompt = [3, 1, 4, 1, 5]
    expected = generate(reference, prompt, max_new_tokens=8, temperature=0)
    assert generate(fast, prompt, max_new_tokens=8, temperature=0, use_cache=True) == expected


def test_selecting_fast_without_gpu_or_interpreter_is_one_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("with CUDA the fast path is available")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = (
        "from scratchformers.reference.config import GPTConfig\n"
        "from scratchformers.reference.model import GPT\n"
        "GPT(GPTConfig(vocab_size=10, max_len=8, num_layers=1, num_heads=1, emb_dim=8, attention='fast'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "TRITON_INTERPRET=1" in result.stderr and "CUDA" in result.stderr


@pytest.mark.gpu
def test_gpt_mini_training_curves_match_on_gpu() -> None:
    """A few hundred steps of gpt-mini on character-level Shakespeare: fast and reference loss curves agree."""
    from scratchformers.train.data import shakespeare
    from scratchformers.train.tokenizers import CharTokenizer

    text = shakespeare("tiny")
    tokenizer = CharTokenizer.from_text(text)
    data = torch.tensor(tokenizer.encode(text), device="cuda")
    config = GPTConfig(num_layers=6, num_heads=6, emb_dim=192, max_len=256, vocab_size=tokenizer.vocab_size)
    batches = torch.Generator(device="cpu").manual_seed(0)
    starts = torch.randint(0, len(data) - 257, (300, 16), generator=batches)
    curves = []
    for backends in (dict(attention="reference", layernorm="reference"), dict(attention="fast", layernorm="fast")):
        torch.manual_seed(0)
        model = GPT(config.replace(**backends)).cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        curve = []
        for step_starts in starts:
            window = torch.stack([data[s : s + 257] for s in step_starts.tolist()])
            _, loss = model(window[:, :-1], window[:, 1:])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            curve.append(loss.item())
        curves.append(torch.tensor(curve))
    reference, fast = curves
    assert reference[-20:].mean() < 2.8  # it learned something
    assert (fast - reference).abs().max() < 0.05


def test_fast_model_runs_on_meta_tensors_as_sdpa_does() -> None:
    """Shapes only (no kernel runs, no interpreter needed): a model built on the meta device gives meta logits and
    gradients, as with F.scaled_dot_product_attention."""
    from scratchformers.fast.attention import flash_attention

    q = torch.empty(2, 3, 5, 8, device="meta", requires_grad=True)
    out = flash_attention(q, q, q, causal=True)
    out.sum().backward()
    assert (out.shape, out.device.type, q.grad.shape) == ((2, 3, 5, 8), "meta", (2, 3, 5, 8))
    with torch.device("meta"):
        model = GPT(GPTConfig(**SMALL, attention="fast", layernorm="fast"))
        logits, loss = model(torch.zeros(2, 7, dtype=torch.long), torch.zeros(2, 7, dtype=torch.long))
    assert logits.shape == (2, 7, 61) and loss.device.type == "meta"
