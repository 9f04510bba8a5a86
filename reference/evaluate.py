"""Loss and perplexity of a model on a long token stream.

A language model scores a stream x₀ … x_N by predicting every token from the ones before it:

    loss = −(1/N) Σₜ log p(xₜ | x_<t)          perplexity = exp(loss)

Perplexity is the effective number of equally likely tokens the model hesitates between: a model that knows
nothing (uniform over V tokens) has perplexity V. The model sees at most ``max_len`` tokens, so the stream is
cut into windows and every target is scored exactly once:

- non-overlapping windows (``stride = max_len``, the default): fast, but the first tokens of each window
  have little context, which makes the loss a bit pessimistic;
- strided windows (``stride < max_len``): each window starts ``stride`` tokens after the previous one and only
  scores the targets the previous window did not reach, so most tokens see at least ``max_len − stride``
  tokens of context. ``stride = 1`` gives every token the full context (the slowest, most faithful estimate).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from scratchformers.reference.model import GPT

IGNORE = -1  # target id that cross-entropy skips (GPT.forward's convention)


def _as_stream(tokens: Sequence[int] | np.ndarray | torch.Tensor, vocab_size: int) -> torch.Tensor:
    """The token stream as a 1-D int64 tensor, checked."""
    stream = torch.as_tensor(np.asarray(tokens) if not isinstance(tokens, torch.Tensor) else tokens)
    if stream.dim() != 1:
        raise ValueError(f"tokens must be a 1-D stream of token ids, got shape {tuple(stream.shape)}")
    if stream.numel() < 2:
        raise ValueError(
            f"the stream has {stream.numel()} token(s); at least 2 are needed (one to condition on, one to predict)"
        )
    if stream.is_floating_point() or stream.is_complex() or stream.dtype == torch.bool:
        raise ValueError(f"tokens must be integer token ids, got dtype {stream.dtype}")
    if stream.min() < 0 or stream.max() >= vocab_size:
        raise ValueError(
            f"token ids must be in [0, {vocab_size}), got ids from {int(stream.min())} to {int(stream.max())}"
        )
    return stream.long()


def windows(num_targets: int, max_len: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows (begin, end, first_scored) over the inputs x[0:num_targets]; each target is scored once.

    Window w feeds x[begin:end] (at most ``max_len`` tokens) and scores the targets first_scored … end − 1,
    the ones no earlier window has scored.
    """
    result = []
    scored_up_to = 0
    for begin in range(0, num_targets, stride):
        end = min(begin + max_len, num_targets)
        result.append((begin, end, scored_up_to))
        scored_up_to = end
        if end == num_targets:
            break
    return result


@torch.no_grad()
def evaluate_loss(
    model: GPT,
    tokens: Sequence[int] | np.ndarray | torch.Tensor,
    max_len: int | None = None,
    batch_size: int = 8,
    stride: int | None = None,
) -> dict[str, float | int]:
    """Mean next-token cross-entropy of ``model`` over a stream: ``{"loss", "perplexity", "tokens"}``.

    ``tokens`` is a 1-D stream of ids; ``max_len`` the window length (default and maximum: the model's own);
    ``stride`` the step between windows (default ``max_len``: non-overlapping); ``batch_size`` windows are run
    together. ``"tokens"`` counts the scored targets (len(tokens) − 1). The model runs in eval
    mode without gradients; its previous mode is restored.
    """
    model_max_len = model.config.max_len
    max_len = model_max_len if max_len is None else max_len
    if not isinstance(max_len, int) or not 1 <= max_len <= model_max_len:
        raise ValueError(f"max_len must be an integer in [1, the model's max_len={model_max_len}], got {max_len!r}")
    stride = max_len if stride is None else stride
    if not isinstance(stride, int) or not 1 <= stride <= max_len:
        raise ValueError(f"stride must be an integer in [1, max_len={max_len}], got {stride!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")

    device = model.transformer.wte.weight.device
    stream = _as_stream(tokens, model.config.vocab_size).to(device)
    x, y = stream[:-1], stream[1:]  # inputs and the targets they predict, (N,) each
    spans = windows(len(x), max_len, stride)

    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    try:
        for start in range(0, len(spans), batch_size):
            batch = spans[start : start + batch_size]
            width = max(end - begin for begin, end, _ in batch)
            inputs = torch.zeros(len(batch), width, dtype=torch.long, device=device)  # (B, T) padded at the end
            targets = torch.full((len(batch), width), IGNORE, dtype=torch.long, device=device)  # (B, T)
            for row, (begin, end, first_scored) in enumerate(batch):
                inputs[row, : end - begin] = x[begin:end]
                scored = first_scored - begin  # targets before this offset were scored by an earlier window
                targets[row, scored : end - begin] = y[first_scored:end]
            logits, _ = model(inputs)  # (B, T, V); causal, so the end padding never affects real positions
            nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum")
            total_nll += nll.item()
            total_tokens += int((targets != IGNORE).sum())
    finally:
        model.train(was_training)

    loss = total_nll / total_tokens
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": total_tokens}
