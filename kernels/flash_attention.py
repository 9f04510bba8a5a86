"""Flash attention (forward and backward) in Triton.

Attention is ``O = softmax(S) V`` with scores ``S = scale * Q Kᵀ``. Written naively it builds the (Tq, Tk) matrices
S and P = softmax(S) in GPU memory (HBM), reads them back, and for the backward stores P as well. At T = 1024 that is
a million numbers per head, and attention becomes bound by memory traffic, not by arithmetic. Flash attention never
materialises S or P: it walks over K and V in tiles small enough to stay in on-chip SRAM/registers.

Forward: the online softmax
---------------------------
One program owns a block of BLOCK_M query rows and keeps, per row, three running quantities while it streams key/value
blocks of BLOCK_N rows:

    m_i  the largest score seen so far
    l_i  the sum of exp(s - m_i) over the keys seen so far
    acc  the sum of exp(s - m_i) * v over the keys seen so far           (BLOCK_M, D)

For a new block of scores s (BLOCK_M, BLOCK_N):

    m_new = max(m_i, rowmax(s))
    alpha = exp(m_i - m_new)                 # rescales what was accumulated against the old maximum
    p     = exp(s - m_new)
    l_i   = alpha * l_i + rowsum(p)
    acc   = alpha * acc + p @ V_block

and at the end ``O = acc / l_i``. This is exact (not an approximation): subtracting a different maximum only multiplies
numerator and denominator by the same factor. We work in base 2 (``exp2`` is a single instruction) by folding
``log2(e)`` into the score scale.

The forward also saves one number per query row, the log-sum-exp ``LSE_i = m_i + log2(l_i)`` (base 2). With it the
backward can rebuild any tile of P exactly as ``P = exp2(S·log2e - LSE)`` without a second pass over the keys, so
nothing of size Tq × Tk is ever stored.

Backward
--------
With dP = dO Vᵀ, the softmax gradient is ``dS = P ⊙ (dP - rowsum(P ⊙ dP))``. The row sum looks like it needs a full
row of P, but ``rowsum(P ⊙ dP)_i = Σ_j P_ij (dO_i · V_j) = dO_i · O_i``: a cheap per-row dot product, precomputed
once into ``Delta_i = rowsum(dO ⊙ O)`` by a small kernel. Then

    dV = Pᵀ dO          dK = scale · dSᵀ Q          dQ = scale · dS K

Two kernels compute these without atomics: one program per key block walks over the query blocks and accumulates
dK and dV; another, per query block, walks over the key blocks and accumulates dQ. Both recompute the P tile from Q,
K and the saved LSE (cheap arithmetic instead of expensive memory).

Masks
-----
* Causal, bottom-right aligned: query i sits at absolute position ``Tk - Tq + i`` and sees keys j <= that position.
  With Tq == Tk this is the usual lower triangle; with Tq == 1 it is the KV-cache decoding step.
* Key padding: per-sequence key lengths (right padding) hide keys j >= length.
Key blocks that lie entirely outside the visible region are skipped (the loop bounds stop early); blocks that lie
entirely inside are processed without any masking; only the blocks that straddle a boundary pay for ``tl.where``.
A row that sees no key at all gets output 0, LSE = +inf (so every recomputed P is 0) and zero gradients.

Dropout
-------
Dropout zeroes probabilities after the softmax normalisation: ``O = (P ⊙ Z / (1 - p)) V`` with Z ~ Bernoulli(1 - p).
Z is never stored: element (i, j) of head (b, h) is drawn with ``tl.rand(seed_bh, i * Tk + j)`` (Philox, counter
based), so the backward regenerates exactly the same mask from the same seed. The key of the generator combines the
per-call seed and the head index. The normaliser l_i is summed before dropping, and Delta = rowsum(dO ⊙ O) still
equals rowsum(P ⊙ dP) once dP is taken through the same mask.

Head dimension
--------------
Tiles need a power-of-two head dimension of at least 16 (a ``tl.dot`` constraint). Other head dimensions <= 128 are
zero-padded on the host: zero columns change neither Q Kᵀ nor the useful columns of the output.

This file, in reading order: the device functions the kernels share (``_program`` to ``_key_range``), the forward
kernel ``_attn_fwd``, the three backward kernels, the tuning tables, then the host functions that launch them.
``reference/np_flash_attention.py`` is the same programs in NumPy, function for function.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from scratchformers.kernels.common import INTERPRET, device_guard, fixed_tile, interpreted_bf16, launch

LOG2E = 1.4426950408889634


@triton.jit
def _program(LENS, SEED,  # key lengths (B,) and dropout seed (1,), or None (see _attn_fwd)
             H, Tq, Tk,  # heads, queries and keys per head
             length,  # the rows this kernel's grid cuts into blocks: Tq, or Tk for the dK/dV kernel
             BLOCK: tl.constexpr,  # the block size along them
             HAS_LENS: tl.constexpr, DROPOUT: tl.constexpr):
    """What this program owns and the per-(batch, head) facts it needs, the same for every kernel.

    The grid is one-dimensional, B · H · cdiv(length, BLOCK) programs (axis 0 allows 2³¹ - 1; axes 1 and 2 stop at
    65,535, which B · H passes at B = 64, H = 1024): program p takes block p mod n of head p div n, so neighbouring
    programs share a head and its K, V in L2. Returns the block's first row, the flat head index bh and its (b, h)
    (int64: they multiply strides), the causal shift Tk - Tq (query i sits at absolute position shift + i), the
    number of visible keys and the head's dropout seed.
    """
    pid = tl.program_id(0)
    blocks = tl.cdiv(length, BLOCK)
    bh = (pid // blocks).to(tl.int64)
    start = (pid % blocks) * BLOCK
    b = bh // H
    key_len = Tk
    if HAS_LENS:
        key_len = tl.load(LENS + b)
    seed_bh = 0
    if DROPOUT:
        seed_bh = tl.load(SEED) + (bh << 32)
    return start, bh, b, bh % H, Tk - Tq, key_len, seed_bh


@triton.jit
def _head(P, b, h, stride_b, stride_h):
    """Pointer to head (b, h) of a (B, H, T, D) tensor."""
    return P + b * stride_b + h * stride_h


@triton.jit
def _tile(base, rows, stride_t, offs_d):
    """Pointers to rows × head-dim of one head; row offsets in int64 (row · stride passes 2³¹ on long views)."""
    return base + rows.to(tl.int64)[:, None] * stride_t + offs_d[None, :]


@triton.jit
def _keep_mask(seed_bh, q_idx, k_idx, Tk, dropout_p):
    """Bernoulli(1 - dropout_p) keep mask, reproducible from (seed, head, i, j). q_idx and k_idx are query and key
    indices shaped to broadcast into the tile ([:, None] and [None, :], or the other way round for a transposed tile).
    """
    return tl.rand(seed_bh, q_idx * Tk + k_idx) >= dropout_p


@triton.jit
def _visible(q_idx, k_idx, key_len, q_shift, CAUSAL: tl.constexpr):
    """Which (query, key) pairs of the tile may attend: key inside the length and, if causal, not in the future."""
    visible = k_idx < key_len
    if CAUSAL:
        visible = visible & (k_idx <= q_shift + q_idx)
    return visible


@triton.jit
def _load_kv(k_base, v_base, stride_kt, stride_vt, offs_n, offs_d, key_len, MASKED: tl.constexpr):
    """The K and V tiles of keys offs_n (zeros past the key length when MASKED)."""
    if MASKED:
        k = tl.load(_tile(k_base, offs_n, stride_kt, offs_d), mask=offs_n[:, None] < key_len, other=0.0)
        v = tl.load(_tile(v_base, offs_n, stride_vt, offs_d), mask=offs_n[:, None] < key_len, other=0.0)
    else:
        k = tl.load(_tile(k_base, offs_n, stride_kt, offs_d))
        v = tl.load(_tile(v_base, offs_n, stride_vt, offs_d))
    return k, v


@triton.jit
def _scores(q, k, offs_m, offs_n, key_len, q_shift, qk_scale, CAUSAL: tl.constexpr, MASKED: tl.constexpr,
            DOT_PREC: tl.constexpr):
    """Base-2 logits scale·log2(e)·Q Kᵀ of a (BLOCK_M, BLOCK_N) tile; -inf where the key is hidden (MASKED tiles)."""
    s = tl.dot(q, tl.trans(k), input_precision=DOT_PREC) * qk_scale
    if MASKED:
        s = tl.where(_visible(offs_m[:, None], offs_n[None, :], key_len, q_shift, CAUSAL), s, float("-inf"))
    return s


@triton.jit
def _fwd_inner(acc, l_i, m_i,  # the query block's running state: (BLOCK_M, HEAD_DIM), (BLOCK_M,), (BLOCK_M,) float32
               q,  # the query tile, (BLOCK_M, HEAD_DIM)
               k_base, v_base,  # this head's K and V (pointers)
               stride_kt, stride_vt,  # their strides over time
               offs_m, offs_d,  # the block's query indices (BLOCK_M,) and the head-dim indices (HEAD_DIM,)
               lo, hi,  # visit the key blocks that start in [lo, hi)
               key_len,  # keys from key_len on are padding
               q_shift,  # Tk - Tq: query i sits at absolute position q_shift + i
               Tk, qk_scale, seed_bh, dropout_p,  # as in _attn_fwd; seed_bh is this head's dropout seed
               BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
               MASKED: tl.constexpr,  # these blocks straddle a mask boundary (False: no tl.where at all)
               DROPOUT: tl.constexpr, DOT_PREC: tl.constexpr):
    """Online-softmax update of (acc, l_i, m_i) with the key blocks starting in [lo, hi)."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k, v = _load_kv(k_base, v_base, stride_kt, stride_vt, offs_n, offs_d, key_len, MASKED)
        s = _scores(q, k, offs_m, offs_n, key_len, q_shift, qk_scale, CAUSAL, MASKED, DOT_PREC)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # A row with nothing visible yet has m_new = -inf; subtracting 0 instead keeps exp2(-inf) = 0, not NaN.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(s - m_safe[:, None])
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        if DROPOUT:
            p = tl.where(_keep_mask(seed_bh, offs_m[:, None], offs_n[None, :], Tk, dropout_p), p, 0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PREC)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _key_range(start_m, key_len, q_shift, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    """Keys [0, full) are visible to every row of the query block; keys [full, hi) only to some (need masking)."""
    if CAUSAL:
        full = tl.minimum(key_len, q_shift + start_m + 1)
        hi = tl.minimum(key_len, q_shift + start_m + BLOCK_M)
    else:
        full = key_len
        hi = key_len
    full = (tl.maximum(full, 0) // BLOCK_N) * BLOCK_N
    hi = tl.maximum(hi, 0)
    return full, hi


@triton.jit
def _attn_fwd(Q,  # queries, (B, H, Tq, HEAD_DIM)
              K, V,  # keys and values, (B, H, Tk, HEAD_DIM), Q's dtype
              O,  # output, (B, H, Tq, HEAD_DIM), Q's dtype
              LSE,  # output, (B, H, Tq) float32, contiguous: each query row's log-sum-exp (base 2), for the backward
              LENS,  # (B,) int32 key lengths (keys from LENS[b] on are padding), or None
              SEED,  # (1,) int64 dropout seed, on the device, or None
              stride_qb, stride_qh, stride_qt,  # Q's strides in elements over batch, head, time (head dim: stride 1)
              stride_kb, stride_kh, stride_kt,  # K's
              stride_vb, stride_vh, stride_vt,  # V's
              stride_ob, stride_oh, stride_ot,  # O's
              H, Tq, Tk,  # heads, queries and keys per head
              Q_BUCKET, K_BUCKET,  # Tq and Tk rounded up to powers of two: read only by the autotuner, its key
              qk_scale,  # the softmax scale times log2(e): the scores come out in base 2
              dropout_p,  # the probability of dropping a weight (0.0 without DROPOUT)
              HEAD_DIM: tl.constexpr,  # D, zero-padded by the host to a power of two >= 16
              CAUSAL: tl.constexpr,  # causal mask, aligned bottom-right
              HAS_LENS: tl.constexpr,  # LENS is given
              DROPOUT: tl.constexpr,  # dropout_p > 0
              DOT_PREC: tl.constexpr,  # "ieee" for float32 inputs, None for fp16/bf16 (see _flags)
              BLOCK_M: tl.constexpr,  # query rows per program
              BLOCK_N: tl.constexpr,  # keys per step of the loop over K and V
              ):
    """One program: BLOCK_M query rows of one head against every key they may see; writes their O and LSE rows."""
    start_m, bh, b, h, q_shift, key_len, seed_bh = _program(LENS, SEED, H, Tq, Tk, Tq, BLOCK_M, HAS_LENS, DROPOUT)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(_tile(_head(Q, b, h, stride_qb, stride_qh), offs_m, stride_qt, offs_d), mask=offs_m[:, None] < Tq,
                other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    k_base = _head(K, b, h, stride_kb, stride_kh)
    v_base = _head(V, b, h, stride_vb, stride_vh)

    full, hi = _key_range(start_m, key_len, q_shift, BLOCK_M, BLOCK_N, CAUSAL)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, 0, full,
                               key_len, q_shift, Tk, qk_scale, seed_bh, dropout_p,
                               BLOCK_N, CAUSAL, False, DROPOUT, DOT_PREC)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, full, hi,
                               key_len, q_shift, Tk, qk_scale, seed_bh, dropout_p,
                               BLOCK_N, CAUSAL, True, DROPOUT, DOT_PREC)

    empty = l_i == 0.0  # rows that saw no key
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    if DROPOUT:
        out = out / (1.0 - dropout_p)
    lse = tl.where(empty, float("inf"), m_i + tl.math.log2(tl.where(empty, 1.0, l_i)))
    tl.store(_tile(_head(O, b, h, stride_ob, stride_oh), offs_m, stride_ot, offs_d), out.to(O.dtype.element_ty),
             mask=offs_m[:, None] < Tq)
    tl.store(LSE + bh * Tq + offs_m, lse, mask=offs_m < Tq)


@triton.jit
def _attn_bwd_delta(O,  # the forward's output, (B, H, Tq, HEAD_DIM)
                    DO,  # the gradient reaching O, same shape
                    DELTA,  # output, (B, H, Tq) float32, contiguous
                    stride_ob, stride_oh, stride_ot,  # O's strides over batch, head, time
                    stride_dob, stride_doh, stride_dot,  # DO's
                    H, Tq,  # heads, queries per head
                    HEAD_DIM: tl.constexpr,  # as in _attn_fwd
                    BLOCK_M: tl.constexpr,  # query rows per program
                    ):
    """Delta_i = rowsum(dO_i ⊙ O_i), the softmax-backward row term (see the module docstring)."""
    start_m, bh, b, h, _, _, _ = _program(None, None, H, Tq, Tq, Tq, BLOCK_M, False, False)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row = offs_m[:, None] < Tq
    o = tl.load(_tile(_head(O, b, h, stride_ob, stride_oh), offs_m, stride_ot, offs_d), mask=row, other=0.0)
    do = tl.load(_tile(_head(DO, b, h, stride_dob, stride_doh), offs_m, stride_dot, offs_d), mask=row, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(DELTA + bh * Tq + offs_m, delta, mask=offs_m < Tq)


@triton.jit
def _bwd_kv_inner(dk, dv,  # the key block's accumulators, (BLOCK_N, HEAD_DIM) float32 each
                  k, v,  # its K and V tiles, (BLOCK_N, HEAD_DIM)
                  q_base, do_base,  # this head's Q and dO (pointers)
                  lse_base, delta_base,  # this head's rows of LSE and Delta (pointers)
                  stride_qt, stride_dot,  # the strides of Q and dO over time
                  offs_n, offs_d,  # the block's key indices (BLOCK_N,) and the head-dim indices (HEAD_DIM,)
                  lo, hi,  # visit the query blocks that start in [lo, hi)
                  Tq, Tk, key_len, q_shift, qk_scale, seed_bh, dropout_p,  # as in _fwd_inner
                  BLOCK_M: tl.constexpr, CAUSAL: tl.constexpr,
                  MASKED: tl.constexpr,  # these blocks straddle a mask boundary
                  DROPOUT: tl.constexpr, DOT_PREC: tl.constexpr):
    """Accumulate dK, dV of one key block over the query blocks starting in [lo, hi).

    Works on transposed tiles (keys along rows) so that K and V are used as loaded. Query rows past Tq load
    LSE = +inf, which makes their recomputed probabilities exactly 0.
    """
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        row = offs_m < Tq
        qT = tl.load(q_base + offs_m.to(tl.int64)[None, :] * stride_qt + offs_d[:, None], mask=row[None, :],
                     other=0.0)
        do = tl.load(_tile(do_base, offs_m, stride_dot, offs_d), mask=row[:, None], other=0.0)
        lse = tl.load(lse_base + offs_m, mask=row, other=float("inf"))
        delta = tl.load(delta_base + offs_m, mask=row, other=0.0)
        sT = tl.dot(k, qT, input_precision=DOT_PREC) * qk_scale  # (BLOCK_N, BLOCK_M)
        pT = tl.math.exp2(sT - lse[None, :])
        if MASKED:
            pT = tl.where(_visible(offs_m[None, :], offs_n[:, None], key_len, q_shift, CAUSAL), pT, 0.0)
        dpT = tl.dot(v, tl.trans(do), input_precision=DOT_PREC)  # dP = dO Vᵀ, transposed
        if DROPOUT:
            keepT = _keep_mask(seed_bh, offs_m[None, :], offs_n[:, None], Tk, dropout_p)
            dv += tl.dot(tl.where(keepT, pT / (1.0 - dropout_p), 0.0).to(do.dtype), do, input_precision=DOT_PREC)
            dpT = tl.where(keepT, dpT / (1.0 - dropout_p), 0.0)
        else:
            dv += tl.dot(pT.to(do.dtype), do, input_precision=DOT_PREC)
        dsT = pT * (dpT - delta[None, :])
        dk += tl.dot(dsT.to(qT.dtype), tl.trans(qT), input_precision=DOT_PREC)
    return dk, dv


@triton.jit
def _attn_bwd_kv(Q, K, V,  # the forward's inputs, as in _attn_fwd
                 DO,  # the gradient reaching O, (B, H, Tq, HEAD_DIM)
                 DK, DV,  # outputs, (B, H, Tk, HEAD_DIM), in K's and V's dtypes
                 LSE,  # (B, H, Tq) float32, saved by the forward
                 DELTA,  # (B, H, Tq) float32, rowsum(dO ⊙ O) from _attn_bwd_delta
                 LENS, SEED,  # as in _attn_fwd
                 stride_qb, stride_qh, stride_qt,  # strides over batch, head, time of Q,
                 stride_kb, stride_kh, stride_kt,  # K,
                 stride_vb, stride_vh, stride_vt,  # V,
                 stride_dob, stride_doh, stride_dot,  # DO,
                 stride_dkb, stride_dkh, stride_dkt,  # DK
                 stride_dvb, stride_dvh, stride_dvt,  # and DV
                 H, Tq, Tk, Q_BUCKET, K_BUCKET, qk_scale,  # as in _attn_fwd
                 sm_scale,  # the softmax scale alone: dK = sm_scale · dSᵀ Q
                 dropout_p,  # as in _attn_fwd
                 HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, HAS_LENS: tl.constexpr,  # as in _attn_fwd
                 DROPOUT: tl.constexpr, DOT_PREC: tl.constexpr,  # as in _attn_fwd
                 BLOCK_M: tl.constexpr,  # queries per step of the loop over Q and dO
                 BLOCK_N: tl.constexpr,  # key rows per program
                 ):
    """One program: dK and dV of BLOCK_N keys of one head, summed over every query block that sees them."""
    start_n, bh, b, h, q_shift, key_len, seed_bh = _program(LENS, SEED, H, Tq, Tk, Tk, BLOCK_N, HAS_LENS, DROPOUT)
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)

    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    if start_n < key_len:  # blocks past the key length get zero gradients
        k, v = _load_kv(_head(K, b, h, stride_kb, stride_kh), _head(V, b, h, stride_vb, stride_vh), stride_kt,
                        stride_vt, offs_n, offs_d, key_len, True)
        # Query blocks before `lo` see none of these keys; from `mid` on they see all of them (no mask needed).
        lo = 0
        mid = 0
        if CAUSAL:
            lo = (tl.maximum(start_n - q_shift, 0) // BLOCK_M) * BLOCK_M
            mid = tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - q_shift, 0), BLOCK_M) * BLOCK_M
        # A block that straddles the key length needs the mask against every query block.
        mid = tl.where(start_n + BLOCK_N > key_len, Tq, tl.minimum(mid, Tq))
        q_base = _head(Q, b, h, stride_qb, stride_qh)
        do_base = _head(DO, b, h, stride_dob, stride_doh)
        lse_base = LSE + bh * Tq
        delta_base = DELTA + bh * Tq
        dk, dv = _bwd_kv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt, stride_dot, offs_n,
                               offs_d, lo, mid, Tq, Tk, key_len, q_shift, qk_scale, seed_bh, dropout_p,
                               BLOCK_M, CAUSAL, True, DROPOUT, DOT_PREC)
        dk, dv = _bwd_kv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt, stride_dot, offs_n,
                               offs_d, mid, Tq, Tq, Tk, key_len, q_shift, qk_scale, seed_bh, dropout_p,
                               BLOCK_M, CAUSAL, False, DROPOUT, DOT_PREC)
    inside = offs_n[:, None] < Tk
    tl.store(_tile(_head(DK, b, h, stride_dkb, stride_dkh), offs_n, stride_dkt, offs_d),
             (dk * sm_scale).to(DK.dtype.element_ty), mask=inside)
    tl.store(_tile(_head(DV, b, h, stride_dvb, stride_dvh), offs_n, stride_dvt, offs_d), dv.to(DV.dtype.element_ty),
             mask=inside)


