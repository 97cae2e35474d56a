"""Q-Delta per-token reference recurrence (specs/qdelta.md; the ground truth of every Q-Delta kernel).

x_t = k_t + lam_t q_t (as given: unit q, k from the layer, no d_k^-1/2);  S' = e^{g_t} S_{t-1};
S_t = S' + beta_t k_t (v_t - S'^T x_t)^T;  o_t = scale S_t^T q_t.  lam == 0 is Gated DeltaNet.
"""

from __future__ import annotations

import torch

from ..gated_delta_rule.naive import delta_rule_step, naive_delta_rule_family
from ..utils import compute_dtype, default_scale, validate_linear_attention

__all__ = ["naive_qdelta_rule", "qdelta_probe", "qdelta_rule_step"]


def validate_qdelta(q, k, v, g, beta, lam, scale, initial_state, cu_seqlens):
    return validate_linear_attention(q, k, v, gates=[("g", g, "head"), ("beta", beta, "head"), ("lam", lam, "head")],
                                     scale=scale, initial_state=initial_state, cu_seqlens=cu_seqlens)


def qdelta_probe(q: torch.Tensor, k: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """x = k + lam q in the compute dtype; q, k [B, T, H, K], lam [B, T, H]."""
    dtype = compute_dtype(q)
    return k.to(dtype) + lam.to(dtype).unsqueeze(-1) * q.to(dtype)


def qdelta_rule_step(S: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                     beta: torch.Tensor, lam: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One Q-Delta token for all rows: S [B, H, K, V]; q, k [B, H, K]; v [B, H, V]; g, beta, lam [B, H].

    Computes in S's dtype (inputs are cast to it). Returns (o [B, H, V], S_new [B, H, K, V]).
    """
    q, k, v, g, beta, lam = (t.to(S.dtype) for t in (q, k, v, g, beta, lam))
    return delta_rule_step(S, q, k, k + lam.unsqueeze(-1) * q, v, g, beta, scale)


def naive_qdelta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K]; v [B, T, H, V]; g, beta, lam [B, T, H]; initial_state [N, H, K, V].

    Returns o [B, T, H, V] (q's dtype) and the final state [N, H, K, V] (float32; float64 for float64 inputs).
    """
    validate_qdelta(q, k, v, g, beta, lam, scale, initial_state, cu_seqlens)
    return naive_delta_rule_family(q, k, qdelta_probe(q, k, lam), v, g, beta, default_scale(scale, q.shape[-1]),
                                   initial_state, output_final_state, cu_seqlens, q.dtype)
