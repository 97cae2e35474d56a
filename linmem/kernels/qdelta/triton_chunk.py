"""Triton chunkwise Q-Delta (specs/qdelta.md): the Gated DeltaNet kernels with the probe x = k + lam q.

The chunk form is the correct one, A_ij = beta_i e^{G_i - G_j} <x_i, k_j> (i > j), W = T diag(beta e^G) X,
so outputs do not depend on the chunk size and prefill equals token-by-token decode.
"""

from __future__ import annotations

import torch

from ..gated_delta_rule.triton_chunk import chunk_delta_rule_triton


def triton_qdelta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Q-Delta on Triton, same signature and semantics as `naive_qdelta_rule`; lam [B, T, H].

    S_t = e^{g_t} (I - beta_t k_t x_t^T) S_{t-1} + beta_t k_t v_t^T, x_t = k_t + lam_t q_t;  o_t = scale S_t^T q_t.
    Gradients flow to q, k, v, g, beta, lam and initial_state.
    """
    return chunk_delta_rule_triton(q, k, v, g, beta, lam, scale=scale, initial_state=initial_state,
                                   output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                   chunk_size=chunk_size)
