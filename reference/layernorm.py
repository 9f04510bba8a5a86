"""Layer normalisation (Ba et al., 2016), written out.

    y = (x − μ) / sqrt(σ² + ε) · γ + β,   μ and σ² the mean and (biased) variance over the last dimension.

``LayerNorm`` spells the formula in torch ops; ``TorchLayerNorm`` calls ``F.layer_norm``. Both hold the
parameters ``weight`` (γ, ones) and ``bias`` (β, zeros), the same names as ``nn.LayerNorm`` and as the fast
Triton module, so checkpoints move between all three.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension, spelled out (the reference)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)  # (..., C)
        y = x_hat * self.weight
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, bias={self.bias is not None}"


class TorchLayerNorm(LayerNorm):
    """Same parameters, computed by PyTorch's fused ``F.layer_norm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
