"""Triton Gated DeltaNet kernels (chunk fwd/bwd, varlen, decode step) vs the float64 naive recurrence.

CPU: the kernels run under TRITON_INTERPRET=1 on tiny shapes (chunk 16/32/64), fp32, tolerances
rrms <= 1e-4 (outputs, states) and <= 1e-3 (gradients). Every buffer the host code allocates with
torch.empty / empty_like is poisoned with NaN first, so an element a kernel fails to write shows up.
GPU (marked `gpu`, need CUDA): real sizes in bf16, rrms <= 5e-3 (outputs) and <= 1e-2 (gradients) vs
the float64 naive recurrence run on the GPU (per token; affordable up to T = 8K).
"""

import os

import torch

INTERPRET = not torch.cuda.is_available()
if INTERPRET:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import importlib  # noqa: E402

import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from linmem.kernels.gated_delta_rule.naive import naive_gated_delta_rule  # noqa: E402
from linmem.kernels.gated_delta_rule.triton_chunk import triton_gated_delta_rule  # noqa: E402
from linmem.kernels.gated_delta_rule.triton_step import triton_gated_delta_rule_step  # noqa: E402
from linmem.kernels.gated_delta_rule.triton_wy import _inv_unit_lower  # noqa: E402
from linmem.kernels.utils import relative_rms  # noqa: E402

# (linmem.kernels binds the name gated_delta_rule to the op function, so import the module by its path)
triton_chunk = importlib.import_module("linmem.kernels.gated_delta_rule.triton_chunk")

cpu_only = pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU machines")
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
GATES = ("q", "k", "v", "g", "beta")


