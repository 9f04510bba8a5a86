"""Fast attention: the Triton flash-attention kernels behind a differentiable, ``torch.compile``-friendly function.

``flash_attention`` is the fused path (no Tq × Tk tensor anywhere). ``materialized_attention`` computes the same thing
the way the reference does, Q Kᵀ in torch, the fused Triton row softmax, then @ V, so a benchmark can show what
each step of fusion buys.

The kernels are wrapped in ``torch.library.custom_op``s with fake (meta) implementations and a registered autograd
formula: ``torch.compile`` treats them as opaque operators with known output shapes, so they neither break the graph
nor get traced into.

Under ``torch.autocast`` the forward op follows ``F.scaled_dot_product_attention``: q, k and v are cast to the
autocast dtype (bf16 or fp16) and the output comes back in it; the backward runs in the dtypes the forward saw.
"""
from typing import Optional

import torch

from scratchformers.fast.runtime import (
    FLOAT_DTYPES,
    autocast_dtype,
    autocast_to_lower_precision,
    check_fast_available,
)
from scratchformers.fast.softmax import softmax
from scratchformers.kernels.limits import MAX_HEAD_DIM
from scratchformers.reference.attention import visibility_mask


def _key_lengths(attention_mask: Optional[torch.Tensor], validate: bool) -> Optional[torch.Tensor]:
    """(B, Tk) right-padding mask -> int32 (B,) key lengths. Validation costs one device sync; the backward skips it."""
    if attention_mask is None:
        return None
    lengths = (attention_mask != 0).sum(-1, dtype=torch.int32)
    if validate:
        prefix = torch.arange(attention_mask.shape[-1], device=attention_mask.device) < lengths[:, None]
        checks = torch.stack([_is_binary(attention_mask), (prefix == (attention_mask != 0)).all()])
        binary, right_padded = checks.tolist()  # one sync for both checks
        _check_binary(binary)
        if not right_padded:
            raise ValueError("flash_attention supports right padding only: each row of attention_mask must be ones "
                             "(real tokens) followed by zeros (padding), e.g. [1, 1, 1, 0, 0]. Use "
                             "materialized_attention (or the reference path) for arbitrary masks.")
    return lengths


