"""Triton kernels of the CCQ statistic pass with a SCALAR per-head decay (forward and reverse).

Per chunk of BT tokens, b = chunk-local inclusive cumsum of the log decay g (b <= 0, non-increasing),
D_ti = e^{b_t - b_i} for i <= t (else 0; exponent <= 0), one [BT, BT] matrix per head. The state is
S = Mᵀ (so u = M q reads as u_t = Sᵀ q_t) and a program owns the columns `blk` of S, i.e. the
coordinates blk of u (they are independent given q):
    u_t[blk] = e^{b_t} (q_t S_start[:, blk]) + sum_i (D ∘ Q K̂ᵀ)_ti k̂_i[blk]
    z_t      = e^{b_t} z_start + sum_i D_ti,            m_t = e^{b_t} m_start + sum_i D_ti k̂_i
    S_end    = e^{b_last} S_start + sum_i e^{b_last - b_i} k̂_i k̂_i[blk]ᵀ   (z, m alike)
Forward: ccq_stats_fwd_state_kernel runs only the recurrence of the state (one program per sequence, head
and column block, the state in registers) and stores it at every chunk start; ccq_stats_fwd_chunk_kernel
then takes one chunk per program and writes every token's output.
Reverse: u's gradient is du_t = r_t dq̃_t (r_t = −λ_t / z_t, a scalar per token), so the kernels read the
bf16 dq̃ and r instead of an fp32 du.
ccq_stats_bwd_state_kernel runs only the recurrence of the state gradient dS [K, BV]
(dS_T = dM_Tᵀ) backwards and stores it at every chunk end; ccq_stats_bwd_chunk_kernel then takes one chunk
per program and writes k̂'s gradient; q's gradient through M (Mᵀ du) is ccq_stats_fwd_chunk_kernel reading the
forward's saved chunk-start M transposed, with query dq̃.
(One sequential kernel per direction did everything before; on the H200 it was no faster, spilled at
K = 128 and did not fit in shared memory at K = 256, so it was removed.)
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..gla.triton_chunk_kernels import _put, _tile
from ..triton_layout import chunk_span, seq_span


@triton.jit
def _mm(a, b, DT: tl.constexpr, PREC: tl.constexpr):
    return tl.dot(a.to(DT), b.to(DT), input_precision=PREC)


@triton.jit
def _stored_tile(ptr, rows, rmask, i_h, H: tl.constexpr, D: tl.constexpr, cols):
    """As gla's _tile, but in the stored dtype (a bf16 operand of tl.dot takes half the registers of fp32)."""
    p = ptr + (rows[:, None] * H + i_h) * D + cols[None, :]
    return tl.load(p, mask=rmask[:, None] & (cols < D)[None, :], other=0.0)


@triton.jit
def _chunk_decay(g, rows, rm, i_h, H: tl.constexpr, BT: tl.constexpr):
    """b [BT] (masked rows carry b_last), D [BT, BT], e^b, e^{b_last}, w = e^{b_last - b} (0 when masked)."""
    r = tl.arange(0, BT)
    b = tl.cumsum(tl.load(g + rows * H + i_h, mask=rm, other=0.0).to(tl.float32), 0)
    b_last = tl.sum(tl.where(r == BT - 1, b, 0.0), 0)  # masked rows add 0, so the last row holds b_last
    causal = r[:, None] >= r[None, :]
    D = tl.where(causal, tl.exp(tl.where(causal, b[:, None] - b[None, :], 0.0)), 0.0)
    w = tl.where(rm, tl.exp(b_last - b), 0.0)
    return D, tl.exp(b), tl.exp(b_last), w


