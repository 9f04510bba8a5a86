"""The tolerances of every parity check: the test suite's and ``scratchformers check``'s, defined once here.

* float64: a NumPy block (the textbook's or a learner's) must match torch and its autograd in float64 to
  ``FP64_ATOL`` absolute: the same formula in another order of operations agrees to about 1e-14, so 1e-10 leaves
  room for long sums and still catches any mistake in the formula.
* float32: the kernels must match a float64 reference to ``FP32_ATOL`` absolute (see
  tests/test_kernels_attention.py for the derivation).
* float16 / bfloat16: at most ``HALF_FACTOR`` times the error torch itself makes computing the same reference in
  that dtype, plus one storage quantum of the largest value, plus ``FLOOR`` for quantities that are exactly 0.
* flash attention's dQ and dK, in half precision, may in addition carry the exact effect of one rounding that the
  algorithm makes and torch's does not (:func:`delta_rounding_error`).
"""
from __future__ import annotations

import torch

FP64_ATOL = 1e-10
FP32_ATOL = 1e-4
HALF_FACTOR = 2.0
FLOOR = 1e-5


def half_tolerance(torch_half: torch.Tensor, exact: torch.Tensor) -> float:
    """Allowed max abs error in a half dtype: 2x torch's own error in that dtype, plus one storage quantum of the
    largest value, plus FLOOR."""
    quantum = torch.finfo(torch_half.dtype).eps * exact.abs().max().item()
    return HALF_FACTOR * (torch_half.double() - exact).abs().max().item() + quantum + FLOOR


def delta_rounding_error(probs: torch.Tensor, other: torch.Tensor, grad_out: torch.Tensor, exact_out: torch.Tensor,
                         stored_out: torch.Tensor, scale: float, rows_are_queries: bool = True) -> float:
    """The error that flash attention's backward inherits from the half-precision output it stored (float64 math).

    The backward (FlashAttention-2's, and ours) computes the softmax row term ``Delta_i = dO_i · O_i`` from the output
    O as stored, rounded to bf16/fp16, where torch's autograd sums ``P ⊙ dP`` in full. Rounding O moves Delta_i by
    ``e_i = dO_i · (O_i - Ô_i)``, and through ``dS = P ⊙ (dP - Delta)`` it moves

        dQ_i by  -scale · e_i · Σ_j P_ij K_j          dK_j by  -scale · Σ_i P_ij e_i Q_i

    This returns the max abs of that shift, measured from the actual stored output, not guessed: the tolerance
    grows by exactly what this documented design choice costs (about 450 MB of an fp32 O for GPT-2 at batch 12
    would avoid it), never by a fudge factor. ``probs`` (B, H, Tq, Tk) and ``other`` = K give the dQ term; with
    ``rows_are_queries=False``, ``probs`` transposed to (B, H, Tk, Tq) and ``other`` = Q give the dK term.
    """
    e = (grad_out * (exact_out - stored_out)).sum(-1)  # (B, H, Tq)
    if rows_are_queries:
        shift = scale * e[..., None] * (probs @ other)  # (B, H, Tq, D)
    else:
        shift = scale * (probs * e[..., None, :]) @ other  # (B, H, Tk, D)
    return shift.abs().max().item() if shift.numel() else 0.0
