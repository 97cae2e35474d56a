"""Fused recurrent (token-by-token) Gated DeltaNet / Q-Delta Triton kernel, used for decode (T == 1).

Per token, with the fp32 state S [K, V] held in registers (probe x = k, or x = k + lam q for Q-Delta):
    S <- e^g S;  e = v - S^T x;  S <- S + beta k e^T;  o = scale S^T q
The state is read once and written once per call; with `in_place=True` the given fp32 initial state
is updated where it lies (the decode cache) and returned as the final state.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..triton_layout import token_span


@triton.jit
def recurrent_kernel(
    q, k, v, g, beta, lam, o, h0, ht, cu_seqlens, T, scale,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_LAM: tl.constexpr, HAS_H0: tl.constexpr, STORE_HT: tl.constexpr, IS_VARLEN: tl.constexpr,
):
    """Grid (cdiv(V, BV), N*H). Inputs flat [B*T, H, D]; states [N, H, K, V] fp32 (h0 may alias ht)."""
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos = token_span(i_n, T, cu_seqlens, IS_VARLEN)
    offs_k = tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    mk, mv = offs_k < K, offs_v < V
    kv_offs = i_nh.to(tl.int64) * K * V + offs_k[:, None] * V + offs_v[None, :]
    s = tl.zeros([BK, BV], tl.float32)
    if HAS_H0:
        s += tl.load(h0 + kv_offs, mask=mk[:, None] & mv[None, :], other=0.0)
    for t in range(bos, eos):
        base = t * H + i_h
        qt = tl.load(q + base * K + offs_k, mask=mk, other=0.0).to(tl.float32)
        kt = tl.load(k + base * K + offs_k, mask=mk, other=0.0).to(tl.float32)
        vt = tl.load(v + base * V + offs_v, mask=mv, other=0.0).to(tl.float32)
        bt = tl.load(beta + base).to(tl.float32)
        s *= tl.exp(tl.load(g + base).to(tl.float32))
        if HAS_LAM:
            xt = kt + tl.load(lam + base).to(tl.float32) * qt
        else:
            xt = kt
        err = vt - tl.sum(s * xt[:, None], 0)
        s += (bt * kt)[:, None] * err[None, :]
        ot = tl.sum(s * qt[:, None], 0) * scale
        tl.store(o + base * V + offs_v, ot.to(o.dtype.element_ty), mask=mv)
    if STORE_HT:
        tl.store(ht + kv_offs, s, mask=mk[:, None] & mv[None, :])


def recurrent_delta_rule_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    lam: torch.Tensor | None = None, *, scale: float | None = None, initial_state: torch.Tensor | None = None,
    output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None, in_place: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token-by-token GDN (lam None) / Q-Delta; no autograd (inference only). Shapes as the chunk op.

    in_place: when the initial state is a contiguous fp32 tensor and the final state is asked for, write
    it over the initial state and return that tensor (decode cache update, no extra allocation).
    """
    B, T, H, K = k.shape
    V = v.shape[-1]
    if scale is None:
        scale = K ** -0.5
    n_seqs = B if cu_seqlens is None else cu_seqlens.numel() - 1
    dt = q.dtype
    q, k, v = q.contiguous(), k.to(dt).contiguous(), v.to(dt).contiguous()
    g, beta = g.contiguous(), beta.contiguous()
    lam = lam.contiguous() if lam is not None else None
    h0 = None
    if initial_state is not None:
        h0 = initial_state
        if h0.dtype != torch.float32 or not h0.is_contiguous():
            h0 = h0.float().contiguous()
    ht = None
    if output_final_state:
        reuse = in_place and initial_state is not None and h0 is initial_state
        ht = h0 if reuse else torch.empty(n_seqs, H, K, V, device=q.device, dtype=torch.float32)
    o = torch.empty(B, T, H, V, device=q.device, dtype=dt)
    bk = triton.next_power_of_2(K)
    bv = min(triton.next_power_of_2(V), max(8, 4096 // bk))
    recurrent_kernel[(triton.cdiv(V, bv), n_seqs * H)](
        q, k, v, g, beta, lam if lam is not None else beta, o, h0, ht,
        cu_seqlens, T, float(scale), H=H, K=K, V=V, BK=bk, BV=bv, HAS_LAM=lam is not None,
        HAS_H0=h0 is not None, STORE_HT=ht is not None, IS_VARLEN=cu_seqlens is not None, num_warps=4,
    )
    return o, ht


def triton_gated_delta_rule_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, in_place: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated DeltaNet decode step (any T works; meant for T == 1), same semantics as the op.

    With in_place=True the fp32 initial state is updated in place and returned as the final state.
    No gradients: use the chunk op for training.
    """
    return recurrent_delta_rule_triton(q, k, v, g, beta, None, scale=scale, initial_state=initial_state,
                                       output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                       in_place=in_place)