@triton.jit
def _column_block(init, i_nh, i_v, K: tl.constexpr, KP: tl.constexpr, BV: tl.constexpr, BT: tl.constexpr,
                  HAS_INIT: tl.constexpr):
    """This program's columns blk of a [K, K] statistic S = Mᵀ (element (c, r) at M + r*K + c).

    Returns (S tile [KP, BV] fp32 = init[i_nh]ᵀ[:, blk] when HAS_INIT else zeros, its offsets and mask,
    all key coordinates ck [KP], the columns cv [BV], a [1] range, and the [BT] / [1] masks that are true
    in column block 0 only: it alone writes the per-token and per-head scalars).
    """
    ck = tl.arange(0, KP)
    cv = i_v * BV + tl.arange(0, BV)
    one = tl.arange(0, 1)
    lead_row = (tl.arange(0, BT) * 0 + i_v) == 0
    lead_one = (one * 0 + i_v) == 0
    s_off = i_nh.to(tl.int64) * K * K + cv[None, :] * K + ck[:, None]
    s_mask = (ck < K)[:, None] & (cv < K)[None, :]
    S = tl.zeros([KP, BV], tl.float32)
    if HAS_INIT:
        S += tl.load(init + s_off, mask=s_mask, other=0.0)
    return S, s_off, s_mask, ck, cv, one, lead_row, lead_one


@triton.jit
def _store_stats(M, z, m, S, zs, mvec, s_off, s_mask, i_nh, one, lead_one, m_cols, m_mask,
                 K: tl.constexpr, CENTER: tl.constexpr):
    """One sequence's statistics (or their gradients) at its start or end: this program's S columns into M,
    zs into z (column block 0 only), and with CENTER the entries m_cols of mvec into m where m_mask."""
    tl.store(M + s_off, S, mask=s_mask)
    tl.store(z + i_nh + one, zs, mask=lead_one)
    if CENTER:
        tl.store(m + i_nh.to(tl.int64) * K + m_cols, mvec, mask=m_mask)


@triton.jit
def _stat_block(st, at, ck, cv, live, K: tl.constexpr, ROWS: tl.constexpr = False):
    """Columns cv of the [K, K] statistic stored at state index `at` (S_st, dS_st layout), [KP, BV] in the stored
    dtype (ROWS: rows cv, transposed); zeros for a program whose chunk has no tokens."""
    if ROWS:
        offsets = ck[:, None] * K + cv[None, :]
    else:
        offsets = cv[None, :] * K + ck[:, None]
    return tl.load(st + at * K * K + offsets, mask=tl.where(live, (ck < K)[:, None] & (cv < K)[None, :], False),
                   other=0.0)


@triton.jit
def _chunk_start(i_c, i_bh, table, T, NT, H: tl.constexpr, BT: tl.constexpr, IS_VARLEN: tl.constexpr):
    """The chunk a program of grid (slots, B*H) owns: head, rows, row mask, whether it has tokens, state index."""
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, slot = chunk_span(i_c, i_b, T, NT, table, IS_VARLEN, BT)
    rows = t0 + tl.arange(0, BT)
    return i_h, rows, rows < t1, t1 > t0, slot * H + i_h


