"""Attention heatmaps: which earlier tokens does each head look at?

Row i of a head's weight matrix is the distribution softmax(qᵢ Kᵀ / √d) over the keys j ≤ i that query i reads
from; it sums to 1 and is 0 above the diagonal (the causal mask). Plotting it for a prompt shows what a head
does: a diagonal of "previous token" heads, a first column of heads that park their attention on the first
token, vertical stripes for heads that track one word.

``plot_flash_attention`` draws what the flash kernel does instead (from its NumPy twin,
``reference/np_flash_attention.py``): which key blocks each query block visits, with or without a mask, or skips,
and how the online softmax of one query row converges to the true softmax block by block.

The figures are built with matplotlib's object-oriented ``Figure`` API, which renders with the non-interactive
Agg backend and never touches pyplot's global state, so this works on a headless server and inside notebooks.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from scratchformers.reference.generate import encode_prompt
from scratchformers.reference.gpt2_encoding import gpt2_encoding
from scratchformers.reference.model import GPT
from scratchformers.reference.np_flash_attention import LOG2E, FlashTrace, flash_attention_forward
from scratchformers.reference.tokenizer import Tokenizer


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


# ----------------------------------------------------------------------------------------------------------------------
# Flash attention: the block schedule and the online softmax
# ----------------------------------------------------------------------------------------------------------------------

SCHEDULE_COLOURS = {FlashTrace.SKIPPED: "#f0f0f0", FlashTrace.MASKED: "#f4a261", FlashTrace.FULL: "#2a9d8f"}


def plot_block_schedule(trace: FlashTrace, ax, bh: int = 0) -> None:
    """Draw on ``ax`` the key blocks (across) each query block (down) visited without a mask, with one, or skipped,
    over the queries' exact field of view (shaded: the pairs that may attend)."""
    table = trace.schedule(bh)
    rows, cols = table.shape
    colours = ListedColormap([SCHEDULE_COLOURS[c] for c in (trace.SKIPPED, trace.MASKED, trace.FULL)])
    ax.imshow(table, cmap=colours, vmin=0, vmax=2, interpolation="nearest", aspect="auto",
              extent=(0, cols * trace.block_n, rows * trace.block_m, 0))
    ax.imshow(np.where(trace.visible(bh), 0.25, 0.0), cmap="Greys", vmin=0, vmax=1, alpha=0.5, aspect="auto",
              interpolation="nearest", extent=(0, trace.Tk, trace.Tq, 0))
    for x in range(0, cols * trace.block_n + 1, trace.block_n):
        ax.axvline(x, color="white", linewidth=2)
    for y in range(0, rows * trace.block_m + 1, trace.block_m):
        ax.axhline(y, color="white", linewidth=2)
    ax.set_xlim(0, trace.Tk)
    ax.set_ylim(trace.Tq, 0)
    ax.set_xlabel(f"key position (blocks of {trace.block_n})")
    ax.set_ylabel(f"query position (blocks of {trace.block_m})")
    patches = [Patch(color=SCHEDULE_COLOURS[trace.FULL], label="visited, no mask"),
               Patch(color=SCHEDULE_COLOURS[trace.MASKED], label="visited, masked"),
               Patch(facecolor=SCHEDULE_COLOURS[trace.SKIPPED], edgecolor="grey", label="skipped"),
               Patch(color="grey", alpha=0.4, label="may attend")]
    ax.legend(handles=patches, loc="upper right", fontsize=8, framealpha=0.9)
    ax.set_title("Block schedule: one program per query block")


def online_softmax_estimates(trace: FlashTrace, scores: np.ndarray, row: int, bh: int = 0) -> np.ndarray:
    """(steps, Tk) the probabilities of query ``row`` as its program knows them after each key block:
    exp2(s_j - m_i) / l_i for the visible keys seen so far, 0 elsewhere. ``scores`` (Tk,) are the row's base-2
    scores. After the last block this is the true softmax."""
    starts, m, l = trace.history(row, bh)
    visible = trace.visible(bh)[row]  # (Tk,)
    estimates = np.zeros((len(starts), trace.Tk))
    for t, (start, m_t, l_t) in enumerate(zip(starts, m, l)):
        seen = visible & (np.arange(trace.Tk) < start + trace.block_n)
        estimates[t, seen] = np.exp2(scores[seen] - m_t) / l_t
    return estimates


