"""Triton Q-Delta kernels (the GDN kernels with the probe x = k + lam q) vs the float64 naive recurrence.

CPU (TRITON_INTERPRET=1, fp32, tiny shapes): rrms <= 1e-4 outputs/states, <= 1e-3 gradients (q, k, v, g,
beta, lam, initial_state); lam = 0 equals the GDN kernel; outputs do not depend on the chunk size
(16/32/64); prefill equals token-by-token decode with the lambda-aware step kernel. Buffers are
NaN-poisoned (tests/conftest.py). GPU (marked): bf16 at real sizes, rrms <= 5e-3 / 1e-2.
"""

import os

import torch

INTERPRET = not torch.cuda.is_available()
if INTERPRET:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from linmem.kernels.qdelta.naive import naive_qdelta_rule  # noqa: E402
from linmem.kernels.qdelta.triton_chunk import triton_qdelta_rule  # noqa: E402
from linmem.kernels.qdelta.triton_step import triton_qdelta_rule_step  # noqa: E402
from linmem.kernels.utils import relative_rms  # noqa: E402
from tests.test_kernels_triton_gdn import (  # noqa: E402,F401
    compare, cpu_only, gpu, make_inputs, needs_cuda, triton_gated_delta_rule,
)

GATES = ("q", "k", "v", "g", "beta", "lam")
NAMES = GATES + ("initial_state",)


@pytest.fixture(params=[False, True], ids=["probe-formed", "probe-stored"])
def probe(request, monkeypatch):
    """Both ways of reading the probe rows in wy_wu and the backward's gates kernel (STORE_PROBE)."""
    monkeypatch.setenv("LINMEM_QDELTA_STORE_PROBE", str(int(request.param)))
    return request.param


@cpu_only
@pytest.mark.parametrize("batch,seq_len,heads,dk,dv,chunk", [
    (2, 1, 1, 16, 16, 16), (1, 17, 2, 20, 24, 16), (1, 70, 2, 16, 24, 32),
])
def test_chunk_matches_naive(probe, batch, seq_len, heads, dk, dv, chunk):
    x = make_inputs(batch, seq_len, heads, dk, dv, seed=10 + seq_len, with_lam=True)
    compare(triton_qdelta_rule, naive_qdelta_rule, x, NAMES, chunk_size=chunk)


@cpu_only
def test_varlen_matches_naive(probe):
    cu = torch.tensor([0, 9, 9, 26, 27, 45], dtype=torch.int32)
    x = make_inputs(1, 45, 2, 20, 16, n_states=5, seed=11, with_lam=True)
    compare(triton_qdelta_rule, naive_qdelta_rule, x, NAMES, cu_seqlens=cu, chunk_size=16)


@cpu_only
def test_the_stored_probe_is_k_plus_lam_q(monkeypatch):
    """With STORE_PROBE the forward keeps X = k + lam q (what wy_wu and the gates kernel then read; the comparisons
    with the naive recurrence above check that they do); without it nothing is stored."""
    from linmem.kernels.gated_delta_rule import triton_chunk
    from linmem.kernels.triton_layout import ChunkLayout

    x = {n: t.detach() for n, t in make_inputs(1, 37, 2, 16, 16, seed=14, with_lam=True).items()}
    layout = ChunkLayout(1, 37, None, 16)
    for stored in (False, True):
        monkeypatch.setenv("LINMEM_QDELTA_STORE_PROBE", str(int(stored)))
        *_, saved = triton_chunk._forward(*(x[n] for n in GATES), 16 ** -0.5, None, False, layout)
        if stored:
            expected = x["k"] + x["lam"][..., None] * x["q"]
            assert relative_rms(saved[-1], expected) <= 1e-6
        else:
            assert saved[-1] is None