@triton.jit
def ccq_stats_fwd_state_kernel(k, g, M0, z0, m0, S_st, z_st, m_st, MT, zT, mT, cu_seqlens, chunk_offsets, T, NT,
                               H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, KP: tl.constexpr,
                               BV: tl.constexpr, HAS_M0: tl.constexpr, HAS_Z0: tl.constexpr,
                               HAS_MM0: tl.constexpr, CENTER: tl.constexpr, STORE_FINAL: tl.constexpr,
                               IS_VARLEN: tl.constexpr, PREC: tl.constexpr):
    """Grid (cdiv(K, BV), N*H). The recurrence alone: the statistics at each chunk START, S_st [slots, H, K, K]
    (stored like M: (c, r) at r*K + c, in S_st's dtype), z_st [slots, H], m_st [slots, H, K] (CENTER), for the
    chunk-parallel ccq_stats_fwd_chunk_kernel; STORE_FINAL: MT, zT, mT (fp32). Products in k's dtype.
    """
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos, slot0 = seq_span(i_n, T, NT, cu_seqlens, chunk_offsets, IS_VARLEN)
    DT = k.dtype.element_ty
    S, s_off, s_mask, ck, cv, one, lead_row, lead_one = _column_block(M0, i_nh, i_v, K, KP, BV, BT, HAS_M0)
    tile_off = cv[None, :] * K + ck[:, None]
    lead_k = (ck < K) & ((ck * 0 + i_v) == 0)  # the full m vector: column block 0 stores it
    zs = tl.zeros([1], tl.float32)
    if HAS_Z0:
        zs += tl.load(z0 + i_nh + one)
    ms = tl.zeros([KP], tl.float32)
    if CENTER and HAS_MM0:
        ms += tl.load(m0 + i_nh.to(tl.int64) * K + ck, mask=ck < K, other=0.0)
    for c in range(0, tl.cdiv(eos - bos, BT)):
        t0 = bos + c * BT
        rows = t0 + tl.arange(0, BT)
        rm = rows < eos
        at = (slot0 + c).to(tl.int64) * H + i_h
        tl.store(S_st + at * K * K + tile_off, S, mask=s_mask)
        tl.store(z_st + at + one, zs, mask=lead_one)
        kt = _tile(k, rows, rm, i_h, H, K, ck)
        kv = _tile(k, rows, rm, i_h, H, K, cv)
        D, eb, e_last, w = _chunk_decay(g, rows, rm, i_h, H, BT)
        S = S * e_last + _mm(tl.trans(kt * w[:, None]), kv, DT, PREC)
        zs = zs * e_last + tl.sum(w, 0)
        if CENTER:
            tl.store(m_st + at * K + ck, ms, mask=lead_k)
            ms = ms * e_last + tl.sum(kt * w[:, None], 0)
    if STORE_FINAL:
        _store_stats(MT, zT, mT, S, zs, ms, s_off, s_mask, i_nh, one, lead_one, ck, lead_k, K, CENTER)


@triton.jit
def ccq_stats_fwd_chunk_kernel(q, k, g, lam, S_st, z_st, m_st, out, u_s, z_s, m_s, table, T, NT,
                               H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, KP: tl.constexpr,
                               BV: tl.constexpr, SPLIT: tl.constexpr, CENTER: tl.constexpr,
                               SAVE: tl.constexpr, IS_VARLEN: tl.constexpr, PREC: tl.constexpr,
                               TRANSPOSED: tl.constexpr = False, ADD_U: tl.constexpr = False):
    """Grid (slots, B*H, cdiv(K, BV) if SPLIT else 1), one chunk per program (and one value block with SPLIT),
    from the chunk-start statistics of ccq_stats_fwd_state_kernel: u, z, m per token and out = q̃ for the chunk's
    tokens (module docstring).
    Products in k's dtype (q's). TRANSPOSED: read Mᵀ (the backward's Mᵀ du with query dq̃, from the forward's
    saved statistics); ADD_U: out += lam ∘ u instead of q̃.
    """
    i_h, rows, rm, live, at = _chunk_start(tl.program_id(0), tl.program_id(1), table, T, NT, H, BT, IS_VARLEN)
    DT = k.dtype.element_ty
    ck = tl.arange(0, KP)
    one = tl.arange(0, 1)
    qt = _stored_tile(q, rows, rm, i_h, H, K, ck)
    D, eb, e_last, w = _chunk_decay(g, rows, rm, i_h, H, BT)
    A = _mm(qt, tl.trans(_stored_tile(k, rows, rm, i_h, H, K, ck)), DT, PREC) * D
    z_start = tl.sum(tl.load(z_st + at + one, mask=tl.where(live, one == 0, False), other=0.0), 0)
    z = eb * z_start + tl.sum(D, 1)
    if SPLIT:
        first_block = tl.program_id(2)
        end_block = first_block + 1
    else:
        first_block = 0
        end_block = tl.cdiv(K, BV)
    if SAVE:
        tl.store(z_s + rows * H + i_h, z, mask=rm & ((rows * 0 + first_block) == 0))  # value block 0 alone
    if CENTER:
        m_start = tl.load(m_st + at * K + ck, mask=tl.where(live, ck < K, False), other=0.0)
        mq = eb * tl.sum(qt.to(tl.float32) * m_start[None, :], 1) + tl.sum(A, 1)  # m_t · q_t
    lt = tl.load(lam + rows * H + i_h, mask=rm, other=0.0).to(tl.float32)
    A = A.to(DT)  # rounded once, not in every value block
    for vb in range(first_block, end_block):
        cv = vb * BV + tl.arange(0, BV)
        Sb = _stat_block(S_st, at, ck, cv, live, K, ROWS=TRANSPOSED)
        kv = _stored_tile(k, rows, rm, i_h, H, K, cv)
        u = eb[:, None] * _mm(qt, Sb, DT, PREC) + _mm(A, kv, DT, PREC)
        if CENTER:
            m_blk = tl.load(m_st + at * K + cv, mask=tl.where(live, cv < K, False), other=0.0)
            mv = eb[:, None] * m_blk[None, :] + _mm(D, kv, DT, PREC)
        sig = u / z[:, None]
        if CENTER:
            sig -= mv * (mq / (z * z))[:, None]
        if ADD_U:
            _put(out, _tile(out, rows, rm, i_h, H, K, cv) + lt[:, None] * u, rows, rm, i_h, H, K, cv)
        else:
            _put(out, _tile(q, rows, rm, i_h, H, K, cv) - lt[:, None] * sig, rows, rm, i_h, H, K, cv)
        if SAVE:
            _put(u_s, u, rows, rm, i_h, H, K, cv)
            if CENTER:
                _put(m_s, mv, rows, rm, i_h, H, K, cv)


