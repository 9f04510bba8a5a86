"""Scaled dot-product attention, the torch reference, and its masks.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d + M) V

``M`` is 0 where a query may look at a key and −∞ where it may not. Two masks combine (:func:`visibility_mask`):

- causal: query i may only see keys j ≤ i. When there are fewer queries than keys (decoding with a KV cache,
  Tq = 1) the queries are the *last* Tq positions, so query i sits at absolute position Tk − Tq + i
  ("bottom-right" alignment). With more queries than keys, the first Tq − Tk queries sit before every key and
  see nothing.
- padding: ``attention_mask`` (B, Tk), 1 for a real token and 0 for padding (the Hugging Face convention); no
  query looks at a padding key.

A query that can see no key at all (a fully padded sequence) gets zero weights and a zero output, by definition;
the arithmetic below never produces NaN for it. Two implementations live here, both with the signature of an
attention backend (see backends.py): :func:`scaled_dot_product_attention` materialises the (Tq, Tk) weights and
returns them, :func:`torch_sdpa_attention` calls ``F.scaled_dot_product_attention``. The fast path's flash
attention (``attention="fast"``) is a third. The heads around them, GPT-2's ``MultiHeadAttention``, are in model.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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


def torch_sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    attention_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, None]:
    """The same attention by ``F.scaled_dot_product_attention`` (fused kernels, no weights returned): (B, H, Tq, D),
    None. A query that sees no key gets a zero output, as in :func:`scaled_dot_product_attention`."""
    if causal and attention_mask is None and q.shape[-2] == k.shape[-2]:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True), None
    mask = visibility_mask(q.shape[-2], k.shape[-2], causal=causal, attention_mask=attention_mask, device=q.device)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, H, Tq, D)
    if mask is not None:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # rows with no visible key → 0, as defined
    return out, None
