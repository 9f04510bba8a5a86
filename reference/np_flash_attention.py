"""Flash attention in NumPy, tile by tile: the Triton kernels of ``kernels/flash_attention.py``, line for line.

The Triton kernel cannot be stepped through, printed or plotted; this file can. It runs the same programs with the
same names, the same block loops and the same order of operations (read the kernel's module docstring for the
algorithm). Hold the two files side by side: every device function of the kernel (``_attn_fwd``, ``_fwd_inner``,
``_key_range``, ``_attn_bwd_kv``, ...) has its twin here, in the same order, and the host functions
``flash_attention_forward`` / ``flash_attention_backward`` launch them on the same grids. The translation:

    kernel                                              NumPy twin
    tl.program_id(0)                                    program_id[0]   (np_tiles.launch runs the grid)
    _head(Q, b, h, stride_qb, stride_qh): a pointer     _head(Q, b, h): Q[b, h], the (T, D) rows of one head
    _tile(base, rows, stride, offs_d): pointers         _tile(rows, offs_d): index arrays
    tl.load(pointers, mask=..., other=...)              load(array, indices, mask=..., other=...)
    tl.dot(a, b), tl.trans(a)                           a @ b, a.T
    tl.math.exp2, tl.where, tl.max(x, 1), tl.sum        np.exp2, np.where, np.max(x, 1), np.sum
    tl.rand(seed, offset)                               np_tiles.rand: Triton's Philox, bit for bit

**The point of the algorithm: nothing of size Tq × Tk is ever materialised.** A forward program holds one
(BLOCK_M, BLOCK_N) tile of scores and probabilities, (BLOCK_N, D) tiles of K and V, and its (BLOCK_M, D)
accumulator; its working set is set by the block sizes, whatever the sequence lengths. The backward keeps the same
bound by recomputing each tile of P from the saved log-sum-exp. ``tests/test_np_flash_attention.py`` proves it for
the forward twice: no array a program holds is larger than one tile, and nothing near Tq × Tk is ever allocated.

What differs from the kernel, none of it in the arithmetic:

* arrays are float32, as the kernel computes (its accumulators are float32), or float64 for exact textbook checks;
* any positive block sizes (the kernel's ``tl.dot`` needs powers of two >= 16) and any head dimension (the kernel
  zero-pads it to a power of two, which changes no result);
* the programs of a grid run one after another instead of in parallel;
* the forward can record a trace (:class:`FlashTrace`): every key block each query block visited, with or without
  masking, and the running max and normaliser after each, for plots and for students.

Dropout is mirrored too: the keep mask is Triton's Philox draw, regenerated bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scratchformers.reference.np_tiles import cdiv, launch, load, rand, store

LOG2E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * LOG2E); folded into the score scale


@dataclass
class FlashStep:
    """One pass of a forward program's key-block loop: query rows [start_m, start_m + BLOCK_M) against key rows
    [start_n, start_n + BLOCK_N), with masking or not, and the state after it."""

    bh: int
    start_m: int
    start_n: int
    masked: bool
    m_i: np.ndarray  # (BLOCK_M,) running max of the base-2 scores after this block
    l_i: np.ndarray  # (BLOCK_M,) running sum of exp2(s - m_i) after this block


@dataclass
class FlashTrace:
    """What the forward programs did, step by step (see :class:`FlashStep`). Key blocks a query block never visited
    were skipped: the loop bounds of ``_key_range`` stopped before them."""

    H: int
    Tq: int
    Tk: int
    block_m: int
    block_n: int
    causal: bool
    key_lens: np.ndarray | None
    steps: list[FlashStep] = field(default_factory=list)

    SKIPPED, MASKED, FULL = 0, 1, 2

    def schedule(self, bh: int = 0) -> np.ndarray:
        """(query blocks, key blocks) table of head ``bh``: SKIPPED (0), MASKED (1) or FULL (2, visited unmasked)."""
        table = np.full((cdiv(self.Tq, self.block_m), cdiv(self.Tk, self.block_n)), self.SKIPPED)
        for step in self.steps:
            if step.bh == bh:
                table[step.start_m // self.block_m, step.start_n // self.block_n] = (
                    self.MASKED if step.masked else self.FULL)
        return table

    def visible(self, bh: int = 0) -> np.ndarray:
        """(Tq, Tk) bool: which query may attend to which key in head ``bh`` (for plots; the kernel never builds
        this matrix, it asks ``_visible`` tile by tile)."""
        key_len = self.Tk if self.key_lens is None else int(self.key_lens[bh // self.H])
        visible = _visible(np.arange(self.Tq)[:, None], np.arange(self.Tk)[None, :], key_len, self.Tk - self.Tq,
                           self.causal)
        return np.broadcast_to(visible, (self.Tq, self.Tk))

    def history(self, row: int, bh: int = 0) -> tuple[list[int], np.ndarray, np.ndarray]:
        """For query ``row`` of head ``bh``: the key blocks (start_n) it visited in order, and its running max m_i
        and normaliser l_i after each one (two arrays of that length)."""
        steps = [s for s in self.steps if s.bh == bh and s.start_m <= row < s.start_m + self.block_m]
        local = row % self.block_m
        return ([s.start_n for s in steps], np.array([s.m_i[local] for s in steps]),
                np.array([s.l_i[local] for s in steps]))


# ----------------------------------------------------------------------------------------------------------------------
# Device code: one function per @triton.jit function of the kernel, same names, same order.
# ----------------------------------------------------------------------------------------------------------------------

def _program(program_id, LENS, SEED, H, Tq, Tk, length, BLOCK, HAS_LENS, DROPOUT):
    """What this program owns and the per-(batch, head) facts it needs, the same for every kernel.

    The grid is one-dimensional, B · H · cdiv(length, BLOCK) programs: program p takes block p mod n of head p div n.
    Returns the block's first row, the flat head index bh and its (b, h), the causal shift Tk - Tq (query i sits
    at absolute position shift + i), the number of visible keys and the head's dropout seed.
    """
    pid = program_id[0]
    blocks = cdiv(length, BLOCK)
    bh = pid // blocks
    start = (pid % blocks) * BLOCK
    b = bh // H
    key_len = Tk
    if HAS_LENS:
        key_len = int(LENS[b])
    seed_bh = 0
    if DROPOUT:
        seed_bh = SEED + (bh << 32)
    return start, bh, b, bh % H, Tk - Tq, key_len, seed_bh


def _head(P, b, h):
    """Head (b, h) of a (B, H, T, D) array: its (T, D) rows (the kernel: a pointer to them)."""
    return P[b, h]


def _tile(rows, offs_d):
    """Indices of rows × head-dim of one head (the kernel: their pointers)."""
    return rows[:, None], offs_d[None, :]


def _keep_mask(seed_bh, q_idx, k_idx, Tk, dropout_p):
    """Bernoulli(1 - dropout_p) keep mask, reproducible from (seed, head, i, j): the kernel's Philox draw."""
    return rand(seed_bh, q_idx * Tk + k_idx) >= np.float32(dropout_p)  # the kernel compares in float32