def _is_binary(attention_mask: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor: does the mask hold only 0 and 1?"""
    return ((attention_mask == 0) | (attention_mask == 1)).all()


def _check_binary(binary: bool) -> None:
    if not binary:
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token); convert it, e.g. "
                         "attention_mask = (attention_mask != 0).long() if every nonzero value marks a token")


@torch.library.custom_op("scratchformers::flash_attention_forward", mutates_args=())
def _forward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention_mask: Optional[torch.Tensor],
                seed: Optional[torch.Tensor], causal: bool, scale: float, dropout_p: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    from scratchformers.kernels.flash_attention import flash_attention_forward
    return flash_attention_forward(q, k, v, _key_lengths(attention_mask, validate=True), causal, scale, dropout_p, seed)


@_forward_op.register_fake
def _(q, k, v, attention_mask, seed, causal, scale, dropout_p):
    return torch.empty_like(q, memory_format=torch.contiguous_format), q.new_empty(q.shape[:3], dtype=torch.float32)


@torch.library.custom_op("scratchformers::flash_attention_backward", mutates_args=())
def _backward_op(dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                 lse: torch.Tensor, attention_mask: Optional[torch.Tensor], seed: Optional[torch.Tensor], causal: bool,
                 scale: float, dropout_p: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from scratchformers.kernels.flash_attention import flash_attention_backward
    return flash_attention_backward(dout, q, k, v, out, lse, _key_lengths(attention_mask, validate=False), causal,
                              scale, dropout_p, seed)


@_backward_op.register_fake
def _(dout, q, k, v, out, lse, attention_mask, seed, causal, scale, dropout_p):
    return tuple(torch.empty_like(x, memory_format=torch.contiguous_format) for x in (q, k, v))


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, attention_mask, seed, causal, scale, dropout_p = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, attention_mask, seed)
    ctx.causal, ctx.scale, ctx.dropout_p = causal, scale, dropout_p


def _backward(ctx, dout, dlse):
    q, k, v, out, lse, attention_mask, seed = ctx.saved_tensors
    dq, dk, dv = _backward_op(dout, q, k, v, out, lse, attention_mask, seed, ctx.causal, ctx.scale, ctx.dropout_p)
    return dq, dk, dv, None, None, None, None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)
# Under torch.autocast, q, k, v go to the autocast dtype, as F.scaled_dot_product_attention's do: q from a bf16
# projection and k, v from an fp32 source (or the other way round) then meet in one dtype.
autocast_to_lower_precision("flash_attention_forward", cast=(0, 1, 2))


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D (B, H, T, D); got shapes {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    B, H, _, D = q.shape
    if k.shape != v.shape or k.shape[:2] != (B, H) or k.shape[3] != D:
        raise ValueError(f"expected q (B, H, Tq, D) and k, v (B, H, Tk, D); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    dtypes, autocast = {q.dtype, k.dtype, v.dtype}, autocast_dtype(q.device)
    if autocast is not None and dtypes <= set(FLOAT_DTYPES):
        dtypes = {autocast}  # what the ops will see (autocast casts them)
    if len(dtypes) != 1 or not dtypes <= set(FLOAT_DTYPES):
        raise TypeError(f"q, k, v must share one dtype among float32/float16/bfloat16; got {q.dtype}, {k.dtype}, "
                        f"{v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")
    if attention_mask is not None:
        if attention_mask.shape != (B, k.shape[2]):
            raise ValueError(f"attention_mask must have shape (B, Tk) = {(B, k.shape[2])}; got "
                             f"{tuple(attention_mask.shape)}")
        if attention_mask.device != q.device:
            raise ValueError(f"attention_mask is on {attention_mask.device} but q is on {q.device}")


def _default_scale(q: torch.Tensor) -> float:
    """1/sqrt(D); with D = 0 every score is 0 whatever the scale, and the output is empty."""
    return q.shape[-1] ** -0.5 if q.shape[-1] > 0 else 1.0


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                    attention_mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0,
                    scale: Optional[float] = None) -> torch.Tensor:
    """Fused attention ``softmax(scale · Q Kᵀ + mask) V`` with a fused backward; differentiable wrt q, k, v.

    Args:
        q: (B, H, Tq, D) queries; k, v: (B, H, Tk, D). One dtype among float32/float16/bfloat16; D <= 128.
        causal: query i (absolute position Tk - Tq + i, i.e. bottom-right aligned, as in a KV cache) sees keys j <= it.
        attention_mask: optional (B, Tk), 1 = real token, 0 = padding; right padding only (each row a prefix of ones),
            anything else raises ValueError. Checking it costs one host-device synchronisation per call.
        dropout_p: probability of zeroing an attention probability (training); the mask comes from a Philox seed
            drawn from torch's generator for q's device, so ``torch.manual_seed`` makes it reproducible.
        scale: multiplies the scores; default 1/sqrt(D).
    Returns:
        (B, H, Tq, D) in q's dtype. Rows that see no key (padding length 0) are zeros, with zero gradients.
    """
    _check_qkv(q, k, v, attention_mask)
    if q.shape[-1] > MAX_HEAD_DIM:
        raise ValueError(f"flash_attention supports head dims up to {MAX_HEAD_DIM}; got {q.shape[-1]}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1); got {dropout_p}")
    check_fast_available(q.device)
    scale = _default_scale(q) if scale is None else float(scale)
    seed = None
    if dropout_p > 0.0:
        if q.shape[2] * k.shape[2] >= 2**31:
            raise ValueError("attention dropout numbers its random draws with int32 counters: Tq * Tk must be < 2**31")
        seed = torch.randint(0, 2**31 - 1, (1,), device=q.device, dtype=torch.int64)
    out, _ = _forward_op(q, k, v, attention_mask, seed, bool(causal), scale, float(dropout_p))
    return out


def materialized_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool,
                           attention_mask: Optional[torch.Tensor] = None, scale: Optional[float] = None
                           ) -> torch.Tensor:
    """Reference-shaped attention: ``S = scale · Q Kᵀ`` (B, H, Tq, Tk) in torch, fused Triton softmax, then ``P V``.

    Same arguments and masking conventions as :func:`flash_attention` (causal is bottom-right aligned), except that
    any 0/1 ``attention_mask`` works, not only right padding (checking that it is 0/1 costs one host-device
    synchronisation). Rows that see no key give zeros.
    """
    _check_qkv(q, k, v, attention_mask)
    check_fast_available(q.device)
    if attention_mask is not None:
        _check_binary(_is_binary(attention_mask).item())
    Tq, Tk = q.shape[2], k.shape[2]
    scale = _default_scale(q) if scale is None else float(scale)
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, Tq, Tk)
    visible = visibility_mask(Tq, Tk, causal=causal, attention_mask=attention_mask, device=q.device)  # (B, 1, Tq, Tk)
    if visible is not None:
        scores = scores.masked_fill(~visible, float("-inf"))
    return softmax(scores) @ v  # (B, H, Tq, D)
