"""The public Gated DeltaNet op: validates once, then dispatches (see backend.py)."""

from __future__ import annotations

import torch

from ..backend import dispatch, kernel_op, wants_step
from ..utils import validate_linear_attention
from .chunk import chunk_gated_delta_rule
from .naive import naive_gated_delta_rule


@kernel_op
def gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated delta rule: S_t = e^{g_t} (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T;  o_t = scale S_t^T q_t.

    q, k [B, T, H, K] used as given (the layer l2-normalises them); v [B, T, H, V]; g (log decay <= 0),
    beta [B, T, H]; initial_state [N, H, K, V]; cu_seqlens [N + 1] with B == 1 for varlen.
    Returns o [B, T, H, V] (q's dtype) and the final state [N, H, K, V] float32, or None unless
    output_final_state. A CUDA decode step (T == 1, no grad) may update a float32 initial_state in place.
    """
    validate_linear_attention(q, k, v, gates=[("g", g, "head"), ("beta", beta, "head")], scale=scale,
                              initial_state=initial_state, cu_seqlens=cu_seqlens)
    kwargs = dict(scale=scale, initial_state=initial_state, output_final_state=output_final_state,
                  cu_seqlens=cu_seqlens)
    return dispatch("gated_delta_rule", __package__, naive_gated_delta_rule, chunk_gated_delta_rule, q,
                    (q, k, v, g, beta), kwargs,
                    use_step=wants_step(q, (q, k, v, g, beta, initial_state), cu_seqlens))
