"""The public Q-Delta op: validates once, then dispatches (see backend.py)."""

from __future__ import annotations

import torch

from ..backend import dispatch, kernel_op, wants_step
from .chunk import chunk_qdelta_rule
from .naive import naive_qdelta_rule, validate_qdelta


@kernel_op
def qdelta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Q-Delta: x_t = k_t + lam_t q_t;  S_t = e^{g_t} (I - beta_t k_t x_t^T) S_{t-1} + beta_t k_t v_t^T;
    o_t = scale S_t^T q_t.

    q, k [B, T, H, K] (unit vectors from the layer, used as given); v [B, T, H, V]; g (log decay <= 0),
    beta, lam [B, T, H]; initial_state [N, H, K, V]; cu_seqlens [N + 1] with B == 1 for varlen.
    Returns o [B, T, H, V] (q's dtype) and the final state [N, H, K, V] float32, or None unless
    output_final_state. A CUDA decode step (T == 1, no grad) may update a float32 initial_state in place.
    """
    validate_qdelta(q, k, v, g, beta, lam, scale, initial_state, cu_seqlens)
    kwargs = dict(scale=scale, initial_state=initial_state, output_final_state=output_final_state,
                  cu_seqlens=cu_seqlens)
    return dispatch("qdelta_rule", __package__, naive_qdelta_rule, chunk_qdelta_rule, q, (q, k, v, g, beta, lam),
                    kwargs, use_step=wants_step(q, (q, k, v, g, beta, lam, initial_state), cu_seqlens))
