"""AdamW with decay / no-decay parameter groups, and the learning-rate schedule of GPT-2-style training.

Weight decay pulls weights towards zero, ``θ ← θ − lr · λ · θ`` (decoupled from the gradient, Loshchilov &
Hutter 2019). It is meant for the matrices that mix features (linear layers, embeddings: every parameter with
2 or more dimensions); biases and LayerNorm gains are 1-D and are left alone, as in GPT-2, nanoGPT and minGPT.

The schedule (nanoGPT's ``get_lr``), for step s (0-based, the update being made):

    warmup   s < W:        lr(s) = lr_max · (s + 1) / W
    cosine   W ≤ s ≤ D:    lr(s) = lr_min + ½ (1 + cos(π · (s − W) / (D − W))) · (lr_max − lr_min)
    floor    s > D:        lr(s) = lr_min,           lr_min = lr_max · min_lr_factor
"""
from __future__ import annotations

import inspect
import math

import torch
from torch import nn


FUSED_ADAMW_DEVICES = ("cuda", "cpu")  # where torch (>= 2.4) has a fused AdamW


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: ≥2-D parameters with ``weight_decay``, the rest (biases, LayerNorm) with 0.

    Shared (tied) parameters appear once: ``parameters()`` skips duplicates.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    device_type: str = "cpu",
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, with the fused kernel (the whole update of all parameters in one pass,
    instead of one tensor operation after another over the lists) on GPU and CPU. On the CPU it makes the
    optimizer step of the 0.8 M-parameter Shakespeare model ~3x faster (about 2 ms instead of 6-10 ms on one
    thread: a few percent of a training step; benchmarks/RESULTS.md), with the same update up to float rounding."""
    fused = device_type in FUSED_ADAMW_DEVICES and "fused" in inspect.signature(torch.optim.AdamW).parameters
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=learning_rate, betas=betas, **extra)


def lr_at(step: int, learning_rate: float, warmup_steps: int, decay_steps: int, min_lr_factor: float) -> float:
    """The learning rate for optimizer step ``step`` (0-based): linear warmup, cosine decay, then a floor."""
    if step < 0:
        raise ValueError(f"step must not be negative, got {step}")
    min_lr = learning_rate * min_lr_factor
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    if step > decay_steps or decay_steps <= warmup_steps:
        return min_lr
    progress = (step - warmup_steps) / (decay_steps - warmup_steps)  # 0 → 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