def _visible(q_idx, k_idx, key_len, q_shift, CAUSAL):
    """Which (query, key) pairs of the tile may attend: key inside the length and, if causal, not in the future."""
    visible = k_idx < key_len
    if CAUSAL:
        visible = visible & (k_idx <= q_shift + q_idx)
    return visible


def _load_kv(k_base, v_base, offs_n, offs_d, key_len, MASKED):
    """The K and V tiles of keys offs_n (zeros past the key length when MASKED)."""
    if MASKED:
        k = load(k_base, _tile(offs_n, offs_d), mask=offs_n[:, None] < key_len, other=0.0)
        v = load(v_base, _tile(offs_n, offs_d), mask=offs_n[:, None] < key_len, other=0.0)
    else:
        k = load(k_base, _tile(offs_n, offs_d))
        v = load(v_base, _tile(offs_n, offs_d))
    return k, v


def _scores(q, k, offs_m, offs_n, key_len, q_shift, qk_scale, CAUSAL, MASKED):
    """Base-2 logits scale·log2(e)·Q Kᵀ of a (BLOCK_M, BLOCK_N) tile; -inf where the key is hidden (MASKED tiles)."""
    s = (q @ k.T) * qk_scale
    if MASKED:
        s = np.where(_visible(offs_m[:, None], offs_n[None, :], key_len, q_shift, CAUSAL), s, -np.inf)
    return s


