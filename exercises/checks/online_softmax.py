"""The checks of the online-softmax exercise: ``online_softmax(x, block_n)``, the softmax of each row of x computed
tile by tile as the flash-attention twin does (``reference/np_flash_attention.py``), never holding a whole row."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from scratchformers.exercises.checks import oracles
from scratchformers.exercises.checks.core import Check, Exercise, Failure, Mistake, expect_close, failing_case, for_all
from scratchformers.exercises.checks.memory import peak_bytes_allocated
from scratchformers.exercises.checks.strategies import seeds


def expected(x: np.ndarray) -> np.ndarray:
    return oracles.softmax(torch.from_numpy(x)).numpy()


def run(learner, x, block_n):
    with failing_case(x=x, block_n=block_n):
        expect_close("y", learner.online_softmax(x.copy(), block_n), expected(x))


@for_all(rows=st.integers(1, 4), columns=st.integers(1, 40), block_n=st.integers(1, 16), seed=seeds)
def random_inputs(learner, rows, columns, block_n, seed):
    run(learner, np.random.default_rng(seed).normal(size=(rows, columns)) * 3, block_n)


@for_all(columns=st.integers(2, 40), block_n=st.integers(1, 8), order=st.sampled_from([1, -1]), seed=seeds)
def growing_maximum(learner, columns, block_n, order, seed):
    x = np.sort(np.random.default_rng(seed).uniform(-1e4, 1e4, size=(2, columns)), axis=1)[:, ::order]
    run(learner, np.ascontiguousarray(x), block_n)


ROWS, COLUMNS, BLOCK = 4, 8192, 64


def one_tile_at_a_time(learner):
    x = np.random.default_rng(0).normal(size=(ROWS, COLUMNS))
    with failing_case(x=x, block_n=BLOCK):
        peak, y = peak_bytes_allocated(lambda: learner.online_softmax(x, BLOCK))
        expect_close("y", y, expected(x))
        extra = peak - np.asarray(y).nbytes
        if extra > x.nbytes // 4:
            raise Failure(f"held {extra / 1024:.0f} KiB at once besides the output: {extra / x.nbytes:.1f} times the "
                          f"size of x; a tile of (4, {BLOCK}) float64 is {ROWS * BLOCK * 8 / 1024:.0f} KiB")


def _online(x, block_n, rescale=1.0, tail=True):
    """The online softmax right and wrong: ``rescale`` -1 multiplies the running sum by exp(m_new - m_old) instead
    of exp(m_old - m_new), 0 does not rescale it; ``tail`` False skips a last, partial tile."""
    M, N = x.shape
    stop = N if tail else N - N % block_n
    m, total = np.full((M, 1), -np.inf), np.zeros((M, 1))
    for start in range(0, stop, block_n):
        tile = x[:, start:min(start + block_n, stop)]
        m_new = np.maximum(m, tile.max(1, keepdims=True))
        factor = 1.0 if rescale == 0 else np.exp(rescale * (m - m_new))
        total = total * factor + np.exp(tile - m_new).sum(1, keepdims=True)
        m = m_new
    y = np.zeros_like(x)
    for start in range(0, stop, block_n):
        y[:, start:start + block_n] = np.exp(x[:, start:start + block_n] - m) / total
    return y


_rng = np.random.default_rng(5)
_PROBES = ((np.sort(_rng.normal(size=(3, 10)) * 4, axis=1), 4), (_rng.normal(size=(2, 7)) * 3, 3),
           (_rng.normal(size=(2, 9)), 16))

EXERCISE = Exercise(
    name="online_softmax",
    summary="online_softmax(x, block_n): row softmax over column tiles with a running max and sum (flash's trick)",
    signatures=("online_softmax(x, block_n)",),
    checks=(
        Check("matches torch.softmax for any N and block_n, a partial last tile included (float64, to 1e-10)",
              random_inputs, "walk the columns in tiles x[:, start:start + block_n] for start = 0, block_n, "
              "2 block_n, ... while start < N (the last tile may be narrower); pass 1 keeps the running max m and "
              "sum l per row, pass 2 writes exp(x - m) / l tile by tile"),
        Check("large inputs (|x| up to 1e4) whose maximum grows (or shrinks) from tile to tile", growing_maximum,
              "when the maximum grows from m to m_new, rescale the sum so far: l = l * exp(m - m_new) + "
              "sum(exp(tile - m_new))"),
        Check("holds one tile at a time: nothing near the size of x besides the output (tracemalloc)",
              one_tile_at_a_time, "never compute over a whole row (no x.max(1), np.exp(x), or a list of all the "
              "tiles): keep only m and l, (M, 1) each, and write into a preallocated y"),
    ),
    mistakes=(
        Mistake("the running sum not rescaled when the maximum grows",
                "l was summed against the old maximum: l = l * exp(m_old - m_new) + sum(exp(tile - m_new))",
                {"online_softmax": lambda x, block_n: _online(x, block_n, rescale=0.0)}),
        Mistake("the running sum rescaled by exp(m_new - m_old), the wrong way",
                "m_new >= m_old, so the factor exp(m_old - m_new) <= 1 shrinks the old sum",
                {"online_softmax": lambda x, block_n: _online(x, block_n, rescale=-1.0)}),
        Mistake("the last, partial tile skipped when block_n does not divide N",
                "range(0, N, block_n) covers every column; the last slice x[:, start:start + block_n] is just shorter",
                {"online_softmax": lambda x, block_n: _online(x, block_n, tail=False)}),
    ),
    probes=tuple(("online_softmax", lambda f, p=p: f.online_softmax(p[0].copy(), p[1])) for p in _PROBES),
)