@triton.jit
def _bwd_q_inner(dq,  # the query block's accumulator, (BLOCK_M, HEAD_DIM) float32
                 q, do,  # its Q and dO tiles, (BLOCK_M, HEAD_DIM)
                 lse, delta,  # its rows of LSE and Delta, (BLOCK_M,)
                 k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, lo, hi,  # as in _fwd_inner
                 Tk, key_len, q_shift, qk_scale, seed_bh, dropout_p,  # as in _fwd_inner
                 BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, MASKED: tl.constexpr, DROPOUT: tl.constexpr,
                 DOT_PREC: tl.constexpr):
    """Accumulate dQ of one query block over the key blocks starting in [lo, hi)."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k, v = _load_kv(k_base, v_base, stride_kt, stride_vt, offs_n, offs_d, key_len, MASKED)
        p = tl.math.exp2(_scores(q, k, offs_m, offs_n, key_len, q_shift, qk_scale, CAUSAL, MASKED, DOT_PREC)
                         - lse[:, None])  # P recomputed from the saved LSE; hidden keys: exp2(-inf) = 0
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PREC)
        if DROPOUT:
            keep = _keep_mask(seed_bh, offs_m[:, None], offs_n[None, :], Tk, dropout_p)
            dp = tl.where(keep, dp / (1.0 - dropout_p), 0.0)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PREC)
    return dq


@triton.jit
def _attn_bwd_q(Q, K, V, DO,  # as in _attn_bwd_kv
                DQ,  # output, (B, H, Tq, HEAD_DIM), Q's dtype
                LSE, DELTA, LENS, SEED,  # as in _attn_bwd_kv
                stride_qb, stride_qh, stride_qt,  # strides over batch, head, time of Q,
                stride_kb, stride_kh, stride_kt,  # K,
                stride_vb, stride_vh, stride_vt,  # V,
                stride_dob, stride_doh, stride_dot,  # DO
                stride_dqb, stride_dqh, stride_dqt,  # and DQ
                H, Tq, Tk, Q_BUCKET, K_BUCKET, qk_scale,  # as in _attn_fwd
                sm_scale,  # the softmax scale alone: dQ = sm_scale · dS K
                dropout_p,  # as in _attn_fwd
                HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, HAS_LENS: tl.constexpr,  # as in _attn_fwd
                DROPOUT: tl.constexpr, DOT_PREC: tl.constexpr,  # as in _attn_fwd
                BLOCK_M: tl.constexpr,  # query rows per program
                BLOCK_N: tl.constexpr,  # keys per step of the loop over K and V
                ):
    """One program: dQ of BLOCK_M query rows of one head, summed over every key block they see."""
    start_m, bh, b, h, q_shift, key_len, seed_bh = _program(LENS, SEED, H, Tq, Tk, Tq, BLOCK_M, HAS_LENS, DROPOUT)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row = offs_m < Tq
    q = tl.load(_tile(_head(Q, b, h, stride_qb, stride_qh), offs_m, stride_qt, offs_d), mask=row[:, None], other=0.0)
    do = tl.load(_tile(_head(DO, b, h, stride_dob, stride_doh), offs_m, stride_dot, offs_d), mask=row[:, None],
                 other=0.0)
    lse = tl.load(LSE + bh * Tq + offs_m, mask=row, other=float("inf"))
    delta = tl.load(DELTA + bh * Tq + offs_m, mask=row, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    k_base = _head(K, b, h, stride_kb, stride_kh)
    v_base = _head(V, b, h, stride_vb, stride_vh)

    full, hi = _key_range(start_m, key_len, q_shift, BLOCK_M, BLOCK_N, CAUSAL)
    dq = _bwd_q_inner(dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, 0, full, Tk,
                      key_len, q_shift, qk_scale, seed_bh, dropout_p, BLOCK_N, CAUSAL, False, DROPOUT, DOT_PREC)
    dq = _bwd_q_inner(dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, full, hi, Tk,
                      key_len, q_shift, qk_scale, seed_bh, dropout_p, BLOCK_N, CAUSAL, True, DROPOUT, DOT_PREC)
    tl.store(_tile(_head(DQ, b, h, stride_dqb, stride_dqh), offs_m, stride_dqt, offs_d),
             (dq * sm_scale).to(DQ.dtype.element_ty), mask=row[:, None])


# ----------------------------------------------------------------------------------------------------------------------
# Tuning: the tiles each kernel may run with
# ----------------------------------------------------------------------------------------------------------------------
# The kernels above are right for any tile sizes (powers of two >= 16); how fast they run depends on BLOCK_M, BLOCK_N,
# the number of warps and the depth of the software pipeline (num_stages), differently on every GPU. The autotuner
# times the candidates below on the first launch of each kind (see _TUNE_KEY) and keeps the fastest. The tables are
# applied here, after the algorithm, instead of as decorators above each kernel.

# Retune only when head dim, masking mode or the power-of-two bucket of a sequence length changes: during
# generation Tk grows by one per step, and tuning at every new length would cost far more than it saves.
_TUNE_KEY = ["Q_BUCKET", "K_BUCKET", "HEAD_DIM", "CAUSAL", "HAS_LENS", "DROPOUT"]
Tile = tuple[int, int, int, int]  # (BLOCK_M, BLOCK_N, num_warps, num_stages)


def _autotune(kernel, half: list[Tile], half_wide: list[Tile], fp32: list[Tile], fp32_wide: list[Tile]):
    """``kernel`` under ``triton.autotune`` over its candidates, pruned per call to those of its precision and head dim.

    ``half`` for fp16/bf16 (tensor-core dots) at head dim <= 64, ``half_wide`` at 128; ``fp32`` and ``fp32_wide``
    for float32, whose exact ("ieee") dots hold their operands in registers as fp32: larger tiles spill heavily and
    take minutes to compile. Every candidate of every list compiles for sm_90 without register spills and within
    its 227 KiB of shared memory per program (``python tools/compile_sm90.py --extra``, with triton 3.9 and 3.6).
    Under the interpreter: one small tile.
    """
    if INTERPRET:
        return triton.autotune([triton.Config({"BLOCK_M": 16, "BLOCK_N": 16}, num_warps=4, num_stages=1)],
                               _TUNE_KEY)(kernel)
    made = {tile: triton.Config({"BLOCK_M": tile[0], "BLOCK_N": tile[1]}, num_warps=tile[2], num_stages=tile[3])
            for tile in dict.fromkeys(half + half_wide + fp32 + fp32_wide)}
    lists = {(False, False): half, (False, True): half_wide, (True, False): fp32, (True, True): fp32_wide}

    def prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        return [made[tile] for tile in lists[kwargs["DOT_PREC"] == "ieee", kwargs["HEAD_DIM"] > 64]]

    return triton.autotune(list(made.values()), _TUNE_KEY, prune_configs_by={"early_config_prune": prune})(kernel)


def _without(tiles: list[Tile], spilling: Tile) -> list[Tile]:
    """The candidates for head dim 64 less one that spills registers at head dim 128."""
    return [tile for tile in tiles if tile != spilling]


_FWD_HALF = [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (64, 32, 4, 4), (16, 64, 4, 2)]
_BWD_KV_HALF = [(32, 128, 8, 3), (64, 128, 8, 3), (32, 64, 4, 3), (64, 64, 8, 3), (32, 64, 8, 3), (16, 64, 4, 3)]
_BWD_Q_HALF = [(128, 32, 4, 3), (128, 32, 8, 3), (128, 64, 8, 3), (64, 64, 4, 3), (64, 32, 4, 4), (16, 64, 4, 3)]
_attn_fwd = _autotune(_attn_fwd, half=_FWD_HALF, half_wide=_without(_FWD_HALF, (128, 64, 4, 3)),
                      fp32=[(16, 64, 4, 3)], fp32_wide=[(16, 64, 4, 3)])
_attn_bwd_kv = _autotune(_attn_bwd_kv, half=_BWD_KV_HALF, half_wide=_without(_BWD_KV_HALF, (64, 128, 8, 3)),
                         fp32=[(32, 64, 8, 3), (16, 64, 4, 3)], fp32_wide=[(16, 32, 8, 3)])
_attn_bwd_q = _autotune(_attn_bwd_q, half=_BWD_Q_HALF, half_wide=_without(_BWD_Q_HALF, (128, 32, 4, 3)),
                        fp32=[(16, 64, 4, 3)], fp32_wide=[(16, 64, 4, 3)])


# ----------------------------------------------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------------------------------------------

def _padded_head_dim(d: int) -> int:
    return max(16, triton.next_power_of_2(d))


def _prepare(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad the head dim to a power of two >= 16 and make it the unit-stride dim (other strides are free)."""
    d = x.shape[-1]
    d_pad = _padded_head_dim(d)
    if d_pad != d:
        return torch.nn.functional.pad(x, (0, d_pad - d))
    return x if x.stride(-1) == 1 else x.contiguous()


