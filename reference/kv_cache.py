"""A key/value cache for fast autoregressive decoding.

Without a cache, generating token t+1 re-runs the model over all t previous tokens: O(t) work per layer for
positions whose keys and values have not changed. The cache keeps every layer's K and V, (B, H, T, D), in
preallocated buffers of ``max_len`` positions, so each new token only computes its own q, k, v and attends to
the stored keys. The results are identical to the no-cache path (tested), only cheaper.

The buffers hold what the layers produce: they are allocated at the first ``update``, in the dtype and on the
device of those first keys. Under ``torch.autocast`` that is the autocast dtype (bf16 keys and values from a
model whose weights are fp32), so attention always meets q, k and v of one dtype.
"""
from __future__ import annotations

import torch


class KVCache:
    """Keys and values for ``num_layers`` layers: (num_layers, B, H, max_len, D) each, allocated at first use."""

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, max_len: int, head_dim: int) -> None:
        self.shape = (num_layers, batch_size, num_heads, max_len, head_dim)
        self.max_len = max_len
        self.keys: torch.Tensor | None = None  # allocated by the first update
        self.values: torch.Tensor | None = None
        self.length = 0  # positions filled in every layer

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, T, D) after the cached positions of ``layer``; return all keys and values so far."""
        start, end = self.length, self.length + k.shape[-2]
        if end > self.max_len:
            raise ValueError(f"KV cache is full: {start} cached + {k.shape[-2]} new > max_len {self.max_len}")
        if k.dtype != v.dtype:
            raise TypeError(f"keys and values must share one dtype; got {k.dtype} and {v.dtype}")
        if self.keys is None:
            self.keys = torch.zeros(self.shape, dtype=k.dtype, device=k.device)
            self.values = torch.zeros(self.shape, dtype=k.dtype, device=k.device)
        elif (k.dtype, k.device) != (self.keys.dtype, self.keys.device):
            raise TypeError(
                f"the KV cache holds {self.keys.dtype} keys on {self.keys.device} but this step produced {k.dtype} on "
                f"{k.device}: decode with the same autocast setting (and device) as the prefill, or reset() the cache"
            )
        self.keys[layer, :, :, start:end] = k
        self.values[layer, :, :, start:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, num_tokens: int) -> None:
        """Mark ``num_tokens`` new positions as filled (called once per forward, after every layer)."""
        self.length += num_tokens

    def reset(self) -> None:
        """Forget everything cached; the next update allocates the buffers again, in the dtype it brings."""
        self.keys = self.values = None
        self.length = 0
