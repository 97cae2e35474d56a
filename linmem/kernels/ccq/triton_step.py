"""Fused single-token CCQ decode steps on Triton (T == 1), updating the fp32 statistics in place.

Kernel 1 (per sequence and head): k̂ = l2n(k) and γ = exp(mean gk) for GLA, k̂ = k (already unit) and
γ = exp(g) for GDN; M <- γ M + k̂ k̂ᵀ, z <- γ z + 1, m <- γ m + k̂ (centring), q̃ = q − λ (M q / z − μ (μ·q)).
Then the backbone's step kernel on q̃ updates S. Inference only (no autograd). With
output_final_state=True the given CCQState's fp32 contiguous tensors are updated in place and returned.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..gated_delta_rule.triton_step import triton_gated_delta_rule_step
from ..gla.triton_step import triton_gla_step
from ..triton_layout import token_span


@triton.jit
def ccq_stats_step_kernel(q, k, gk, lam, M_in, z_in, m_in, M_out, z_out, m_out, q_tilde, cu_seqlens,
                          H: tl.constexpr, K: tl.constexpr, KP: tl.constexpr, BC: tl.constexpr,
                          HAS_S0: tl.constexpr, CENTER: tl.constexpr, IS_VARLEN: tl.constexpr,
                          GLA: tl.constexpr):
    """Grid (N*H,). M tiles [KP, BC] (all rows, a block of columns).

    GLA: gk [*, H, K] per-channel log decay, keys l2-normalised here; else gk [*, H] scalar log decay g and
    keys used as given (the GDN layer normalised them).
    """
    i_nh = tl.program_id(0)
    i_n, i_h = i_nh // H, i_nh % H
    bos, eos = token_span(i_n, 1, cu_seqlens, IS_VARLEN)
    has = eos > bos  # an empty varlen sequence has no token this step
    rows = tl.arange(0, KP)
    rm = tl.where(has, rows < K, False)
    tok = (bos * H + i_h) * K
    kv = tl.load(k + tok + rows, mask=rm, other=0.0).to(tl.float32)
    if GLA:
        inv = tl.rsqrt(tl.sum(kv * kv, 0) + 1e-6)
        lg = tl.sum(tl.load(gk + tok + rows, mask=rm, other=0.0).to(tl.float32), 0) / K
    else:
        inv = 1.0
        lg = tl.load(gk + bos * H + i_h, mask=has, other=0.0).to(tl.float32)
    kh = kv * inv
    qv = tl.load(q + tok + rows, mask=rm, other=0.0).to(tl.float32)
    gam = tl.exp(lg)
    lm = tl.load(lam + bos * H + i_h, mask=has, other=0.0).to(tl.float32)
    if HAS_S0:
        z = tl.load(z_in + i_nh).to(tl.float32)
    else:
        z = 0.0
    z = tl.where(has, gam * z + 1.0, z)
    tl.store(z_out + i_nh, z)
    mbase = i_nh.to(tl.int64) * K * K
    u = tl.zeros([KP], tl.float32)
    for cb in range(0, tl.cdiv(K, BC)):
        cols = cb * BC + tl.arange(0, BC)
        cm = tl.where(has, cols < K, False)
        kc = tl.load(k + tok + cols, mask=cm, other=0.0).to(tl.float32) * inv
        qc = tl.load(q + tok + cols, mask=cm, other=0.0).to(tl.float32)
        mmask = (rows < K)[:, None] & (cols < K)[None, :]
        moff = mbase + rows[:, None] * K + cols[None, :]
        if HAS_S0:
            Mt = tl.load(M_in + moff, mask=mmask, other=0.0)
        else:
            Mt = tl.zeros([KP, BC], tl.float32)
        Mt = Mt * gam + kh[:, None] * kc[None, :]
        tl.store(M_out + moff, Mt, mask=mmask)
        u += tl.sum(Mt * qc[None, :], 1)
    sig = u / z
    if CENTER:
        if HAS_S0:
            mv = tl.load(m_in + i_nh.to(tl.int64) * K + rows, mask=rows < K, other=0.0)
        else:
            mv = tl.zeros([KP], tl.float32)
        mv = mv * gam + kh
        tl.store(m_out + i_nh.to(tl.int64) * K + rows, mv, mask=rows < K)
        mu = mv / z
        sig = sig - mu * tl.sum(mu * qv, 0)
    tl.store(q_tilde + tok + rows, qv - lm * sig, mask=rm)


def _ccq_query_step(q, k, decay, lam, st, center: bool, output_final_state: bool, cu_seqlens, gla: bool):
    """Kernel 1 for one token per sequence -> (q̃ fp32 [B, 1, H, K], M, z, m) with the statistics updated."""
    B, T, H, K = q.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    if cu_seqlens is None and T != 1:
        raise ValueError(f"q: the decode step expects T == 1, got T = {T}")
    dev = q.device

    def _out(t, shape):
        if output_final_state and t is not None and t.dtype == torch.float32 and t.is_contiguous():
            return t
        return torch.empty(shape, device=dev, dtype=torch.float32)

    M_out = _out(st.M if st is not None else None, (N, H, K, K))
    z_out = _out(st.z if st is not None else None, (N, H))
    m_prev = getattr(st, "m", None) if st is not None else None
    m_out = _out(m_prev, (N, H, K)) if center else None
    M_in = st.M.float().contiguous() if st is not None else M_out
    z_in = st.z.float().contiguous() if st is not None else z_out
    if center and m_prev is None:
        m_in = torch.zeros(N, H, K, device=dev) if st is not None else m_out
    else:
        m_in = m_prev.float().contiguous() if center else None
    q_tilde = torch.zeros(B, T, H, K, device=dev, dtype=torch.float32)
    kp = max(16, triton.next_power_of_2(K))
    ccq_stats_step_kernel[(N * H,)](
        q.contiguous(), k.contiguous(), decay.contiguous(), lam.contiguous(), M_in, z_in, m_in, M_out, z_out,
        m_out, q_tilde, cu_seqlens, H=H, K=K, KP=kp, BC=min(kp, 32 if kp <= 128 else 16), HAS_S0=st is not None,
        CENTER=center, IS_VARLEN=cu_seqlens is not None, GLA=gla)
    return q_tilde, M_out, z_out, m_out


def triton_ccq_gla_step(q, k, v, gk, lam, *, scale=None, initial_state=None, output_final_state=False,
                        cu_seqlens=None, center=False):
    """One token per sequence (as triton_gla_step). lam [B, 1, H]. Returns (o, CCQState or None)."""
    from .state import CCQState

    st = initial_state
    q_tilde, M, z, m = _ccq_query_step(q, k, gk, lam, st, center, output_final_state, cu_seqlens, gla=True)
    o, S = triton_gla_step(q_tilde, k.contiguous(), v, gk.contiguous(),
                           scale=q.shape[-1] ** -0.5 if scale is None else scale,
                           initial_state=st.S if st is not None else None,
                           output_final_state=output_final_state, cu_seqlens=cu_seqlens)
    o = o.to(q.dtype)
    return (o, CCQState(S, M, z, m)) if output_final_state else (o, None)


def triton_ccq_gated_delta_rule_step(q, k, v, g, beta, lam, *, scale=None, initial_state=None,
                                     output_final_state=False, cu_seqlens=None, center=False):
    """One token per sequence (as triton_gated_delta_rule_step). g, beta, lam [B, 1, H]; k unit keys.

    Returns (o, CCQState or None); the fp32 state tensors of initial_state are updated in place.
    """
    from .state import CCQState

    st = initial_state
    q_tilde, M, z, m = _ccq_query_step(q, k, g, lam, st, center, output_final_state, cu_seqlens, gla=False)
    o, S = triton_gated_delta_rule_step(q_tilde.to(q.dtype), k, v, g, beta,
                                        scale=q.shape[-1] ** -0.5 if scale is None else scale,
                                        initial_state=st.S if st is not None else None,
                                        output_final_state=output_final_state, cu_seqlens=cu_seqlens)
    o = o.to(q.dtype)
    return (o, CCQState(S, M, z, m)) if output_final_state else (o, None)
