"""CCQ statistic pass on Triton, shared by CCQ-GLA and CCQ-GDN (specs/ccq.md, "Chunkwise form").

With unit keys k̂ and a scalar log decay g_t = log γ_t per head:
    M_t = γ_t M_{t-1} + k̂_t k̂_tᵀ,  z_t = γ_t z_{t-1} + 1,  m_t = γ_t m_{t-1} + k̂_t (centring only)
    u_t = M_t q_t.
u is a linear attention with values := keys := k̂ and read scale 1; z and m are the same recurrence with
query = key = 1 and values [k̂, 1]. Both run on the chunked GLA kernels (triton_gla_chunked) with the
scalar decay broadcast over channels, which is exact; gradients flow to q, k̂, g and the initial
statistics through that kernel's autograd. `ccq_contract_query` then forms
    q̃ = q − λ (u / z − μ (μ · q)),  μ = m / z  (the μ term only with centring).
"""

from __future__ import annotations

import torch

from ..gla.triton_chunk import DEFAULT_CHUNK_SIZE, triton_gla_chunked


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(||x||^2 + eps) over the last dim, in fp32."""
    x = x.float()
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def triton_ccq_stats(
    q: torch.Tensor, khat: torch.Tensor, g: torch.Tensor, *,
    M0: torch.Tensor | None = None, z0: torch.Tensor | None = None, m0: torch.Tensor | None = None,
    center: bool = False, output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
):
    """q, khat [B, T, H, K] (same dtype), g [B, T, H] log γ (<= 0).

    M0 [N, H, K, K], z0 [N, H], m0 [N, H, K] fp32 initial statistics (None = zeros).
    Returns u [B, T, H, K] (q.dtype), z [B, T, H] fp32, m [B, T, H, K] fp32 or None, and
    (M_T, z_T, m_T or None) fp32 when output_final_state, else None.
    """
    B, T, H, K = q.shape
    gk = g.float()[..., None].expand(B, T, H, K).contiguous()
    # The GLA read is S^T q, so its state is S = M^T (M is symmetric in value, not in its gradient).
    u, S_T = triton_gla_chunked(q, khat.to(q.dtype), khat.to(q.dtype), gk, scale=1.0,
                                initial_state=M0.transpose(-1, -2) if M0 is not None else None,
                                output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                chunk_size=chunk_size)
    M_T = S_T.transpose(-1, -2) if S_T is not None else None
    ones = torch.ones(B, T, H, 1, device=q.device, dtype=torch.float32)
    vals = torch.cat([khat.float(), ones], -1) if center else ones
    init = None
    if z0 is not None or (center and m0 is not None):
        N = (M0.shape[0] if M0 is not None else (z0 if z0 is not None else m0).shape[0])
        z_init = z0.float() if z0 is not None else torch.zeros(N, H, device=q.device)
        parts = [z_init[..., None]]
        if center:
            parts.insert(0, m0.float() if m0 is not None else torch.zeros(N, H, K, device=q.device))
        init = torch.cat(parts, -1)[:, :, None, :]
    zm, zm_T = triton_gla_chunked(ones, ones, vals, g.float()[..., None].contiguous(), scale=1.0,
                                  initial_state=init, output_final_state=output_final_state,
                                  cu_seqlens=cu_seqlens, chunk_size=chunk_size)
    z = zm[..., -1]
    m = zm[..., :K] if center else None
    finals = None
    if output_final_state:
        finals = (M_T, zm_T[:, :, 0, -1], zm_T[:, :, 0, :K] if center else None)
    return u, z, m, finals


def ccq_contract_query(
    q: torch.Tensor, khat: torch.Tensor, g: torch.Tensor, lam: torch.Tensor, *,
    M0: torch.Tensor | None = None, z0: torch.Tensor | None = None, m0: torch.Tensor | None = None,
    center: bool = False, output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
):
    """q̃ = q − λ Σ_t q [B, T, H, K] (q.dtype) and the final statistics (as triton_ccq_stats).

    khat [B, T, H, K] unit keys, g [B, T, H] log γ, lam [B, T, H].
    """
    u, z, m, finals = triton_ccq_stats(q, khat, g, M0=M0, z0=z0, m0=m0, center=center,
                                       output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                       chunk_size=chunk_size)
    zz = z[..., None]
    sigma_q = u.float() / zz
    if center:
        mu = m / zz
        sigma_q = sigma_q - mu * (mu * q.float()).sum(-1, keepdim=True)
    q_tilde = q.float() - lam.float()[..., None] * sigma_q
    return q_tilde.to(q.dtype), finals