@cpu_only
def test_lam_zero_equals_gdn_kernel():
    x = {n: t.detach() for n, t in make_inputs(1, 40, 2, 16, 16, seed=12, with_lam=True).items()}
    zero = torch.zeros_like(x["lam"])
    o, s = triton_qdelta_rule(*(x[n] for n in GATES[:5]), zero, initial_state=x["initial_state"],
                              output_final_state=True, chunk_size=16)
    og, sg = triton_gated_delta_rule(*(x[n] for n in GATES[:5]), initial_state=x["initial_state"],
                                     output_final_state=True, chunk_size=16)
    assert relative_rms(o, og) <= 1e-6 and relative_rms(s, sg) <= 1e-6


@cpu_only
def test_chunk_size_independent_and_prefill_equals_decode():
    x = {n: t.detach() for n, t in make_inputs(1, 70, 1, 16, 16, seed=13, with_lam=True).items()}
    x["lam"] = 0.3 + 0.5 * x["lam"]  # large enough that the transposed construction would be off by %
    outs = [triton_qdelta_rule(*(x[n] for n in GATES), initial_state=x["initial_state"], output_final_state=True,
                               chunk_size=c) for c in (16, 32, 64)]
    for o, s in outs[1:]:
        assert relative_rms(o, outs[0][0]) <= 1e-5 and relative_rms(s, outs[0][1]) <= 1e-5
    state = x["initial_state"].clone()
    steps = [triton_qdelta_rule_step(*(x[n][:, t:t + 1] for n in GATES), initial_state=state,
                                     output_final_state=True)[0] for t in range(70)]
    assert relative_rms(torch.cat(steps, 1), outs[0][0]) <= 1e-5
    assert relative_rms(state, outs[0][1]) <= 1e-5


@gpu
@needs_cuda
@pytest.mark.parametrize("batch,seq_len,heads,dk,dv", [
    (1, 8192, 4, 128, 128), (1, 1024, 2, 256, 256), (1, 1500, 2, 100, 100), (2, 2048, 4, 64, 64),
])
def test_gpu_chunk_bf16(probe, batch, seq_len, heads, dk, dv):
    x = make_inputs(batch, seq_len, heads, dk, dv, dtype=torch.bfloat16, device="cuda", seed=seq_len,
                    with_lam=True)
    compare(triton_qdelta_rule, naive_qdelta_rule, x, NAMES, tol_o=5e-3, tol_g=1e-2)


@gpu
@needs_cuda
def test_gpu_varlen_bf16(probe):
    cu = torch.tensor([0, 700, 701, 1901, 1901, 3000, 3333, 5000], dtype=torch.int32, device="cuda")
    x = make_inputs(1, 5000, 2, 100, 100, n_states=7, dtype=torch.bfloat16, device="cuda", seed=8, with_lam=True)
    compare(triton_qdelta_rule, naive_qdelta_rule, x, NAMES, cu_seqlens=cu, tol_o=5e-3, tol_g=1e-2)


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype,tol_o,tol_g", [(torch.float32, 1e-4, 1e-3), (torch.float16, 5e-3, 1e-2)])
def test_gpu_chunk_fp32_fp16(probe, dtype, tol_o, tol_g):
    x = make_inputs(1, 1000, 2, 128, 128, dtype=dtype, device="cuda", seed=11, with_lam=True)
    compare(triton_qdelta_rule, naive_qdelta_rule, x, NAMES, tol_o=tol_o, tol_g=tol_g)


@gpu
@needs_cuda
def test_gpu_decode_step_matches_chunk_bf16():
    """The λ-aware step kernel, token by token, == the chunk kernel (what generate() relies on)."""
    x = {n: t.detach() for n, t in make_inputs(2, 64, 4, 128, 128, dtype=torch.bfloat16, device="cuda",
                                               seed=12, with_lam=True).items()}
    o, s = triton_qdelta_rule(*(x[n] for n in GATES), initial_state=x["initial_state"], output_final_state=True)
    state = x["initial_state"].clone()
    steps = [triton_qdelta_rule_step(*(x[n][:, t:t + 1] for n in GATES), initial_state=state,
                                     output_final_state=True)[0] for t in range(64)]
    assert relative_rms(torch.cat(steps, 1), o) <= 5e-3 and relative_rms(state, s) <= 5e-3
