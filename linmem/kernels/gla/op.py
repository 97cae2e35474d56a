"""The public GLA op: validates once, then dispatches to naive / PyTorch chunk / Triton (see backend.py)."""

from __future__ import annotations

import torch

from ..backend import dispatch, kernel_op, wants_step
from ..utils import validate_linear_attention
from .chunk import chunk_gla
from .naive import naive_gla


@kernel_op
def gla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated linear attention with per-channel decay.

    S_t = diag(exp(gk_t)) S_{t-1} + k_t v_t^T ;  o_t = scale * S_t^T q_t  (scale defaults to K ** -0.5).
    q, k, gk [B, T, H, K] (gk log decay <= 0); v [B, T, H, V]; initial_state [N, H, K, V] with N = B, or
    the number of sequences when cu_seqlens [N + 1] (B == 1) is given.
    Returns o [B, T, H, V] in q's dtype and the final state [N, H, K, V] float32 (None unless
    output_final_state). A CUDA decode step (T == 1, no grad) may update a float32 initial_state in place.
    """
    validate_linear_attention(q, k, v, gates=[("gk", gk, "channel")], scale=scale, initial_state=initial_state,
                              cu_seqlens=cu_seqlens)
    kwargs = dict(scale=scale, initial_state=initial_state, output_final_state=output_final_state,
                  cu_seqlens=cu_seqlens)
    return dispatch("gla", __package__, naive_gla, chunk_gla, q, (q, k, v, gk), kwargs,
                    use_step=wants_step(q, (q, k, v, gk, initial_state), cu_seqlens))
