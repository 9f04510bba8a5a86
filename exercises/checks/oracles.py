"""The answers everything is checked against: plain torch (and its autograd) or the paper's formula, spelled out.

The test suite and ``scratchformers check`` both import them from here, so a learner's code is held to exactly what
the library's own code is held to. Masks follow the library's conventions (``reference/attention.py``): causal is
bottom-right aligned (query i sits at position Tk - Tq + i), an ``attention_mask`` (B, Tk) holds 1 for a real token
and 0 for padding, and a query that sees no key at all gets zero weights and a zero output.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from scratchformers.reference.attention import visibility_mask


def softmax(x: torch.Tensor) -> torch.Tensor:
    """torch.softmax over the last dim, with rows that are all -inf mapped to zeros instead of NaN (the kernels'
    convention: a fully masked row attends to nothing)."""
    empty = (x == float("-inf")).all(-1, keepdim=True)
    return torch.softmax(x.masked_fill(empty, 0.0), dim=-1).masked_fill(empty, 0.0)


def masked_softmax(x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the entries where ``allowed`` is True (broadcast to x): F.softmax with the others at the most
    negative float, then fully masked rows multiplied to zero."""
    y = F.softmax(x.masked_fill(~allowed, torch.finfo(x.dtype).min), dim=-1)
    return y * allowed.any(dim=-1, keepdim=True)


def padding_mask(rng: np.random.Generator, batch: int, num_keys: int) -> np.ndarray:
    """(B, Tk) with 1 = real token: each row has a random number of real tokens (0 … Tk), padded left or right."""
    mask = np.zeros((batch, num_keys), dtype=np.int64)
    for b in range(batch):
        n_real = rng.integers(0, num_keys + 1)
        if rng.random() < 0.5:
            mask[b, :n_real] = 1
        else:
            mask[b, num_keys - n_real:] = 1
    return mask


def allowed(batch: int, num_queries: int, num_keys: int, causal: bool, attention_mask: np.ndarray | None
            ) -> torch.Tensor:
    """The "may attend" mask (B, 1, Tq, Tk) of the torch reference, all True where nothing is masked."""
    mask = visibility_mask(num_queries, num_keys, causal=causal,
                           attention_mask=None if attention_mask is None else torch.as_tensor(attention_mask))
    everything = torch.ones(batch, 1, num_queries, num_keys, dtype=torch.bool)
    return everything if mask is None else mask.expand(batch, 1, num_queries, num_keys)


def reference_probs(q: torch.Tensor, k: torch.Tensor, causal: bool, visible_keys: torch.Tensor | None,
                    scale: float) -> torch.Tensor:
    """The attention probabilities P (B, H, Tq, Tk); visible_keys: (B, Tk) bool or None. Causal is bottom-right
    aligned (query i at position Tk - Tq + i). Rows with no visible key are 0."""
    if visible_keys is None:
        visible_keys = torch.ones(q.shape[0], k.shape[2], dtype=torch.bool, device=q.device)
    visible = visibility_mask(q.shape[2], k.shape[2], causal=causal, attention_mask=visible_keys, device=q.device)
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, Tq, Tk)
    has_key = visible.any(-1, keepdim=True)  # (B, 1, Tq, 1)
    scores = scores.masked_fill(~visible, float("-inf")).masked_fill(~has_key, 0.0)  # empty rows: no NaN
    return torch.softmax(scores, dim=-1) * visible


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                        visible_keys: torch.Tensor | None, scale: float) -> torch.Tensor:
    """softmax(scale · Q Kᵀ, masked) V (B, H, Tq, D) in plain torch; rows with no visible key give 0. The flash
    kernels are checked against it, on the CPU under the Triton interpreter and on the GPU."""
    return reference_probs(q, k, causal, visible_keys, scale) @ v


def sinusoidal_positions(max_len: int, dim: int) -> np.ndarray:
    """The (max_len, dim) table of Vaswani et al. (2017), one number at a time as the paper writes it:
    PE[pos, 2i] = sin(pos / 10000^(2i/d)) and PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."""
    table = np.zeros((max_len, dim))
    for pos in range(max_len):
        for j in range(dim):
            angle = pos / 10000 ** (2 * (j // 2) / dim)
            table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table