@triton.jit
def ccq_stats_bwd_state_kernel(q, g, dqt, du_scale, dz, dm, dMT, dzT, dmT, dS_st, dz_st, dm_st, dM0, dz0, dm0,
                               cu_seqlens, chunk_offsets, T, NT,
                               H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, KP: tl.constexpr,
                               BV: tl.constexpr, CENTER: tl.constexpr, HAS_DMT: tl.constexpr,
                               HAS_DZT: tl.constexpr, HAS_DMMT: tl.constexpr, STORE_D0: tl.constexpr,
                               IS_VARLEN: tl.constexpr, PREC: tl.constexpr):
    """Grid (cdiv(K, BV), N*H). The reverse recurrence alone: the statistics' gradients at each chunk END
    (what flows back from later tokens), dS_st [slots, H, K, K] (stored like M: (c, r) at r*K + c),
    dz_st [slots, H], dm_st [slots, H, K] (CENTER); the chunk-parallel ccq_stats_bwd_chunk_kernel
    does the rest. STORE_D0: dM0, dz0, dm0 (gradients at the sequence start).
    """
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos, slot0 = seq_span(i_n, T, NT, cu_seqlens, chunk_offsets, IS_VARLEN)
    dS, s_off, s_mask, ck, cv, one, lead_row, lead_one = _column_block(dMT, i_nh, i_v, K, KP, BV, BT, HAS_DMT)
    tile_off = cv[None, :] * K + ck[:, None]
    dzs = tl.zeros([1], tl.float32)
    if HAS_DZT:
        dzs += tl.load(dzT + i_nh + one)
    dms = tl.zeros([BV], tl.float32)
    if CENTER and HAS_DMMT:
        dms += tl.load(dmT + i_nh.to(tl.int64) * K + cv, mask=cv < K, other=0.0)
    n_ch = tl.cdiv(eos - bos, BT)
    for j in range(0, n_ch):
        c = n_ch - 1 - j
        t0 = bos + c * BT
        rows = t0 + tl.arange(0, BT)
        rm = rows < eos
        at = (slot0 + c).to(tl.int64) * H + i_h
        tl.store(dS_st + at * K * K + tile_off, dS, mask=s_mask)
        tl.store(dz_st + at + one, dzs, mask=lead_one)
        qt = _tile(q, rows, rm, i_h, H, K, ck)
        dqv = _tile(dqt, rows, rm, i_h, H, K, cv)
        rs = tl.load(du_scale + rows * H + i_h, mask=rm, other=0.0)
        dzt = tl.load(dz + rows * H + i_h, mask=rm, other=0.0)
        D, eb, e_last, w = _chunk_decay(g, rows, rm, i_h, H, BT)
        if CENTER:
            tl.store(dm_st + at * K + cv, dms, mask=cv < K)
            dms = dms * e_last + tl.sum(eb[:, None] * _tile(dm, rows, rm, i_h, H, K, cv), 0)
        dS = dS * e_last + _mm(tl.trans(qt * (eb * rs)[:, None]), dqv, tl.float32, PREC)  # Σ e^b q duᵀ
        dzs = dzs * e_last + tl.sum(eb * dzt, 0)
    if STORE_D0:
        _store_stats(dM0, dz0, dm0, dS, dzs, dms, s_off, s_mask, i_nh, one, lead_one, cv, cv < K, K, CENTER)


