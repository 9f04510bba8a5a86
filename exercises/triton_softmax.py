"""A row softmax as a Triton kernel: one program per row, the whole row in one tile.

Write a @triton.jit kernel and ``softmax(x)``, which launches it: the softmax over the last axis of a float32 matrix
x (M, N), returned as a new (M, N) float32 tensor. Program r (tl.program_id(0)) handles row r:

    cols = tl.arange(0, BLOCK_N)                     BLOCK_N = triton.next_power_of_2(N), a tl.constexpr
    row  = tl.load(X + r * stride_x + cols, mask=cols < N, other=float("-inf"))
    y    = exp(row - max(row)) / sum(exp(row - max(row)))
    tl.store(Y + r * stride_y + cols, y, mask=cols < N)

* The padding columns load as -inf, so they add exp(-inf) = 0 to the sum.
* A row that is all -inf (a fully masked query in attention) must give zeros, not NaN.
* Rows need not be N elements apart in memory: pass x.stride(0) and y.stride(0).

Without a GPU the kernel runs on CPU tensors in Triton's interpreter: ``scratchformers check`` sets
TRITON_INTERPRET=1 before it imports this file (run it yourself with TRITON_INTERPRET=1 set before importing
triton). Triton comes with pip install "scratchformers[fast]".

About 15 lines. The library's version is kernels/softmax.py (several rows per program); try it yourself first.
Check it with

    scratchformers check triton_softmax triton_softmax.py
"""
import torch
import triton  # noqa: F401
import triton.language as tl  # noqa: F401


def softmax(x: torch.Tensor) -> torch.Tensor:
    """The softmax over the last axis of the float32 matrix ``x``, computed by a Triton kernel."""
    raise NotImplementedError
