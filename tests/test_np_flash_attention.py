"""The tiled NumPy flash attention (reference/np_flash_attention.py): the textbook's answer, the kernel's schedule.

* float64: tiled NumPy == plain NumPy (reference/np_attention.py) == torch autograd to 1e-10, forward, LSE and
  gradients, for any block sizes, odd lengths, Tq < Tk and Tq > Tk, key padding, causal, dropout;
* float32: tiled NumPy == the Triton kernel (kernels/flash_attention.py) at the same block sizes: bit for bit under
  the interpreter (each ``tl`` operation is the same NumPy call on the same tile, so any drift in the order of
  operations shows), within FP32_ATOL on a GPU;
* the trace: the block schedule is exactly the blocks that hold a visible (query, key) pair, and the running max and
  normaliser converge to the row's log-sum-exp;
* memory: the forward never allocates anything of size Tq × Tk.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.exercises.checks.memory import peak_bytes_allocated
from scratchformers.exercises.checks.tolerances import FP64_ATOL
from scratchformers.reference import np_flash_attention as tiled
from scratchformers.reference.np_attention import attention_backward, attention_forward, visibility_mask
from scratchformers.reference.np_tiles import rand
from twins import ROOT, assert_same_as_kernel, assert_twins_in_order



def visibility(Tq: int, Tk: int, causal: bool, key_lens: np.ndarray | None, B: int) -> np.ndarray:
    """(B, 1, Tq, Tk) bool: which query may attend to which key (bottom-right causal, right padding)."""
    lens = np.full(B, Tk) if key_lens is None else np.asarray(key_lens)
    visible = visibility_mask(Tq, Tk, causal=causal, attention_mask=np.arange(Tk)[None, :] < lens[:, None])
    return np.broadcast_to(visible, (B, 1, Tq, Tk))


def keep_mask(B: int, H: int, Tq: int, Tk: int, p: float, seed: int) -> np.ndarray:
    """(B, H, Tq, Tk) the dropout keep mask as the kernel documents it: Philox at counter i·Tk + j, key
    seed + (bh << 32)."""
    counters = np.arange(Tq)[:, None] * Tk + np.arange(Tk)[None, :]
    return np.stack([rand(seed + (bh << 32), counters) >= np.float32(p) for bh in range(B * H)]).reshape(B, H, Tq, Tk)


def torch_attention(q, k, v, do, visible, scale, keep=None, p=0.0) -> list[np.ndarray]:
    """Output, base-2 LSE and (dq, dk, dv) by torch autograd of softmax(scale · Q Kᵀ, masked) (⊙ Z / (1 - p)) V."""
    q, k, v = (torch.tensor(t, requires_grad=True) for t in (q, k, v))
    visible = torch.tensor(visible)
    scores = (q @ k.transpose(-1, -2) * scale).masked_fill(~visible, -math.inf)
    has_key = visible.any(-1, keepdim=True)
    probs = torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1) * visible
    if keep is not None:
        probs = probs * torch.tensor(keep) / (1 - p)
    out = probs @ v
    out.backward(torch.tensor(do))
    lse = torch.logsumexp(scores, dim=-1) / math.log(2)  # base 2
    lse = lse.masked_fill(~has_key[..., 0], math.inf)  # rows that see no key: +inf, as the kernel stores
    return [t.detach().numpy() for t in (out, lse, q.grad, k.grad, v.grad)]


def run_tiled(q, k, v, do, key_lens, causal, scale, dropout_p=0.0, seed=None, block_m=16, block_n=16):
    out, lse = tiled.flash_attention_forward(q, k, v, key_lens, causal, scale, dropout_p, seed, block_m=block_m,
                                       block_n=block_n)
    grads = tiled.flash_attention_backward(do, q, k, v, out, lse, key_lens, causal, scale, dropout_p, seed,
                                     block_m=block_m, block_n=block_n)
    return [out, lse, *grads]


NAMES = ("out", "lse", "dq", "dk", "dv")


def assert_all_close(got: list[np.ndarray], want: list[np.ndarray], atol: float, names=NAMES):
    for name, g, w in zip(names, got, want):
        assert g.shape == w.shape, name
        finite = np.isfinite(w)
        assert np.array_equal(finite, np.isfinite(g)) and np.array_equal(g[~finite], w[~finite]), name
        err = np.abs(g[finite] - w[finite]).max(initial=0.0)
        assert err <= atol, f"{name}: max abs error {err:.3g} > {atol:.3g}"


@st.composite
def cases(draw, max_t: int = 33):
    B, H = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    Tk = draw(st.integers(1, max_t))
    Tq = draw(st.integers(1, max_t) | st.sampled_from([-9, -1, 0, 1, 9]).map(lambda d: Tk + d))
    Tq = min(max(Tq, 1), max_t)
    lengths = draw(st.none() | st.lists(st.integers(0, Tk), min_size=B, max_size=B))
    return dict(B=B, H=H, Tq=Tq, Tk=Tk, causal=draw(st.booleans()),
                key_lens=None if lengths is None else np.array(lengths), seed=draw(st.integers(0, 2**16)))


def inputs(B, H, Tq, Tk, D, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q, k, v, do = (rng.standard_normal((B, H, T, D)).astype(dtype) for T in (Tq, Tk, Tk, Tq))
    return q, k, v, do


def check_against_the_textbook(B, H, Tq, Tk, D, causal, key_lens, block_m, block_n, seed):
    q, k, v, do = inputs(B, H, Tq, Tk, D, seed)
    scale = D**-0.5
    got = run_tiled(q, k, v, do, key_lens, causal, scale, block_m=block_m, block_n=block_n)

    visible = visibility(Tq, Tk, causal, key_lens, B)
    assert_all_close(got, torch_attention(q, k, v, do, visible, scale), FP64_ATOL)
    mask = None if key_lens is None else (np.arange(Tk)[None, :] < key_lens[:, None]).astype(np.int64)
    out, _, cache = attention_forward(q, k, v, causal, mask)
    plain = [out, *attention_backward(do, cache)]
    assert_all_close([got[0], *got[2:]], plain, FP64_ATOL, names=("out", "dq", "dk", "dv"))


@settings(max_examples=25, deadline=None)
@given(case=cases(), D=st.integers(1, 8), block_m=st.integers(1, 12), block_n=st.integers(1, 12))
def test_tiled_equals_plain_numpy_and_torch_autograd(case, D, block_m, block_n):
    check_against_the_textbook(case["B"], case["H"], case["Tq"], case["Tk"], D, case["causal"], case["key_lens"],
                               block_m, block_n, case["seed"])


@pytest.mark.parametrize("Tq, Tk, causal, lengths, block_m, block_n", [
    (1, 17, True, None, 4, 4),  # one decoding step against a KV cache
    (23, 9, True, None, 4, 3),  # Tq > Tk: the first 14 queries see no key
    (9, 23, True, [23, 11], 5, 7),  # Tq < Tk with padding
    (16, 16, False, [0, 16], 16, 16),  # a sequence that is all padding
    (13, 13, True, [13, 13], 1, 1),  # one query against one key per step
    (7, 30, False, None, 7, 30),  # one block each way
])
def test_textbook_edge_cases(Tq, Tk, causal, lengths, block_m, block_n):
    lens = None if lengths is None else np.array(lengths)
    check_against_the_textbook(len(lengths or [0]), 2, Tq, Tk, 3, causal, lens, block_m, block_n, seed=Tq * Tk)


@settings(max_examples=10, deadline=None)
@given(case=cases(max_t=24), block_m=st.integers(1, 12), block_n=st.integers(1, 12), p=st.sampled_from([0.1, 0.5]))
def test_dropout_equals_torch_autograd_with_the_philox_mask(case, block_m, block_n, p):
    B, H, Tq, Tk, causal, key_lens = (case[n] for n in ("B", "H", "Tq", "Tk", "causal", "key_lens"))
    q, k, v, do = inputs(B, H, Tq, Tk, 4, case["seed"])
    got = run_tiled(q, k, v, do, key_lens, causal, 0.5, p, case["seed"], block_m, block_n)
    keep = keep_mask(B, H, Tq, Tk, p, case["seed"])
    want = torch_attention(q, k, v, do, visibility(Tq, Tk, causal, key_lens, B), 0.5, keep, p)
    assert_all_close(got, want, FP64_ATOL)


# ----------------------------------------------------------------------------------------------------------------------
# The mirror against the Triton kernel
# ----------------------------------------------------------------------------------------------------------------------

def interpreted() -> bool:
    from scratchformers.kernels.common import INTERPRET

    return INTERPRET


def kernel_attention(q, k, v, do, key_lens, causal, scale, dropout_p, seed, block_m, block_n) -> list[np.ndarray]:
    from scratchformers.kernels.flash_attention import flash_attention_backward as kernel_backward
    from scratchformers.kernels.flash_attention import flash_attention_forward as kernel_forward

    device = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v, do = (torch.tensor(t, device=device) for t in (q, k, v, do))
    lens = None if key_lens is None else torch.tensor(key_lens, dtype=torch.int32, device=device)
    seed = None if dropout_p == 0.0 else torch.tensor([seed], dtype=torch.int64, device=device)
    tiles = dict(block_m=block_m, block_n=block_n)
    out, lse = kernel_forward(q, k, v, lens, causal, scale, dropout_p, seed, **tiles)
    grads = kernel_backward(do, q, k, v, out, lse, lens, causal, scale, dropout_p, seed, **tiles)
    return [t.cpu().numpy() for t in (out, lse, *grads)]


@settings(max_examples=15, deadline=None)
@given(case=cases(max_t=40), D=st.sampled_from([16, 32]), dropout=st.booleans(),
       blocks=st.sampled_from([(16, 16), (16, 32), (32, 16), (32, 32), (64, 16)]))
def test_tiled_equals_the_triton_kernel(case, D, dropout, blocks):
    """float32, the same tiles for both (the kernel's block_m / block_n bypass its autotuner). Head dims are powers
    of two: the kernel zero-pads others, which changes nothing but the order in which the dot products add up."""
    B, H, Tq, Tk, causal, key_lens = (case[n] for n in ("B", "H", "Tq", "Tk", "causal", "key_lens"))
    q, k, v, do = inputs(B, H, Tq, Tk, D, case["seed"], np.float32)
    p = 0.3 if dropout else 0.0
    lens = None if key_lens is None else key_lens.astype(np.int32)
    got = run_tiled(q, k, v, do, lens, causal, D**-0.5, p, case["seed"], *blocks)
    kernel = kernel_attention(q, k, v, do, lens, causal, D**-0.5, p, case["seed"], *blocks)
    assert_same_as_kernel(got, kernel, NAMES, interpreted())


def test_every_kernel_function_has_its_twin_in_the_same_order():
    """Hold the files side by side: the @triton.jit functions of the kernel, in order, are the twin's device code."""
    assert_twins_in_order("flash_attention.py", "np_flash_attention.py")


# ----------------------------------------------------------------------------------------------------------------------
# Trace: the block schedule and the online softmax
# ----------------------------------------------------------------------------------------------------------------------

@settings(max_examples=20, deadline=None)
@given(case=cases(max_t=40), block_m=st.integers(1, 12), block_n=st.integers(1, 12))
def test_schedule_visits_exactly_the_blocks_with_visible_pairs(case, block_m, block_n):
    """Skipped blocks hold no visible (query, key) pair; unmasked blocks hold only visible pairs (for the real
    query rows); every other block with a visible pair is visited with the mask."""
    B, Tq, Tk, causal, key_lens = (case[n] for n in ("B", "Tq", "Tk", "causal", "key_lens"))
    q, k, v, _ = inputs(B, 1, Tq, Tk, 2, case["seed"])
    *_, trace = tiled.flash_attention_forward(q, k, v, key_lens, causal, 1.0, block_m=block_m, block_n=block_n,
                                        return_trace=True)
    visible = visibility(Tq, Tk, causal, key_lens, B)[:, 0]  # (B, Tq, Tk)
    for b in range(B):
        table = trace.schedule(bh=b)
        for i, j in np.ndindex(table.shape):
            tile = visible[b, i * block_m:(i + 1) * block_m, j * block_n:(j + 1) * block_n]
            if table[i, j] == trace.SKIPPED:
                assert not tile.any(), (b, i, j)
            elif table[i, j] == trace.FULL:
                assert tile.all() and tile.shape[1] == block_n, (b, i, j)  # a full tile of real keys
            else:
                assert table[i, j] == trace.MASKED and tile.any(), (b, i, j)
    # each (query block, key block) pair is visited at most once
    visits = [(s.bh, s.start_m, s.start_n) for s in trace.steps]
    assert len(visits) == len(set(visits))


def test_causal_schedule_is_the_block_lower_triangle():
    q = k = v = np.ones((1, 1, 64, 8))
    *_, trace = tiled.flash_attention_forward(q, k, v, None, True, 1.0, return_trace=True)
    S, M, F = trace.SKIPPED, trace.MASKED, trace.FULL
    assert trace.schedule().tolist() == [[M, S, S, S], [F, M, S, S], [F, F, M, S], [F, F, F, M]]


def test_online_softmax_converges_to_the_row_log_sum_exp():
    """m_i never decreases, the running sum of exponentials Σ exp2(s - m_i) · 2^m_i grows with every key block, and
    after the last block m_i + log2(l_i) is the row's log-sum-exp (base 2)."""
    q, k, v, _ = inputs(1, 1, 40, 56, 8, seed=3)
    out, lse, trace = tiled.flash_attention_forward(q, k, v, None, True, 8**-0.5, block_m=8, block_n=8,
                                                    return_trace=True)
    scores = (q[0, 0] @ k[0, 0].T) * 8**-0.5 * tiled.LOG2E  # (Tq, Tk), base 2
    for row in (0, 7, 21, 39):
        starts, m, l = trace.history(row)
        keys = row + 56 - 40 + 1  # bottom-right causal: row i sees keys 0 .. i + Tk - Tq
        assert starts == list(range(0, keys, 8))
        assert np.all(np.diff(m) >= 0) and np.all(np.diff(np.log2(l) + m) > 0)
        assert abs(m[-1] + np.log2(l[-1]) - lse[0, 0, row]) < 1e-12
        assert abs(m[-1] + np.log2(l[-1]) - np.log2(np.exp2(scores[row, :keys]).sum())) < 1e-12


# ----------------------------------------------------------------------------------------------------------------------
# Memory: the point of the algorithm
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_forward_allocates_nothing_of_size_tq_by_tk(causal):
    """Everything the forward allocates beyond its outputs stays far below one T x T float64 matrix (8 MiB at
    T = 1024: the scores, or the probabilities, that plain attention materialises)."""
    T, D = 1024, 16
    q, k, v, _ = inputs(1, 1, T, T, D, seed=T)
    lens = np.array([T - 5])  # padding: the masked loads run too
    peak, _ = peak_bytes_allocated(lambda: tiled.flash_attention_forward(q, k, v, lens, causal, 0.25))
    extra = peak - q.nbytes - T * 8  # minus O and LSE
    assert extra <= T * T * 8 // 32, f"{extra} bytes"


def largest_intermediate(fn, host: str) -> int:
    """Run fn and return the size (elements) of the largest array that any program function of the twin (any frame
    below the host function ``host`` in reference/) ever held in a variable or returned, not counting views of the
    host's own arrays (the inputs and outputs in memory)."""
    reference = str(ROOT / "reference")
    largest = 0

    def host_arrays(frame) -> list[np.ndarray]:
        while frame is not None and frame.f_code.co_name != host:
            frame = frame.f_back
        return [] if frame is None else [a for a in frame.f_locals.values() if isinstance(a, np.ndarray)]

    def watch(frame, event, arg):
        nonlocal largest
        values = list(frame.f_locals.values()) + ([arg] if event == "return" else [])
        outer = host_arrays(frame.f_back)
        for a in values:
            if isinstance(a, np.ndarray) and not any(np.may_share_memory(a, big) for big in outer):
                largest = max(largest, a.size)
        return watch

    def enter(frame, event, arg):
        inside = frame.f_code.co_filename.startswith(reference) and frame.f_code.co_name != host
        return watch if inside else None

    sys.settrace(enter)
    try:
        fn()
    finally:
        sys.settrace(None)
    return largest


@pytest.mark.parametrize("causal", [False, True])
def test_forward_working_set_is_bounded_by_the_blocks(causal):
    """No program ever holds an array larger than one (BLOCK_M, BLOCK_N) tile or one (BLOCK, D) tile, whatever the
    sequence length: the point of the algorithm."""
    T, D = 256, 8
    q, k, v, _ = inputs(1, 2, T, T, D, seed=1)
    lens = np.array([T - 3])
    for block_m, block_n in ((16, 16), (32, 8)):
        largest = largest_intermediate(lambda: tiled.flash_attention_forward(
            q, k, v, lens, causal, 0.5, block_m=block_m, block_n=block_n), "flash_attention_forward")
        assert largest == max(block_m * block_n, block_m * D, block_n * D), (block_m, block_n, largest)


# ----------------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (dict(q=np.zeros((1, 2, 3))), "B, H, Tq, D"),
    (dict(k=np.zeros((1, 1, 4, 8), np.float32)), "float32"),
    (dict(key_lens=np.array([1, 2])), "key_lens"),
    (dict(dropout_p=0.5), "seed"),
    (dict(block_m=0), "block sizes"),
])
def test_bad_inputs_are_one_line_errors(change, message):
    arguments = dict(q=np.zeros((1, 1, 3, 8)), k=np.zeros((1, 1, 4, 8)), v=np.zeros((1, 1, 4, 8)), key_lens=None,
                     causal=True, scale=1.0) | change
    block_m = arguments.pop("block_m", 16)
    with pytest.raises(ValueError, match=message):
        tiled.flash_attention_forward(**arguments, block_m=block_m)
