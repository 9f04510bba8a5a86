"""Fast LayerNorm: the fused Triton kernels as a differentiable custom op, and an ``nn.Module`` over it.

:class:`LayerNorm` has the reference module's signature and ``state_dict`` keys (``weight``, ``bias``), so either
path loads the other's checkpoints.

Autocast: the op takes no part in it (no cast at its boundary); y comes back in x's dtype, and the statistics and
the whole normalisation are float32 whatever x's dtype. ``F.layer_norm`` is on autocast's CUDA "float32" list: it
upcasts bf16/fp16 inputs and returns float32, because torch's kernels would otherwise compute in half precision.
Ours never do, so upcasting would only add a copy and double the bytes this memory-bound kernel moves. In GPT-2
under autocast the residual stream (and so every LayerNorm input) is float32 anyway, which gives the same dtypes as
``F.layer_norm`` there; on CPU ``F.layer_norm`` keeps the input's dtype too.
"""
import math
from typing import Optional

import torch

from scratchformers.fast.runtime import FLOAT_DTYPES, check_fast_available
from scratchformers.kernels.limits import MAX_HIDDEN
from scratchformers.reference.layernorm import LayerNorm as ReferenceLayerNorm


@torch.library.custom_op("scratchformers::layer_norm_forward", mutates_args=())
def _forward_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from scratchformers.kernels.layernorm import layer_norm_forward
    return layer_norm_forward(x, weight, bias, eps)


@_forward_op.register_fake
def _(x, weight, bias, eps):
    stats = x.new_empty(math.prod(x.shape[:-1]), dtype=torch.float32)
    return torch.empty_like(x, memory_format=torch.contiguous_format), stats, torch.empty_like(stats)


@torch.library.custom_op("scratchformers::layer_norm_backward", mutates_args=())
def _backward_op(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from scratchformers.kernels.layernorm import layer_norm_backward
    return layer_norm_backward(dy, x, weight, mean, rstd)


@_backward_op.register_fake
def _(dy, x, weight, mean, rstd):
    dx = torch.empty_like(x, memory_format=torch.contiguous_format)
    return dx, torch.empty_like(weight), torch.empty_like(weight)


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, _ = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, weight, mean, rstd)
    ctx.has_bias = bias is not None


def _backward(ctx, dy, dmean, drstd):
    x, weight, mean, rstd = ctx.saved_tensors
    dx, dweight, dbias = _backward_op(dy, x, weight, mean, rstd)
    return dx, dweight, (dbias if ctx.has_bias else None), None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float = 1e-5
               ) -> torch.Tensor:
    """LayerNorm over the last dim: ``(x - mean) / sqrt(var + eps) * weight + bias`` (biased variance).

    x: (..., N) with N <= 8192; weight: (N,); bias: (N,) or None; any strides. Any of float32/float16/bfloat16,
    mixed dtypes allowed (e.g. bf16 activations with fp32 parameters); statistics in float32 (a corrected two-pass
    mean, so a constant row gives exactly the bias). Returns x's shape and dtype (empty if N = 0).
    Differentiable wrt x, weight and bias; the weight/bias gradients are reduced across rows deterministically.
    """
    if x.dim() == 0:
        raise ValueError("layer_norm needs at least one dimension")
    N = x.shape[-1]
    if N > MAX_HIDDEN:
        raise ValueError(f"layer_norm keeps a whole row on chip: hidden size must be <= {MAX_HIDDEN}; got {N}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"layer_norm needs weight, a tensor of shape ({N},) (torch.ones({N}) for no scaling); got "
                        f"{type(weight).__name__}. bias may be None.")
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if t is not None and t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"layer_norm supports float32/float16/bfloat16; {name} is {t.dtype}")
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    if weight.shape != (N,) or (bias is not None and bias.shape != (N,)):
        raise ValueError(f"weight and bias must have shape ({N},) to match x's last dim; got {tuple(weight.shape)} "
                         f"and {None if bias is None else tuple(bias.shape)}")
    check_fast_available(x.device)
    y, _, _ = _forward_op(x, weight, bias, float(eps))
    return y


class LayerNorm(ReferenceLayerNorm):
    """LayerNorm over the last dim on the fused Triton kernels; same parameters and ``state_dict`` as the reference
    :class:`scratchformers.reference.layernorm.LayerNorm` (it inherits them: ``weight`` ones, ``bias`` zeros or
    absent with ``bias=False``), only ``forward`` differs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)
