"""CCQ-GDN on Triton: the curvature-conditioned query contraction, then the Gated DeltaNet chunk kernel on q̃.

Semantics of `naive_ccq_gated_delta_rule` (specs/ccq.md): keys are used as given (the GDN layer already
l2-normalised them), γ_t = exp(g_t), q̃_t = q_t − λ_t Σ_t q_t, o = GDN(q̃, k, v, g, beta). The statistic
pass (triton_stats.py, helper B1) and the GDN kernels run as separate launches (not yet one fused pass);
everything is differentiable in q, k, v, g, beta, lam and the initial CCQState.
"""

from __future__ import annotations

import torch

from ..gated_delta_rule.triton_chunk import chunk_delta_rule_triton
from .state import CCQState
from .triton_stats import contract_query_from_state


def triton_ccq_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: CCQState | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, center: bool = False, chunk_size: int | None = None,
) -> tuple[torch.Tensor, CCQState | None]:
    """CCQ-GDN. q, k [B, T, H, K]; v [B, T, H, V]; g, beta, lam [B, T, H]; initial_state a CCQState
    (S [N, H, K, V], M [N, H, K, K], z [N, H], m [N, H, K] or None; fp32). Returns (o, CCQState or None).
    chunk_size: 64 by default; 16/32 only under TRITON_INTERPRET=1 (tests), used by both passes.
    """
    st = initial_state
    stat_kwargs = {} if chunk_size is None else {"chunk_size": chunk_size}
    q_tilde, finals = contract_query_from_state(q, k, g, lam, st, center=center,
                                                output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                                **stat_kwargs)
    o, S = chunk_delta_rule_triton(q_tilde, k, v, g, beta, None, scale=k.shape[-1] ** -0.5 if scale is None else scale,
                                   initial_state=st.S if st is not None else None,
                                   output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                   chunk_size=chunk_size)
    return (o, CCQState(S, *finals)) if output_final_state else (o, None)