def make_inputs(batch, seq_len, heads, dk, dv, *, n_states=None, dtype=torch.float32, device="cpu", seed=0,
                with_lam=False):
    """Unit q, k; beta, lam in (0, 1); g = logsigmoid(.) <= 0; initial state; all requiring grad."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, device=device)

    x = {
        "q": F.normalize(rand(batch, seq_len, heads, dk), dim=-1).to(dtype),
        "k": F.normalize(rand(batch, seq_len, heads, dk), dim=-1).to(dtype),
        "v": rand(batch, seq_len, heads, dv).to(dtype),
        "g": F.logsigmoid(rand(batch, seq_len, heads) + 2.0),
        "beta": torch.sigmoid(rand(batch, seq_len, heads)),
    }
    if with_lam:
        x["lam"] = torch.sigmoid(rand(batch, seq_len, heads) - 0.5)
    x["initial_state"] = 0.5 * rand(n_states or batch, heads, dk, dv)
    for t in x.values():
        t.requires_grad_(True)
    return x


def run_fwd_bwd(fn, x, names, cu_seqlens=None, seed=1, **kw):
    """(o, final state, grads of `names`) of fn with a random cotangent on o and on the final state."""
    args = [x[n] for n in names if n != "initial_state"]
    o, s = fn(*args, initial_state=x["initial_state"], output_final_state=True, cu_seqlens=cu_seqlens, **kw)
    gen = torch.Generator(device=o.device).manual_seed(seed)
    do = torch.randn(o.shape, generator=gen, device=o.device, dtype=torch.float64)
    ds = torch.randn(s.shape, generator=gen, device=o.device, dtype=torch.float64)
    loss = (o.double() * do).sum() + (s.double() * ds).sum()
    grads = torch.autograd.grad(loss, [x[n] for n in names])
    return o, s, dict(zip(names, grads))


def compare(fn, ref, x, names, cu_seqlens=None, tol_o=1e-4, tol_g=1e-3, **kw):
    x64 = {n: t.detach().double().requires_grad_(True) for n, t in x.items()}
    o, s, grads = run_fwd_bwd(fn, x, names, cu_seqlens, **kw)
    ro, rs, rgrads = run_fwd_bwd(ref, x64, names, cu_seqlens)
    assert o.dtype == x["q"].dtype and s.dtype == torch.float32
    errors = {"o": relative_rms(o, ro), "S": relative_rms(s, rs)}
    errors.update({"d" + n: relative_rms(grads[n], rgrads[n]) for n in names})
    assert not torch.isnan(o).any() and not any(torch.isnan(g).any() for g in grads.values())
    bad = {k: v for k, v in errors.items() if v > (tol_o if k in ("o", "S") else tol_g)}
    assert not bad, f"rrms above tolerance: {bad} (all: {errors})"
    return errors


NAMES = GATES + ("initial_state",)


@cpu_only
@pytest.mark.parametrize("batch,seq_len,heads,dk,dv,chunk", [
    (2, 1, 2, 16, 16, 16), (1, 17, 2, 20, 24, 16), (2, 70, 1, 16, 24, 32), (1, 70, 1, 20, 16, 64),
    (1, 20, 1, 16, 8, 16),  # d_v below 16: the state kernels' value block is 8 (no environment override applies)
])
def test_chunk_matches_naive(batch, seq_len, heads, dk, dv, chunk):
    x = make_inputs(batch, seq_len, heads, dk, dv, seed=seq_len)
    compare(triton_gated_delta_rule, naive_gated_delta_rule, x, NAMES, chunk_size=chunk)


@cpu_only
def test_varlen_matches_naive():
    cu = torch.tensor([0, 5, 5, 21, 40, 43], dtype=torch.int32)  # 5 sequences, one empty, ragged
    x = make_inputs(1, 43, 2, 20, 24, n_states=5, seed=3)
    compare(triton_gated_delta_rule, naive_gated_delta_rule, x, NAMES, cu_seqlens=cu, chunk_size=16)


@cpu_only
@pytest.mark.parametrize("with_lam", [False, True])
@pytest.mark.parametrize("dtype,tol_o,tol_g", [(torch.float32, 1e-4, 1e-3), (torch.float16, 5e-3, 1e-2)])
def test_wy_backward_on_varlen_matches_naive(monkeypatch, with_lam, dtype, tol_o, tol_g):
    """The two-kernel WY backward on varlen inputs with an empty and a ragged sequence, GDN and Q-Delta, fp32 and
    fp16; and the environment variables that override its launch settings (read at each call)."""
    from linmem.kernels.gated_delta_rule import triton_config
    from linmem.kernels.qdelta.naive import naive_qdelta_rule
    from linmem.kernels.qdelta.triton_chunk import triton_qdelta_rule

    fn, ref, names = triton_gated_delta_rule, naive_gated_delta_rule, NAMES
    if with_lam:
        fn, ref, names = triton_qdelta_rule, naive_qdelta_rule, GATES + ("lam", "initial_state")
    default = triton_config._wy_bwd_config()
    warps = triton_config.WY_BWD_NUM_WARPS
    assert default == (warps, None, triton_config.WY_BWD_KEYS_NUM_WARPS or warps, triton_config.WY_BWD_GATES_BLOCK,
                       triton_config.WY_BWD_KEYS_BLOCK, triton_config.DQK_VALUE_BLOCK)
    cu = torch.tensor([0, 5, 5, 21, 40, 43], dtype=torch.int32)
    x = make_inputs(1, 43, 2, 20, 24, n_states=5, seed=13, dtype=dtype, with_lam=with_lam)
    compare(fn, ref, x, names, cu_seqlens=cu, chunk_size=16, tol_o=tol_o, tol_g=tol_g)
    monkeypatch.setenv("LINMEM_GDN_WY_BWD_WARPS", "4")
    monkeypatch.setenv("LINMEM_GDN_WY_BWD_MAXNREG", "255")
    monkeypatch.setattr(triton_config, "WY_BWD_KEYS_NUM_WARPS", None)
    assert triton_config._wy_bwd_config()[:3] == (4, 255, 4)
    monkeypatch.setenv("LINMEM_GDN_WY_KEYS_WARPS", "8")
    assert triton_config._wy_bwd_config()[:3] == (4, 255, 8)


@cpu_only
@pytest.mark.parametrize("with_lam", [False, True])
@pytest.mark.parametrize("blocks,forward_block,launch_env", [
    ((16, 16, 16), 16, {"LINMEM_GDN_DQK_BK": "16", "LINMEM_GDN_WU_BK": "16", "LINMEM_GDN_WU_BV": "16",
                        "LINMEM_GDN_STATE_FWD_BV": "16", "LINMEM_GDN_STATE_BWD_BV": "16",
                        "LINMEM_GDN_STATE_BWD_WARPS": "2", "LINMEM_GDN_DQK_STAGES": "2"}),
    ((32, 16, 32), 32, {})])
def test_block_widths_match_naive(monkeypatch, with_lam, blocks, forward_block, launch_env):
    """Blocks narrower than the head dims (K 40, V 24: partial last blocks) in the WY forward, the gates and keys
    kernels and output_dqk's value loop (and, through the LINMEM_GDN_* launch variables, output_dqk's key blocks,
    wy_wu's blocks and the state kernels' value blocks) give the same outputs and gradients; a block that is not a
    power of two >= 16 is refused by name."""
    from linmem.kernels.gated_delta_rule import triton_config
    from linmem.kernels.qdelta.naive import naive_qdelta_rule
    from linmem.kernels.qdelta.triton_chunk import triton_qdelta_rule

    fn, ref, names = triton_gated_delta_rule, naive_gated_delta_rule, NAMES
    if with_lam:
        fn, ref, names = triton_qdelta_rule, naive_qdelta_rule, GATES + ("lam", "initial_state")
    for variable, block in zip(("LINMEM_GDN_WY_GATES_BLOCK", "LINMEM_GDN_WY_KEYS_BLOCK", "LINMEM_GDN_DQK_BV"), blocks):
        monkeypatch.setenv(variable, str(block))
    monkeypatch.setenv("LINMEM_GDN_WY_FWD_BLOCK", str(forward_block))
    assert triton_config._wy_bwd_config()[3:] == blocks and triton_config._wy_fwd_block() == forward_block
    for variable, value in launch_env.items():
        monkeypatch.setenv(variable, value)
    if launch_env:
        assert triton_config._dqk_launch(40, 24, torch.float32)[0::3] == (16, 2)
        assert triton_config._wu_launch(40, 24, torch.float32)[:2] == (16, 16)
        assert triton_config._state_tiles(40, 24, torch.float32, 3, backward=True)[1:3] == (16, 2)
    cu = torch.tensor([0, 9, 30, 37], dtype=torch.int32)
    x = make_inputs(1, 37, 2, 40, 24, n_states=3, seed=21, with_lam=with_lam)
    compare(fn, ref, x, names, cu_seqlens=cu, chunk_size=16)
    monkeypatch.setenv("LINMEM_GDN_WY_KEYS_BLOCK", "24")
    with pytest.raises(ValueError, match="LINMEM_GDN_WY_KEYS_BLOCK: a block must be a power of two >= 16, got 24"):
        triton_config._wy_bwd_config()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_launch_tables_follow_the_documented_rules(monkeypatch, dtype):
    """The state kernels' blocks, warps and stages (triton_config.STATE_*_LAUNCH), output_dqk's, wy_wu's and wy_A's
    launches, as their docstrings state them: shape and dtype rules a table edit must keep (fp32 tiles at depth > 1 and key
    dims above 128 at depth 3 overflowed shared memory on the H100/H200)."""
    from linmem.kernels.gated_delta_rule import triton_config as cfg

    for variable in [v for v in os.environ if v.startswith("LINMEM_GDN_")]:
        monkeypatch.delenv(variable)
    fp32 = dtype == torch.float32
    for backward, table in ((False, cfg.STATE_FWD_LAUNCH), (True, cfg.STATE_BWD_LAUNCH)):
        for n_seq_heads, block in ((128, 64), (32, 32), (16, 16), (1, 16)):  # B8/B2/B1 x H16, then one head
            warps, stages = table[block]
            assert cfg._state_tiles(128, 128, dtype, n_seq_heads, backward) == (
                128, block, warps, 1 if fp32 else stages)
        # d_v 100 rounds up to a 128-wide head; d_v 8 to one 8-wide block (below the table: the fixed warps)
        assert cfg._state_tiles(100, 100, dtype, 128, backward)[1] == 64
        assert cfg._state_tiles(16, 8, dtype, 128, backward)[1:] == (8, cfg.NUM_WARPS, 1 if fp32 else 3)
        wide = (32, cfg.NUM_WARPS, 1) if fp32 else cfg.WIDE_KEY_STATE_LAUNCH
        assert cfg._state_tiles(256, 512, dtype, 128, backward) == (256, *wide)
    assert cfg._dqk_launch(128, 128, dtype) == (cfg.DQK_KEY_BLOCK, cfg.DQK_VALUE_BLOCK, cfg.NUM_WARPS,
                                                1 if fp32 else cfg.DQK_STAGES)
    assert cfg._dqk_launch(64, 32, dtype)[:2] == (64, 32)
    assert cfg._wu_launch(256, 512, dtype) == (cfg.WU_BLOCK, cfg.WU_BLOCK, cfg.WY_FWD_NUM_WARPS, 1 if fp32 else 3)
    # wy_A: Q-Delta's (with the probe x = k + lam q) at 2 stages, GDN's at the dtype's depth; one variable for both
    assert (cfg._wy_a_stages(dtype, True), cfg._wy_a_stages(dtype, False)) == ((1, 1) if fp32 else (2, 3))
    monkeypatch.setenv("LINMEM_GDN_A_STAGES", "2")
    assert (cfg._wy_a_stages(dtype, True), cfg._wy_a_stages(dtype, False)) == (2, 2)


@triton.jit
def _invert_block(a_ptr, t_ptr, BC: tl.constexpr):
    """Test harness: one [BC, BC] block through the diagonal-block inverse of the WY forward."""
    r = tl.arange(0, BC)
    a = tl.load(a_ptr + r[:, None] * BC + r[None, :])
    tl.store(t_ptr + r[:, None] * BC + r[None, :], _inv_unit_lower(a, BC))


@cpu_only
def test_diagonal_block_inverse_is_exact_on_long_chains():
    """(I + A)^-1 by repeated squaring for a 16x16 strictly lower A whose products do not fade: A = -S (S all ones
    below the diagonal) has an inverse with entries 2^(i-j-1), so every power of A up to A^15 matters; random
    inputs with small entries cannot tell a truncated series apart (two squarings instead of three fail here)."""
    a = -torch.ones(16, 16).tril(-1)
    t = torch.full((16, 16), float("nan"))
    _invert_block[(1,)](a, t, BC=16)
    expected = torch.linalg.inv(torch.eye(16, dtype=torch.float64) + a.double())
    assert torch.equal(t.double(), expected), (t - expected).abs().max()


@cpu_only
@pytest.mark.parametrize("chunk", [16, 32, 64])
@pytest.mark.parametrize("with_lam", [False, True])
def test_wy_forward_matches_naive_at_every_chunk_size(chunk, with_lam):
    """The WY forward's three kernels (A; its diagonal blocks of BT/4 inverted by squaring, joined; W and U) at every
    chunk size, varlen with an empty sequence, fwd and all gradients, GDN and Q-Delta."""
    from linmem.kernels.qdelta.naive import naive_qdelta_rule
    from linmem.kernels.qdelta.triton_chunk import triton_qdelta_rule

    fn, ref, names = triton_gated_delta_rule, naive_gated_delta_rule, NAMES
    if with_lam:
        fn, ref, names = triton_qdelta_rule, naive_qdelta_rule, GATES + ("lam", "initial_state")
    cu = torch.tensor([0, 5, 5, 70, 83], dtype=torch.int32)
    x = make_inputs(1, 83, 2, 20, 24, n_states=4, seed=chunk, with_lam=with_lam)
    compare(fn, ref, x, names, cu_seqlens=cu, chunk_size=chunk)


@cpu_only
def test_chunk_size_independent():
    x = make_inputs(1, 70, 2, 16, 16, seed=4)
    args = [x[n].detach() for n in GATES]
    outs = [triton_gated_delta_rule(*args, initial_state=x["initial_state"].detach(), output_final_state=True,
                                    chunk_size=c) for c in (16, 32, 64)]
    for o, s in outs[1:]:
        assert relative_rms(o, outs[0][0]) <= 1e-5 and relative_rms(s, outs[0][1]) <= 1e-5


@cpu_only
def test_decode_step_matches_naive_and_updates_state_in_place():
    x = {n: t.detach() for n, t in make_inputs(2, 9, 2, 20, 24, seed=5).items()}
    ro, rs = naive_gated_delta_rule(*(x[n].double() for n in GATES), initial_state=x["initial_state"].double(),
                                    output_final_state=True)
    state = x["initial_state"].clone()
    outs = []
    for t in range(9):
        o, s = triton_gated_delta_rule_step(*(x[n][:, t:t + 1] for n in GATES), initial_state=state,
                                            output_final_state=True)
        assert s is state
        outs.append(o)
    assert relative_rms(torch.cat(outs, 1), ro) <= 1e-5
    assert relative_rms(state, rs) <= 1e-5


@gpu
@needs_cuda
@pytest.mark.parametrize("batch,seq_len,heads,dk,dv", [
    (1, 8192, 4, 128, 128), (2, 2048, 4, 64, 64), (1, 1500, 2, 100, 100), (1, 1024, 2, 256, 256),
])
def test_gpu_chunk_bf16(batch, seq_len, heads, dk, dv):
    x = make_inputs(batch, seq_len, heads, dk, dv, dtype=torch.bfloat16, device="cuda", seed=seq_len)
    compare(triton_gated_delta_rule, naive_gated_delta_rule, x, NAMES, tol_o=5e-3, tol_g=1e-2)


@gpu
@needs_cuda
def test_gpu_varlen_bf16():
    cu = torch.tensor([0, 700, 701, 1901, 1901, 3000, 3333, 5000], dtype=torch.int32, device="cuda")
    x = make_inputs(1, 5000, 2, 100, 100, n_states=7, dtype=torch.bfloat16, device="cuda", seed=7)
    compare(triton_gated_delta_rule, naive_gated_delta_rule, x, NAMES, cu_seqlens=cu, tol_o=5e-3, tol_g=1e-2)


@gpu
@needs_cuda
@pytest.mark.parametrize("with_lam", [False, True])
@pytest.mark.parametrize("dtype,tol_o,tol_g", [(torch.bfloat16, 5e-3, 1e-2), (torch.float32, 1e-4, 1e-3)])
def test_gpu_wy_forward_varlen(with_lam, dtype, tol_o, tol_g):
    """The WY forward's three kernels at real sizes, varlen, GDN and Q-Delta, bf16 and fp32."""
    from linmem.kernels.qdelta.naive import naive_qdelta_rule
    from linmem.kernels.qdelta.triton_chunk import triton_qdelta_rule

    fn, ref, names = triton_gated_delta_rule, naive_gated_delta_rule, NAMES
    if with_lam:
        fn, ref, names = triton_qdelta_rule, naive_qdelta_rule, GATES + ("lam", "initial_state")
    cu = torch.tensor([0, 700, 701, 1901, 3000, 4096], dtype=torch.int32, device="cuda")
    x = make_inputs(1, 4096, 2, 128, 128, n_states=5, dtype=dtype, device="cuda", seed=31, with_lam=with_lam)
    compare(fn, ref, x, names, cu_seqlens=cu, tol_o=tol_o, tol_g=tol_g)


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype,tol_o,tol_g", [(torch.float32, 1e-4, 1e-3), (torch.float16, 5e-3, 1e-2)])
def test_gpu_chunk_fp32_fp16(dtype, tol_o, tol_g):
    """fp32 inputs use IEEE dots (tight tolerance); fp16 the tensor-core path like bf16."""
    x = make_inputs(1, 1000, 2, 128, 128, dtype=dtype, device="cuda", seed=11)
    compare(triton_gated_delta_rule, naive_gated_delta_rule, x, NAMES, tol_o=tol_o, tol_g=tol_g)


