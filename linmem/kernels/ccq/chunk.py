"""CCQ chunkwise in PyTorch: two scalar-decay linear-attention passes for the statistics, then the backbone.

  u_t = M_t q_t: GLA with keys = values = k̂, decay log γ broadcast over K, scale 1, state M0ᵀ
      (the GLA state is M_tᵀ and its read M_t q_t, exact even for a non-symmetric M0);
  [m_t, z_t]: GLA with key 1, values [k̂, 1] (k̂ only with center), query 1, same decay, state [m0, z0];
  q̃ = q − λ (u / z − μ (μ·q)),  μ = m / z (center only);  o = backbone chunk(q̃, k, v, gates).
Every exponent is a within-chunk decay difference <= 0 (see gla/chunk.py); gradients flow into k, the gates
(through γ), lam and the initial state by autograd.
"""

from __future__ import annotations

import torch

from ..gated_delta_rule.chunk import chunk_gated_delta_rule
from ..gla.chunk import chunk_gla, gla_chunk_dense
from ..utils import run_per_sequence
from .naive import ccq_inputs, start_stats, validate_ccq
from .state import CCQState


def chunk_ccq_query(q, k_hat, log_gamma, lam, M, z, m, chunk_size: int):
    """Chunked statistics. q, k_hat [B, T, H, K]; log_gamma, lam [B, T, H]; M [B, H, K, K]; z [B, H];
    m [B, H, K] or None. Returns q̃ [B, T, H, K] and the final (M, z, m).
    """
    B, T, H, K = q.shape
    decay_k = log_gamma.unsqueeze(-1).expand(B, T, H, K)
    u, Mt = gla_chunk_dense(q, k_hat, k_hat, decay_k, 1.0, M.transpose(-1, -2), chunk_size)
    ones = q.new_ones(B, T, H, 1)
    values = torch.cat([k_hat, ones], dim=-1) if m is not None else ones
    state0 = (torch.cat([m, z.unsqueeze(-1)], dim=-1) if m is not None else z.unsqueeze(-1)).unsqueeze(2)
    counts, count_state = gla_chunk_dense(ones, ones, values, log_gamma.unsqueeze(-1), 1.0, state0, chunk_size)
    z_t = counts[..., -1:]  # [B, T, H, 1], >= 1
    sigma_q = u / z_t
    if m is not None:
        mu = counts[..., :K] / z_t
        sigma_q = sigma_q - mu * (mu * q).sum(-1, keepdim=True)
    q_tilde = q - lam.unsqueeze(-1) * sigma_q
    count_state = count_state.squeeze(2)  # [B, H, K + 1] or [B, H, 1]
    m_final = count_state[..., :K] if m is not None else None
    return q_tilde, Mt.transpose(-1, -2), count_state[..., -1], m_final


def _chunk_ccq(backbone, is_gla, q, k, v, gate, extra, lam, scale, initial_state, output_final_state,
               cu_seqlens, center, chunk_size):
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size!r}")

    def dense(inputs, state):
        qs, ks, vs, gs, ls, *xs = inputs
        B, _, H, K = qs.shape
        q_c, k_hat, log_gamma, lam_c = ccq_inputs(qs, ks, gs, ls, is_gla)
        M, z, m = start_stats(state, B, H, K, center, q_c)
        q_tilde, M, z, m = chunk_ccq_query(q_c, k_hat, log_gamma, lam_c, M, z, m, chunk_size)
        o, S = backbone(q_tilde, ks, vs, gs, *xs, scale=scale, initial_state=None if state is None else state.S,
                        output_final_state=True, chunk_size=chunk_size)
        return o.to(q.dtype), CCQState(S, M, z, m)

    return run_per_sequence(dense, (q, k, v, gate, lam, *extra), initial_state, output_final_state, cu_seqlens)


def chunk_ccq_gla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: CCQState | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, center: bool = False, chunk_size: int = 64,
) -> tuple[torch.Tensor, CCQState | None]:
    """Same contract as `naive_ccq_gla`; float32 compute (float64 for float64 inputs)."""
    validate_ccq(q, k, v, [("gk", gk, "channel")], lam, scale, initial_state, cu_seqlens, center)
    return _chunk_ccq(chunk_gla, True, q, k, v, gk, (), lam, scale, initial_state, output_final_state,
                      cu_seqlens, center, chunk_size)


def chunk_ccq_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: CCQState | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, center: bool = False, chunk_size: int = 64,
) -> tuple[torch.Tensor, CCQState | None]:
    """Same contract as `naive_ccq_gated_delta_rule`; float32 compute (float64 for float64 inputs)."""
    validate_ccq(q, k, v, [("g", g, "head"), ("beta", beta, "head")], lam, scale, initial_state, cu_seqlens,
                 center)
    return _chunk_ccq(chunk_gated_delta_rule, False, q, k, v, g, (beta,), lam, scale, initial_state,
                      output_final_state, cu_seqlens, center, chunk_size)
