"""Multi-head attention in torch, plugged into GPT-2 as one of its attention backends.

GPT-2's attention layer (reference/model.py, MultiHeadAttention) projects x to q, k and v, splits them into H heads
of D = C / H features, calls an attention backend on all heads at once, merges the heads and projects back. Write
the backend, in torch, so that the model can run on it:

``attention(q, k, v, causal=False, attention_mask=None, dropout_p=0.0)`` returns ``(out, weights)``:

    weights = softmax(q k^T / sqrt(D) + M)      (B, H, Tq, Tk), M hides future keys and padding keys
    out = dropout(weights, dropout_p) v         (B, H, Tq, D)

    q: (B, H, Tq, D), k, v: (B, H, Tk, D), attention_mask: (B, Tk) of 1 (real) and 0 (padding), or None

* causal is bottom-right aligned (query i at position Tk - Tq + i): with a KV cache the model sends Tq = 1 new query
  against all the cached keys.
* A query that sees no key gets zero weights and a zero output.
* dropout_p: drop weights with torch.nn.functional.dropout before multiplying by v (the model passes 0.0 when it is
  not training); return the weights from before dropout.
* Use torch operations only, so that gradients flow to q, k and v.

The checks register your function as a backend (scratchformers.reference.backends.register), build the model with
it and compare GPT-2's logits, with padding and with a KV cache, with the reference backend's.

About 10 lines. The library's version is reference/attention.py (scaled_dot_product_attention); try it yourself
first. Check it with

    scratchformers check multihead_attention multihead_attention.py
"""
import torch


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
              attention_mask: torch.Tensor | None = None, dropout_p: float = 0.0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, weights) of scaled dot-product attention over all heads at once."""
    raise NotImplementedError