def _fwd_inner(acc, l_i, m_i, q, k_base, v_base, offs_m, offs_d, lo, hi, key_len, q_shift, Tk, qk_scale, seed_bh,
               dropout_p, BLOCK_N, CAUSAL, MASKED, DROPOUT, trace=None, bh=0):
    """Online-softmax update of (acc, l_i, m_i) with the key blocks starting in [lo, hi)."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + np.arange(BLOCK_N)
        k, v = _load_kv(k_base, v_base, offs_n, offs_d, key_len, MASKED)
        s = _scores(q, k, offs_m, offs_n, key_len, q_shift, qk_scale, CAUSAL, MASKED)
        m_new = np.maximum(m_i, np.max(s, 1))
        # A row with nothing visible yet has m_new = -inf; subtracting 0 instead keeps exp2(-inf) = 0, not NaN.
        m_safe = np.where(m_new == -np.inf, 0.0, m_new)
        p = np.exp2(s - m_safe[:, None])
        alpha = np.exp2(m_i - m_safe)
        l_i = l_i * alpha + np.sum(p, 1)
        if DROPOUT:
            p = np.where(_keep_mask(seed_bh, offs_m[:, None], offs_n[None, :], Tk, dropout_p), p, 0.0)
        acc = acc * alpha[:, None] + p @ v
        m_i = m_new
        if trace is not None:
            trace.steps.append(FlashStep(bh, int(offs_m[0]), start_n, MASKED, m_i.copy(), l_i.copy()))
    return acc, l_i, m_i


def _key_range(start_m, key_len, q_shift, BLOCK_M, BLOCK_N, CAUSAL):
    """Keys [0, full) are visible to every row of the query block; keys [full, hi) only to some (need masking)."""
    if CAUSAL:
        full = min(key_len, q_shift + start_m + 1)
        hi = min(key_len, q_shift + start_m + BLOCK_M)
    else:
        full = key_len
        hi = key_len
    full = (max(full, 0) // BLOCK_N) * BLOCK_N
    hi = max(hi, 0)
    return full, hi


def _attn_fwd(program_id, Q, K, V, O, LSE, LENS, SEED, H, Tq, Tk, qk_scale, dropout_p,
              HEAD_DIM, CAUSAL, HAS_LENS, DROPOUT, ACC, BLOCK_M, BLOCK_N, trace=None):
    start_m, bh, b, h, q_shift, key_len, seed_bh = _program(program_id, LENS, SEED, H, Tq, Tk, Tq, BLOCK_M,
                                                            HAS_LENS, DROPOUT)
    offs_m = start_m + np.arange(BLOCK_M)
    offs_d = np.arange(HEAD_DIM)
    q = load(_head(Q, b, h), _tile(offs_m, offs_d), mask=offs_m[:, None] < Tq, other=0.0)
    m_i = np.full(BLOCK_M, -np.inf, dtype=ACC)
    l_i = np.zeros(BLOCK_M, dtype=ACC)
    acc = np.zeros((BLOCK_M, HEAD_DIM), dtype=ACC)
    k_base = _head(K, b, h)
    v_base = _head(V, b, h)

    full, hi = _key_range(start_m, key_len, q_shift, BLOCK_M, BLOCK_N, CAUSAL)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, offs_m, offs_d, 0, full,
                               key_len, q_shift, Tk, qk_scale, seed_bh, dropout_p,
                               BLOCK_N, CAUSAL, False, DROPOUT, trace, bh)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, offs_m, offs_d, full, hi,
                               key_len, q_shift, Tk, qk_scale, seed_bh, dropout_p,
                               BLOCK_N, CAUSAL, True, DROPOUT, trace, bh)

    empty = l_i == 0.0  # rows that saw no key
    out = acc / np.where(empty, 1.0, l_i)[:, None]
    if DROPOUT:
        out = out / (1.0 - dropout_p)
    lse = np.where(empty, np.inf, m_i + np.log2(np.where(empty, 1.0, l_i)))
    store(_head(O, b, h), _tile(offs_m, offs_d), out, mask=offs_m[:, None] < Tq)
    store(LSE[bh], (offs_m,), lse, mask=offs_m < Tq)


def _attn_bwd_delta(program_id, O, DO, DELTA, H, Tq, HEAD_DIM, ACC, BLOCK_M):
    """Delta_i = rowsum(dO_i ⊙ O_i), the softmax-backward row term."""
    start_m, bh, b, h, _, _, _ = _program(program_id, None, None, H, Tq, Tq, Tq, BLOCK_M, False, False)
    offs_m = start_m + np.arange(BLOCK_M)
    offs_d = np.arange(HEAD_DIM)
    row = offs_m[:, None] < Tq
    o = load(_head(O, b, h), _tile(offs_m, offs_d), mask=row, other=0.0)
    do = load(_head(DO, b, h), _tile(offs_m, offs_d), mask=row, other=0.0)
    delta = np.sum(o.astype(ACC) * do.astype(ACC), axis=1)
    store(DELTA[bh], (offs_m,), delta, mask=offs_m < Tq)


def _bwd_kv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, offs_n, offs_d, lo, hi,
                  Tq, Tk, key_len, q_shift, qk_scale, seed_bh, dropout_p, BLOCK_M, CAUSAL, MASKED, DROPOUT):
    """Accumulate dK, dV of one key block over the query blocks starting in [lo, hi).

    Works on transposed tiles (keys along rows) so that K and V are used as loaded. Query rows past Tq load
    LSE = +inf, which makes their recomputed probabilities exactly 0.
    """
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + np.arange(BLOCK_M)
        row = offs_m < Tq
        qT = load(q_base, (offs_m[None, :], offs_d[:, None]), mask=row[None, :], other=0.0)
        do = load(do_base, _tile(offs_m, offs_d), mask=row[:, None], other=0.0)
        lse = load(lse_base, (offs_m,), mask=row, other=np.inf)
        delta = load(delta_base, (offs_m,), mask=row, other=0.0)
        sT = (k @ qT) * qk_scale  # (BLOCK_N, BLOCK_M)
        pT = np.exp2(sT - lse[None, :])
        if MASKED:
            pT = np.where(_visible(offs_m[None, :], offs_n[:, None], key_len, q_shift, CAUSAL), pT, 0.0)
        dpT = v @ do.T  # dP = dO Vᵀ, transposed
        if DROPOUT:
            keepT = _keep_mask(seed_bh, offs_m[None, :], offs_n[:, None], Tk, dropout_p)
            dv += np.where(keepT, pT / (1.0 - dropout_p), 0.0) @ do
            dpT = np.where(keepT, dpT / (1.0 - dropout_p), 0.0)
        else:
            dv += pT @ do
        dsT = pT * (dpT - delta[None, :])
        dk += dsT @ qT.T
    return dk, dv


def _attn_bwd_kv(program_id, Q, K, V, DO, DK, DV, LSE, DELTA, LENS, SEED, H, Tq, Tk, qk_scale, sm_scale, dropout_p,
                 HEAD_DIM, CAUSAL, HAS_LENS, DROPOUT, ACC, BLOCK_M, BLOCK_N):
    start_n, bh, b, h, q_shift, key_len, seed_bh = _program(program_id, LENS, SEED, H, Tq, Tk, Tk, BLOCK_N,
                                                            HAS_LENS, DROPOUT)
    offs_n = start_n + np.arange(BLOCK_N)
    offs_d = np.arange(HEAD_DIM)

    dk = np.zeros((BLOCK_N, HEAD_DIM), dtype=ACC)
    dv = np.zeros((BLOCK_N, HEAD_DIM), dtype=ACC)
    if start_n < key_len:  # blocks past the key length get zero gradients
        k, v = _load_kv(_head(K, b, h), _head(V, b, h), offs_n, offs_d, key_len, True)
        # Query blocks before `lo` see none of these keys; from `mid` on they see all of them (no mask needed).
        lo = 0
        mid = 0
        if CAUSAL:
            lo = (max(start_n - q_shift, 0) // BLOCK_M) * BLOCK_M
            mid = cdiv(max(start_n + BLOCK_N - 1 - q_shift, 0), BLOCK_M) * BLOCK_M
        # A block that straddles the key length needs the mask against every query block.
        mid = Tq if start_n + BLOCK_N > key_len else min(mid, Tq)
        q_base = _head(Q, b, h)
        do_base = _head(DO, b, h)
        lse_base = LSE[bh]
        delta_base = DELTA[bh]
        dk, dv = _bwd_kv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, offs_n,
                               offs_d, lo, mid, Tq, Tk, key_len, q_shift, qk_scale, seed_bh, dropout_p,
                               BLOCK_M, CAUSAL, True, DROPOUT)
        dk, dv = _bwd_kv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, offs_n,
                               offs_d, mid, Tq, Tq, Tk, key_len, q_shift, qk_scale, seed_bh, dropout_p,
                               BLOCK_M, CAUSAL, False, DROPOUT)
    inside = offs_n[:, None] < Tk
    store(_head(DK, b, h), _tile(offs_n, offs_d), dk * sm_scale, mask=inside)
    store(_head(DV, b, h), _tile(offs_n, offs_d), dv, mask=inside)


def _bwd_q_inner(dq, q, do, lse, delta, k_base, v_base, offs_m, offs_d, lo, hi, Tk, key_len,
                 q_shift, qk_scale, seed_bh, dropout_p, BLOCK_N, CAUSAL, MASKED, DROPOUT):
    """Accumulate dQ of one query block over the key blocks starting in [lo, hi)."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + np.arange(BLOCK_N)
        k, v = _load_kv(k_base, v_base, offs_n, offs_d, key_len, MASKED)
        p = np.exp2(_scores(q, k, offs_m, offs_n, key_len, q_shift, qk_scale, CAUSAL, MASKED)
                    - lse[:, None])  # P recomputed from the saved LSE; hidden keys: exp2(-inf) = 0
        dp = do @ v.T
        if DROPOUT:
            keep = _keep_mask(seed_bh, offs_m[:, None], offs_n[None, :], Tk, dropout_p)
            dp = np.where(keep, dp / (1.0 - dropout_p), 0.0)
        ds = p * (dp - delta[:, None])
        dq += ds @ k
    return dq


