"""Q-Delta decode step on Triton: the fused recurrent delta-rule kernel with the lambda-aware probe."""

from __future__ import annotations

import torch

from ..gated_delta_rule.triton_step import recurrent_delta_rule_triton


def triton_qdelta_rule_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, lam: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, in_place: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Q-Delta decode step (meant for T == 1), same semantics as `naive_qdelta_rule`; no gradients.

    With in_place=True the fp32 initial state is updated in place and returned as the final state.
    """
    return recurrent_delta_rule_triton(q, k, v, g, beta, lam, scale=scale, initial_state=initial_state,
                                       output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                       in_place=in_place)
