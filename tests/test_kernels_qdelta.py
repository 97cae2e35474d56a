"""Q-Delta specifics (specs/qdelta.md): lam = 0 is Gated DeltaNet, the chunk form is the correct (untransposed)
one, prefill + decode equals the recurrence, and the fp32-state recurrence stays bounded over 64K tokens.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from linmem.kernels import (
    chunk_gated_delta_rule,
    chunk_qdelta_rule,
    l2norm,
    naive_gated_delta_rule,
    naive_qdelta_rule,
    qdelta_rule,
    qdelta_rule_step,
    relative_rms,
    use_backend,
)

from .test_kernels_torch import OPS_BY_NAME

QDELTA = OPS_BY_NAME["qdelta_rule"]


def _inputs(T: int, lam_value: float | None = None, K: int = 16, V: int = 16, H: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    q, k, v, g, beta, lam = QDELTA.inputs(1, T, H, K, V)
    if lam_value is not None:
        lam = torch.full_like(lam, lam_value)
    return q, k, v, g, beta, lam


def test_lam_zero_is_gated_delta_rule() -> None:
    q, k, v, g, beta, lam = _inputs(100, lam_value=0.0)
    s0 = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    for qd, gdn in ((naive_qdelta_rule, naive_gated_delta_rule), (chunk_qdelta_rule, chunk_gated_delta_rule)):
        o1, s1 = qd(q, k, v, g, beta, lam, initial_state=s0, output_final_state=True)
        o2, s2 = gdn(q, k, v, g, beta, initial_state=s0, output_final_state=True)
        assert relative_rms(o1, o2) <= 1e-10 and relative_rms(s1, s2) <= 1e-10


def test_nonzero_lam_changes_the_output() -> None:
    q, k, v, g, beta, lam = _inputs(64, lam_value=0.5)
    o1, _ = chunk_qdelta_rule(q, k, v, g, beta, lam)
    o2, _ = chunk_gated_delta_rule(q, k, v, g, beta)
    assert relative_rms(o1, o2) > 1e-2


def test_outputs_independent_of_chunk_size() -> None:
    q, k, v, g, beta, lam = _inputs(130, seed=1)
    o_ref, s_ref = naive_qdelta_rule(q, k, v, g, beta, lam, output_final_state=True)
    for chunk_size in (16, 32, 64):
        o, s = chunk_qdelta_rule(q, k, v, g, beta, lam, output_final_state=True, chunk_size=chunk_size)
        assert relative_rms(o, o_ref) <= 1e-10, chunk_size
        assert relative_rms(s, s_ref) <= 1e-10, chunk_size


def test_prefill_then_decode_equals_recurrence() -> None:
    """Chunk prefill of 77 tokens, then token-by-token decode (step and op with T = 1), vs the naive run."""
    q, k, v, g, beta, lam = _inputs(100, seed=2)
    scale = 16 ** -0.5
    o_ref, s_ref = naive_qdelta_rule(q, k, v, g, beta, lam, output_final_state=True)
    split = 77
    with use_backend("torch"):
        o_pre, state = qdelta_rule(*(t[:, :split] for t in (q, k, v, g, beta, lam)), output_final_state=True)
    assert relative_rms(o_pre, o_ref[:, :split]) <= 1e-10
    S = state
    for t in range(split, 100):
        o_t, S = qdelta_rule_step(S, q[:, t], k[:, t], v[:, t], g[:, t], beta[:, t], lam[:, t], scale)
        o_op, state = qdelta_rule(*(x[:, t:t + 1] for x in (q, k, v, g, beta, lam)), initial_state=state,
                                  output_final_state=True)
        assert relative_rms(o_t, o_ref[:, t]) <= 1e-10, t
        assert relative_rms(o_op[:, 0], o_ref[:, t]) <= 1e-10, t
    assert relative_rms(S, s_ref) <= 1e-10 and relative_rms(state, s_ref) <= 1e-10


def transposed_chunk_qdelta(q, k, v, g, beta, lam, chunk_size: int):
    """The WRONG construction of the authors' released kernel: A_ij = beta_i e^{G_i - G_j} <k_i, x_j>.

    Identical to the correct chunk form otherwise (W from X); float64, B = 1, no initial state.
    """
    x = k + lam.unsqueeze(-1) * q
    q, k, x, v = (t.transpose(1, 2) for t in (q, k, x, v))
    g, beta = g.transpose(1, 2), beta.transpose(1, 2)
    B, H, T, K = q.shape
    S = q.new_zeros(B, H, K, v.shape[-1])
    outs = []
    for start in range(0, T, chunk_size):
        sl = slice(start, min(start + chunk_size, T))
        qc, kc, xc, vc, bc = q[:, :, sl], k[:, :, sl], x[:, :, sl], v[:, :, sl], beta[:, :, sl]
        G = g[:, :, sl].cumsum(-1)
        C = G.shape[-1]
        diff = G.unsqueeze(-1) - G.unsqueeze(-2)
        lower = torch.ones(C, C, dtype=torch.bool).tril(-1)
        causal = torch.ones(C, C, dtype=torch.bool).tril()
        A = bc.unsqueeze(-1) * torch.where(lower, diff, -math.inf).exp() * (kc @ xc.transpose(-1, -2))
        T_inv = torch.linalg.inv(torch.eye(C, dtype=q.dtype) + A)
        W = T_inv @ ((bc * G.exp()).unsqueeze(-1) * xc)
        U = T_inv @ (bc.unsqueeze(-1) * vc)
        v_new = U - W @ S
        decay = torch.where(causal, diff, -math.inf).exp()
        outs.append(K ** -0.5 * (G.exp().unsqueeze(-1) * (qc @ S) + ((qc @ kc.transpose(-1, -2)) * decay) @ v_new))
        G_last = G[:, :, -1:]
        S = G_last.exp().unsqueeze(-1) * S + (kc * (G_last - G).exp().unsqueeze(-1)).transpose(-1, -2) @ v_new
    return torch.cat(outs, dim=2).transpose(1, 2)


def test_transposed_construction_is_caught() -> None:
    """The test can fail: the transposed A (released kernel's bug) disagrees by > 1e-3 at lam = 0.3, while ours
    agrees to 1e-10; at lam = 0 both coincide (so the transposition is the only difference)."""
    q, k, v, g, beta, lam = _inputs(64, lam_value=0.3, seed=3)
    o_ref, _ = naive_qdelta_rule(q, k, v, g, beta, lam)
    o_ours, _ = chunk_qdelta_rule(q, k, v, g, beta, lam, chunk_size=16)
    o_wrong = transposed_chunk_qdelta(q, k, v, g, beta, lam, chunk_size=16)
    assert relative_rms(o_ours, o_ref) <= 1e-10
    assert relative_rms(o_wrong, o_ref) > 1e-3
    zero = torch.zeros_like(lam)
    o_ref0, _ = naive_qdelta_rule(q, k, v, g, beta, zero)
    assert relative_rms(transposed_chunk_qdelta(q, k, v, g, beta, zero, chunk_size=16), o_ref0) <= 1e-10


def _stream_max_state_norm(T: int, act_dtypes: tuple[torch.dtype, ...], beta_scale: float = 1.0,
                           lam_range=(0.0, 1.0), tie_q_to_k: bool = False, seed: int = 0) -> tuple[list[float], float]:
    """Drive T tokens through the per-token step with an fp32 state (H = 2, K = V = 16), once per activation
    dtype: the inputs are rounded to that dtype (the step computes in the state's fp32, exactly what it does
    with such tensors). The runs are stacked as batch rows of one loop to keep the test fast.

    Returns (max Frobenius norm of S over time and heads, one per dtype; max_t ||v_t||_2).
    """
    gen = torch.Generator().manual_seed(seed)
    H, K, V = 2, 16, 16
    q = l2norm(torch.randn(T, 1, H, K, generator=gen))
    k = l2norm(torch.randn(T, 1, H, K, generator=gen))
    if tie_q_to_k:
        q = k
    v = torch.randn(T, 1, H, V, generator=gen)
    g = F.logsigmoid(torch.randn(T, 1, H, generator=gen) + 5.0)  # alpha mostly 0.99+
    beta = torch.rand(T, 1, H, generator=gen) * beta_scale
    lam = lam_range[0] + torch.rand(T, 1, H, generator=gen) * (lam_range[1] - lam_range[0])
    rows = len(act_dtypes)
    q, k, v, g, beta, lam = (torch.cat([t.to(d).float() for d in act_dtypes], dim=1)
                             for t in (q, k, v, g, beta, lam))
    S = torch.zeros(rows, H, K, V)
    peak = torch.zeros(rows, H)
    scale = K ** -0.5
    with torch.no_grad():
        for t in range(T):
            _, S = qdelta_rule_step(S, q[t], k[t], v[t], g[t], beta[t], lam[t], scale)
            torch.maximum(peak, S.square().sum((-2, -1)), out=peak)
    assert S.dtype == torch.float32
    return peak.amax(-1).sqrt().tolist(), v.norm(dim=-1).max().item()


def test_recurrence_stays_bounded_over_64k_tokens() -> None:
    """Issue 4: 64K tokens, beta, lam in (0, 1), unit q and k, fp32 state; fp32 and bf16 activations.

    Bound: S maps K key directions to values; the delta rule pulls the row along k_t towards v_t (a convex
    combination for beta in (0, 1)), so at most K orthogonal rows each hold at most the largest value seen:
    ||S||_F <= sqrt(K) * max_t ||v_t|| is the natural ceiling (measured peak ~14 vs ceiling ~32 here). With
    beta(1 + lam) <= 2 the non-unit eigenvalue of the (non-normal) transition stays in [-1, 1]; a divergent
    setting crosses this ceiling within 2000 tokens (test_unstable_setting_exceeds_the_bound).
    """
    started = time.perf_counter()
    K = 16
    peaks, v_max = _stream_max_state_norm(65536, (torch.float32, torch.bfloat16))
    bound = math.sqrt(K) * v_max
    for dtype, peak in zip(("float32", "bfloat16"), peaks):
        assert math.isfinite(peak), dtype
        assert peak < bound, f"{dtype}: max ||S||_F {peak:.2f} >= bound {bound:.2f}"
    assert time.perf_counter() - started < 60


def test_unstable_setting_exceeds_the_bound() -> None:
    """beta(1 + lam <k, q>) far above 2 (beta up to 1.9, lam = 0.9, q = k) diverges: the bound check can fail."""
    (peak,), v_max = _stream_max_state_norm(2000, (torch.float32,), beta_scale=1.9, lam_range=(0.9, 0.9),
                                            tie_q_to_k=True)
    assert not (peak < math.sqrt(16) * v_max)