@triton.jit
def ccq_stats_bwd_chunk_kernel(q, k, g, dqt, du_scale, dz, dm, dS_st, dz_st, dm_st, dk, writer, table, T, NT,
                               H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, KP: tl.constexpr,
                               BV: tl.constexpr, CENTER: tl.constexpr, IS_VARLEN: tl.constexpr,
                               PREC: tl.constexpr):
    """Grid (slots, B*H), one chunk per program, from the chunk-end gradients of ccq_stats_bwd_state_kernel:
    k̂'s whole gradient dk (in dk's dtype), both of its roles in u = M q from one read of the chunk's dS, and the
    writer part of the log-decay gradient. With Dr = diag(r) D (du = diag(r) dQ̃), per column block blk:
        value role  dk_val[blk] = (Dr ∘ Q K̂ᵀ)ᵀ dQ̃_blk + w ∘ (K̂ dS[:, blk]) [+ Dᵀ dm_blk + w dm_end[blk]]
        key role    dk_key[blk] = (Dr ∘ dQ̃ K̂ᵀ)ᵀ Q_blk + w ∘ (K̂ dS[blk, :]ᵀ)
        writer = Dᵀ dz + w dz_end + k̂ · dk_val
    """
    i_h, rows, rm, live, at = _chunk_start(tl.program_id(0), tl.program_id(1), table, T, NT, H, BT, IS_VARLEN)
    ck = tl.arange(0, KP)
    one = tl.arange(0, 1)
    DT = k.dtype.element_ty
    kt = _stored_tile(k, rows, rm, i_h, H, K, ck)
    D, eb, e_last, w = _chunk_decay(g, rows, rm, i_h, H, BT)
    Dr = D * tl.load(du_scale + rows * H + i_h, mask=rm, other=0.0)[:, None]
    A = _mm(_stored_tile(q, rows, rm, i_h, H, K, ck), tl.trans(kt), DT, PREC) * Dr  # exact products in k's dtype
    P = _mm(_stored_tile(dqt, rows, rm, i_h, H, K, ck), tl.trans(kt), DT, PREC) * Dr
    dzt = tl.load(dz + rows * H + i_h, mask=rm, other=0.0)
    dz_end = tl.sum(tl.load(dz_st + at + one, mask=tl.where(live, one == 0, False), other=0.0), 0)
    wr = tl.sum(D * dzt[:, None], 0) + w * dz_end
    for vb in range(0, tl.cdiv(K, BV)):
        cv = vb * BV + tl.arange(0, BV)
        dkv = _mm(tl.trans(A), _stored_tile(dqt, rows, rm, i_h, H, K, cv), tl.float32, PREC)
        dkv += w[:, None] * _mm(kt, _stat_block(dS_st, at, ck, cv, live, K), tl.float32, PREC)
        if CENTER:
            dm_end = tl.load(dm_st + at * K + cv, mask=tl.where(live, cv < K, False), other=0.0)
            dkv += _mm(tl.trans(D), _tile(dm, rows, rm, i_h, H, K, cv), tl.float32, PREC) + w[:, None] * dm_end[None, :]
        wr += tl.sum(_tile(k, rows, rm, i_h, H, K, cv) * dkv, 1)
        dkv += _mm(tl.trans(P), _stored_tile(q, rows, rm, i_h, H, K, cv), tl.float32, PREC)
        dkv += w[:, None] * _mm(kt, _stat_block(dS_st, at, ck, cv, live, K, ROWS=True), tl.float32, PREC)
        _put(dk, dkv, rows, rm, i_h, H, K, cv)
    tl.store(writer + rows * H + i_h, wr, mask=rm)