def _strides(x: torch.Tensor) -> tuple[int, int, int]:
    return x.stride(0), x.stride(1), x.stride(2)


def _flags(q: torch.Tensor, key_lens: torch.Tensor | None, causal: bool, dropout_p: float) -> dict:
    """Compile-time switches shared by the kernels.

    DOT_PREC is the ``input_precision`` of every ``tl.dot``, which decides only how a float32 × float32 product is
    computed: "ieee" is exact fp32, where Triton's default would round the operands to TF32 (10-bit mantissas) for
    the tensor cores. Float32 inputs get "ieee", so the fp32 path matches a float32 reference to rounding. With fp16
    or bf16 inputs every dot takes half-precision operands (P and dS are cast to V's and Q's dtype first), which the
    tensor cores multiply in their own precision into float32 accumulators whatever ``input_precision`` says: for
    them DOT_PREC is None, Triton's default, and the dots are plain fp16 or bf16 ones.
    """
    return dict(HEAD_DIM=q.shape[-1], CAUSAL=causal, HAS_LENS=key_lens is not None, DROPOUT=dropout_p > 0.0,
                DOT_PREC="ieee" if q.dtype == torch.float32 else None)


def _grid(B: int, H: int, length: int, block: str):
    """The flattened grid of :func:`_program`: B · H · cdiv(length, BLOCK) programs on axis 0."""
    return lambda meta: (B * H * triton.cdiv(length, meta[block]),)


