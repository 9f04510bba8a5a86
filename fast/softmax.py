"""Fast softmax: the fused Triton row softmax (forward and backward kernels) as a differentiable custom op.

Autocast: no cast at the op boundary; the result is in x's dtype, the arithmetic float32 whatever that dtype.
``torch.softmax`` is on autocast's CUDA "float32" list (it upcasts and returns float32) because its kernels would
otherwise exponentiate and sum in half precision; ours never do, so an upcast would only double the bytes moved.
"""
import torch

from scratchformers.fast.runtime import FLOAT_DTYPES, check_fast_available
from scratchformers.kernels.limits import MAX_COLS


@torch.library.custom_op("scratchformers::softmax_forward", mutates_args=())
def _forward_op(x: torch.Tensor) -> torch.Tensor:
    from scratchformers.kernels.softmax import softmax_forward
    return softmax_forward(x)


@_forward_op.register_fake
def _(x):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("scratchformers::softmax_backward", mutates_args=())
def _backward_op(dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from scratchformers.kernels.softmax import softmax_backward
    return softmax_backward(dy, y)


@_backward_op.register_fake
def _(dy, y):
    return torch.empty_like(y, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(output)


def _backward(ctx, dy):
    (y,) = ctx.saved_tensors
    return _backward_op(dy, y)


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def softmax(x: torch.Tensor) -> torch.Tensor:
    """``softmax(x)`` over the last dim, ``exp(x - max) / sum(exp(x - max))``, fused in one Triton kernel.

    x: any shape (..., N) with N <= 32768, float32/float16/bfloat16; arithmetic is float32. A row that is entirely
    -inf gives zeros (torch gives NaN). Differentiable; the backward is a second fused kernel.
    """
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"softmax supports float32/float16/bfloat16; got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("softmax needs at least one dimension")
    if x.shape[-1] > MAX_COLS:
        raise ValueError(f"softmax keeps a whole row on chip: the last dim must be <= {MAX_COLS}; got {x.shape[-1]}")
    check_fast_available(x.device)
    return _forward_op(x)
