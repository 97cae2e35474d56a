"""Gated DeltaNet chunkwise in PyTorch (WY / UT form), differentiable by autograd.

The core takes a separate probe x (the vector whose read S'^T x the write corrects): x = k for GDN,
x = k + lam q for Q-Delta. Per chunk of C tokens, G = inclusive cumsum of g, Γ_ij = e^{G_i − G_j}:
  A = strict_lower(diag(β)(Γ ∘ X Kᵀ)),  (I + A) [W U] = [diag(β e^G) X, diag(β) V]   (unit-lower solve)
  Ṽ = U − W S;   o = scale [diag(e^G) Q S + (Q Kᵀ ∘ Γ ∘ M≤) Ṽ]
  S ← e^{G_last} S + Kᵀ diag(e^{G_last − G}) Ṽ
Exponents are masked to <= 0 before every exp.
"""

from __future__ import annotations

import torch

from ..utils import compute_dtype, default_scale, run_per_sequence, validate_linear_attention


def _masked_decay(G: torch.Tensor, strict: bool) -> torch.Tensor:
    """Γ_ij = e^{G_i − G_j} on the (strict) lower triangle, 0 elsewhere; G [B, H, C] -> [B, H, C, C]."""
    C = G.shape[-1]
    mask = torch.ones(C, C, dtype=torch.bool, device=G.device).tril(-1 if strict else 0)
    diff = G.unsqueeze(-1) - G.unsqueeze(-2)
    return torch.where(mask, diff, torch.full_like(diff, float("-inf"))).exp()


def delta_rule_chunk_dense(q, k, x, v, g, beta, scale: float, state: torch.Tensor | None, chunk_size: int):
    """Dense (no varlen) chunk delta rule; q, k, x [B, T, H, K], v [B, T, H, V], g, beta [B, T, H],
    state [B, H, K, V]; one dtype throughout. Returns o [B, T, H, V] and the final state [B, H, K, V].
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    q, k, x, v = (t.transpose(1, 2) for t in (q, k, x, v))  # [B, H, T, D]
    g, beta = g.transpose(1, 2), beta.transpose(1, 2)  # [B, H, T]
    S = state if state is not None else q.new_zeros(B, H, K, V)
    outs = []
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        qc, kc, xc, vc = q[:, :, start:end], k[:, :, start:end], x[:, :, start:end], v[:, :, start:end]
        bc = beta[:, :, start:end]
        G = g[:, :, start:end].cumsum(-1)  # [B, H, C]
        A = bc.unsqueeze(-1) * _masked_decay(G, strict=True) * (xc @ kc.transpose(-1, -2))
        eye = torch.eye(end - start, dtype=q.dtype, device=q.device)
        rhs = torch.cat([(bc * G.exp()).unsqueeze(-1) * xc, bc.unsqueeze(-1) * vc], dim=-1)
        WU = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True)
        W, U = WU[..., :K], WU[..., K:]
        v_new = U - W @ S
        attn = (qc @ kc.transpose(-1, -2)) * _masked_decay(G, strict=False)
        outs.append(scale * (G.exp().unsqueeze(-1) * (qc @ S) + attn @ v_new))
        G_last = G[:, :, -1:]  # [B, H, 1]
        S = G_last.exp().unsqueeze(-1) * S + (kc * (G_last - G).exp().unsqueeze(-1)).transpose(-1, -2) @ v_new
    o = torch.cat(outs, dim=2) if outs else v.new_zeros(B, H, 0, V)
    return o.transpose(1, 2), S


def chunk_delta_rule_family(q, k, x, v, g, beta, scale, initial_state, output_final_state, cu_seqlens,
                            chunk_size: int, out_dtype: torch.dtype):
    """Chunk path shared by GDN (x = k) and Q-Delta (x = k + lam q); inputs validated."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size!r}")
    dtype = compute_dtype(q)

    def dense(inputs, state):
        ts = [t.to(dtype) for t in inputs]
        o, S = delta_rule_chunk_dense(*ts, scale, state.to(dtype) if state is not None else None, chunk_size)
        return o.to(out_dtype), S

    return run_per_sequence(dense, (q, k, x, v, g, beta), initial_state, output_final_state, cu_seqlens)


def chunk_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as `naive_gated_delta_rule`; float32 compute (float64 for float64 inputs)."""
    validate_linear_attention(q, k, v, gates=[("g", g, "head"), ("beta", beta, "head")], scale=scale,
                              initial_state=initial_state, cu_seqlens=cu_seqlens)
    return chunk_delta_rule_family(q, k, k, v, g, beta, default_scale(scale, q.shape[-1]), initial_state,
                                   output_final_state, cu_seqlens, chunk_size, q.dtype)
