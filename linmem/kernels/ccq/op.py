"""The public CCQ ops: validate once, then dispatch (see backend.py)."""

from __future__ import annotations

import torch

from ..backend import dispatch, kernel_op, wants_step
from .chunk import chunk_ccq_gated_delta_rule, chunk_ccq_gla
from .naive import naive_ccq_gated_delta_rule, naive_ccq_gla, validate_ccq
from .state import CCQState

#: Widest key head dim of the Triton CCQ statistic kernels; wider heads use the PyTorch chunk path. The
#: statistic kernels passed their K = 256 test on the H200 (bf16, varlen, every gradient); the GLA and GDN
#: kernels behind them pass at K = 256 too. Nothing wider has been built.
TRITON_MAX_HEAD_K_DIM = 256


def _triton_unsupported(q: torch.Tensor) -> str | None:
    K = q.shape[-1]
    if K > TRITON_MAX_HEAD_K_DIM:
        return f"the Triton CCQ kernels support head_k_dim <= {TRITON_MAX_HEAD_K_DIM}, got {K}"
    return None


@kernel_op
def ccq_gla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: CCQState | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, center: bool = False,
) -> tuple[torch.Tensor, CCQState | None]:
    """CCQ on GLA: q̃_t = q_t − λ_t Σ_t q_t with Σ_t the decayed second moment of k̂ = l2n(k)
    (γ_t = exp(mean_c gk_t)), then GLA(q̃, k, v, gk).

    q, k, gk [B, T, H, K]; v [B, T, H, V]; lam [B, T, H]; initial_state CCQState (S [N, H, K, V],
    M [N, H, K, K], z [N, H], m [N, H, K] with center). Returns o [B, T, H, V] (q's dtype) and the final
    CCQState (float32) or None unless output_final_state.
    """
    validate_ccq(q, k, v, [("gk", gk, "channel")], lam, scale, initial_state, cu_seqlens, center)
    kwargs = dict(scale=scale, initial_state=initial_state, output_final_state=output_final_state,
                  cu_seqlens=cu_seqlens, center=center)
    return dispatch("ccq_gla", __package__, naive_ccq_gla, chunk_ccq_gla, q, (q, k, v, gk, lam), kwargs,
                    use_step=wants_step(q, (q, k, v, gk, lam, *(initial_state or ())), cu_seqlens),
                    triton_unsupported=_triton_unsupported(q))


@kernel_op
def ccq_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: CCQState | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, center: bool = False,
) -> tuple[torch.Tensor, CCQState | None]:
    """CCQ on Gated DeltaNet: q̃_t = q_t − λ_t Σ_t q_t with Σ_t the decayed second moment of the (unit) keys,
    decay γ_t = exp(g_t), then gated_delta_rule(q̃, k, v, g, beta).

    q, k [B, T, H, K]; v [B, T, H, V]; g, beta, lam [B, T, H]; initial_state CCQState.
    Returns o [B, T, H, V] (q's dtype) and the final CCQState (float32) or None.
    """
    validate_ccq(q, k, v, [("g", g, "head"), ("beta", beta, "head")], lam, scale, initial_state, cu_seqlens,
                 center)
    kwargs = dict(scale=scale, initial_state=initial_state, output_final_state=output_final_state,
                  cu_seqlens=cu_seqlens, center=center)
    return dispatch("ccq_gated_delta_rule", __package__, naive_ccq_gated_delta_rule, chunk_ccq_gated_delta_rule,
                    q, (q, k, v, g, beta, lam), kwargs,
                    use_step=wants_step(q, (q, k, v, g, beta, lam, *(initial_state or ())), cu_seqlens),
                    triton_unsupported=_triton_unsupported(q))
