"""The pre-norm transformer block of GPT-2.

    x = x + Attention(LN₁(x))
    x = x + MLP(LN₂(x))

Normalising *before* each sub-layer (rather than after, as in the original Transformer) keeps the residual
stream an untouched sum of every layer's contribution, which makes deep stacks train stably without warm-up
tricks. The LayerNorm implementation is chosen by ``config.layernorm``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from scratchformers.reference.attention import MultiHeadAttention
from scratchformers.reference.layernorm import LayerNorm, TorchLayerNorm
from scratchformers.reference.mlp import MLP

if TYPE_CHECKING:
    from scratchformers.reference.config import GPTConfig
    from scratchformers.reference.kv_cache import KVCache


def make_layernorm(config: GPTConfig) -> nn.Module:
    """The LayerNorm chosen by ``config.layernorm``; all three hold ``weight`` and ``bias``."""
    if config.layernorm == "reference":
        return LayerNorm(config.emb_dim, eps=config.layer_norm_eps, bias=config.bias)
    if config.layernorm == "torch":
        return TorchLayerNorm(config.emb_dim, eps=config.layer_norm_eps, bias=config.bias)
    from scratchformers.fast.layernorm import LayerNorm as FastLayerNorm
    from scratchformers.fast.runtime import check_fast_available

    check_fast_available("cuda" if torch.cuda.is_available() else "cpu")
    return FastLayerNorm(config.emb_dim, eps=config.layer_norm_eps, bias=config.bias)


class Block(nn.Module):
    """One pre-norm block: attention then MLP, each wrapped in LayerNorm and a residual connection."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = make_layernorm(config)
        self.attn = MultiHeadAttention(config)
        self.ln_2 = make_layernorm(config)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) → (B, T, C), plus the attention weights when ``need_weights``."""
        attended, weights = self.attn(
            self.ln_1(x), attention_mask=attention_mask, kv_cache=kv_cache, layer=layer, need_weights=need_weights
        )
        x = x + attended
        x = x + self.mlp(self.ln_2(x))
        return x, weights