def _attn_bwd_q(program_id, Q, K, V, DO, DQ, LSE, DELTA, LENS, SEED, H, Tq, Tk, qk_scale, sm_scale, dropout_p,
                HEAD_DIM, CAUSAL, HAS_LENS, DROPOUT, ACC, BLOCK_M, BLOCK_N):
    start_m, bh, b, h, q_shift, key_len, seed_bh = _program(program_id, LENS, SEED, H, Tq, Tk, Tq, BLOCK_M,
                                                            HAS_LENS, DROPOUT)
    offs_m = start_m + np.arange(BLOCK_M)
    offs_d = np.arange(HEAD_DIM)
    row = offs_m < Tq
    q = load(_head(Q, b, h), _tile(offs_m, offs_d), mask=row[:, None], other=0.0)
    do = load(_head(DO, b, h), _tile(offs_m, offs_d), mask=row[:, None], other=0.0)
    lse = load(LSE[bh], (offs_m,), mask=row, other=np.inf)
    delta = load(DELTA[bh], (offs_m,), mask=row, other=0.0)
    dq = np.zeros((BLOCK_M, HEAD_DIM), dtype=ACC)
    k_base = _head(K, b, h)
    v_base = _head(V, b, h)

    full, hi = _key_range(start_m, key_len, q_shift, BLOCK_M, BLOCK_N, CAUSAL)
    dq = _bwd_q_inner(dq, q, do, lse, delta, k_base, v_base, offs_m, offs_d, 0, full, Tk,
                      key_len, q_shift, qk_scale, seed_bh, dropout_p, BLOCK_N, CAUSAL, False, DROPOUT)
    dq = _bwd_q_inner(dq, q, do, lse, delta, k_base, v_base, offs_m, offs_d, full, hi, Tk,
                      key_len, q_shift, qk_scale, seed_bh, dropout_p, BLOCK_N, CAUSAL, True, DROPOUT)
    store(_head(DQ, b, h), _tile(offs_m, offs_d), dq * sm_scale, mask=row[:, None])


