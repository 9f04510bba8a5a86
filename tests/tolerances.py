"""Tolerances shared by the kernel parity tests (see tests/test_kernels_attention.py for their derivation).

* float32: the kernels must match a float64 reference to ``FP32_ATOL`` absolute.
* float16 / bfloat16: at most ``HALF_FACTOR`` times the error torch itself makes computing the same reference in
  that dtype, plus one storage quantum of the largest value, plus ``FLOOR`` for quantities that are exactly 0.
"""
from __future__ import annotations

import torch

FP32_ATOL = 1e-4
HALF_FACTOR = 2.0
FLOOR = 1e-5


def half_tolerance(torch_half: torch.Tensor, exact: torch.Tensor) -> float:
    """Allowed max abs error in a half dtype: 2x torch's own error in that dtype, plus one storage quantum of the
    largest value, plus FLOOR."""
    quantum = torch.finfo(torch_half.dtype).eps * exact.abs().max().item()
    return HALF_FACTOR * (torch_half.double() - exact).abs().max().item() + quantum + FLOOR