def plot_flash_attention(Tq: int = 48, Tk: int = 64, block_m: int = 16, block_n: int = 16, causal: bool = True,
                         key_len: int | None = None, row: int | None = None, head_dim: int = 16, seed: int = 0,
                         path: str | Path | None = None) -> tuple[Figure, FlashTrace]:
    """The flash kernel at work on random (1, 1, T, head_dim) inputs, run by its NumPy twin.

    Left: the block schedule (:func:`plot_block_schedule`). Middle: query ``row`` (default: the last one, which sees
    the most keys) after each key block: its probabilities exp2(s_j - m_i) / l_i over the keys seen so far; a block
    that raises the running max m_i scales the earlier estimates down, and after the last block they are the true
    softmax (dashed). Right: the running max m_i and the log-sum-exp so far, m_i + log2(l_i), reaching the LSE that
    the forward saves for the backward. Saves a PNG to ``path`` when given. Returns the figure and the trace.
    """
    if min(Tq, Tk, block_m, block_n, head_dim) < 1:
        raise ValueError(f"lengths, block sizes and head_dim must be positive, got Tq={Tq}, Tk={Tk}, "
                         f"block_m={block_m}, block_n={block_n}, head_dim={head_dim}")
    if key_len is not None and not 0 <= key_len <= Tk:
        raise ValueError(f"key_len must be in [0, Tk={Tk}], got {key_len}")
    row = Tq - 1 if row is None else row
    if not 0 <= row < Tq:
        raise ValueError(f"row must be a query position in [0, {Tq}), got {row}")
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((1, 1, T, head_dim)) for T in (Tq, Tk, Tk))
    scale = head_dim**-0.5
    lens = None if key_len is None else np.array([key_len])
    _, lse, trace = flash_attention_forward(q, k, v, lens, causal, scale, block_m=block_m, block_n=block_n,
                                      return_trace=True)
    lse = lse[0, 0, row]

    figure = Figure(figsize=(17, 5), layout="constrained")
    schedule_ax, estimates_ax, running_ax = figure.subplots(1, 3, width_ratios=(1.1, 1.5, 1))
    plot_block_schedule(trace, schedule_ax)
    schedule_ax.axhline(row + 0.5, color="royalblue", linewidth=1.5, linestyle=":")

    scores = (q[0, 0, row] @ k[0, 0].T) * scale * LOG2E  # (Tk,) base-2 scores of the chosen row
    estimates = online_softmax_estimates(trace, scores, row)
    starts, m, l = trace.history(row)
    shades = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, max(1, len(starts))))
    for estimate, start, shade in zip(estimates, starts, shades):
        seen = min(start + block_n, Tk)
        estimates_ax.plot(np.arange(seen), estimate[:seen], marker=".", color=shade, label=f"keys < {seen}")
    true = np.where(trace.visible()[row], np.exp2(scores - lse), 0.0)
    estimates_ax.plot(np.arange(Tk), true, color="black", linestyle="--", linewidth=1.2, label="true softmax")
    estimates_ax.set_xlabel("key position")
    estimates_ax.set_ylabel(f"probability (query row {row}, dotted on the left)")
    estimates_ax.set_title("Online softmax: the row's estimate after each key block")
    estimates_ax.legend(fontsize=8)

    steps = np.arange(1, len(starts) + 1)
    running_ax.plot(steps, m, marker="o", label="running max m_i")
    running_ax.plot(steps, m + np.log2(l), marker="s", label="m_i + log2(l_i)")
    running_ax.axhline(lse, color="black", linestyle="--", linewidth=1, label="LSE saved for the backward")
    running_ax.set_xticks(steps)
    running_ax.set_xlabel("key blocks visited")
    running_ax.set_ylabel("base-2 logits")
    running_ax.set_title("Running max and log-sum-exp")
    running_ax.legend(fontsize=8)
    mode = "causal" if causal else "no causal mask"
    padding = "" if key_len is None else f", key length {key_len}"
    figure.suptitle(f"Flash attention, NumPy twin: Tq={Tq}, Tk={Tk}, blocks {block_m}x{block_n}, {mode}{padding}")
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure, trace
