"""CCQ statistic pass on Triton (`ccq_contract_query`, linmem/kernels/ccq/triton_stats.py) vs a float64 per-token
reference (`naive_ccq_query` run sequence by sequence): q̃, the final (M, z, m) and the gradients of q, k̂, log γ,
λ, M0, z0, m0.

CPU: under TRITON_INTERPRET=1 (set below before triton is imported), fp32, tiny shapes; tolerances (relative
RMS) <= 1e-4 for outputs and <= 1e-3 for gradients. Kernel outputs are allocated as NaN, so a token or state the
kernel fails to write makes the finiteness check fail.
GPU (marked `gpu`): T = 4K, dense and varlen with 6 ragged sequences (one empty), K in {64, 100, 128, 256},
bf16 inputs (the reference gets the same bf16-rounded values in float64): <= 5e-3 outputs, <= 1e-2 gradients.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

pytest.importorskip("triton")

from linmem.kernels.ccq.naive import naive_ccq_query  # noqa: E402
from linmem.kernels.ccq.triton_stats import ccq_contract_query  # noqa: E402
from linmem.kernels.utils import relative_rms  # noqa: E402

CPU = not torch.cuda.is_available()
cpu_only = pytest.mark.skipif(not CPU, reason="interpreter tests run on CPU machines")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
NAMES = ["dq", "dk", "dg", "dlam", "dM0", "dz0", "dm0"]


def reference(q, k, g, lam, M0, z0, m0, center, cu):
    """Per-token statistics per sequence (float64 in, float64 out): q̃ and the final (M, z, m)."""
    B, T, H, K = q.shape
    spans = [(b, 0, T) for b in range(B)] if cu is None else [(0, cu[i], cu[i + 1]) for i in range(len(cu) - 1)]
    pieces, Ms, zs, ms = [], [], [], []
    for n, (b, s, e) in enumerate(spans):
        M = M0[n:n + 1] if M0 is not None else q.new_zeros(1, H, K, K)
        z = z0[n:n + 1] if z0 is not None else q.new_zeros(1, H)
        m = (m0[n:n + 1] if m0 is not None else q.new_zeros(1, H, K)) if center else None
        qt, M, z, m = naive_ccq_query(q[b:b + 1, s:e], k[b:b + 1, s:e], g[b:b + 1, s:e], lam[b:b + 1, s:e], M, z, m)
        pieces.append(qt)
        Ms.append(M)
        zs.append(z)
        ms.append(m)
    q_tilde = torch.cat(pieces, 1) if cu is not None else torch.cat(pieces, 0)
    return q_tilde, torch.cat(Ms), torch.cat(zs), (torch.cat(ms) if center else None)


def make_inputs(B, T, H, K, N, init, center, dtype, device, seed, decay=0.5):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen)
    k = torch.nn.functional.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    g = -torch.rand(B, T, H, generator=gen) * decay
    lam = torch.rand(B, T, H, generator=gen)
    M0 = z0 = m0 = None
    if init:
        kk = torch.nn.functional.normalize(torch.randn(N, H, 6, K, generator=gen), dim=-1)
        # a non-symmetric M0 checks that u = M q (not Mᵀ q) and the transposes of its gradient
        M0 = torch.einsum("nhjk,nhjl->nhkl", kk, kk) + 0.05 * torch.randn(N, H, K, K, generator=gen)
        z0 = torch.rand(N, H, generator=gen) * 3 + 1
        m0 = kk.sum(2) if center else None
    acts = [x.to(device=device, dtype=dtype) for x in (q, k)] + [x.to(device) for x in (g, lam)]
    states = [x.to(device) if x is not None else None for x in (M0, z0, m0)]
    return acts, states, gen


def check(B, T, H, K, chunk, cu, init, fin, center, dtype, device, tol_o, tol_g, seed=0, decay=0.5):
    N = B if cu is None else len(cu) - 1
    acts, states, gen = make_inputs(B, T, H, K, N, init, center, dtype, device, seed, decay)
    xs = acts + states
    cu_t = torch.tensor(cu, dtype=torch.int32, device=device) if cu is not None else None
    dqt = torch.randn(B, T, H, K, generator=gen, dtype=torch.float64).to(device)
    dfin = [torch.randn(s, generator=gen, dtype=torch.float64).to(device) for s in ((N, H, K, K), (N, H), (N, H, K))]

    def loss_of(q_tilde, finals):
        loss = (q_tilde.double() * dqt).sum()
        if fin:
            loss = loss + sum((a.double() * d).sum() for a, d in zip(finals, dfin) if a is not None)
        return loss

    ins = [x.clone().requires_grad_() if x is not None else None for x in xs]
    q_tilde, finals = ccq_contract_query(*ins[:4], M0=ins[4], z0=ins[5], m0=ins[6], center=center,
                                         output_final_state=fin, cu_seqlens=cu_t, chunk_size=chunk)
    assert q_tilde.dtype == dtype and (finals is not None) == fin
    grads = torch.autograd.grad(loss_of(q_tilde, finals), [x for x in ins if x is not None])

    ref_ins = [x.detach().double().requires_grad_() if x is not None else None for x in xs]
    r_qt, *r_fin = reference(*ref_ins, center, cu)
    r_grads = torch.autograd.grad(loss_of(r_qt, r_fin), [x for x in ref_ins if x is not None])

    assert torch.isfinite(q_tilde).all() and relative_rms(q_tilde, r_qt) <= tol_o, \
        f"q_tilde: {relative_rms(q_tilde, r_qt):.2e}"
    if fin:
        assert (finals[2] is not None) == center
        for name, a, b in zip("Mzm", finals, r_fin):
            if b is not None:
                assert a.dtype == torch.float32 and torch.isfinite(a).all(), name
                assert relative_rms(a, b) <= tol_o, f"final {name}: {relative_rms(a, b):.2e}"
    names = [n for n, x in zip(NAMES, xs) if x is not None]
    for name, a, b in zip(names, grads, r_grads):
        assert torch.isfinite(a).all(), name
        assert relative_rms(a, b) <= tol_g, f"{name}: {relative_rms(a, b):.2e}"


CPU_CASES = [
    # B, T, H, K, chunk, cu_seqlens, initial state, output_final_state, center
    (1, 1, 1, 16, 16, None, True, True, False),  # (without a start state, T = 1 has dg == 0 exactly)
    (2, 17, 2, 20, 16, None, True, True, True),
    (1, 70, 1, 16, 64, None, True, True, False),
    (1, 70, 2, 20, 16, [0, 0, 5, 22, 70], True, True, True),
    (1, 70, 1, 16, 64, [0, 30, 30, 70], False, False, True),
    (1, 17, 1, 20, 16, [0, 9, 17, 17], True, True, False),
]


@cpu_only
@pytest.mark.parametrize("case", CPU_CASES, ids=[f"c{i}" for i in range(len(CPU_CASES))])
def test_stats_match_token_reference(case):
    check(*case, torch.float32, "cpu", 1e-4, 1e-3)


@cpu_only
@pytest.mark.parametrize("split", [False, True], ids=["loop", "split"])
def test_stats_half_precision(monkeypatch, split):
    """fp16 inputs: q̃ comes back in fp16, and the backward's Mᵀ du pass (query dq̃, the saved M read transposed)
    multiplies in fp16; the forward chunk kernel with one value block per program (LINMEM_CCQ_FWD_SPLIT) gives
    the same results.
    (The interpreter's bf16 products are wrong, so bf16 is checked on the GPU: test_stats_gpu_bf16.)"""
    monkeypatch.setenv("LINMEM_CCQ_FWD_SPLIT", str(int(split)))
    monkeypatch.setenv("LINMEM_CCQ_FWD_BV", "16")
    check(1, 70, 2, 20, 16, [0, 0, 5, 22, 70], True, True, True, torch.float16, "cpu", 5e-3, 1e-2, decay=0.1)


@cpu_only
@pytest.mark.parametrize("state_bv", ["auto", "32"])
def test_recurrence_column_blocks(monkeypatch, state_bv):
    """The recurrences narrow their column block for few sequences (16 here, two blocks at K = 20); the widest
    block (LINMEM_CCQ_STATE_BV = 32, one block) gives the same results."""
    from linmem.kernels.ccq.triton_stats import _recurrence_block, _split_tiles

    if state_bv != "auto":
        monkeypatch.setenv("LINMEM_CCQ_STATE_BV", state_bv)
    assert _recurrence_block(_split_tiles(20), 20, 8) == (16 if state_bv == "auto" else 32)
    check(1, 70, 2, 20, 16, [0, 0, 5, 22, 70], True, True, True, torch.float32, "cpu", 1e-4, 1e-3)


@cpu_only
def test_stats_strong_decay_stays_finite_and_exact():
    """log γ down to -12 per token: every exponent in the kernels is a difference <= 0, nothing overflows."""
    check(1, 40, 1, 16, 16, [0, 13, 40], True, True, True, torch.float32, "cpu", 1e-4, 1e-3, seed=3, decay=12.0)


GPU_CASES = [
    # B, T, H, K, cu_seqlens, center
    (1, 4096, 2, 64, None, False),
    (1, 4096, 2, 128, [0, 700, 701, 1901, 1901, 3000, 4096], True),
    (1, 4096, 2, 100, [0, 1000, 1000, 1333, 2900, 3001, 4096], False),
    # K = 256, the widest head the Triton CCQ path takes (linmem.kernels.ccq.op.TRITON_MAX_HEAD_K_DIM)
    (1, 4096, 2, 256, [0, 17, 1500, 1500, 2222, 4000, 4096], True),
]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("case", GPU_CASES, ids=[f"K{c[3]}" for c in GPU_CASES])
def test_stats_gpu_bf16(case):
    B, T, H, K, cu, center = case
    check(B, T, H, K, 64, cu, True, True, center, torch.bfloat16, "cuda", 5e-3, 1e-2, seed=K, decay=0.1)


def _wide_inputs(device):
    gen = torch.Generator().manual_seed(0)
    B, T, H, K, V = 1, 40, 1, 320, 8
    q, k = (torch.randn(B, T, H, K, generator=gen) for _ in range(2))
    v = torch.randn(B, T, H, V, generator=gen)
    g = torch.nn.functional.logsigmoid(torch.randn(B, T, H, generator=gen))
    beta, lam = (torch.rand(B, T, H, generator=gen) for _ in range(2))
    return [x.to(device) for x in (q, k, v, g, beta, lam)]


def test_wide_heads_take_the_pytorch_path_or_fail_clearly(monkeypatch):
    """K > 256 on a Triton backend: 'auto' warns once and runs the PyTorch chunk path; 'triton' refuses."""
    import warnings

    from linmem.kernels import backend, ccq_gated_delta_rule
    from linmem.kernels.ccq.chunk import chunk_ccq_gated_delta_rule

    q, k, v, g, beta, lam = _wide_inputs("cpu")
    expected, _ = chunk_ccq_gated_delta_rule(q, k, v, g, beta, lam)
    monkeypatch.setattr(backend, "resolve_backend", lambda q: "triton")
    monkeypatch.setenv("LINMEM_KERNEL_BACKEND", "auto")
    backend._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, _ = ccq_gated_delta_rule(q, k, v, g, beta, lam)
        ccq_gated_delta_rule(q, k, v, g, beta, lam)
    assert torch.equal(out, expected)
    assert [str(w.message) for w in caught].count(
        "linmem: ccq_gated_delta_rule: the Triton CCQ kernels support head_k_dim <= 256, got 320; "
        "using the PyTorch path") == 1
    monkeypatch.setenv("LINMEM_KERNEL_BACKEND", "triton")
    with pytest.raises(NotImplementedError, match="head_k_dim <= 256, got 320"):
        ccq_gated_delta_rule(q, k, v, g, beta, lam)


@pytest.mark.gpu
@needs_cuda
def test_wide_heads_on_cuda_match_the_reference():
    from linmem.kernels import ccq_gated_delta_rule
    from linmem.kernels.ccq.naive import naive_ccq_gated_delta_rule

    xs = _wide_inputs("cuda")
    out, _ = ccq_gated_delta_rule(*xs)
    ref, _ = naive_ccq_gated_delta_rule(*[x.double() for x in xs])
    assert relative_rms(out, ref) <= 1e-4


@cpu_only
def test_backward_reuses_the_forward_statistics(monkeypatch):
    """The backward reads the forward's saved chunk-start M (transposed, for q's gradient) instead of running the
    forward recurrence again: one recurrence launch per direction, the forward chunk kernel twice (q̃, then Mᵀ du)."""
    from linmem.kernels.ccq import triton_stats

    launches = {}

    class Counted:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid):
            launches[self.name] = launches.get(self.name, 0) + 1
            return self.kernel[grid]

    for name in ("ccq_stats_fwd_state_kernel", "ccq_stats_fwd_chunk_kernel", "ccq_stats_bwd_state_kernel",
                 "ccq_stats_bwd_chunk_kernel"):
        monkeypatch.setattr(triton_stats, name, Counted(name, getattr(triton_stats, name)))
    check(1, 20, 1, 16, 16, None, True, False, False, torch.float32, "cpu", 1e-4, 1e-3)
    assert launches == {"ccq_stats_fwd_state_kernel": 1, "ccq_stats_fwd_chunk_kernel": 2,
                        "ccq_stats_bwd_state_kernel": 1, "ccq_stats_bwd_chunk_kernel": 1}, launches