# ----------------------------------------------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------------------------------------------

def _check(q: np.ndarray, k: np.ndarray, v: np.ndarray, key_lens: np.ndarray | None, dropout_p: float,
           seed: int | None, block_m: int, block_n: int) -> None:
    if q.ndim != 4 or k.shape != v.shape or k.ndim != 4 or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"need q (B, H, Tq, D) and k, v (B, H, Tk, D); got {q.shape}, {k.shape}, {v.shape}")
    if not q.dtype == k.dtype == v.dtype or q.dtype not in (np.float32, np.float64):
        raise ValueError(f"q, k, v must all be float32 (the kernel's arithmetic) or float64, got {q.dtype}, "
                         f"{k.dtype}, {v.dtype}")
    if key_lens is not None and np.shape(key_lens) != q.shape[:1]:
        raise ValueError(f"key_lens must have shape (B,) = {q.shape[:1]}, got {np.shape(key_lens)}")
    if not 0.0 <= dropout_p < 1.0 or (dropout_p > 0.0 and seed is None):
        raise ValueError(f"dropout_p must be in [0, 1) and needs a seed; got dropout_p={dropout_p}, seed={seed}")
    if not (isinstance(block_m, int) and isinstance(block_n, int) and block_m > 0 and block_n > 0):
        raise ValueError(f"block sizes must be positive integers, got block_m={block_m!r}, block_n={block_n!r}")