@triton.jit
def ccq_stats_bwd_prep_kernel(dqt, q, lam, u, z, m, du_scale, dz, dm, dq_direct, dlam, reader, n_tok,
                              H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, KP: tl.constexpr,
                              CENTER: tl.constexpr):
    """Grid (cdiv(B*T, BT), H). Elementwise backward of q̃ = q − λ σ, σ = u/z − μ (μ·q), μ = m/z, per token:
    du_scale [B*T, H] = r = −λ/z (u's gradient is du = r dq̃, never stored), dz [B*T, H], dlam [B*T, H] and
    reader [B*T, H] = du·u + dz z + dm·m (the log-decay "reader" term); with CENTER also dm [B*T, H, K] (fp32)
    and dq_direct [B*T, H, K] (fp32, dq̃ and the μ term; without centring the direct part is dq̃ itself).
    """
    i_t, i_h = tl.program_id(0), tl.program_id(1)
    rows = i_t.to(tl.int64) * BT + tl.arange(0, BT)
    rm = rows < n_tok
    ck = tl.arange(0, KP)
    g_ = _tile(dqt, rows, rm, i_h, H, K, ck)
    ut = _tile(u, rows, rm, i_h, H, K, ck)
    zt = tl.load(z + rows * H + i_h, mask=rm, other=1.0)
    lt = tl.load(lam + rows * H + i_h, mask=rm, other=0.0).to(tl.float32)
    rs = -lt / zt
    dsig = -lt[:, None] * g_
    sig = ut / zt[:, None]
    dzt = -tl.sum(dsig * ut, 1) / (zt * zt)
    rd = rs * tl.sum(g_ * ut, 1)  # du · u
    if CENTER:
        qt = _tile(q, rows, rm, i_h, H, K, ck)
        mt = _tile(m, rows, rm, i_h, H, K, ck)
        mu = mt / zt[:, None]
        mq = tl.sum(mu * qt, 1)
        sig -= mu * mq[:, None]
        ds_mu = tl.sum(dsig * mu, 1)
        dmu = -mq[:, None] * dsig - ds_mu[:, None] * qt
        dmt = dmu / zt[:, None]
        dzt -= tl.sum(dmu * mt, 1) / (zt * zt)
        rd += tl.sum(dmt * mt, 1)
        _put(dm, dmt, rows, rm, i_h, H, K, ck)
        _put(dq_direct, g_ - ds_mu[:, None] * mu, rows, rm, i_h, H, K, ck)
    rd += dzt * zt
    tl.store(du_scale + rows * H + i_h, rs, mask=rm)
    tl.store(dz + rows * H + i_h, dzt, mask=rm)
    tl.store(dlam + rows * H + i_h, -tl.sum(g_ * sig, 1), mask=rm)
    tl.store(reader + rows * H + i_h, rd, mask=rm)
