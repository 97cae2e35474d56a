"""GLA chunkwise in PyTorch (the path on every device without Triton), differentiable by autograd.

Per chunk of C tokens with in-chunk inclusive log-decay cumsum b [C, K]:
  o = scale [ (q ∘ e^b) S  +  A v ],  A_ij = Σ_c q_ic k_jc e^{b_ic − b_jc}  (j ≤ i)
  S ← diag(e^{b_last}) S + (k ∘ e^{b_last − b})^T v
A is built by sub-chunks of SUB tokens (secondary chunking): a diagonal block forms its pairwise decay
[SUB, SUB, K] with the upper triangle masked before the exp; an off-diagonal block (rows i of sub-chunk I,
columns j before it) factors e^{b_i − b_j} = e^{b_i − r} e^{r − b_j} through r = b just before I, two
matmul-able factors that are both <= 1. Every exponent is <= 0: no overflow, whatever the decay.
"""

from __future__ import annotations

import torch

from ..utils import compute_dtype, default_scale, run_per_sequence, validate_linear_attention

SUB = 16


def intra_chunk_scores(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A [B, H, C, C] with A_ij = Σ_c q_ic k_jc e^{b_ic − b_jc} for j <= i, 0 above; q, k, b [B, H, C, K]."""
    B, H, C, _ = q.shape
    rows = []
    for start in range(0, C, SUB):
        end = min(start + SUB, C)
        q_i, k_i, b_i = q[:, :, start:end], k[:, :, start:end], b[:, :, start:end]
        causal = torch.ones(end - start, end - start, dtype=torch.bool, device=q.device).tril()
        diff = b_i.unsqueeze(3) - b_i.unsqueeze(2)  # [B, H, i, j, K]: b_i - b_j
        decay = torch.where(causal[..., None], diff, torch.full_like(diff, float("-inf"))).exp()
        parts = []
        if start > 0:
            ref = b[:, :, start - 1:start]
            left = (q_i * (b_i - ref).exp()) @ (k[:, :, :start] * (ref - b[:, :, :start]).exp()).transpose(-1, -2)
            parts.append(left)
        parts.append(torch.einsum("bhik,bhjk,bhijk->bhij", q_i, k_i, decay))
        if end < C:
            parts.append(q.new_zeros(B, H, end - start, C - end))
        rows.append(torch.cat(parts, dim=-1))
    return torch.cat(rows, dim=2)


def gla_chunk_dense(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, scale: float,
                    state: torch.Tensor | None, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense (no varlen) chunk GLA in q's dtype; q, k, gk [B, T, H, K], v [B, T, H, V], state [B, H, K, V].

    Returns o [B, T, H, V] and the final state [B, H, K, V] (both in q's dtype).
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    q, k, v, gk = (x.transpose(1, 2) for x in (q, k, v, gk))  # [B, H, T, D]
    S = state if state is not None else q.new_zeros(B, H, K, V)
    outs = []
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        qc, kc, vc = q[:, :, start:end], k[:, :, start:end], v[:, :, start:end]
        b = gk[:, :, start:end].cumsum(dim=2)  # [B, H, C, K]
        o = (qc * b.exp()) @ S + intra_chunk_scores(qc, kc, b) @ vc
        outs.append(o * scale)
        b_last = b[:, :, -1]  # [B, H, K]
        S = b_last.exp().unsqueeze(-1) * S + (kc * (b_last.unsqueeze(2) - b).exp()).transpose(-1, -2) @ vc
    o = torch.cat(outs, dim=2) if outs else v.new_zeros(B, H, 0, V)
    return o.transpose(1, 2), S


def chunk_gla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as `naive_gla`; computed in float32 (float64 for float64 inputs), chunks of chunk_size."""
    validate_linear_attention(q, k, v, gates=[("gk", gk, "channel")], scale=scale, initial_state=initial_state,
                              cu_seqlens=cu_seqlens)
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size}")
    scale = default_scale(scale, q.shape[-1])
    dtype = compute_dtype(q)

    def dense(inputs, state):
        xs = [x.to(dtype) for x in inputs]
        o, S = gla_chunk_dense(*xs, scale, state.to(dtype) if state is not None else None, chunk_size)
        return o.to(q.dtype), S

    return run_per_sequence(dense, (q, k, v, gk), initial_state, output_final_state, cu_seqlens)
