"""Muon, the optimizer of the hidden weight matrices (Jordan et al., 2024), written out.

SGD with momentum moves a weight matrix W (m, n) along its averaged gradient M. That matrix is usually dominated
by a few directions: its singular values spread over orders of magnitude, so a step along M mostly pushes on what
is already large. Muon replaces M by the nearest *orthogonal* matrix, O = U Vᵀ where M = U S Vᵀ (its singular
value decomposition): the same directions, every singular value set to 1. Each step then moves every direction of
the matrix by the same amount. One step, for gradient G_t (as ``torch.optim.Muon`` computes it):

    B_t = μ · B_{t−1} + (1 − μ) · G_t                  momentum: a running average of the gradients, B_0 = 0
    M_t = (1 − μ) · G_t + μ · B_t                      Nesterov: look one step ahead (without Nesterov: M_t = B_t)
    O_t = NS₅(M_t) ≈ U Vᵀ                              orthogonalise (below)
    W_t = (1 − η λ) · W_{t−1} − η · sqrt(max(1, m / n)) · O_t

with learning rate η, momentum μ and weight decay λ. The decay shrinks the weights with the plain rate η; the step
along O_t is scaled by sqrt(max(1, m / n)). An orthogonal (m, n) matrix has a root-mean-square entry of
1/sqrt(max(m, n)); with the scale, the step's is 1/sqrt(n) (n: the columns, an ``nn.Linear``'s input width)
whatever the shape, so a tall matrix (more rows than columns) moves as far per entry as a square one.

**The Newton–Schulz iteration** NS₅ computes U Vᵀ without a decomposition, from matrix products alone. Scale M so
that every singular value is at most 1 (divide by its Frobenius norm ‖M‖_F, which is at least its largest
singular value), then apply five times the odd polynomial

    X ← a · X + b · (X Xᵀ) X + c · (X Xᵀ)² X,       (a, b, c) = (3.4445, −4.7750, 2.0315)

X Xᵀ X = U S³ Vᵀ, so the polynomial acts on each singular value alone: s ← φ(s) = a s + b s³ + c s⁵, with U and V
untouched. The coefficients make φ rise steeply from 0 (slope a ≈ 3.4 at s = 0: five steps multiply a small
singular value by up to a⁵ ≈ 480), and they trade exactness for speed: the iteration does not converge to 1 but
leaves the singular values that were not tiny somewhere in about [0.7, 1.2] (for a random Gaussian matrix; torch's
docstring says roughly 0.5 to 1.5), which Jordan et al. found to train as well as U Vᵀ itself.

The iteration runs on the wide orientation (rows ≤ columns), where X Xᵀ is the smaller Gram matrix, and in
bfloat16: it only has to be roughly right. Each sum of a matrix and a product is one
``torch.addmm(C, A, B, beta=β, alpha=α) = β C + α A B``, rounded to bfloat16 once, as torch does. Spelled as
three bfloat16 operations, each rounding on its own, the result differs from torch's by about 4 % of its largest
entry; the bfloat16 iteration is only that accurate (the same five steps in float32 differ from it by about 2 %).

``scratchformers train --optimizer muon`` uses ``torch.optim.Muon`` (with AdamW for the embeddings, biases and
LayerNorm gains: train/optim.py); tests/test_muon.py checks that :func:`muon_step` here takes the same steps.
"""
from __future__ import annotations

import math

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # (a, b, c): the quintic of Keller Jordan's Muon, as torch uses it
NS_STEPS = 5
EPS = 1e-7  # keeps the first division finite for an all-zero matrix


def newton_schulz(matrix: torch.Tensor, steps: int = NS_STEPS,
                  coefficients: tuple[float, float, float] = NS_COEFFICIENTS, eps: float = EPS,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """An approximately orthogonal matrix with the singular vectors of ``matrix`` (m, n): U Vᵀ for
    ``matrix = U S Vᵀ``, with singular values in about [0.7, 1.2] instead of 1 (those not far below the largest).
    Computed and returned in ``dtype``."""
    a, b, c = coefficients
    tall = matrix.shape[0] > matrix.shape[1]
    x = matrix.to(dtype)  # (m, n)
    if tall:
        x = x.mT  # (n, m): rows ≤ columns, so that x xᵀ below is the smaller of the two Gram matrices
    x = x / x.norm().clamp(min=eps)  # ‖x‖_F ≥ its largest singular value: now every singular value is ≤ 1
    for _ in range(steps):
        gram = x @ x.mT  # (r, r), r = min(m, n): U S² Uᵀ
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # (r, r): b gram + c gram² = U (b S² + c S⁴) Uᵀ
        x = torch.addmm(x, poly, x, beta=a)  # (r, max(m, n)): a x + poly x = U (a S + b S³ + c S⁵) Vᵀ
    return x.mT if tall else x  # (m, n)


def shape_scale(shape: torch.Size) -> float:
    """sqrt(max(1, m / n)) for a matrix of ``shape`` (m, n): Muon's rate multiplier (torch's default, "original",
    adjustment). For GPT-2's ``nn.Linear`` weights (out, in): 1 for ``c_proj`` (C, C) and (C, 4C), √3 for
    ``c_attn`` (3C, C), 2 for ``c_fc`` (4C, C)."""
    rows, cols = shape
    return math.sqrt(max(1.0, rows / cols))


def muon_step(weight: torch.Tensor, grad: torch.Tensor, buffer: torch.Tensor, lr: float, momentum: float = 0.95,
              nesterov: bool = True, weight_decay: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """One Muon step of the module docstring for ``weight`` (m, n) with gradient ``grad`` (m, n) and momentum
    ``buffer`` (m, n), zeros before the first step. Returns the new weight and buffer (the inputs are left as
    they are). The defaults are ``torch.optim.Muon``'s; ``scratchformers train --optimizer muon`` decays by
    ``--muon-weight-decay``, 0 unless asked."""
    buffer = torch.lerp(buffer, grad, 1 - momentum)  # (m, n): B_t = μ B + (1 − μ) G, lerp(x, y, w) = x + w (y − x)
    direction = torch.lerp(grad, buffer, momentum) if nesterov else buffer  # (m, n): M_t = (1 − μ) G + μ B_t
    orthogonal = newton_schulz(direction)  # (m, n), bfloat16: O_t ≈ U Vᵀ
    weight = weight * (1 - lr * weight_decay)  # (m, n): the decay, with the plain rate
    weight = weight - lr * shape_scale(weight.shape) * orthogonal.to(weight.dtype)  # (m, n): W_t
    return weight, buffer
