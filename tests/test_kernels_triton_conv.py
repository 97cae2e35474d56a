"""Triton short convolution (forward, backward, varlen, final state) vs the float64 per-token reference.

CPU: under TRITON_INTERPRET=1 on tiny shapes, fp32 (rrms <= 1e-5) and fp16 (outputs <= 5e-3, gradients <= 1e-2);
buffers from torch.empty come back NaN-poisoned (tests/conftest.py). GPU (marked `gpu`): a training-size bf16
case (outputs <= 5e-3, gradients <= 1e-2) and the op dispatching to Triton on CUDA.
"""

import os

import torch

INTERPRET = not torch.cuda.is_available()
if INTERPRET:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from linmem.kernels import causal_conv1d, naive_causal_conv1d, relative_rms, use_backend  # noqa: E402
from linmem.kernels.conv.triton_conv import triton_causal_conv1d  # noqa: E402

DEVICE = "cpu" if INTERPRET else "cuda"


def _inputs(B, T, D, W, *, n_states, with_bias, dtype, seed):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    x, w = rand(B, T, D), rand(D, W) * 0.5
    return {"x": x, "weight": w, "bias": rand(D) if with_bias else None,
            "initial_state": rand(n_states, D, W - 1) if n_states else None}


def _run(fn, inputs, dtype, activation, cu_seqlens, seed=7, state_grad=True):
    """(y, final state, grads of every input given) of fn with a random output and final-state gradient."""
    leaves = {n: t.detach().to(DEVICE, dtype).requires_grad_(state_grad or n != "initial_state")
              for n, t in inputs.items() if t is not None}
    leaves.update({n: None for n, t in inputs.items() if t is None})
    y, final = fn(leaves["x"], leaves["weight"], leaves["bias"], activation=activation,
                  initial_state=leaves["initial_state"], output_final_state=True, cu_seqlens=cu_seqlens)
    gen = torch.Generator().manual_seed(seed)
    dy = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(DEVICE, y.dtype)
    dfinal = torch.randn(final.shape, generator=gen, dtype=torch.float64).to(DEVICE, final.dtype)
    ((y.float() * dy.float()).sum() + (final.float() * dfinal.float()).sum()).backward()
    return y, final, {n: t.grad for n, t in leaves.items() if t is not None and t.requires_grad}


def _compare(inputs, activation, cu_seqlens=None, dtype=torch.float32, tol_o=1e-5, tol_g=1e-5, state_grad=True):
    """Triton in `dtype` against the per-token reference in float64, both on DEVICE (the same inputs)."""
    y, final, grads = _run(triton_causal_conv1d, inputs, dtype, activation, cu_seqlens, state_grad=state_grad)
    ry, rfinal, rgrads = _run(naive_causal_conv1d, inputs, torch.float64, activation, cu_seqlens,
                              state_grad=state_grad)
    assert y.dtype == dtype and final.dtype == dtype
    assert relative_rms(y, ry) <= tol_o, f"y: {relative_rms(y, ry):.2e}"
    assert relative_rms(final, rfinal) <= tol_o
    for name, g in grads.items():
        err = relative_rms(g, rgrads[name])
        assert torch.isfinite(g).all() and err <= tol_g, f"d{name}: {err:.2e}"


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
@pytest.mark.parametrize("W", [2, 4])
@pytest.mark.parametrize("with_bias,activation,with_state", [(False, None, False), (True, "silu", True),
                                                              (False, "silu", True)])
def test_dense_matches_naive(W, with_bias, activation, with_state):
    """B 2, T 37 (row tiles of 32 straddle the batch rows), D 150 (two channel tiles, the second partial)."""
    x = _inputs(2, 37, 150, W, n_states=2 if with_state else 0, with_bias=with_bias, dtype=torch.float32, seed=W)
    _compare(x, activation)


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
@pytest.mark.parametrize("with_state", [False, True])
def test_varlen_matches_naive(with_state):
    """Five sequences, one empty and two shorter than the window: history and final state from initial_state."""
    cu = torch.tensor([0, 2, 2, 19, 20, 45], dtype=torch.int32)
    x = _inputs(1, 45, 20, 4, n_states=5 if with_state else 0, with_bias=True, dtype=torch.float32, seed=3)
    _compare(x, "silu", cu_seqlens=cu)


