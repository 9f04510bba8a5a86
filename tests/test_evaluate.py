"""evaluate_loss(): agrees with the model's own loss, with a token-by-token computation, and with log V for a
model that knows nothing; windows cover every target once; bad input is a clear error."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scratchformers.reference.config import get_config
from scratchformers.reference.evaluate import evaluate_loss, windows
from scratchformers.reference.model import GPT

VOCAB = 53
MAX_LEN = 12


def small_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    config = get_config("gpt-mini", vocab_size=VOCAB, num_layers=2, num_heads=2, emb_dim=32, max_len=MAX_LEN)
    model = GPT(config)
    torch.nn.init.normal_(model.transformer.wte.weight, std=0.5)  # a non-trivial distribution to score
    return model.eval()


def stream(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (length,), generator=torch.Generator().manual_seed(seed))


def nll_with_context(model: GPT, tokens: torch.Tensor, target: int, context: int) -> float:
    """−log p(tokens[target] | the ``context`` tokens before it), one forward pass for one token."""
    window = tokens[target - context : target][None]  # (1, context)
    logits, _ = model(window)
    return F.cross_entropy(logits[0, -1:], tokens[target : target + 1]).item()


def test_one_window_equals_the_models_own_loss() -> None:
    model, tokens = small_model(), stream(MAX_LEN + 1)
    _, loss = model(tokens[None, :-1], targets=tokens[None, 1:])
    result = evaluate_loss(model, tokens)
    assert result["tokens"] == MAX_LEN
    assert result["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(loss.item()), rel=1e-6)


def test_non_overlapping_windows_token_by_token() -> None:
    model, tokens = small_model(), stream(3 * MAX_LEN + 6)
    # Window w feeds inputs w·L … w·L + L − 1: target t (t ≥ 1) sees the (t − 1) mod L + 1 tokens before it.
    expected = np.mean([nll_with_context(model, tokens, t, (t - 1) % MAX_LEN + 1) for t in range(1, len(tokens))])
    result = evaluate_loss(model, tokens, batch_size=2)
    assert result["tokens"] == len(tokens) - 1
    assert result["loss"] == pytest.approx(expected, rel=1e-5)


def test_stride_one_gives_every_token_its_full_context() -> None:
    model, tokens = small_model(), stream(2 * MAX_LEN + 5)
    expected = np.mean([nll_with_context(model, tokens, t, min(t, MAX_LEN)) for t in range(1, len(tokens))])
    result = evaluate_loss(model, tokens, stride=1)
    assert result["tokens"] == len(tokens) - 1
    assert result["loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("max_len, stride", [(MAX_LEN, None), (5, 2), (7, 7), (4, 1)])
@pytest.mark.parametrize("num_targets", [1, 6, 23])
def test_windows_score_every_target_exactly_once(max_len: int, stride: int | None, num_targets: int) -> None:
    counts = np.zeros(num_targets, dtype=int)
    for begin, end, first_scored in windows(num_targets, max_len, stride or max_len):
        assert 0 < end - begin <= max_len and begin <= first_scored < end
        counts[first_scored:end] += 1
    assert counts.tolist() == [1] * num_targets


def test_batch_size_and_input_kind_do_not_change_the_result() -> None:
    model, tokens = small_model(), stream(50)
    reference = evaluate_loss(model, tokens, max_len=8, stride=3, batch_size=1)
    for batch_size, kind in [(3, tokens.tolist()), (64, tokens.numpy()), (8, tokens)]:
        result = evaluate_loss(model, kind, max_len=8, stride=3, batch_size=batch_size)
        assert result["tokens"] == reference["tokens"]
        assert result["loss"] == pytest.approx(reference["loss"], rel=1e-6)


def test_a_model_that_knows_nothing_has_perplexity_v() -> None:
    model = small_model()
    torch.nn.init.zeros_(model.transformer.wte.weight)  # tied LM head = 0 → uniform logits
    result = evaluate_loss(model, stream(40))
    assert result["loss"] == pytest.approx(math.log(VOCAB), rel=1e-6)
    assert result["perplexity"] == pytest.approx(VOCAB, rel=1e-5)


def test_training_mode_is_restored_and_no_gradient_is_built() -> None:
    model = small_model().train()
    evaluate_loss(model, stream(20))
    assert model.training
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    "tokens, kwargs, message",
    [
        ([5], {}, "at least 2"),
        ([], {}, "at least 2"),
        ([[1, 2], [3, 4]], {}, "1-D"),
        ([0.5, 1.5], {}, "integer"),
        ([1, VOCAB], {}, "token ids"),
        ([1, 2, 3], dict(max_len=MAX_LEN + 1), "max_len"),
        ([1, 2, 3], dict(max_len=4, stride=5), "stride"),
        ([1, 2, 3], dict(stride=0), "stride"),
        ([1, 2, 3], dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_input_is_a_clear_error(tokens: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_loss(small_model(), tokens, **kwargs)
