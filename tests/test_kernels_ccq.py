"""CCQ specifics (specs/ccq.md): lam = 0 is exactly the backbone, lam != 0 changes it, Σ is a contraction
for unit keys, centring subtracts μμᵀ, and a centred run without m in its state starts m from zeros.
"""

from __future__ import annotations

import pytest
import torch

from linmem.kernels import (
    CCQState,
    chunk_ccq_gated_delta_rule,
    chunk_ccq_gla,
    chunk_gated_delta_rule,
    chunk_gla,
    l2norm,
    naive_ccq_gated_delta_rule,
    naive_ccq_gla,
    naive_gated_delta_rule,
    naive_gla,
    relative_rms,
)
from linmem.kernels.ccq.naive import naive_ccq_query

from .test_kernels_torch import OPS_BY_NAME

CASES = [
    ("ccq_gla", naive_ccq_gla, chunk_ccq_gla, naive_gla, chunk_gla),
    ("ccq_gated_delta_rule", naive_ccq_gated_delta_rule, chunk_ccq_gated_delta_rule, naive_gated_delta_rule,
     chunk_gated_delta_rule),
]


def _args(name: str, T: int = 90, seed: int = 0):
    torch.manual_seed(seed)
    return OPS_BY_NAME[name].inputs(1, T, 2, 16, 24)


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("name,naive_ccq,chunk_ccq,naive_bb,chunk_bb", CASES, ids=[c[0] for c in CASES])
def test_lam_zero_is_the_backbone(name, naive_ccq, chunk_ccq, naive_bb, chunk_bb, center: bool) -> None:
    *args, lam = _args(name)
    lam = torch.zeros_like(lam)
    s0 = torch.randn(1, 2, 16, 24, dtype=torch.float64)
    state = OPS_BY_NAME[name].state(1, 2, 16, 24)._replace(S=s0)
    o_chunk, st = chunk_ccq(*args, lam, initial_state=state, output_final_state=True, center=center)
    o_bb, s_bb = chunk_bb(*args, initial_state=s0, output_final_state=True)
    assert torch.equal(o_chunk, o_bb) and torch.equal(st.S, s_bb)
    o_naive, _ = naive_ccq(*args, lam, initial_state=state, center=center)
    o_bb_naive, _ = naive_bb(*args, initial_state=s0)
    assert torch.equal(o_naive, o_bb_naive)
    assert relative_rms(o_chunk, o_bb_naive) <= 1e-12


@pytest.mark.parametrize("name,naive_ccq,chunk_ccq,naive_bb,chunk_bb", CASES, ids=[c[0] for c in CASES])
def test_nonzero_lam_changes_the_output(name, naive_ccq, chunk_ccq, naive_bb, chunk_bb) -> None:
    *args, lam = _args(name, seed=1)
    o, _ = chunk_ccq(*args, lam)
    o_bb, _ = chunk_bb(*args)
    assert relative_rms(o, o_bb) > 1e-2
    o_c, _ = chunk_ccq(*args, lam, center=True)
    assert relative_rms(o_c, o) > 1e-3, "centring must change the contraction"


def test_sigma_is_a_contraction_for_unit_keys() -> None:
    """0 <= Σ <= I with unit keys, so for lam in [0, 1]: <q̃, q> >= 0 and ||q̃|| <= ||q|| per token."""
    torch.manual_seed(2)
    B, T, H, K = 1, 200, 2, 8
    q = torch.randn(B, T, H, K, dtype=torch.float64)
    k_hat = l2norm(torch.randn(B, T, H, K, dtype=torch.float64))
    log_gamma = -torch.rand(B, T, H, dtype=torch.float64) * 0.1
    lam = torch.rand(B, T, H, dtype=torch.float64)
    zeros = (q.new_zeros(B, H, K, K), q.new_zeros(B, H), None)
    q_tilde, M, z, _ = naive_ccq_query(q, k_hat, log_gamma, lam, *zeros)
    assert ((q_tilde * q).sum(-1) >= -1e-12).all()
    assert (q_tilde.norm(dim=-1) <= q.norm(dim=-1) + 1e-12).all()
    eig = torch.linalg.eigvalsh(M / z[..., None, None])
    assert eig.min() >= -1e-12 and eig.max() <= 1 + 1e-12
    # centring: Σ - μμᵀ is the (decayed) covariance, still PSD and <= I
    q_c, M_c, z_c, m_c = naive_ccq_query(q, k_hat, log_gamma, lam, *zeros[:2], q.new_zeros(B, H, K))
    mu = m_c / z_c[..., None]
    eig_c = torch.linalg.eigvalsh(M_c / z_c[..., None, None] - mu[..., :, None] * mu[..., None, :])
    assert eig_c.min() >= -1e-12 and eig_c.max() <= 1 + 1e-12


@pytest.mark.parametrize("name,naive_ccq,chunk_ccq,naive_bb,chunk_bb", CASES, ids=[c[0] for c in CASES])
def test_center_without_m_starts_from_zero_mean(name, naive_ccq, chunk_ccq, naive_bb, chunk_bb) -> None:
    *args, lam = _args(name, T=40, seed=3)
    state = OPS_BY_NAME[name].state(1, 2, 16, 24)
    no_m = state._replace(m=None)
    zero_m = state._replace(m=torch.zeros(1, 2, 16, dtype=torch.float64))
    for fn in (naive_ccq, chunk_ccq):
        o1, s1 = fn(*args, lam, initial_state=no_m, output_final_state=True, center=True)
        o2, s2 = fn(*args, lam, initial_state=zero_m, output_final_state=True, center=True)
        assert torch.equal(o1, o2) and torch.equal(s1.m, s2.m)
    _, s_plain = chunk_ccq(*args, lam, initial_state=state, output_final_state=True)
    assert s_plain.m is None, "center=False returns no m"


def test_ccq_state_row_and_cat_round_trip() -> None:
    torch.manual_seed(4)
    st = CCQState(torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 4), torch.rand(3, 2), None)
    back = CCQState.cat([st.row(n) for n in range(3)])
    assert back.m is None and all(torch.equal(a, b) for a, b in zip(back[:3], st[:3]))
