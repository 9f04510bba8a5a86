"""Attention heatmaps: which earlier tokens does each head look at?

Row i of a head's weight matrix is the distribution softmax(qᵢ Kᵀ / √d) over the keys j ≤ i that query i reads
from; it sums to 1 and is 0 above the diagonal (the causal mask). Plotting it for a prompt shows what a head
does: a diagonal of "previous token" heads, a first column of heads that park their attention on the first
token, vertical stripes for heads that track one word.

The figures are built with matplotlib's object-oriented ``Figure`` API, which renders with the non-interactive
Agg backend and never touches pyplot's global state, so this works on a headless server and inside notebooks.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import seaborn as sns
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scratchformers.encoding import gpt2_encoding
from scratchformers.reference.generate import Tokenizer, encode_prompt
from scratchformers.reference.model import GPT


def token_labels(ids: Sequence[int], tokenizer: Tokenizer) -> list[str]:
    """One readable label per token: spaces shown as ␣ and newlines as ↵, so " the" and "the" differ."""
    return [tokenizer.decode([i]).replace(" ", "␣").replace("\n", "↵") for i in ids]


def _reference_twin(model: GPT) -> GPT:
    """``model`` itself if it uses reference attention, else a copy that does (same weights, same outputs)."""
    if model.config.attention == "reference":
        return model
    twin = GPT(model.config.replace(attention="reference"))
    twin.load_state_dict(model.state_dict())
    return twin.to(model.transformer.wte.weight.device)


def _check_indices(name: str, chosen: Sequence[int] | None, count: int) -> list[int]:
    if chosen is None:
        return list(range(count))
    chosen = list(chosen)
    if not chosen or any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < count for i in chosen):
        raise ValueError(f"{name} must be a non-empty list of integers in [0, {count}), got {chosen!r}")
    return chosen


@torch.no_grad()
def attention_weights(
    model: GPT, ids: Sequence[int], layers: Sequence[int] | None = None, heads: Sequence[int] | None = None
) -> torch.Tensor:
    """Attention weights of a single prompt: (len(layers), len(heads), T, T) on the CPU, default all of them."""
    layers = _check_indices("layers", layers, model.config.num_layers)
    heads = _check_indices("heads", heads, model.config.num_heads)
    if not 0 < len(ids) <= model.config.max_len:
        raise ValueError(f"the prompt must have 1 to max_len={model.config.max_len} tokens, got {len(ids)}")
    twin = _reference_twin(model)
    was_training = twin.training
    twin.eval()
    try:
        idx = torch.tensor([list(ids)], device=twin.transformer.wte.weight.device)  # (1, T)
        _, per_layer = twin.forward_with_attention(idx)  # L × (1, H, T, T)
    finally:
        twin.train(was_training)
    stacked = torch.stack([per_layer[layer][0, heads] for layer in layers])  # (len(layers), len(heads), T, T)
    return stacked.float().cpu()


def plot_attention(
    model: GPT,
    prompt: str | Sequence[int],
    tokenizer: Tokenizer | None = None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    path: str | Path | None = None,
) -> tuple[Figure, torch.Tensor]:
    """Heatmaps of the attention weights of ``layers`` × ``heads`` (default: all) for ``prompt``.

    One panel per (layer, head): queries on the vertical axis, keys on the horizontal one, both labelled with the
    prompt's tokens. ``prompt`` is a string (encoded with ``tokenizer``, GPT-2's by default) or token ids. Saves a
    PNG to ``path`` when given. Returns the figure and the plotted weights (len(layers), len(heads), T, T).
    """
    ids = encode_prompt(prompt, tokenizer) if isinstance(prompt, str) else list(prompt)
    if ids and (min(ids) < 0 or max(ids) >= model.config.vocab_size):
        raise ValueError(
            f"token ids must be in [0, {model.config.vocab_size}) for this model, got ids from {min(ids)} to "
            f"{max(ids)}; was the prompt encoded with a tokenizer of a different vocabulary?"
        )
    layers = _check_indices("layers", layers, model.config.num_layers)
    heads = _check_indices("heads", heads, model.config.num_heads)
    weights = attention_weights(model, ids, layers, heads)
    labels = token_labels(ids, tokenizer if tokenizer is not None else gpt2_encoding())

    cell = 2.5 + 0.25 * len(ids)  # inches per panel, room for the tick labels
    figure = Figure(figsize=(cell * len(heads) + 1.0, cell * len(layers) + 0.5), layout="constrained")
    FigureCanvasAgg(figure)  # attach a renderer once; without it seaborn builds one per tick label (5x slower)
    axes = figure.subplots(len(layers), len(heads), squeeze=False)
    for row, layer in enumerate(layers):
        for col, head in enumerate(heads):
            ax = axes[row][col]
            sns.heatmap(
                weights[row, col].numpy(),
                ax=ax,
                xticklabels=labels,
                yticklabels=labels,
                vmin=0.0,
                vmax=1.0,
                cmap="viridis",
                square=True,
                cbar=col == len(heads) - 1,
            )
            ax.set_title(f"layer {layer}, head {head}")
            ax.set_xlabel("key (attended to)")
            ax.set_ylabel("query (attending)")
            ax.tick_params(axis="x", labelrotation=90, labelsize=8)
            ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    figure.suptitle("Attention weights (rows sum to 1; causal: nothing above the diagonal)")
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure, weights