def _flags(q: np.ndarray, key_lens: np.ndarray | None, causal: bool, dropout_p: float) -> dict:
    """The kernel's compile-time switches; ACC is the arithmetic dtype (the kernel's is float32)."""
    return dict(HEAD_DIM=q.shape[-1], CAUSAL=causal, HAS_LENS=key_lens is not None, DROPOUT=dropout_p > 0.0,
                ACC=q.dtype.type)


def _grid(B: int, H: int, length: int, BLOCK: int) -> tuple[int]:
    """The flattened grid of :func:`_program`: B · H · cdiv(length, BLOCK) programs on axis 0."""
    return (B * H * cdiv(length, BLOCK),)


def flash_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, key_lens: np.ndarray | None,
                            causal: bool, scale: float, dropout_p: float = 0.0, seed: int | None = None, *,
                            block_m: int = 16, block_n: int = 16, return_trace: bool = False):
    """Launch the forward programs: ``(O, LSE)``, or ``(O, LSE, trace)`` with ``return_trace``.

    The kernel's ``flash_attention_forward`` with three differences, on purpose: the dropout seed is a Python int
    (the kernel's: an int64 tensor on the device), the block sizes are any positive ints (the kernel's: powers of two
    >= 16, or the autotuner's choice when omitted), and the trace.

    q: (B, H, Tq, D); k, v: (B, H, Tk, D), float32 or float64; key_lens: int (B,) (keys at or past a length are
    padding) or None; causal: bottom-right aligned; seed: the Philox seed, required when dropout_p > 0.
    O is (B, H, Tq, D) in q's dtype; LSE (B, H, Tq) the base-2 log-sum-exp of each row (+inf for rows that see no
    key); trace a :class:`FlashTrace`.
    """
    _check(q, k, v, key_lens, dropout_p, seed, block_m, block_n)
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    flags = _flags(q, key_lens, causal, dropout_p)
    ACC = flags["ACC"]
    out = np.zeros(q.shape, dtype=q.dtype)
    lse = np.empty((B * H, Tq), dtype=ACC)
    trace = FlashTrace(H, Tq, Tk, block_m, block_n, causal, key_lens) if return_trace else None
    launch(_attn_fwd, _grid(B, H, Tq, block_m), q, k, v, out, lse, key_lens, seed, H, Tq, Tk,
           ACC(scale * LOG2E), ACC(dropout_p), **flags, BLOCK_M=block_m, BLOCK_N=block_n, trace=trace)
    lse = lse.reshape(B, H, Tq)
    return (out, lse, trace) if return_trace else (out, lse)


def flash_attention_backward(do: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray,
                             lse: np.ndarray, key_lens: np.ndarray | None, causal: bool, scale: float,
                             dropout_p: float = 0.0, seed: int | None = None, *, block_m: int = 16,
                             block_n: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Launch the backward programs (Delta, then dK/dV per key block, then dQ per query block): ``(dQ, dK, dV)``.
    The kernel's ``flash_attention_backward``, with the forward's differences."""
    _check(q, k, v, key_lens, dropout_p, seed, block_m, block_n)
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    flags = _flags(q, key_lens, causal, dropout_p)
    ACC = flags["ACC"]
    lse = lse.reshape(B * H, Tq)
    delta = np.empty((B * H, Tq), dtype=ACC)
    launch(_attn_bwd_delta, _grid(B, H, Tq, block_m), out, do, delta, H, Tq, HEAD_DIM=D, ACC=ACC, BLOCK_M=block_m)
    dq, dk, dv = np.zeros(q.shape, q.dtype), np.zeros(k.shape, k.dtype), np.zeros(v.shape, v.dtype)
    common = (H, Tq, Tk, ACC(scale * LOG2E), ACC(scale), ACC(dropout_p))
    launch(_attn_bwd_kv, _grid(B, H, Tk, block_n), q, k, v, do, dk, dv, lse, delta, key_lens, seed, *common,
           **flags, BLOCK_M=block_m, BLOCK_N=block_n)
    launch(_attn_bwd_q, _grid(B, H, Tq, block_m), q, k, v, do, dq, lse, delta, key_lens, seed, *common,
           **flags, BLOCK_M=block_m, BLOCK_N=block_n)
    return dq, dk, dv