@gpu
@needs_cuda
def test_gpu_decode_step_matches_chunk_bf16():
    x = {n: t.detach() for n, t in make_inputs(2, 64, 4, 128, 128, dtype=torch.bfloat16, device="cuda",
                                               seed=12).items()}
    o, s = triton_gated_delta_rule(*(x[n] for n in GATES), initial_state=x["initial_state"], output_final_state=True)
    state = x["initial_state"].clone()
    steps = [triton_gated_delta_rule_step(*(x[n][:, t:t + 1] for n in GATES), initial_state=state,
                                          output_final_state=True)[0] for t in range(64)]
    assert relative_rms(torch.cat(steps, 1), o) <= 5e-3 and relative_rms(state, s) <= 5e-3


@cpu_only
@pytest.mark.parametrize("center", [False, True])
def test_ccq_gdn_matches_naive(center):
    """CCQ-GDN = CCQ statistic pass (helper B1's triton_stats) + these GDN kernels, fwd and all grads."""
    from linmem.kernels.ccq.naive import naive_ccq_gated_delta_rule
    from linmem.kernels.ccq.state import CCQState

    ccq = importlib.import_module("linmem.kernels.ccq.triton_gdn")
    x = make_inputs(1, 40, 2, 16, 16, seed=20, with_lam=True)
    gen = torch.Generator().manual_seed(21)
    st = CCQState(x["initial_state"].detach(), 0.3 * torch.eye(16).expand(1, 2, 16, 16).contiguous(),
                  torch.full((1, 2), 2.0), 0.1 * torch.randn(1, 2, 16, generator=gen) if center else None)
    names = GATES + ("lam",)
    ins = [x[n] for n in names]
    ins64 = [t.detach().double().requires_grad_(True) for t in ins]
    o, s = ccq.triton_ccq_gated_delta_rule(*ins, initial_state=st, output_final_state=True, center=center,
                                           chunk_size=16)
    ro, rs = naive_ccq_gated_delta_rule(*ins64, initial_state=st.to(torch.float64), output_final_state=True,
                                        center=center)
    for a, b in [(o, ro), (s.S, rs.S), (s.M, rs.M), (s.z, rs.z)]:
        assert relative_rms(a, b) <= 1e-4
    do = torch.randn(o.shape, generator=gen)
    grads = torch.autograd.grad((o * do).sum() + s.S.sum(), ins)
    ref = torch.autograd.grad((ro * do.double()).sum() + rs.S.sum(), ins64)
    for n, a, b in zip(names, grads, ref):
        assert relative_rms(a, b) <= 1e-3, n


