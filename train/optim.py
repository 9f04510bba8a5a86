"""The optimizers (AdamW, or Muon for the blocks' matrices beside AdamW) and the learning-rate schedules.

**AdamW** updates every parameter by its own running averages of the gradient and its square. Weight decay pulls
weights towards zero, ``θ ← θ − lr · λ · θ`` (decoupled from the gradient, Loshchilov & Hutter 2019). It is meant
for the matrices that mix features (linear layers, embeddings: every parameter with 2 or more dimensions); biases
and LayerNorm gains are 1-D and are left alone, as in GPT-2, nanoGPT and minGPT.

**Muon** (``optimizer="muon"``, Jordan et al. 2024; ``torch.optim.Muon``, torch >= 2.9) updates a weight matrix
by its momentum *orthogonalised*: every singular value of the step set to about 1, so that no direction of the
matrix gets all of the update (the update written out: scratchformers/reference/muon.py). It is for the hidden
matrices, the 2-D weights inside the transformer blocks (attention's ``c_attn`` and ``c_proj``, the MLP's ``c_fc``
and ``c_proj``); the embeddings (the token table is also the output head), biases and LayerNorm gains stay with
AdamW, with AdamW's decay / no-decay split. :class:`MuonAdamW` steps the two as one optimizer.

Each parameter group keeps its own peak rate (AdamW's ``learning_rate``, Muon's ``muon_learning_rate``); the
schedule is a factor f(s) in [0, 1] that multiplies every peak alike. For step s (0-based, the update being made),
W warm-up steps, D = decay_steps, m = min_lr_factor:

    warmup     s < W:             f(s) = (s + 1) / W
    "cosine"   W ≤ s ≤ D:         f(s) = m + ½ (1 + cos(π · (s − W) / (D − W))) · (1 − m)      (nanoGPT's get_lr)
    "wsd"      W ≤ s < D − C:     f(s) = 1                                          (warmup-stable-decay)
               D − C ≤ s ≤ D:     f(s) = m + (1 − m) · (D − s) / C,   C = cooldown_frac · D
    floor      s > D:             f(s) = m

The "wsd" cool-down is linear and ends, like the cosine, at m; the speedrun's cool-down to zero is m = 0 (the last
update then still has a rate of peak / C, not zero). Where the warm-up and the cool-down overlap (W + C > D), the
smaller of the two ramps applies: the trapezoid becomes a triangle.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


FUSED_ADAMW_DEVICES = ("cuda", "cpu")  # where torch (>= 2.4) has a fused AdamW
OPTIMIZERS = ("adamw", "muon")
SCHEDULES = ("cosine", "wsd")
MUON_TORCH = "2.9"  # the first torch with torch.optim.Muon
# The defaults of make_optimizer, the Lightning module and the trainer (whose shakespeare-cpu preset takes Muon's
# rate down to 0.01, the CPU sweep's best): Jordan's Muon's own (rate 0.02, momentum 0.95, no weight decay; torch's
# Muon decays by 0.1 unless told otherwise).
MUON_LEARNING_RATE, MUON_MOMENTUM, MUON_WEIGHT_DECAY = 0.02, 0.95, 0.0
COOLDOWN_FRAC = 0.2  # the "wsd" schedule's cool-down: the last 20 % of the steps


def check_optimizer(optimizer: str) -> None:
    """A ValueError naming the choices unless ``optimizer`` is one of :data:`OPTIMIZERS`."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be {' or '.join(map(repr, OPTIMIZERS))}, got {optimizer!r}")


