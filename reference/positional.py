"""Positional encodings: how a model that sees a *set* of tokens learns their *order*.

Sinusoidal (Vaswani et al., 2017), fixed, no parameters:

    PE[pos, 2i]   = sin(pos / 10000^(2i / d))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d))

Each pair of dimensions is a rotation at its own frequency, so PE[pos + k] is a linear function of PE[pos].

Learned (GPT-2): a trainable table of ``max_len`` vectors, one per position, initialised like the token table.
Both modules map positions (T,) to vectors (T, d) that are added to the token embeddings.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_table(max_len: int, dim: int) -> torch.Tensor:
    """The (max_len, dim) sinusoidal table; odd ``dim`` drops the last cosine column."""
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (L, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))  # (⌈d/2⌉,)
    table = torch.zeros(max_len, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoidal encodings (a buffer, not saved in the ``state_dict``)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]  # (T, d)


class LearnedPositionalEncoding(nn.Module):
    """A trainable (max_len, dim) table; its parameter is ``weight`` like ``nn.Embedding`` (GPT-2's ``wpe``)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, dim))
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return F.embedding(positions, self.weight)  # (T, d)
