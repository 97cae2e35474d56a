"""GLA per-token reference recurrence (the ground truth of every GLA kernel).

S_t = diag(exp(gk_t)) S_{t-1} + k_t v_t^T ;  o_t = scale * S_t^T q_t.
"""

from __future__ import annotations

import torch

from ..utils import compute_dtype, default_scale, run_per_sequence, validate_linear_attention


def naive_gla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k, gk [B, T, H, K] (gk = log decay <= 0); v [B, T, H, V]; initial_state [N, H, K, V].

    Returns o [B, T, H, V] in q's dtype and the final state [N, H, K, V] (float32; float64 for float64
    inputs) or None.
    """
    validate_linear_attention(q, k, v, gates=[("gk", gk, "channel")], scale=scale, initial_state=initial_state,
                              cu_seqlens=cu_seqlens)
    scale = default_scale(scale, q.shape[-1])
    dtype = compute_dtype(q)

    def dense(inputs, state):
        qs, ks, vs, gs = (x.to(dtype) for x in inputs)
        B, T, H, K = qs.shape
        S = (state.to(dtype) if state is not None
             else qs.new_zeros(B, H, K, vs.shape[-1]))
        outs = []
        for t in range(T):
            S = S * gs[:, t].exp().unsqueeze(-1) + ks[:, t].unsqueeze(-1) * vs[:, t].unsqueeze(-2)
            outs.append(scale * torch.einsum("bhk,bhkv->bhv", qs[:, t], S))
        o = torch.stack(outs, dim=1) if outs else vs.new_zeros(vs.shape)
        return o.to(q.dtype), S

    return run_per_sequence(dense, (q, k, v, gk), initial_state, output_final_state, cu_seqlens)
