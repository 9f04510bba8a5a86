"""The position-wise feed-forward network of a transformer block.

    MLP(x) = W₂ · GELU(W₁ x + b₁) + b₂,   W₁: C → F,  W₂: F → C  (C = model_dim, F = mlp_dim = 4C in GPT-2)

Every position is transformed independently; attention is the only place where positions exchange information.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from scratchformers.reference.gelu import GELU

if TYPE_CHECKING:
    from scratchformers.reference.config import GPTConfig


class MLP(nn.Module):
    """``c_fc`` (C → F), GELU (tanh form), ``c_proj`` (F → C), dropout: GPT-2's names and layout."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.model_dim, config.mlp_dim, bias=config.bias)
        self.gelu = GELU("tanh")
        self.c_proj = nn.Linear(config.mlp_dim, config.model_dim, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)
