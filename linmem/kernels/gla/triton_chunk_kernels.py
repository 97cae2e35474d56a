"""Triton kernels of chunkwise GLA (per-channel decay), forward and backward.

Per chunk of BT tokens (b = chunk-local inclusive cumsum of gk, fp32; S = state at the chunk start;
q' = scale * q):
    o_t   = (q'_t * e^{b_t})^T S + sum_{i <= t in chunk} A_ti v_i,
    A_ti  = sum_c q'_tc k_ic e^{b_tc - b_ic}                      (intra-chunk, i <= t)
    S_next = diag(e^{b_last}) S + (K * e^{b_last - b})^T V.
A is built with secondary chunking (sub-chunks of BC = 16 rows), all in fp32: for a pair of
sub-chunks r > s the exponent is split at a reference row between them (both factors <= 1, so
nothing overflows whatever the decay); the diagonal sub-blocks use the exact exponent e^{b_t - b_i}
(as [BC, BC, 16] products summed over 16 key channels at a time in the forward, column by column in the
backward). The intra-chunk kernels run one program per sub-chunk.
Backward: dS (state gradient) runs the state recurrence in reverse; dA = dO V^T (causal);
dq, dk as above mirrored; dgk = reverse cumsum over the sequence of (q dq - k dk), plus
sum_v (S_T * dS_T) for every token of a sequence whose final state has a gradient.
All kernels mask every load and store by the chunk's token span, so unused varlen slots do nothing.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..triton_layout import chunk_rows, chunk_span, seq_span, state_tile


@triton.jit
def _tile_at(ptr, rows, rmask, i_h, H: tl.constexpr, STRIDE: tl.constexpr, D: tl.constexpr, cols):
    """[R, C] tile of the first D channels of a [*, H, STRIDE] tensor (rows = flat token indices), fp32, zeros
    outside. STRIDE > D reads a slice of a wider tensor in place (ptr at the slice's first channel)."""
    p = ptr + (rows[:, None] * H + i_h) * STRIDE + cols[None, :]
    return tl.load(p, mask=rmask[:, None] & (cols < D)[None, :], other=0.0).to(tl.float32)


@triton.jit
def _tile(ptr, rows, rmask, i_h, H: tl.constexpr, D: tl.constexpr, cols):
    """[R, C] tile of a [*, H, D] tensor (rows = flat token indices), fp32, zeros outside."""
    return _tile_at(ptr, rows, rmask, i_h, H, D, D, cols)


@triton.jit
def _put_at(ptr, val, rows, rmask, i_h, H: tl.constexpr, STRIDE: tl.constexpr, D: tl.constexpr, cols):
    p = ptr + (rows[:, None] * H + i_h) * STRIDE + cols[None, :]
    tl.store(p, val.to(ptr.dtype.element_ty), mask=rmask[:, None] & (cols < D)[None, :])


@triton.jit
def _put(ptr, val, rows, rmask, i_h, H: tl.constexpr, D: tl.constexpr, cols):
    _put_at(ptr, val, rows, rmask, i_h, H, D, D, cols)


@triton.jit
def _row(ptr, row, valid, i_h, H: tl.constexpr, D: tl.constexpr, cols):
    """One token's [C] vector of a [*, H, D] tensor, fp32, zeros where not valid."""
    return tl.load(ptr + (row * H + i_h) * D + cols, mask=tl.where(valid, cols < D, False), other=0.0).to(tl.float32)


@triton.jit
def _mm(a, b, DT: tl.constexpr, DOT_PREC: tl.constexpr):
    """a @ b with operands in the activation dtype DT (fp32 accumulate)."""
    return tl.dot(a.to(DT), b.to(DT), input_precision=DOT_PREC)


# ----------------------------------------------------------------------------------------------- forward
@triton.jit
def gla_cumsum_kernel(gk, gcs, table, T, NT, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr,
                      BK: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Grid (cdiv(K, BK), slots, B*H). gcs = chunk-local inclusive cumsum of gk, fp32."""
    i_k, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, _ = chunk_span(i_c, i_b, T, NT, table, IS_VARLEN, BT)
    rows = t0 + tl.arange(0, BT)
    rm = rows < t1
    cols = i_k * BK + tl.arange(0, BK)
    g = _tile(gk, rows, rm, i_h, H, K, cols)
    _put(gcs, tl.cumsum(g, 0), rows, rm, i_h, H, K, cols)


@triton.jit
def _exponent_gap(gcs, first, t1, ref, ref_valid, i_h, H: tl.constexpr, K: tl.constexpr, BC: tl.constexpr, offs):
    """b_t - b_ref of a sub-chunk's rows t (first .. first + BC) on the key channels offs, fp32 [BC, len(offs)],
    zeros on rows past t1; b_ref = 0 where not ref_valid (b is a chunk-local cumsum: 0 before the chunk)."""
    rows = first + tl.arange(0, BC)
    rm = rows < t1
    g_ref = _row(gcs, ref, ref_valid, i_h, H, K, offs)
    return tl.where(rm[:, None], _tile(gcs, rows, rm, i_h, H, K, offs) - g_ref[None, :], 0.0)


@triton.jit
def _exponent_spread(gcs, first, t1, ref, ref_valid, i_h, H: tl.constexpr, K: tl.constexpr, BC: tl.constexpr,
                     BK: tl.constexpr):
    """max |b_tc - b_ref,c| over a sub-chunk's rows t and all key channels c (fp32 scalar; see _exponent_gap)."""
    spread = tl.zeros([], tl.float32)
    for kb in range(0, tl.cdiv(K, BK)):
        gap = _exponent_gap(gcs, first, t1, ref, ref_valid, i_h, H, K, BC, kb * BK + tl.arange(0, BK))
        spread = tl.maximum(spread, tl.max(tl.max(tl.abs(gap), 1), 0))
    return spread


@triton.jit
def _diagonal_block(q, k, gcs, first, t1, max_exponent, i_h, H: tl.constexpr, K: tl.constexpr, BC: tl.constexpr,
                    BK: tl.constexpr, BKD: tl.constexpr, DOT_PREC: tl.constexpr):
    """[BC, BC] block sum_c q_tc k_ic e^{b_tc - b_ic} for the rows t, i of first .. first + BC (i <= t), fp32.

    When every exponent of the sub-chunk is within max_exponent of its first row (_exponent_spread), the exponent is
    split at that row, (q e^{b - b_first}) (k e^{b_first - b})^T, one product on fp32 operands (DOT_PREC: tf32 for
    16-bit inputs, as the off-diagonal blocks): both factors stay inside [e^-max_exponent, e^max_exponent].
    Otherwise (decays too strong for the split) the exact exponent per element, as [BC, BC, BKD] products summed
    over BKD channels at a time. On the H200 the exact form alone took 0.98 ms of the A kernel's 1.86 at B8 T4K H16
    d128, the split 0.41 (benchmarks/results/h200-2026-12-03-gla-a).
    """
    r_c = tl.arange(0, BC)
    rows = first + r_c
    rm = rows < t1
    block = tl.zeros([BC, BC], tl.float32)
    if _exponent_spread(gcs, first, t1, first, first < t1, i_h, H, K, BC, BK) <= max_exponent:
        for kb in range(0, tl.cdiv(K, BK)):
            offs = kb * BK + tl.arange(0, BK)
            gap = _exponent_gap(gcs, first, t1, first, first < t1, i_h, H, K, BC, offs)
            qd = _tile(q, rows, rm, i_h, H, K, offs) * tl.exp(gap)
            kd = _tile(k, rows, rm, i_h, H, K, offs) * tl.exp(-gap)
            block += tl.dot(qd, tl.trans(kd), input_precision=DOT_PREC)
    else:
        lower = ((r_c[:, None] >= r_c[None, :]) & rm[:, None] & rm[None, :])[:, :, None]  # [t, i, 1]
        for kc in range(0, tl.cdiv(K, BKD)):
            offs = kc * BKD + tl.arange(0, BKD)
            qc = _tile(q, rows, rm, i_h, H, K, offs)
            kc_ = _tile(k, rows, rm, i_h, H, K, offs)
            gc = _tile(gcs, rows, rm, i_h, H, K, offs)
            e = tl.exp(tl.where(lower, gc[:, None, :] - gc[None, :, :], 0.0))
            block += tl.sum(tl.where(lower, qc[:, None, :] * kc_[None, :, :] * e, 0.0), 2)
    return tl.where((r_c[:, None] >= r_c[None, :]) & rm[:, None] & rm[None, :], block, 0.0)


@triton.jit
def gla_intra_A_kernel(q, k, gcs, A, table, T, NT, scale, max_exponent,
                       H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
                       BK: tl.constexpr, BKD: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr):
    """Grid (BT // BC, slots, B*H): row block r (BC rows) of A [B*T, H, BT] fp32, row t, column = chunk-local
    key index, scale included, zeros right of the diagonal block.

    Where every |b_t - b_ref| of the block's rows is within max_exponent of the row before the block (b_ref = 0 for
    the first sub-chunk), the whole row block, diagonal block included, is one [BC, BK] x [BK, BT] product per key
    block on fp32 operands with the exponent split at that row: the queries' factors e^{b_t - b_ref} <= 1 and the
    keys' e^{b_ref - b_i}, >= 1 for the block's own rows but bounded by e^max_exponent. Elsewhere (strong decay inside
    the block) _A_row_block_in_two_parts. One program per sub-chunk (not per chunk): small tiles at few warps.
    """
    i_r, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, _ = chunk_span(i_c, i_b, T, NT, table, IS_VARLEN, BT)
    r_t = tl.arange(0, BT)
    r_c = tl.arange(0, BC)
    first = t0 + i_r * BC
    srows = first + r_c
    sm = srows < t1
    keys = t0 + r_t
    ref = tl.minimum(first - 1, t1 - 1)  # the row just before this block
    ref_valid = (i_r > 0) & (t1 > t0)  # b_ref = 0 for the chunk's first sub-chunk
    if _exponent_spread(gcs, first, t1, ref, ref_valid, i_h, H, K, BC, BK) <= max_exponent:
        upto = (keys < t1) & (r_t < i_r * BC + BC)
        row_block = tl.zeros([BC, BT], tl.float32)
        for kb in range(0, tl.cdiv(K, BK)):
            offs_k = kb * BK + tl.arange(0, BK)
            g_ref = _row(gcs, ref, ref_valid, i_h, H, K, offs_k)
            qd = _tile(q, srows, sm, i_h, H, K, offs_k) * tl.exp(
                tl.where(sm[:, None], _tile(gcs, srows, sm, i_h, H, K, offs_k) - g_ref[None, :], 0.0))
            kd = _tile(k, keys, upto, i_h, H, K, offs_k) * tl.exp(
                tl.where(upto[:, None], g_ref[None, :] - _tile(gcs, keys, upto, i_h, H, K, offs_k), 0.0))
            row_block += tl.dot(qd, tl.trans(kd), input_precision=DOT_PREC)
        causal = r_t[None, :] <= (i_r * BC + r_c)[:, None]
        tl.store(A + (srows[:, None] * H + i_h) * BT + r_t[None, :], tl.where(causal, row_block, 0.0) * scale,
                 mask=sm[:, None])
    else:
        _A_row_block_in_two_parts(q, k, gcs, A, t0, t1, i_r, first, srows, sm, keys, ref, scale, max_exponent,
                                  i_h, H, K, BT, BC, BK, BKD, DOT_PREC)


@triton.jit
def _A_row_block_in_two_parts(q, k, gcs, A, t0, t1, i_r, first, srows, sm, keys, ref, scale, max_exponent,
                              i_h, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
                              BK: tl.constexpr, BKD: tl.constexpr, DOT_PREC: tl.constexpr):
    """gla_intra_A_kernel's row block where its decays are too strong for one product: the earlier sub-chunks'
    product (operands in the input dtype, both factors <= 1) and the diagonal block (_diagonal_block: its exponent
    split at the block's first row where max_exponent allows, else exact)."""
    DT = q.dtype.element_ty
    r_t = tl.arange(0, BT)
    r_c = tl.arange(0, BC)
    before = (keys < t1) & (r_t < i_r * BC)
    acc = tl.zeros([BC, BT], tl.float32)
    if i_r > 0:
        for kb in range(0, tl.cdiv(K, BK)):
            offs_k = kb * BK + tl.arange(0, BK)
            qs = _tile(q, srows, sm, i_h, H, K, offs_k)
            gs = _tile(gcs, srows, sm, i_h, H, K, offs_k)
            g_ref = _row(gcs, ref, t1 > t0, i_h, H, K, offs_k)
            qd = tl.where(sm[:, None], qs * tl.exp(tl.where(sm[:, None], gs - g_ref[None, :], 0.0)), 0.0)
            kt = _tile(k, keys, before, i_h, H, K, offs_k)
            gt = _tile(gcs, keys, before, i_h, H, K, offs_k)
            kd = tl.where(before[:, None], kt * tl.exp(tl.where(before[:, None], g_ref[None, :] - gt, 0.0)), 0.0)
            acc += _mm(qd, tl.trans(kd), DT, DOT_PREC)
    diag = _diagonal_block(q, k, gcs, first, t1, max_exponent, i_h, H, K, BC, BK, BKD, DOT_PREC)
    in_block = (r_t >= i_r * BC) & (r_t < i_r * BC + BC)
    tl.store(A + (srows[:, None] * H + i_h) * BT + r_t[None, :], acc * scale, mask=sm[:, None] & ~in_block[None, :])
    tl.store(A + (srows[:, None] * H + i_h) * BT + i_r * BC + r_c[None, :], diag * scale, mask=sm[:, None])


@triton.jit
def gla_state_fwd_kernel(k, v, gcs, h0, h, ht, cu_seqlens, chunk_offsets, T, NT,
                         H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, VS: tl.constexpr, BT: tl.constexpr,
                         BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr, STORE_HT: tl.constexpr,
                         IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr, MM_FP32: tl.constexpr):
    """Grid (cdiv(K, BK), cdiv(V, BV), N*H). h[slot] = state at each chunk start (tile [BK, BV]). v's row stride is
    VS (> V: a value slice of a wider v, read in place).

    MM_FP32: fp32 operands (tf32 products for 16-bit inputs), as the backward wants (see gla_bwd_dqk_kernel).
    """
    i_k, i_v, i_nh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos, slot0 = seq_span(i_n, T, NT, cu_seqlens, chunk_offsets, IS_VARLEN)
    if MM_FP32:
        DT = tl.float32
    else:
        DT = k.dtype.element_ty
    S, soff, smask, offs_k, offs_v = state_tile(h0, i_nh, i_k, i_v, K, V, BK, BV, HAS_H0)
    n_ch = tl.cdiv(eos - bos, BT)
    for i in range(0, n_ch):
        t0 = bos + i * BT
        t1 = tl.minimum(t0 + BT, eos)
        tl.store(h + ((slot0 + i) * H + i_h) * K * V + soff, S.to(h.dtype.element_ty), mask=smask)
        rows = t0 + tl.arange(0, BT)
        rm = rows < t1
        kt = _tile(k, rows, rm, i_h, H, K, offs_k)
        gt = _tile(gcs, rows, rm, i_h, H, K, offs_k)
        vt = _tile_at(v, rows, rm, i_h, H, VS, V, offs_v)
        g_last = _row(gcs, t1 - 1, t1 > t0, i_h, H, K, offs_k)
        kd = tl.where(rm[:, None], kt * tl.exp(g_last[None, :] - gt), 0.0)
        S = S * tl.exp(g_last)[:, None] + _mm(tl.trans(kd), vt, DT, DOT_PREC)
    if STORE_HT:
        tl.store(ht + i_nh.to(tl.int64) * K * V + soff, S, mask=smask)


@triton.jit
def gla_output_kernel(q, v, gcs, A, h, o, table, T, NT, scale,
                      H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
                      BK: tl.constexpr, BV: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr):
    """Grid (cdiv(V, BV), slots, B*H). o = (q' e^b) S + A V."""
    i_v, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, slot = chunk_span(i_c, i_b, T, NT, table, IS_VARLEN, BT)
    DT = q.dtype.element_ty
    r_t = tl.arange(0, BT)
    rows = t0 + r_t
    rm = rows < t1
    offs_v = i_v * BV + tl.arange(0, BV)
    hp = h + (slot * H + i_h) * K * V
    acc = tl.zeros([BT, BV], tl.float32)
    for kb in range(0, tl.cdiv(K, BK)):
        offs_k = kb * BK + tl.arange(0, BK)
        qt = _tile(q, rows, rm, i_h, H, K, offs_k)
        gt = _tile(gcs, rows, rm, i_h, H, K, offs_k)
        ht = tl.load(hp + offs_k[:, None] * V + offs_v[None, :],
                     mask=tl.where(t1 > t0, (offs_k < K)[:, None] & (offs_v < V)[None, :], False), other=0.0)
        acc += _mm(qt * tl.exp(gt) * scale, ht, DT, DOT_PREC)
    at = _tile(A, rows, rm, i_h, H, BT, r_t)
    at = tl.where(r_t[:, None] >= r_t[None, :], at, 0.0)
    vt = _tile(v, rows, rm, i_h, H, V, offs_v)
    acc += _mm(at, vt, DT, DOT_PREC)
    _put(o, acc, rows, rm, i_h, H, V, offs_v)


# ---------------------------------------------------------------------------------------------- backward
@triton.jit
def gla_state_bwd_kernel(q, do, gcs, dht, dh, dh0, cu_seqlens, chunk_offsets, T, NT, scale,
                         H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, VS: tl.constexpr, BT: tl.constexpr,
                         BK: tl.constexpr, BV: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr,
                         IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr):
    """Grid (cdiv(K, BK), cdiv(V, BV), N*H). dh[slot] = gradient of the state at each chunk END (dO's row stride VS).

    Products on fp32 operands (tf32 for 16-bit inputs): dq, dk and so dgk inherit dh's rounding.
    """
    i_k, i_v, i_nh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos, slot0 = seq_span(i_n, T, NT, cu_seqlens, chunk_offsets, IS_VARLEN)
    DT = tl.float32
    dS, soff, smask, offs_k, offs_v = state_tile(dht, i_nh, i_k, i_v, K, V, BK, BV, HAS_DHT)
    n_ch = tl.cdiv(eos - bos, BT)
    for j in range(0, n_ch):
        i = n_ch - 1 - j
        t0 = bos + i * BT
        t1 = tl.minimum(t0 + BT, eos)
        tl.store(dh + ((slot0 + i) * H + i_h) * K * V + soff, dS.to(dh.dtype.element_ty), mask=smask)
        rows = t0 + tl.arange(0, BT)
        rm = rows < t1
        qt = _tile(q, rows, rm, i_h, H, K, offs_k)
        gt = _tile(gcs, rows, rm, i_h, H, K, offs_k)
        dot_ = _tile_at(do, rows, rm, i_h, H, VS, V, offs_v)
        g_last = _row(gcs, t1 - 1, t1 > t0, i_h, H, K, offs_k)
        qd = qt * tl.exp(gt) * scale
        dS = dS * tl.exp(g_last)[:, None] + _mm(tl.trans(qd), dot_, DT, DOT_PREC)
    if STORE_DH0:
        tl.store(dh0 + i_nh.to(tl.int64) * K * V + soff, dS, mask=smask)


@triton.jit
def gla_bwd_dA_dv_kernel(k, v, gcs, A, do, dh, dA, dv, table, T, NT,
                         H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, VS: tl.constexpr, BT: tl.constexpr,
                         BK: tl.constexpr, BV: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr,
                         ACCUMULATE: tl.constexpr = False):
    """Grid (slots, B*H). dA = causal(dO V^T) (fp32; with ACCUMULATE added to what dA holds: the sum over value
    slices); dv = A^T dO + (K e^{b_last - b}) dS_end. v, dO and dv have row stride VS (a value slice in place)."""
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, slot = chunk_span(i_c, i_b, T, NT, table, IS_VARLEN, BT)
    DT = k.dtype.element_ty
    r_t = tl.arange(0, BT)
    rows = t0 + r_t
    rm = rows < t1
    causal = r_t[:, None] >= r_t[None, :]
    dAt = tl.zeros([BT, BT], tl.float32)
    for vb in range(0, tl.cdiv(V, BV)):
        offs_v = vb * BV + tl.arange(0, BV)
        dot_ = _tile_at(do, rows, rm, i_h, H, VS, V, offs_v)
        vt = _tile_at(v, rows, rm, i_h, H, VS, V, offs_v)
        dAt += _mm(dot_, tl.trans(vt), DT, DOT_PREC)
    if ACCUMULATE:
        dAt += _tile(dA, rows, rm, i_h, H, BT, r_t)
    _put(dA, tl.where(causal, dAt, 0.0), rows, rm, i_h, H, BT, r_t)
    at = tl.where(causal, _tile(A, rows, rm, i_h, H, BT, r_t), 0.0)
    dhp = dh + (slot * H + i_h) * K * V
    for vb in range(0, tl.cdiv(V, BV)):
        offs_v = vb * BV + tl.arange(0, BV)
        dot_ = _tile_at(do, rows, rm, i_h, H, VS, V, offs_v)
        acc = _mm(tl.trans(at), dot_, DT, DOT_PREC)
        for kb in range(0, tl.cdiv(K, BK)):
            offs_k = kb * BK + tl.arange(0, BK)
            kt = _tile(k, rows, rm, i_h, H, K, offs_k)
            gt = _tile(gcs, rows, rm, i_h, H, K, offs_k)
            g_last = _row(gcs, t1 - 1, t1 > t0, i_h, H, K, offs_k)
            kd = tl.where(rm[:, None], kt * tl.exp(g_last[None, :] - gt), 0.0)
            dht = tl.load(dhp + offs_k[:, None] * V + offs_v[None, :],
                          mask=tl.where(t1 > t0, (offs_k < K)[:, None] & (offs_v < V)[None, :], False), other=0.0)
            acc += _mm(kd, dht, DT, DOT_PREC)
        _put_at(dv, acc, rows, rm, i_h, H, VS, V, offs_v)


@triton.jit
def gla_bwd_inter_kernel(v, gcs, h, do, dh, dq_inter, dk_inter, table, T, NT, scale,
                         H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, VS: tl.constexpr, BT: tl.constexpr,
                         BK: tl.constexpr, BV: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr,
                         ACCUMULATE: tl.constexpr = False):
    """Grid (cdiv(K, BK), slots, B*H). The inter-chunk parts of dq and dk of a whole chunk at once (fp32
    operands, [BT, BV] x [BV, BK] products; with ACCUMULATE added to what dq_inter and dk_inter hold; v and dO
    with row stride VS). Done per 16-row sub-chunk inside the dq/dk kernel, which read h and dh once per sub-chunk,
    GLA fwd+bwd took 12.20 ms at B8 T4K on the H200; this way, 10.95 ms (benchmarks/results/kernel-forms-h200.json)."""
    i_k, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_h, t0, t1, slot, _, rows, rm = chunk_rows(i_c, i_bh, table, T, NT, H, BT, IS_VARLEN)
    offs_k = i_k * BK + tl.arange(0, BK)
    kmask = offs_k < K
    g = _tile(gcs, rows, rm, i_h, H, K, offs_k)
    g_last = _row(gcs, t1 - 1, t1 > t0, i_h, H, K, offs_k)
    hp = h + (slot * H + i_h) * K * V
    dhp = dh + (slot * H + i_h) * K * V
    # dq = scale e^{G} (dO S^T), dk = e^{G_last - G} (V dS^T), from the chunk-start state S and its gradient dS
    dq_s = tl.zeros([BT, BK], tl.float32)
    dk_s = tl.zeros([BT, BK], tl.float32)
    for vb in range(0, tl.cdiv(V, BV)):
        offs_v = vb * BV + tl.arange(0, BV)
        hm = tl.where(t1 > t0, kmask[:, None] & (offs_v < V)[None, :], False)
        ht = tl.load(hp + offs_k[:, None] * V + offs_v[None, :], mask=hm, other=0.0)
        dht = tl.load(dhp + offs_k[:, None] * V + offs_v[None, :], mask=hm, other=0.0)
        dos = _tile_at(do, rows, rm, i_h, H, VS, V, offs_v)
        vs = _tile_at(v, rows, rm, i_h, H, VS, V, offs_v)
        dq_s += _mm(dos, tl.trans(ht), tl.float32, DOT_PREC)
        dk_s += _mm(vs, tl.trans(dht), tl.float32, DOT_PREC)
    dq_s = dq_s * tl.where(rm[:, None], tl.exp(g), 0.0) * scale
    dk_s = dk_s * tl.where(rm[:, None], tl.exp(g_last[None, :] - g), 0.0)
    if ACCUMULATE:
        dq_s += _tile(dq_inter, rows, rm, i_h, H, K, offs_k)
        dk_s += _tile(dk_inter, rows, rm, i_h, H, K, offs_k)
    _put(dq_inter, dq_s, rows, rm, i_h, H, K, offs_k)
    _put(dk_inter, dk_s, rows, rm, i_h, H, K, offs_k)


@triton.jit
def gla_bwd_dqk_kernel(q, k, gcs, dA, dq_inter, dk_inter, dq, dk, dg, dg_sub, table, T, NT, scale, max_exponent,
                       H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
                       BK: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr, MM_FP32: tl.constexpr,
                       DIAG_PREC: tl.constexpr):
    """Grid (cdiv(K, BK) * (BT // BC), slots, B*H): dq, dk of one sub-chunk r (BC rows) and one key block.

    DIAG_PREC: precision of the diagonal sub-block's split products (see the host's _diagonal_precision).

    MM_FP32: products on fp32 operands (tf32 for 16-bit inputs): dgk is a long reverse sum of
    q dq - k dk with cancellation, so dq and dk need more than 16-bit operand rounding.
    The inter-chunk parts of dq and dk come from gla_bwd_inter_kernel (dq_inter, dk_inter, fp32).

    Writes dq, dk, dg = the reverse cumsum of (q dq - k dk) inside the sub-chunk (fp32) and dg_sub[slot, r] = its
    total (fp32): gla_dg_finish_kernel adds the later sub-chunks' and the caller the later chunks' totals.
    One program per sub-chunk, as gla_intra_A_kernel: one per chunk walking its four sub-chunks took 4.5 ms of
    GLA's 10.5 ms fwd+bwd at B8 T4K H16 d128 on the H200 (benchmarks/results/profile-h200.json).
    """
    NC: tl.constexpr = BT // BC
    i_kr, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_k, i_r = i_kr // NC, i_kr % NC
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, slot = chunk_span(i_c, i_b, T, NT, table, IS_VARLEN, BT)
    if MM_FP32:
        DT = tl.float32
    else:
        DT = q.dtype.element_ty
    r_t = tl.arange(0, BT)
    r_c = tl.arange(0, BC)
    rows = t0 + r_t
    rm = rows < t1
    first = t0 + i_r * BC
    srows = first + r_c
    sm = srows < t1
    offs_k = i_k * BK + tl.arange(0, BK)
    qs = _tile(q, srows, sm, i_h, H, K, offs_k)
    ks = _tile(k, srows, sm, i_h, H, K, offs_k)
    gs = _tile(gcs, srows, sm, i_h, H, K, offs_k)
    dq_s = _tile(dq_inter, srows, sm, i_h, H, K, offs_k)
    dk_s = _tile(dk_inter, srows, sm, i_h, H, K, offs_k)
    # keys of earlier sub-chunks -> dq of these rows; the exponent split at the row just before this block
    if i_r > 0:
        g_ref = _row(gcs, tl.minimum(first - 1, t1 - 1), t1 > t0, i_h, H, K, offs_k)
        before = rm & (r_t < i_r * BC)
        kt = _tile(k, rows, before, i_h, H, K, offs_k)
        gt = _tile(gcs, rows, before, i_h, H, K, offs_k)
        kd = tl.where(before[:, None], kt * tl.exp(tl.where(before[:, None], g_ref[None, :] - gt, 0.0)), 0.0)
        dA_r = tl.load(dA + (srows[:, None] * H + i_h) * BT + r_t[None, :],
                       mask=sm[:, None] & (r_t < i_r * BC)[None, :], other=0.0)
        e = tl.exp(tl.where(sm[:, None], gs - g_ref[None, :], 0.0))
        dq_s += tl.where(sm[:, None], e, 0.0) * _mm(dA_r, kd, DT, DOT_PREC) * scale
    # queries of later sub-chunks -> dk of these rows; the exponent split at this block's last row
    if i_r + 1 < NC:
        g_ref2 = _row(gcs, tl.minimum(first + BC - 1, t1 - 1), t1 > t0, i_h, H, K, offs_k)
        after = rm & (r_t >= (i_r + 1) * BC)
        qt = _tile(q, rows, after, i_h, H, K, offs_k)
        gt2 = _tile(gcs, rows, after, i_h, H, K, offs_k)
        qd = tl.where(after[:, None], qt * tl.exp(tl.where(after[:, None], gt2 - g_ref2[None, :], 0.0)), 0.0)
        dA_c = tl.load(dA + (rows[None, :] * H + i_h) * BT + i_r * BC + r_c[:, None],  # dA^T, by address
                       mask=after[None, :], other=0.0)
        e2 = tl.exp(tl.where(sm[:, None], g_ref2[None, :] - gs, 0.0))
        dk_s += tl.where(sm[:, None], e2, 0.0) * _mm(dA_c, qd, DT, DOT_PREC) * scale
    # diagonal sub-block: the exponent split at its first row where this key block's decays allow (as in
    # _diagonal_block), else exact exponents column by column
    dq_d = tl.zeros([BC, BK], tl.float32)
    dk_d = tl.zeros([BC, BK], tl.float32)
    gap = _exponent_gap(gcs, first, t1, first, first < t1, i_h, H, K, BC, offs_k)
    if tl.max(tl.max(tl.abs(gap), 1), 0) <= max_exponent:
        d_block = dA + (srows[:, None] * H + i_h) * BT + i_r * BC + r_c[None, :]
        dA_d = tl.load(d_block, mask=(r_c[:, None] >= r_c[None, :]) & sm[:, None], other=0.0)
        dA_dt = tl.load(dA + (srows[None, :] * H + i_h) * BT + i_r * BC + r_c[:, None],  # its transpose, by address
                        mask=(r_c[:, None] <= r_c[None, :]) & sm[None, :], other=0.0)
        grow = tl.exp(gap)
        shrink = tl.exp(-gap)
        dq_d = grow * tl.dot(dA_d, ks * shrink, input_precision=DIAG_PREC)
        dk_d = shrink * tl.dot(dA_dt, qs * grow, input_precision=DIAG_PREC)
    else:
        for j in range(BC):
            rj = first + j
            jv = rj < t1
            kj = _row(k, rj, jv, i_h, H, K, offs_k)
            qj = _row(q, rj, jv, i_h, H, K, offs_k)
            gj = _row(gcs, rj, jv, i_h, H, K, offs_k)
            # column j of the block: dA[i, j] for rows i >= j; row j: dA[j, i] for columns i <= j
            dA_col = tl.load(dA + (srows * H + i_h) * BT + i_r * BC + j, mask=tl.where(jv, sm & (r_c >= j), False),
                             other=0.0)
            dA_row = tl.load(dA + (rj * H + i_h) * BT + i_r * BC + r_c, mask=tl.where(jv, r_c <= j, False), other=0.0)
            low = tl.where(jv, ((r_c >= j) & sm)[:, None], False)
            up = tl.where(jv, ((r_c <= j) & sm)[:, None], False)
            dq_d += tl.where(low, dA_col[:, None] * kj[None, :] * tl.exp(tl.where(low, gs - gj[None, :], 0.0)), 0.0)
            dk_d += tl.where(up, dA_row[:, None] * qj[None, :] * tl.exp(tl.where(up, gj[None, :] - gs, 0.0)), 0.0)
    dq_s += dq_d * scale
    dk_s += dk_d * scale
    _put(dq, dq_s, srows, sm, i_h, H, K, offs_k)
    _put(dk, dk_s, srows, sm, i_h, H, K, offs_k)
    dgl = tl.where(sm[:, None], qs * dq_s - ks * dk_s, 0.0)
    tot = tl.sum(dgl, 0)
    _put(dg, tot[None, :] - tl.cumsum(dgl, 0) + dgl, srows, sm, i_h, H, K, offs_k)
    tl.store(dg_sub + ((slot * NC + i_r) * H + i_h) * K + offs_k, tot,
             mask=tl.where(t1 > t0, offs_k < K, False))


@triton.jit
def gla_dg_finish_kernel(dg, dg_sub, add, dgk, table, T, NT,
                         H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
                         IS_VARLEN: tl.constexpr):
    """Grid (cdiv(K, BK), slots, B*H). dgk = dg (reverse cumsum inside each sub-chunk) + the totals of the chunk's
    later sub-chunks (dg_sub [slots, BT // BC, H, K]) + add[slot] (later chunks + final-state term)."""
    i_k, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, slot = chunk_span(i_c, i_b, T, NT, table, IS_VARLEN, BT)
    r_t = tl.arange(0, BT)
    rows = t0 + r_t
    rm = rows < t1
    offs_k = i_k * BK + tl.arange(0, BK)
    kmask = tl.where(t1 > t0, offs_k < K, False)
    total = _tile(dg, rows, rm, i_h, H, K, offs_k)
    total += tl.load(add + (slot * H + i_h) * K + offs_k, mask=kmask, other=0.0)[None, :]
    for i_r in tl.static_range(1, BT // BC):
        later = tl.load(dg_sub + ((slot * (BT // BC) + i_r) * H + i_h) * K + offs_k, mask=kmask, other=0.0)
        total += tl.where((r_t < i_r * BC)[:, None], later[None, :], 0.0)
    _put(dgk, total, rows, rm, i_h, H, K, offs_k)
