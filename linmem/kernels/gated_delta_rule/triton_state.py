"""Sequential inter-chunk state pass of the delta-rule chunk algorithm, forward and backward.

Forward, per chunk (S = state at the chunk start, fp32 in registers):
    V~ = U - W S;  S <- e^{G_last} S + K^T diag(e^{G_last - G}) V~
Backward, reverse order (dS = gradient of the state at the chunk end):
    dV~ = dV~_local + diag(e^{G_last - G}) K dS
    dS  <- e^{G_last} dS + scale (diag(e^G) Q)^T dO - W^T dV~
One program per (value block, sequence x head); the whole key dimension (<= 256) is one tile.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..triton_layout import seq_span, state_tile
from .triton_common import load_gate, load_rows, store_rows


@triton.jit
def state_fwd_kernel(
    k, w, u, gc, h0, h_out, vnew_out, ht_out, cu_seqlens, chunk_offsets, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, HAS_H0: tl.constexpr, STORE_HT: tl.constexpr, IS_VARLEN: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    """Grid (cdiv(V, BV), N*H). h_out [slots, H, K, V] gets the state at each chunk start."""
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos, slot0 = seq_span(i_n, T, NT, cu_seqlens, chunk_offsets, IS_VARLEN)
    s, kv_offs, kv_mask, offs_k, offs_v = state_tile(h0, i_nh, 0, i_v, K, V, BK, BV, HAS_H0)
    dt = k.dtype.element_ty
    r = tl.arange(0, BT)
    for c in range(0, tl.cdiv(eos - bos, BT)):
        t0 = bos + c * BT
        tok = t0 + r
        m = tok < eos
        hp = h_out + ((slot0 + c).to(tl.int64) * H + i_h) * K * V
        tl.store(hp + kv_offs, s.to(h_out.dtype.element_ty), mask=kv_mask)
        wr = load_rows(w, tok, m, i_h, H, K, offs_k)
        vn = load_rows(u, tok, m, i_h, H, V, offs_v).to(tl.float32)
        vn -= tl.dot(wr, s.to(dt), input_precision=DOT_PREC)
        store_rows(vnew_out, vn, tok, m, i_h, H, V, offs_v)
        t_last = tl.minimum(t0 + BT, eos) - 1
        g_last = tl.load(gc + t_last * H + i_h)
        gk = load_gate(gc, tok, m, i_h, H)
        vd = (vn * tl.where(m, tl.exp(g_last - gk), 0.0)[:, None]).to(dt)
        kr = load_rows(k, tok, m, i_h, H, K, offs_k)
        s = s * tl.exp(g_last) + tl.dot(tl.trans(kr), vd, input_precision=DOT_PREC)
    if STORE_HT:
        tl.store(ht_out + i_nh.to(tl.int64) * K * V + kv_offs, s, mask=kv_mask)


@triton.jit
def state_bwd_kernel(
    q, k, w, gc, do, dv_local, dht, dh_out, dvnew_out, dh0_out, cu_seqlens, chunk_offsets, T, NT, scale,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, IS_VARLEN: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    """Grid (cdiv(V, BV), N*H). dh_out [slots, H, K, V] gets dS at each chunk end; dvnew_out = dV~."""
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos, slot0 = seq_span(i_n, T, NT, cu_seqlens, chunk_offsets, IS_VARLEN)
    ds, kv_offs, kv_mask, offs_k, offs_v = state_tile(dht, i_nh, 0, i_v, K, V, BK, BV, HAS_DHT)
    dt = k.dtype.element_ty
    r = tl.arange(0, BT)
    n_chunks = tl.cdiv(eos - bos, BT)
    for cc in range(0, n_chunks):
        c = n_chunks - 1 - cc
        t0 = bos + c * BT
        tok = t0 + r
        m = tok < eos
        hp = dh_out + ((slot0 + c).to(tl.int64) * H + i_h) * K * V
        tl.store(hp + kv_offs, ds.to(dh_out.dtype.element_ty), mask=kv_mask)
        t_last = tl.minimum(t0 + BT, eos) - 1
        g_last = tl.load(gc + t_last * H + i_h)
        gk = load_gate(gc, tok, m, i_h, H)
        kr = load_rows(k, tok, m, i_h, H, K, offs_k).to(tl.float32)
        kd = (kr * tl.where(m, tl.exp(g_last - gk), 0.0)[:, None]).to(dt)
        dvn = load_rows(dv_local, tok, m, i_h, H, V, offs_v).to(tl.float32)
        dvn += tl.dot(kd, ds.to(dt), input_precision=DOT_PREC)
        store_rows(dvnew_out, dvn, tok, m, i_h, H, V, offs_v)
        qr = load_rows(q, tok, m, i_h, H, K, offs_k).to(tl.float32)
        qg = (qr * (scale * tl.where(m, tl.exp(gk), 0.0))[:, None]).to(dt)
        dor = load_rows(do, tok, m, i_h, H, V, offs_v)
        wr = load_rows(w, tok, m, i_h, H, K, offs_k)
        ds = ds * tl.exp(g_last) + tl.dot(tl.trans(qg), dor, input_precision=DOT_PREC)
        ds -= tl.dot(tl.trans(wr), dvn.to(dt), input_precision=DOT_PREC)
    if STORE_DH0:
        tl.store(dh0_out + i_nh.to(tl.int64) * K * V + kv_offs, ds, mask=kv_mask)
