"""CCQ-GLA on Triton: the curvature-conditioned query contraction, then the GLA chunk kernel on q̃.

Semantics of `naive_ccq_gla` (specs/ccq.md): k̂ = l2n(k), γ_t = exp(mean_c gk_t) per head,
q̃_t = q_t − λ_t Σ_t q_t, o = GLA(q̃, k, v, gk). The statistic pass (triton_stats.py) and the backbone
run as separate launches (not yet the fused single-pass kernel); all of it is differentiable in
q, k, v, gk, lam and the initial state.
"""

from __future__ import annotations

import torch

from ..gla.triton_chunk import DEFAULT_CHUNK_SIZE, triton_gla_chunked
from .triton_stats import contract_query_from_state, l2_normalize


def triton_ccq_gla_chunked(q, k, v, gk, lam, *, scale=None, initial_state=None, output_final_state=False,
                           cu_seqlens=None, center=False, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """`triton_ccq_gla` with an explicit chunk size (tests use 16 or 32)."""
    from .state import CCQState

    st = initial_state
    q_tilde, finals = contract_query_from_state(q, l2_normalize(k), gk.float().mean(-1), lam, st, center=center,
                                                output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                                chunk_size=chunk_size)
    o, S = triton_gla_chunked(q_tilde, k, v, gk, scale=k.shape[-1] ** -0.5 if scale is None else scale,
                              initial_state=st.S if st is not None else None,
                              output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                              chunk_size=chunk_size)
    return (o, CCQState(S, *finals)) if output_final_state else (o, None)


def triton_ccq_gla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state=None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, center: bool = False,
):
    """CCQ-GLA. q, k, gk [B, T, H, K]; v [B, T, H, V]; lam [B, T, H]; initial_state a CCQState
    (S [N, H, K, V], M [N, H, K, K], z [N, H], m [N, H, K] or None; fp32). Returns (o, CCQState or None).
    """
    return triton_ccq_gla_chunked(q, k, v, gk, lam, scale=scale, initial_state=initial_state,
                                  output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                  center=center)


# The dispatcher looks up both CCQ ops in this module; CCQ-GDN lives beside the GDN composition.
from .triton_gdn import triton_ccq_gated_delta_rule  # noqa: E402,F401