def _fixed_tiles(block_m: int | None, block_n: int | None) -> dict:
    """BLOCK_M and BLOCK_N given by the caller (both or neither); tiles are at least 16 wide (a tl.dot rule)."""
    if (block_m is None) != (block_n is None):
        raise ValueError("give both block_m and block_n to bypass autotuning, or neither")
    if block_m is None:
        return {}
    return dict(BLOCK_M=fixed_tile("block_m", block_m, 16), BLOCK_N=fixed_tile("block_n", block_n, 16))


def flash_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_lens: torch.Tensor | None,
                            causal: bool, scale: float, dropout_p: float = 0.0, seed: torch.Tensor | None = None, *,
                            block_m: int | None = None, block_n: int | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel.

    q: (B, H, Tq, D); k, v: (B, H, Tk, D), same dtype and device, D <= 128 (D = 0 gives an empty output);
    key_lens: int32 (B,) or None; seed: int64 (1,) on the device, required when dropout_p > 0.
    block_m, block_n: fixed query / key tile sizes (powers of two >= 16) instead of the autotuner's choice.
    Returns O (B, H, Tq, D) contiguous, in q's dtype, and LSE (B, H, Tq) float32 in base 2 (+inf for empty rows).
    """
    tiles = _fixed_tiles(block_m, block_n)
    if interpreted_bf16(q):
        out, lse = flash_attention_forward(q.float(), k.float(), v.float(), key_lens, causal, scale, dropout_p,
                                           seed, block_m=block_m, block_n=block_n)
        return out.to(q.dtype), lse
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    qp, kp, vp = _prepare(q), _prepare(k), _prepare(v)
    out = torch.empty(qp.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((B, H, Tq), dtype=torch.float32, device=q.device)
    with device_guard(q):
        launch(_attn_fwd, _grid(B, H, Tq, "BLOCK_M"), qp, kp, vp, out, lse, key_lens, seed, *_strides(qp),
               *_strides(kp), *_strides(vp), *_strides(out), H, Tq, Tk, triton.next_power_of_2(Tq),
               triton.next_power_of_2(Tk), scale * LOG2E, dropout_p, fixed=bool(tiles),
               **_flags(qp, key_lens, causal, dropout_p), **tiles)
    if out.shape[-1] != D:
        out = out[..., :D].contiguous()
    return out, lse


def flash_attention_backward(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                             out: torch.Tensor, lse: torch.Tensor, key_lens: torch.Tensor | None, causal: bool,
                             scale: float, dropout_p: float = 0.0, seed: torch.Tensor | None = None, *,
                             block_m: int | None = None, block_n: int | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward kernels; returns contiguous (dQ, dK, dV) in the dtypes of (q, k, v). block_m, block_n:
    fixed tile sizes for both the dK/dV and the dQ kernel instead of the autotuner's choices."""
    tiles = _fixed_tiles(block_m, block_n)
    if interpreted_bf16(q):
        grads = flash_attention_backward(do.float(), q.float(), k.float(), v.float(), out.float(), lse, key_lens,
                                         causal, scale, dropout_p, seed, block_m=block_m, block_n=block_n)
        return tuple(g.to(q.dtype) for g in grads)
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    qp, kp, vp, op, dop = _prepare(q), _prepare(k), _prepare(v), _prepare(out), _prepare(do)
    delta = torch.empty((B, H, Tq), dtype=torch.float32, device=q.device)
    dq = torch.empty(qp.shape, dtype=q.dtype, device=q.device)
    dk = torch.empty(kp.shape, dtype=k.dtype, device=k.device)
    dv = torch.empty(vp.shape, dtype=v.dtype, device=v.device)
    meta = dict(fixed=bool(tiles), **_flags(qp, key_lens, causal, dropout_p), **tiles)
    common = (H, Tq, Tk, triton.next_power_of_2(Tq), triton.next_power_of_2(Tk), scale * LOG2E, scale, dropout_p)
    delta_block = 16 if INTERPRET else 64  # with 8 warps: no spills at head dim 64 or 128, fp32 or half (sm_90)
    with device_guard(q):
        _attn_bwd_delta[_grid(B, H, Tq, "BLOCK_M")({"BLOCK_M": delta_block})](
            op, dop, delta, *_strides(op), *_strides(dop), H, Tq, HEAD_DIM=qp.shape[-1], BLOCK_M=delta_block,
            num_warps=8)
        launch(_attn_bwd_kv, _grid(B, H, Tk, "BLOCK_N"), qp, kp, vp, dop, dk, dv, lse, delta, key_lens, seed,
               *_strides(qp), *_strides(kp), *_strides(vp), *_strides(dop), *_strides(dk), *_strides(dv), *common,
               **meta)
        launch(_attn_bwd_q, _grid(B, H, Tq, "BLOCK_M"), qp, kp, vp, dop, dq, lse, delta, key_lens, seed,
               *_strides(qp), *_strides(kp), *_strides(vp), *_strides(dop), *_strides(dq), *common, **meta)
    if qp.shape[-1] != D:
        dq, dk, dv = (g[..., :D].contiguous() for g in (dq, dk, dv))
    return dq, dk, dv


__all__ = ["flash_attention_forward", "flash_attention_backward"]
