"""Fused single-token GLA decode step on Triton (T == 1), updating the fp32 state in place.

    S <- diag(exp(gk)) S + k v^T,   o = scale * S^T q.
Inference only (no autograd). Same signature as the op; with output_final_state=True and an fp32
contiguous initial_state, that tensor itself is updated and returned (the decode cache's state).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..triton_layout import token_span


@triton.jit
def gla_step_kernel(q, k, v, gk, s_in, s_out, o, cu_seqlens, scale,
                    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                    HAS_S0: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Grid (cdiv(V, BV), N*H). Token of sequence n: n (dense, T == 1) or cu_seqlens[n] if it has one."""
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos = token_span(i_n, 1, cu_seqlens, IS_VARLEN)
    has = eos > bos  # an empty varlen sequence has no token this step
    offs_v = i_v * BV + tl.arange(0, BV)
    vm = offs_v < V
    vt = tl.load(v + (bos * H + i_h) * V + offs_v, mask=tl.where(has, vm, False), other=0.0).to(tl.float32)
    acc = tl.zeros([BV], tl.float32)
    base = i_nh.to(tl.int64) * K * V
    for kb in range(0, tl.cdiv(K, BK)):
        offs_k = kb * BK + tl.arange(0, BK)
        km = tl.where(has, offs_k < K, False)
        qt = tl.load(q + (bos * H + i_h) * K + offs_k, mask=km, other=0.0).to(tl.float32)
        kt = tl.load(k + (bos * H + i_h) * K + offs_k, mask=km, other=0.0).to(tl.float32)
        gt = tl.load(gk + (bos * H + i_h) * K + offs_k, mask=km, other=0.0).to(tl.float32)
        smask = (offs_k < K)[:, None] & vm[None, :]
        soff = base + offs_k[:, None] * V + offs_v[None, :]
        if HAS_S0:
            S = tl.load(s_in + soff, mask=smask, other=0.0)
        else:
            S = tl.zeros([BK, BV], tl.float32)
        S = S * tl.exp(gt)[:, None] + kt[:, None] * vt[None, :]
        tl.store(s_out + soff, S, mask=smask)
        acc += tl.sum(qt[:, None] * S, 0)
    tl.store(o + (bos * H + i_h) * V + offs_v, (acc * scale).to(o.dtype.element_ty), mask=tl.where(has, vm, False))


def triton_gla_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One token per sequence. q, k, gk [B, 1, H, K] (or [1, T, H, K] with cu_seqlens whose sequences
    hold at most one token each), v [.., V].

    Returns o [B, 1, H, V] (q.dtype) and the new state [B or N, H, K, V] fp32 (or None).
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    if cu_seqlens is None and T != 1:
        raise ValueError(f"q: the decode step expects T == 1, got T = {T}")
    scale = K ** -0.5 if scale is None else float(scale)
    q, k, v, gk = (x.contiguous() for x in (q, k, v, gk))
    if output_final_state and initial_state is not None and initial_state.dtype == torch.float32 \
            and initial_state.is_contiguous():
        s_out = initial_state
    else:
        s_out = torch.empty(N, H, K, V, device=q.device, dtype=torch.float32)
    s_in = initial_state.float().contiguous() if initial_state is not None else s_out
    o = torch.empty((B, T, H, V), device=q.device, dtype=q.dtype)
    bk, bv = min(64, max(16, triton.next_power_of_2(K))), min(64, max(16, triton.next_power_of_2(V)))
    gla_step_kernel[(triton.cdiv(V, bv), N * H)](
        q, k, v, gk, s_in, s_out, o, cu_seqlens, scale, H=H, K=K, V=V, BK=bk, BV=bv,
        HAS_S0=initial_state is not None, IS_VARLEN=cu_seqlens is not None)
    return o, (s_out if output_final_state else None)
