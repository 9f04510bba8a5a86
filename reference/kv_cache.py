"""A key/value cache for fast autoregressive decoding.

Without a cache, generating token t+1 re-runs the model over all t previous tokens: O(t) work per layer for
positions whose keys and values have not changed. The cache keeps every layer's K and V, (B, H, T, D), in
preallocated buffers of ``max_len`` positions, so each new token only computes its own q, k, v and attends to
the stored keys. The results are identical to the no-cache path (tested), only cheaper.
"""
from __future__ import annotations

import torch


class KVCache:
    """Preallocated keys and values for ``num_layers`` layers: (num_layers, B, H, max_len, D) each."""

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        max_len: int,
        head_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = (num_layers, batch_size, num_heads, max_len, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0  # positions filled in every layer

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, T, D) after the cached positions of ``layer``; return all keys and values so far."""
        start, end = self.length, self.length + k.shape[-2]
        if end > self.max_len:
            raise ValueError(f"KV cache is full: {start} cached + {k.shape[-2]} new > max_len {self.max_len}")
        self.keys[layer, :, :, start:end] = k
        self.values[layer, :, :, start:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, num_tokens: int) -> None:
        """Mark ``num_tokens`` new positions as filled (called once per forward, after every layer)."""
        self.length += num_tokens

    def reset(self) -> None:
        """Forget everything cached (the buffers are reused)."""
        self.length = 0