@cpu_only
@pytest.mark.parametrize("center", [False, True])
def test_ccq_gdn_decode_steps_match_naive_and_update_in_place(center):
    """The fused CCQ-GDN step (statistics kernel + GDN step) over 5 tokens == the naive recurrence; the
    fp32 CCQState tensors passed in are the ones updated."""
    from linmem.kernels.ccq.naive import naive_ccq_gated_delta_rule
    from linmem.kernels.ccq.state import CCQState
    from linmem.kernels.ccq.triton_step import triton_ccq_gated_delta_rule_step

    x = {n: t.detach() for n, t in make_inputs(2, 5, 2, 20, 24, seed=30, with_lam=True).items()}
    gen = torch.Generator().manual_seed(31)
    kk = F.normalize(torch.randn(2, 2, 6, 20, generator=gen), dim=-1)
    st = CCQState(x["initial_state"].clone(), torch.einsum("nhjk,nhjl->nhkl", kk, kk).contiguous(),
                  torch.rand(2, 2, generator=gen) * 3 + 1, kk.sum(2).contiguous() if center else None)
    names = GATES + ("lam",)
    ro, rs = naive_ccq_gated_delta_rule(*(x[n].double() for n in names), initial_state=st.to(torch.float64),
                                        output_final_state=True, center=center)
    mine = CCQState(*[t.clone() if t is not None else None for t in st])
    outs = []
    for t in range(5):
        o, fs = triton_ccq_gated_delta_rule_step(*(x[n][:, t:t + 1] for n in names), initial_state=mine,
                                                 output_final_state=True, center=center)
        outs.append(o)
        assert all(a.data_ptr() == b.data_ptr() for a, b in zip(fs, mine) if a is not None)
    assert relative_rms(torch.cat(outs, 1), ro) <= 1e-4
    for a, b in zip(mine, rs):
        if b is not None:
            assert relative_rms(a, b) <= 1e-4