@pytest.fixture
def fused_backward_only(monkeypatch):
    """LINMEM_CONV_FUSED_BWD=1, and the two-kernel backward's kernel removed, so a test cannot pass through it."""
    from linmem.kernels.conv import triton_conv
    monkeypatch.setenv("LINMEM_CONV_FUSED_BWD", "1")
    monkeypatch.setattr(triton_conv, "causal_conv1d_bwd_kernel", None)


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
@pytest.mark.parametrize("W", [2, 4])
@pytest.mark.parametrize("with_bias,activation", [(False, None), (True, "silu")])
def test_fused_backward_matches_naive(fused_backward_only, W, with_bias, activation):
    """The one-kernel backward (FUSED_BACKWARD): dense B 2, T 37, D 150 with a history that needs no gradient; varlen
    with five sequences (one empty, two shorter than the window); fp16."""
    x = _inputs(2, 37, 150, W, n_states=2, with_bias=with_bias, dtype=torch.float32, seed=W)
    _compare(x, activation, state_grad=False)
    _compare({**x, "initial_state": None}, activation)
    cu = torch.tensor([0, 2, 2, 19, 20, 45], dtype=torch.int32)
    x = _inputs(1, 45, 20, W, n_states=5, with_bias=with_bias, dtype=torch.float32, seed=3)
    _compare(x, activation, cu_seqlens=cu, state_grad=False)
    x = _inputs(2, 33, 40, W, n_states=0, with_bias=with_bias, dtype=torch.float16, seed=5)
    _compare(x, activation, dtype=torch.float16, tol_o=5e-3, tol_g=1e-2)


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
def test_fused_backward_switch(monkeypatch):
    """Off by default; with the switch on, a history that needs a gradient still takes the two-kernel backward
    (dh0 reads dpre), so its gradients stay right."""
    from linmem.kernels.conv import triton_conv
    assert triton_conv.FUSED_BACKWARD is False
    monkeypatch.setenv("LINMEM_CONV_FUSED_BWD", "1")
    x = _inputs(2, 37, 30, 4, n_states=2, with_bias=True, dtype=torch.float32, seed=9)
    _compare(x, "silu")
    monkeypatch.delenv("LINMEM_CONV_FUSED_BWD")
    monkeypatch.setattr(triton_conv, "causal_conv1d_bwd_fused_kernel", None)  # the default never reaches it
    _compare({**x, "initial_state": None}, "silu")


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
def test_fp16_and_the_op_dispatch():
    x = _inputs(2, 33, 40, 4, n_states=2, with_bias=True, dtype=torch.float16, seed=5)
    _compare(x, "silu", dtype=torch.float16, tol_o=5e-3, tol_g=1e-2)
    xs = torch.randn(1, 9, 8)
    w = torch.randn(8, 4)
    with use_backend("triton"):
        y, _ = causal_conv1d(xs, w, activation="silu")
    assert relative_rms(y, naive_causal_conv1d(xs.double(), w.double(), activation="silu")[0]) <= 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(INTERPRET, reason="needs CUDA")
@pytest.mark.parametrize("varlen", [False, True])
@pytest.mark.parametrize("fused_backward", [False, True])
def test_gpu_bf16(varlen, fused_backward, monkeypatch):
    """A 340M layer's value conv (D 1024) over 4K tokens in bf16, dense and as 5 ragged sequences; the two-kernel
    and the fused backward (the history then needs no gradient, as in training)."""
    if fused_backward:
        from linmem.kernels.conv import triton_conv
        monkeypatch.setenv("LINMEM_CONV_FUSED_BWD", "1")
        monkeypatch.setattr(triton_conv, "causal_conv1d_bwd_kernel", None)
    cu = torch.tensor([0, 1, 700, 703, 2900, 4096], dtype=torch.int32, device="cuda") if varlen else None
    x = _inputs(1 if varlen else 2, 4096 if varlen else 2048, 1024, 4, n_states=5 if varlen else 2,
                with_bias=False, dtype=torch.bfloat16, seed=11)
    _compare(x, "silu", cu_seqlens=cu, dtype=torch.bfloat16, tol_o=5e-3, tol_g=1e-2, state_grad=not fused_backward)
    y, _ = causal_conv1d(x["x"].to("cuda", torch.bfloat16), x["weight"].to("cuda", torch.bfloat16), activation="silu")
    assert y.is_cuda and torch.isfinite(y).all()
