"""GELU, the Gaussian Error Linear Unit (Hendrycks & Gimpel, 2016).

    exact:  GELU(x) = x · Φ(x) = x · ½ · (1 + erf(x / √2))
    tanh:   GELU(x) ≈ ½ · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))   (the form GPT-2 was trained with)

``GELU`` spells the formula in torch ops; ``TorchGELU`` calls ``F.gelu``, the same function in one fused kernel
(each op of the spelled-out form reads and writes the whole (B, T, 4C) activation, and autograd saves the
intermediates). Neither holds parameters, so the choice (``GPTConfig.gelu``) leaves the ``state_dict`` unchanged.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x: torch.Tensor, approximate: Literal["tanh", "none"] = "tanh") -> torch.Tensor:
    """GELU of ``x``; ``approximate="tanh"`` is GPT-2's form, ``"none"`` the exact erf form."""
    if approximate == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    raise ValueError(f"approximate must be 'tanh' or 'none', got {approximate!r}")


class GELU(nn.Module):
    """Module form of :func:`gelu`."""

    def __init__(self, approximate: Literal["tanh", "none"] = "tanh") -> None:
        super().__init__()
        if approximate not in ("tanh", "none"):
            raise ValueError(f"approximate must be 'tanh' or 'none', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class TorchGELU(GELU):
    """The same function computed by PyTorch's ``F.gelu``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate=self.approximate)
