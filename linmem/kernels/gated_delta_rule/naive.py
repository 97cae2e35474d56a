"""Gated DeltaNet per-token reference recurrence (the ground truth of every GDN kernel).

S_t = a_t (I - b_t k_t k_t^T) S_{t-1} + b_t k_t v_t^T  (a_t = exp(g_t), b_t = beta_t);  o_t = scale * S_t^T q_t.
Written as the delta correction: S' = a_t S_{t-1};  S_t = S' + b_t k_t (v_t - S'^T k_t)^T.
"""

from __future__ import annotations

import torch

from ..utils import compute_dtype, default_scale, run_per_sequence, validate_linear_attention


def delta_rule_step(S: torch.Tensor, q: torch.Tensor, k: torch.Tensor, x: torch.Tensor, v: torch.Tensor,
                    g: torch.Tensor, beta: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of the (probe-generalised) delta rule, all rows at once.

    S [B, H, K, V]; q, k, x [B, H, K] (x is the probe predicting v: k for GDN); v [B, H, V]; g, beta [B, H].
    S' = e^g S;  S_new = S' + beta k (v - S'^T x)^T;  o = scale S_new^T q.  Returns (o [B, H, V], S_new).
    """
    S = S * g.exp()[..., None, None]
    err = v - torch.einsum("bhk,bhkv->bhv", x, S)
    S = S + (beta[..., None] * k).unsqueeze(-1) * err.unsqueeze(-2)
    return scale * torch.einsum("bhk,bhkv->bhv", q, S), S


def naive_delta_rule_family(q, k, x, v, g, beta, scale, initial_state, output_final_state, cu_seqlens, out_dtype):
    """Token loop shared by GDN (x = k) and Q-Delta (x = k + lam q); inputs validated, x [B, T, H, K]."""
    dtype = compute_dtype(q)

    def dense(inputs, state):
        qs, ks, xs, vs, gs, bs = (t.to(dtype) for t in inputs)
        B, T, H, K = qs.shape
        S = state.to(dtype) if state is not None else qs.new_zeros(B, H, K, vs.shape[-1])
        outs = []
        for t in range(T):
            o, S = delta_rule_step(S, qs[:, t], ks[:, t], xs[:, t], vs[:, t], gs[:, t], bs[:, t], scale)
            outs.append(o)
        o = torch.stack(outs, dim=1) if outs else vs.new_zeros(vs.shape)
        return o.to(out_dtype), S

    return run_per_sequence(dense, (q, k, x, v, g, beta), initial_state, output_final_state, cu_seqlens)


def naive_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K] (used as given; the layer l2-normalises them); v [B, T, H, V]; g (log decay <= 0),
    beta [B, T, H]; initial_state [N, H, K, V]. Returns o [B, T, H, V] (q's dtype) and the final state
    [N, H, K, V] (float32; float64 for float64 inputs) or None.
    """
    validate_linear_attention(q, k, v, gates=[("g", g, "head"), ("beta", beta, "head")], scale=scale,
                              initial_state=initial_state, cu_seqlens=cu_seqlens)
    return naive_delta_rule_family(q, k, k, v, g, beta, default_scale(scale, q.shape[-1]), initial_state,
                                   output_final_state, cu_seqlens, q.dtype)
