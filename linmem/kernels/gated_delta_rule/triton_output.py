"""Chunk-parallel read kernels of the delta-rule chunk algorithm: output, and its backward.

Per chunk (S = state at the chunk start, P = (Q K^T) o Gamma o causal, Gamma_ij = e^{G_i - G_j}):
    O = scale (diag(e^G) Q S + P V~)
Backward: dV~_local = scale P^T dO (output_dv_kernel), and dq, dk, dW, dG of everything except the WY
form (output_dqk_kernel).

Transposed [BT, BT] products (K Q^T, V~ dO^T) are computed by their own tl.dot from the loaded rows,
never as tl.trans of a dot result: on Hopper with Triton 3.4+ that pattern (a transposed MMA-layout
tensor fed to another dot) is miscompiled and gives slightly wrong dk/dg/dbeta (fla issue #640).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..triton_layout import chunk_rows
from .triton_common import load_gate, load_rows, store_rows


@triton.jit
def _causal_qk(q, k, tok, m, i_h, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
               DOT_PREC: tl.constexpr):
    """Q K^T of one chunk, fp32 [BT, BT]."""
    qk = tl.zeros([BT, BT], tl.float32)
    for i_k in range(0, tl.cdiv(K, BK)):
        offs_k = i_k * BK + tl.arange(0, BK)
        qr = load_rows(q, tok, m, i_h, H, K, offs_k)
        kr = load_rows(k, tok, m, i_h, H, K, offs_k)
        qk += tl.dot(qr, tl.trans(kr), input_precision=DOT_PREC)
    return qk


@triton.jit
def output_fwd_kernel(
    q, k, vnew, h, gc, o, chunk_table, T, NT, scale,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr,
):
    """Grid (cdiv(V, BV), chunk slots, B*H)."""
    i_v, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_h, t0, t1, slot, r, tok, m = chunk_rows(i_c, i_bh, chunk_table, T, NT, H, BT, IS_VARLEN)
    offs_v = i_v * BV + tl.arange(0, BV)
    hp = h + (slot.to(tl.int64) * H + i_h) * K * V
    v_lim = (t1 > t0).to(tl.int32) * V  # unused varlen slots hold no state: read nothing
    qs = tl.zeros([BT, BV], tl.float32)
    qk = tl.zeros([BT, BT], tl.float32)
    for i_k in range(0, tl.cdiv(K, BK)):
        offs_k = i_k * BK + tl.arange(0, BK)
        qr = load_rows(q, tok, m, i_h, H, K, offs_k)
        kr = load_rows(k, tok, m, i_h, H, K, offs_k)
        hr = tl.load(hp + offs_k[:, None] * V + offs_v[None, :],
                     mask=(offs_k < K)[:, None] & (offs_v < v_lim)[None, :], other=0.0)
        qs += tl.dot(qr, hr.to(qr.dtype), input_precision=DOT_PREC)
        qk += tl.dot(qr, tl.trans(kr), input_precision=DOT_PREC)
    gk = load_gate(gc, tok, m, i_h, H)
    causal = (r[:, None] >= r[None, :]) & m[:, None] & m[None, :]
    p = tl.where(causal, qk * tl.exp(tl.where(causal, gk[:, None] - gk[None, :], 0.0)), 0.0)
    vr = load_rows(vnew, tok, m, i_h, H, V, offs_v)
    out = qs * tl.exp(gk)[:, None] + tl.dot(p.to(vr.dtype), vr, input_precision=DOT_PREC)
    store_rows(o, out * scale, tok, m, i_h, H, V, offs_v)


@triton.jit
def output_dv_kernel(
    q, k, gc, do, dv_local, chunk_table, T, NT, scale,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr,
):
    """Grid (chunk slots, B*H). dv_local = scale P^T dO."""
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_h, t0, t1, slot, r, tok, m = chunk_rows(i_c, i_bh, chunk_table, T, NT, H, BT, IS_VARLEN)
    # K Q^T computed directly (not tl.trans of a dot result: Hopper miscompile, see module doc)
    kq = _causal_qk(k, q, tok, m, i_h, H, K, BT, BK, DOT_PREC)
    gk = load_gate(gc, tok, m, i_h, H)
    # transposed: pt[j, i] = P[i, j]
    causal_t = (r[:, None] <= r[None, :]) & m[:, None] & m[None, :]
    pt = tl.where(causal_t, kq * tl.exp(tl.where(causal_t, gk[None, :] - gk[:, None], 0.0)), 0.0)
    pt = (pt * scale).to(k.dtype.element_ty)
    for i_v in range(0, tl.cdiv(V, BV)):
        offs_v = i_v * BV + tl.arange(0, BV)
        dor = load_rows(do, tok, m, i_h, H, V, offs_v)
        store_rows(dv_local, tl.dot(pt, dor, input_precision=DOT_PREC), tok, m, i_h, H, V, offs_v)


@triton.jit
def output_dqk_kernel(
    q, k, vnew, h, dh, gc, do, dvnew, dq_part, dk_part, dw_out, dgc_part, chunk_table, T, NT, NTOK, scale,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr,
):
    """Grid (cdiv(K, BK), chunk slots, B*H).

    dq = scale (e^G dO S^T + (dO V~^T o Gamma o M) K);  dk = (dO V~^T o Gamma o M)^T Q scale + e^{G_L-G} V~ dS^T;
    dW = -dV~ S^T;  dG (w.r.t. the cumulated gate) except the WY terms, one partial per key block.
    """
    i_k, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_h, t0, t1, slot, r, tok, m = chunk_rows(i_c, i_bh, chunk_table, T, NT, H, BT, IS_VARLEN)
    offs_k = i_k * BK + tl.arange(0, BK)
    k_mask = offs_k < K
    hp = h + (slot.to(tl.int64) * H + i_h) * K * V
    dhp = dh + (slot.to(tl.int64) * H + i_h) * K * V
    dt = k.dtype.element_ty
    v_lim = (t1 > t0).to(tl.int32) * V  # unused varlen slots hold no state: read nothing

    dqi = tl.zeros([BT, BK], tl.float32)
    dkd = tl.zeros([BT, BK], tl.float32)
    dwa = tl.zeros([BT, BK], tl.float32)
    dp = tl.zeros([BT, BT], tl.float32)
    dp_t = tl.zeros([BT, BT], tl.float32)
    hdh = tl.zeros([BK], tl.float32)
    for i_v in range(0, tl.cdiv(V, BV)):
        offs_v = i_v * BV + tl.arange(0, BV)
        kv_mask = k_mask[:, None] & (offs_v < v_lim)[None, :]
        hr = tl.load(hp + offs_k[:, None] * V + offs_v[None, :], mask=kv_mask, other=0.0)
        dhr = tl.load(dhp + offs_k[:, None] * V + offs_v[None, :], mask=kv_mask, other=0.0)
        vr = load_rows(vnew, tok, m, i_h, H, V, offs_v)
        dor = load_rows(do, tok, m, i_h, H, V, offs_v)
        dvr = load_rows(dvnew, tok, m, i_h, H, V, offs_v)
        dp += tl.dot(dor, tl.trans(vr), input_precision=DOT_PREC)
        dp_t += tl.dot(vr, tl.trans(dor), input_precision=DOT_PREC)
        ht = tl.trans(hr.to(dt))
        dqi += tl.dot(dor, ht, input_precision=DOT_PREC)
        dwa += tl.dot(dvr, ht, input_precision=DOT_PREC)
        dkd += tl.dot(vr, tl.trans(dhr.to(dt)), input_precision=DOT_PREC)
        hdh += tl.sum(hr.to(tl.float32) * dhr.to(tl.float32), 1)

    qr = load_rows(q, tok, m, i_h, H, K, offs_k)
    kr = load_rows(k, tok, m, i_h, H, K, offs_k)
    gk = load_gate(gc, tok, m, i_h, H)
    t_last = tl.maximum(t1 - 1, t0)
    g_last = tl.load(gc + t_last * H + i_h, mask=t1 > t0, other=0.0)
    causal = (r[:, None] >= r[None, :]) & m[:, None] & m[None, :]
    dpm = tl.where(causal, dp * tl.exp(tl.where(causal, gk[:, None] - gk[None, :], 0.0)) * scale, 0.0)
    qk = tl.dot(qr, tl.trans(kr), input_precision=DOT_PREC)
    pr = dpm * qk
    dgv = tl.sum(pr, 1) - tl.sum(pr, 0)

    causal_t = (r[:, None] <= r[None, :]) & m[:, None] & m[None, :]
    dpm_t = tl.where(causal_t, dp_t * tl.exp(tl.where(causal_t, gk[None, :] - gk[:, None], 0.0)) * scale, 0.0)
    qf = qr.to(tl.float32)
    kf = kr.to(tl.float32)
    dq_inter = dqi * (scale * tl.where(m, tl.exp(gk), 0.0))[:, None]
    dgv += tl.sum(dq_inter * qf, 1)
    dk_inter = dkd * tl.where(m, tl.exp(g_last - gk), 0.0)[:, None]
    ck = tl.sum(dk_inter * kf, 1)
    dgv -= ck
    dg_last = tl.sum(ck, 0) + tl.sum(hdh, 0) * tl.exp(g_last)
    dgv += tl.where(tok == t1 - 1, dg_last, 0.0)

    dq = dq_inter + tl.dot(dpm.to(dt), kr, input_precision=DOT_PREC)
    dk = dk_inter + tl.dot(dpm_t.to(dt), qr, input_precision=DOT_PREC)
    store_rows(dq_part, dq, tok, m, i_h, H, K, offs_k)
    store_rows(dk_part, dk, tok, m, i_h, H, K, offs_k)
    store_rows(dw_out, -dwa, tok, m, i_h, H, K, offs_k)
    tl.store(dgc_part + (i_k * NTOK + tok) * H + i_h, dgv, mask=m)
