"""Scaled dot-product attention and multi-head attention, the torch reference.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d + M) V

``M`` is 0 where a query may look at a key and −∞ where it may not. Two masks combine:

- causal: query i may only see keys j ≤ i. When there are fewer queries than keys (decoding with a KV cache,
  Tq = 1) the queries are the *last* Tq positions, so query i sits at absolute position Tk − Tq + i
  ("bottom-right" alignment). With more queries than keys, the first Tq − Tk queries sit before every key and
  see nothing.
- padding: ``attention_mask`` (B, Tk), 1 for a real token and 0 for padding (the Hugging Face convention); no
  query looks at a padding key.

A query that can see no key at all (a fully padded sequence) gets zero weights and a zero output, by definition;
the arithmetic below never produces NaN for it. Three interchangeable implementations, chosen by name:
``reference`` (this file, materialises the (T, T) weights), ``torch_sdpa`` (``F.scaled_dot_product_attention``)
and ``fast`` (the Triton flash-attention kernel in :mod:`scratchformers.fast.attention`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from scratchformers.reference.config import GPTConfig
    from scratchformers.reference.kv_cache import KVCache

AttentionFn = Callable[..., tuple[torch.Tensor, "torch.Tensor | None"]]


def visibility_mask(
    num_queries: int,
    num_keys: int,
    *,
    causal: bool,
    attention_mask: torch.Tensor | None = None,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Boolean mask, True where query i may attend to key j: (B or 1, 1, Tq, Tk), or None if all visible."""
    mask = None
    if causal:
        offset = num_keys - num_queries
        query_pos = torch.arange(num_queries, device=device).unsqueeze(1) + offset  # (Tq, 1)
        key_pos = torch.arange(num_keys, device=device).unsqueeze(0)  # (1, Tk)
        mask = (key_pos <= query_pos)[None, None]  # (1, 1, Tq, Tk)
    if attention_mask is not None:
        if attention_mask.dim() != 2 or attention_mask.shape[1] != num_keys:
            raise ValueError(
                f"attention_mask must have shape (batch, {num_keys}) with 1 for tokens and 0 for padding, "
                f"got {tuple(attention_mask.shape)}"
            )
        padding = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, Tk)
        mask = padding if mask is None else mask & padding
    return mask


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    attention_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q Kᵀ / √d + M) V, returning the output (B, H, Tq, D) and the weights (B, H, Tq, Tk).

    ``dropout_p`` is applied to the weights (pass 0.0 in evaluation). The returned weights are the ones
    before dropout, so they sum to 1 over the keys (or to 0 for a query that sees no key).
    """
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, Tq, Tk)
    mask = visibility_mask(q.shape[-2], k.shape[-2], causal=causal, attention_mask=attention_mask, device=q.device)
    if mask is not None:
        # The most negative finite number, not −∞: a row with no visible key then softmaxes to a harmless
        # uniform row (zeroed just below) instead of 0/0 = NaN, while exp(min − max) is still exactly 0.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)  # (B, H, Tq, Tk)
    if mask is not None:
        weights = weights * mask
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0.0 else weights
    return dropped @ v, weights  # (B, H, Tq, D), (B, H, Tq, Tk)


def _reference(q, k, v, *, causal, attention_mask, dropout_p, need_weights):
    out, weights = scaled_dot_product_attention(q, k, v, causal=causal, attention_mask=attention_mask, dropout_p=dropout_p)
    return out, weights if need_weights else None


def _torch_sdpa(q, k, v, *, causal, attention_mask, dropout_p, need_weights):
    if need_weights:
        raise ValueError("attention='torch_sdpa' does not return attention weights; use attention='reference'")
    if causal and attention_mask is None and q.shape[-2] == k.shape[-2]:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True), None
    mask = visibility_mask(q.shape[-2], k.shape[-2], causal=causal, attention_mask=attention_mask, device=q.device)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    if mask is not None:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # rows with no visible key → 0, as defined
    return out, None


def _fast(q, k, v, *, causal, attention_mask, dropout_p, need_weights):
    if need_weights:
        raise ValueError(
            "attention='fast' (flash attention) never materialises the attention weights; "
            "use attention='reference' to look at them"
        )
    from scratchformers.fast.attention import flash_attention

    return flash_attention(q, k, v, causal=causal, attention_mask=attention_mask, dropout_p=dropout_p), None


ATTENTION_BACKENDS: dict[str, AttentionFn] = {"reference": _reference, "torch_sdpa": _torch_sdpa, "fast": _fast}


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention as in GPT-2: one fused Q/K/V projection, H heads, an output projection.

    ``c_attn`` maps (B, T, C) to (B, T, 3C), split into Q, K, V and reshaped to (B, H, T, D) with D = C / H;
    each head attends independently; heads are concatenated back to (B, T, C) and mixed by ``c_proj``.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.backend = config.attention
        self.attend = ATTENTION_BACKENDS[config.attention]
        if config.attention == "fast":
            from scratchformers.fast.runtime import check_fast_available

            check_fast_available("cuda" if torch.cuda.is_available() else "cpu")
        self.c_attn = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.emb_dim, config.emb_dim, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, H, T, D)."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) → (B, T, C)."""
        B, H, T, D = x.shape
        return x.transpose(1, 2).contiguous().view(B, T, H * D)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over ``x`` (B, T, C); returns the output (B, T, C) and, if asked, the weights.

        With a ``kv_cache`` the new keys and values are appended to layer ``layer`` of the cache and the queries
        attend to everything cached so far; ``attention_mask`` then covers all cached positions (B, T_cache + T).
        """
        q, k, v = self.c_attn(x).split(x.shape[-1], dim=-1)  # 3 × (B, T, C)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # 3 × (B, H, T, D)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # (B, H, T_cache + T, D)
        dropout_p = self.dropout if self.training else 0.0
        out, weights = self.attend(
            q, k, v, causal=True, attention_mask=attention_mask, dropout_p=dropout_p, need_weights=need_weights
        )
        y = self.resid_dropout(self.c_proj(self.merge_heads(out)))  # (B, T, C)
        return y, weights
