"""CCQ per-token reference (specs/ccq.md; the ground truth of every CCQ kernel).

k̂_t = l2n(k_t) (GLA) or k_t (GDN, already unit);  log γ_t = mean_c gk_t (GLA) or g_t (GDN)
M_t = γ_t M_{t-1} + k̂_t k̂_tᵀ;  z_t = γ_t z_{t-1} + 1;  Σ_t = M_t / z_t  (center: m_t = γ_t m_{t-1} + k̂_t,
Σ_t -= μ_t μ_tᵀ, μ_t = m_t / z_t);  q̃_t = q_t − λ_t Σ_t q_t;  o = backbone(q̃, k, v, gates).
q never enters a state update, so the backbone runs on q̃ after the statistics loop.
"""

from __future__ import annotations

import torch

from ..gated_delta_rule.naive import naive_gated_delta_rule
from ..gla.naive import naive_gla
from ..utils import compute_dtype, l2norm, run_per_sequence, validate_linear_attention
from .state import CCQState, check_ccq_state


def validate_ccq(q, k, v, gates, lam, scale, initial_state, cu_seqlens, center) -> None:
    B, T, H, K, V, N = validate_linear_attention(q, k, v, gates=[*gates, ("lam", lam, "head")], scale=scale,
                                                 initial_state=None, cu_seqlens=cu_seqlens)
    check_ccq_state(initial_state, N, H, K, V, q)
    if not isinstance(center, bool):
        raise TypeError(f"center: expected a bool, got {type(center).__name__}")


def ccq_inputs(q, k, gate, lam, is_gla: bool):
    """(q, k̂, log γ, lam) in the compute dtype; gate is gk [B, T, H, K] (GLA) or g [B, T, H] (GDN)."""
    dtype = compute_dtype(q)
    k_hat = l2norm(k.to(dtype)) if is_gla else k.to(dtype)
    log_gamma = gate.to(dtype).mean(-1) if is_gla else gate.to(dtype)
    return q.to(dtype), k_hat, log_gamma, lam.to(dtype)


def start_stats(state: CCQState | None, B: int, H: int, K: int, center: bool, like: torch.Tensor):
    """(M0, z0, m0) from a CCQState (zeros when absent; m0 zeros when center and the state holds none)."""
    if state is None:
        return like.new_zeros(B, H, K, K), like.new_zeros(B, H), like.new_zeros(B, H, K) if center else None
    m0 = None
    if center:
        m0 = state.m.to(like.dtype) if state.m is not None else like.new_zeros(B, H, K)
    return state.M.to(like.dtype), state.z.to(like.dtype), m0


def naive_ccq_query(q, k_hat, log_gamma, lam, M, z, m):
    """Token loop of the statistics. q, k_hat [B, T, H, K]; log_gamma, lam [B, T, H]; M [B, H, K, K]; z [B, H];
    m [B, H, K] or None. Returns q̃ [B, T, H, K] and the final (M, z, m).
    """
    q_tilde = []
    for t in range(q.shape[1]):
        gamma = log_gamma[:, t].exp()
        kt = k_hat[:, t]
        M = gamma[..., None, None] * M + kt.unsqueeze(-1) * kt.unsqueeze(-2)
        z = gamma * z + 1
        sigma_q = torch.einsum("bhij,bhj->bhi", M, q[:, t]) / z.unsqueeze(-1)
        if m is not None:
            m = gamma.unsqueeze(-1) * m + kt
            mu = m / z.unsqueeze(-1)
            sigma_q = sigma_q - mu * (mu * q[:, t]).sum(-1, keepdim=True)
        q_tilde.append(q[:, t] - lam[:, t].unsqueeze(-1) * sigma_q)
    return (torch.stack(q_tilde, dim=1) if q_tilde else q), M, z, m


def _naive_ccq(backbone, is_gla, q, k, v, gate, extra, lam, scale, initial_state, output_final_state,
               cu_seqlens, center):
    def dense(inputs, state):
        qs, ks, vs, gs, ls, *xs = inputs
        B, _, H, K = qs.shape
        q_c, k_hat, log_gamma, lam_c = ccq_inputs(qs, ks, gs, ls, is_gla)
        M, z, m = start_stats(state, B, H, K, center, q_c)
        q_tilde, M, z, m = naive_ccq_query(q_c, k_hat, log_gamma, lam_c, M, z, m)
        o, S = backbone(q_tilde, ks, vs, gs, *xs, scale=scale, initial_state=None if state is None else state.S,
                        output_final_state=True)
        return o.to(q.dtype), CCQState(S, M, z, m)

    return run_per_sequence(dense, (q, k, v, gate, lam, *extra), initial_state, output_final_state, cu_seqlens)


def naive_ccq_gla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: CCQState | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, center: bool = False,
) -> tuple[torch.Tensor, CCQState | None]:
    """CCQ on GLA. q, k, gk [B, T, H, K]; v [B, T, H, V]; lam [B, T, H] (already s·σ(.)); initial_state a CCQState.

    Returns o [B, T, H, V] (q's dtype) and the final CCQState (float32; float64 for float64 inputs) or None.
    """
    validate_ccq(q, k, v, [("gk", gk, "channel")], lam, scale, initial_state, cu_seqlens, center)
    return _naive_ccq(naive_gla, True, q, k, v, gk, (), lam, scale, initial_state, output_final_state,
                      cu_seqlens, center)


def naive_ccq_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: CCQState | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, center: bool = False,
) -> tuple[torch.Tensor, CCQState | None]:
    """CCQ on Gated DeltaNet. q, k [B, T, H, K] (k unit, used as given); v [B, T, H, V]; g, beta, lam [B, T, H].

    Returns o [B, T, H, V] (q's dtype) and the final CCQState (float32; float64 for float64 inputs) or None.
    """
    validate_ccq(q, k, v, [("g", g, "head"), ("beta", beta, "head")], lam, scale, initial_state, cu_seqlens,
                 center)
    return _naive_ccq(naive_gated_delta_rule, False, q, k, v, g, (beta,), lam, scale, initial_state,
                      output_final_state, cu_seqlens, center)