@gpu
@needs_cuda
@pytest.mark.parametrize("center,dim", [(False, 128), (True, 128), (True, 256)])
def test_gpu_ccq_gdn_bf16(center, dim):
    """CCQ-GDN (statistic kernels + GDN kernels) at a real size, varlen, from a start state: output, final
    state and every gradient against the fp64 per-token reference. dim 256: the widest head of the Triton
    CCQ path (linmem.kernels.ccq.op.TRITON_MAX_HEAD_K_DIM)."""
    from linmem.kernels.ccq.naive import naive_ccq_gated_delta_rule
    from linmem.kernels.ccq.state import CCQState
    from linmem.kernels.ccq.triton_gdn import triton_ccq_gated_delta_rule

    cu = torch.tensor([0, 300, 301, 1100, 1100, 2048], dtype=torch.int32, device="cuda")
    x = make_inputs(1, 2048, 2, dim, dim, n_states=5, dtype=torch.bfloat16, device="cuda", seed=22, with_lam=True)
    gen = torch.Generator(device="cuda").manual_seed(23)
    kk = F.normalize(torch.randn(5, 2, 6, dim, generator=gen, device="cuda"), dim=-1)
    st = CCQState(x["initial_state"].detach().float(), torch.einsum("nhjk,nhjl->nhkl", kk, kk).contiguous(),
                  torch.rand(5, 2, generator=gen, device="cuda") * 3 + 1, kk.sum(2).contiguous() if center else None)
    names = GATES + ("lam",)
    ins = [x[n] for n in names]
    ins64 = [t.detach().double().requires_grad_(True) for t in ins]
    o, s = triton_ccq_gated_delta_rule(*ins, initial_state=st, output_final_state=True, center=center, cu_seqlens=cu)
    ro, rs = naive_ccq_gated_delta_rule(*ins64, initial_state=st.to(torch.float64), output_final_state=True,
                                        center=center, cu_seqlens=cu)
    assert o.dtype == torch.bfloat16 and relative_rms(o, ro) <= 5e-3
    for a, b in zip(s, rs):
        if b is not None:
            assert a.dtype == torch.float32 and relative_rms(a, b) <= 5e-3
    do = torch.randn(o.shape, generator=gen, device="cuda")
    grads = torch.autograd.grad((o.float() * do).sum() + s.S.sum(), ins)
    ref = torch.autograd.grad((ro * do.double()).sum() + rs.S.sum(), ins64)
    for n, a, b in zip(names, grads, ref):
        assert torch.isfinite(a).all() and relative_rms(a, b) <= 1e-2, n


@gpu
@needs_cuda
@pytest.mark.parametrize("dim", [128, 256])
def test_gpu_ccq_gdn_decode_steps_match_chunk_bf16(dim):
    from linmem.kernels.ccq.triton_gdn import triton_ccq_gated_delta_rule
    from linmem.kernels.ccq.triton_step import triton_ccq_gated_delta_rule_step

    x = {n: t.detach() for n, t in make_inputs(2, 64, 4, dim, dim, dtype=torch.bfloat16, device="cuda", seed=24,
                                               with_lam=True).items()}
    names = GATES + ("lam",)
    o, s = triton_ccq_gated_delta_rule(*(x[n] for n in names), output_final_state=True, center=True)
    state = None
    steps = []
    for t in range(64):
        out, state = triton_ccq_gated_delta_rule_step(*(x[n][:, t:t + 1] for n in names), initial_state=state,
                                                      output_final_state=True, center=True)
        steps.append(out)
    assert relative_rms(torch.cat(steps, 1), o) <= 5e-3
    for a, b in zip(state, s):
        assert relative_rms(a, b) <= 5e-3
