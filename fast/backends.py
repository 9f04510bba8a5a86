"""The fast path's backends: attention and LayerNorm on the Triton kernels, registered under the name ``"fast"``.

:mod:`scratchformers.reference.backends` imports this module the first time a model asks for ``attention="fast"`` or
``layernorm="fast"`` (its ``PLUGINS`` table). Building either checks that the kernels can run here, on a CUDA GPU or
on CPU under the Triton interpreter: one clear error otherwise, never a silent fallback to the reference.
"""
from __future__ import annotations

from typing import Any

import torch

from scratchformers.fast.attention import flash_attention
from scratchformers.fast.layernorm import LayerNorm
from scratchformers.fast.runtime import check_fast_available
from scratchformers.reference import backends
from scratchformers.reference.config import GPTConfig


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool,
           attention_mask: torch.Tensor | None, dropout_p: float) -> tuple[torch.Tensor, None]:
    """The attention backend: flash attention (B, H, Tq, D); it never materialises the weights."""
    return flash_attention(q, k, v, causal=causal, attention_mask=attention_mask, dropout_p=dropout_p), None


def _on_the_kernels(factory: backends.Factory) -> backends.Factory:
    """``factory``, after checking that the kernels run on this machine's default device."""
    def build(config: GPTConfig) -> Any:
        check_fast_available("cuda" if torch.cuda.is_available() else "cpu")
        return factory(config)

    return build


backends.register("attention", "fast", _on_the_kernels(lambda config: _flash))
backends.register("layernorm", "fast", _on_the_kernels(backends.layernorm_factory(LayerNorm)))
