"""The checks of the Triton softmax exercise: ``softmax(x)``, a Triton kernel over the rows of a float32 matrix,
run on the GPU or, without one, on CPU tensors in Triton's interpreter (``TRITON_INTERPRET=1``, which
``scratchformers check`` sets before your file defines its kernel)."""
from __future__ import annotations

import os

import numpy as np
import torch
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.core import Check, Exercise, expect_close, failing_case, for_all
from scratchformers.exercises.checks.strategies import seeds
from scratchformers.exercises.checks.tolerances import FP32_ATOL


def device() -> str:
    """Where the kernel runs: the GPU when Triton compiles for it, else the CPU under the interpreter."""
    return "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"


def run(learner, x: torch.Tensor) -> None:
    with failing_case(x=x):
        want = oracles.softmax(x.double()).numpy()
        expect_close("y", learner.softmax(x.to(device())), want, atol=FP32_ATOL, dtype=np.float32)


def matrix(rows: int, columns: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(rows, columns)).astype(np.float32) * scale)


@for_all(examples=8, rows=st.integers(1, 6), columns=st.integers(1, 70), seed=seeds)
def random_inputs(learner, rows, columns, seed):
    run(learner, matrix(rows, columns, seed))


@for_all(examples=4, columns=st.integers(1, 40), seed=seeds)
def large_inputs(learner, columns, seed):
    run(learner, matrix(3, columns, seed, scale=3000.0))


def masked_rows(learner):
    x = matrix(4, 13, 1)
    x[1] = float("-inf")  # a query that sees no key, in masked attention
    x[2, ::2] = float("-inf")
    run(learner, x)


def strided_rows(learner):
    wide = matrix(5, 40, 2)
    run(learner, wide[:, 3:30])  # rows 40 elements apart in memory, 27 long


EXERCISE = Exercise(
    name="triton_softmax",
    summary="softmax(x) as a Triton kernel over the rows of a float32 matrix (GPU, or CPU in the interpreter)",
    signatures=("softmax(x)",),
    checks=(
        Check("matches torch.softmax on (M, N) float32, N not a power of two (to 1e-4)", random_inputs,
              "one program per row: BLOCK_N = triton.next_power_of_2(N) columns, cols = tl.arange(0, BLOCK_N), "
              "loaded with mask=cols < N and other=float('-inf') so the padding adds exp(-inf) = 0 to the sum"),
        Check("large inputs (|x| up to ~1e4): nothing overflows", large_inputs,
              "subtract the row's maximum (tl.max(x, axis=0)) before tl.exp"),
        Check("a row that is all -inf (a fully masked query) gives zeros, not NaN", masked_rows,
              "an all -inf row has max -inf and exp(-inf - (-inf)) = NaN: subtract tl.where(m == -inf, 0, m) "
              "instead, and divide by 1 where the sum is 0"),
        Check("rows that are not contiguous with each other (a slice of a wider matrix)", strided_rows,
              "row r starts at X + r * x.stride(0), not r * N: pass x.stride(0) and y.stride(0) to the kernel"),
    ),
    needs={"triton": "pip install 'scratchformers[fast]' (or pip install triton)"},
)
