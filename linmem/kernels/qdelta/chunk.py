"""Q-Delta chunkwise in PyTorch: the Gated DeltaNet WY core with the probe X = K + diag(lam) Q.

The correct form (specs/qdelta.md): A_ij = beta_i e^{G_i − G_j} <x_i, k_j> (i > j), W = T diag(beta e^G) X.
Results do not depend on the chunk size; gradients reach lam through x by autograd.
"""

from __future__ import annotations

import torch

from ..gated_delta_rule.chunk import chunk_delta_rule_family
from ..utils import default_scale
from .naive import qdelta_probe, validate_qdelta


def chunk_qdelta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as `naive_qdelta_rule`; float32 compute (float64 for float64 inputs)."""
    validate_qdelta(q, k, v, g, beta, lam, scale, initial_state, cu_seqlens)
    return chunk_delta_rule_family(q, k, qdelta_probe(q, k, lam), v, g, beta, default_scale(scale, q.shape[-1]),
                                   initial_state, output_final_state, cu_seqlens, chunk_size, q.dtype)
