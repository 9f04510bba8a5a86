"""The plain-torch attention that the flash kernel is checked against, on CPU (test_kernels_attention.py, Triton
interpreter) and on the GPU (test_gpu_parity.py): softmax(scale · Q Kᵀ, masked) V with the reference's mask."""
from __future__ import annotations

import torch

from scratchformers.reference.attention import visibility_mask


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
    """softmax(scale · Q Kᵀ, masked) V (B, H, Tq, D) in plain torch; rows with no visible key give 0."""
    return reference_probs(q, k, causal, visible_keys, scale) @ v