def check_schedule(schedule: str) -> None:
    """A ValueError naming the choices unless ``schedule`` is one of :data:`SCHEDULES`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be {' or '.join(map(repr, SCHEDULES))}, got {schedule!r}")


def require_muon() -> type[torch.optim.Optimizer]:
    """``torch.optim.Muon``, or an ImportError of one line naming the torch that has it."""
    muon = getattr(torch.optim, "Muon", None)
    if muon is None:
        raise ImportError(f"optimizer 'muon' needs torch.optim.Muon, which torch {MUON_TORCH} added; this is torch "
                          f"{torch.__version__}: pip install 'torch>={MUON_TORCH}', or train with --optimizer adamw")
    return muon


def muon_params(model: nn.Module) -> list[nn.Parameter]:
    """The hidden matrices that Muon updates: the 2-D parameters inside the transformer blocks
    (``model.transformer.h``), i.e. the weights of attention's ``c_attn`` and ``c_proj`` and of the MLP's ``c_fc``
    and ``c_proj``. Not the embeddings (the token table is also the output head): Muon is for matrices that map
    one hidden vector to another, and a table lookup or the logits are not that."""
    return [p for p in model.transformer.h.parameters() if p.requires_grad and p.dim() == 2]


def param_groups(model: nn.Module, weight_decay: float, exclude: Sequence[nn.Parameter] = ()) -> list[dict]:
    """Two AdamW groups: ≥2-D parameters with ``weight_decay``, the rest (biases, LayerNorm) with 0; the
    parameters in ``exclude`` (Muon's) in neither.

    Shared (tied) parameters appear once: ``parameters()`` skips duplicates.
    """
    excluded = {id(p) for p in exclude}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in excluded]
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
    optimizer: str = "adamw",
    muon_learning_rate: float = MUON_LEARNING_RATE,
    muon_momentum: float = MUON_MOMENTUM,
    muon_weight_decay: float = MUON_WEIGHT_DECAY,
) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups` (``optimizer="adamw"``), or Muon over :func:`muon_params` and AdamW over
    the rest, as one :class:`MuonAdamW` (``optimizer="muon"``; Muon's other settings are torch's defaults:
    Nesterov momentum, 5 Newton–Schulz steps).

    AdamW runs the fused kernel (the whole update of all parameters in one pass, instead of one tensor operation
    after another over the lists) on GPU and CPU. On the CPU it makes the optimizer step of the 0.8 M-parameter
    Shakespeare model ~3x faster (about 2 ms instead of 6-10 ms on one thread: a few percent of a training step;
    benchmarks/RESULTS.md), with the same update up to float rounding."""
    check_optimizer(optimizer)
    fused = device_type in FUSED_ADAMW_DEVICES and "fused" in inspect.signature(torch.optim.AdamW).parameters
    extra = {"fused": True} if fused else {}
    matrices = muon_params(model) if optimizer == "muon" else []
    adamw = torch.optim.AdamW(param_groups(model, weight_decay, exclude=matrices), lr=learning_rate, betas=betas,
                              **extra)
    if optimizer == "adamw":
        return adamw
    muon = require_muon()(matrices, lr=muon_learning_rate, momentum=muon_momentum, weight_decay=muon_weight_decay)
    return MuonAdamW(adamw, muon)


class MuonAdamW(torch.optim.Optimizer):
    """An AdamW and a Muon over disjoint parameters, stepped, zeroed, saved and loaded as one optimizer.

    ``param_groups`` lists AdamW's groups, then Muon's (the very same dicts: a rate written into one is the rate the
    inner optimizer uses), and ``state`` is one dict that both inner optimizers share, so code written for one
    optimizer (the trainer's rates, ``GradScaler.unscale_``/``step``, gradient clipping, Lightning, an LR
    scheduler) works unchanged. ``state_dict()`` is the standard one of all groups and states together; after
    ``load_state_dict`` the inner optimizers are pointed at the loaded groups and states again (through their own
    ``__setstate__``, as torch's ``load_state_dict`` does for each), so a resumed run continues exactly. (Save the
    whole, not an inner optimizer: each inner one's ``state`` holds the other's parameters too.)
    """

    def __init__(self, adamw: torch.optim.Optimizer, muon: torch.optim.Optimizer) -> None:
        self.adamw, self.muon = adamw, muon
        self._adamw_groups = len(adamw.param_groups)
        super().__init__([*adamw.param_groups, *muon.param_groups], {})
        self._share()

    def _share(self) -> None:
        """Give each inner optimizer its slice of ``param_groups`` and the one ``state`` dict."""
        split = self._adamw_groups
        self.adamw.__setstate__({"state": self.state, "param_groups": self.param_groups[:split]})
        self.muon.__setstate__({"state": self.state, "param_groups": self.param_groups[split:]})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step of both (``closure``, as Lightning passes it, is evaluated once, before either steps)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.adamw.step()
        self.muon.step()
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # new group dicts and a new state dict ...
        self._share()  # ... which the inner optimizers must use from now on


def lr_factor(step: int, warmup_steps: int, decay_steps: int, min_lr_factor: float, schedule: str = "cosine",
              cooldown_frac: float = COOLDOWN_FRAC) -> float:
    """The multiple of each group's peak rate for optimizer step ``step`` (0-based): linear warmup, then the
    cosine or the warmup-stable-decay shape of the module docstring, then a floor of ``min_lr_factor``."""
    if step < 0:
        raise ValueError(f"step must not be negative, got {step}")
    check_schedule(schedule)
    warmup = (step + 1) / warmup_steps if step < warmup_steps else 1.0
    if schedule == "wsd":
        if step >= decay_steps:
            return min_lr_factor
        cooldown = cooldown_frac * decay_steps
        remaining = min(1.0, (decay_steps - step) / cooldown) if cooldown > 0 else 1.0  # 1 → 0 over the cool-down
        return min(warmup, min_lr_factor + (1.0 - min_lr_factor) * remaining)
    if step < warmup_steps:
        return warmup
    if step > decay_steps or decay_steps <= warmup_steps:
        return min_lr_factor
    progress = (step - warmup_steps) / (decay_steps - warmup_steps)  # 0 → 1
    return min_lr_factor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - min_lr_factor)


def set_lr(optimizer: torch.optim.Optimizer, peak_lrs: Sequence[float], factor: float) -> None:
    """Write ``peak · factor`` into each parameter group, ``peak_lrs`` in the order of ``optimizer.param_groups``."""
    for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
        group["lr"] = peak * factor
