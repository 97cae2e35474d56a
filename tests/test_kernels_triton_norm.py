"""Triton RMSNorm and gated RMSNorm (linmem.kernels.norm) against the float64 PyTorch path.

CPU: under TRITON_INTERPRET=1 on small shapes: rows not a multiple of the kernel's row block, a width that is not a
power of two, fp32 (rrms <= 1e-5) and bf16 (outputs <= 5e-3, gradients <= 1e-2), every gradient (x, weight, gate);
buffers from torch.empty come back NaN-poisoned (tests/conftest.py). The op's switch (FUSED_NORM /
LINMEM_FUSED_NORM), the modules that use it, and the mixers' q/k l2 norm on the same kernels. GPU (marked `gpu`):
a training-size bf16 case.
"""

import os

import torch

INTERPRET = not torch.cuda.is_available()
if INTERPRET:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from linmem.kernels import relative_rms, use_backend  # noqa: E402
from linmem.kernels.norm import rms_norm  # noqa: E402
from linmem.kernels.norm.triton_norm import triton_rms_norm  # noqa: E402

DEVICE = "cpu" if INTERPRET else "cuda"


def _inputs(shape, gated: bool, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 3
    weight = 1 + 0.2 * torch.randn(shape[-1], generator=gen, dtype=torch.float64)
    gate = torch.randn(*shape, generator=gen, dtype=torch.float64) if gated else None
    return {"x": x, "weight": weight, "gate": gate}


def _run(fn, inputs: dict, dtype: torch.dtype, weight_dtype: torch.dtype, eps: float = 1e-6):
    """(y, grads by name) of fn with a random output gradient; the weight in weight_dtype (a model's .to())."""
    leaves = {n: (t.to(DEVICE, weight_dtype if n == "weight" else dtype).requires_grad_(True) if t is not None
                  else None) for n, t in inputs.items()}
    y = fn(leaves["x"], leaves["weight"], eps, leaves["gate"])
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(DEVICE, y.dtype)
    (y.double() * dy.double()).sum().backward()
    return y, {n: t.grad for n, t in leaves.items() if t is not None}


def _compare(shape, gated, dtype, weight_dtype, tol_o, tol_g):
    inputs = _inputs(shape, gated)
    y, grads = _run(triton_rms_norm, inputs, dtype, weight_dtype)
    with use_backend("torch"):
        ry, rgrads = _run(rms_norm, inputs, torch.float64, torch.float64)
    assert y.dtype == dtype and y.shape == ry.shape
    assert relative_rms(y, ry) <= tol_o, f"y: {relative_rms(y, ry):.2e}"
    for name, g in grads.items():
        assert g.dtype == (weight_dtype if name == "weight" else dtype)
        err = relative_rms(g, rgrads[name])
        assert torch.isfinite(g).all() and err <= tol_g, f"d{name}: {err:.2e}"


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("shape", [(2, 13, 48), (3, 7, 2, 100)], ids=["rows26-d48", "rows42-d100"])
def test_triton_rms_norm_fp32(shape, gated):
    _compare(shape, gated, torch.float32, torch.float32, 1e-5, 1e-5)


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
@pytest.mark.parametrize("gated", [False, True])
def test_triton_rms_norm_bf16_with_bf16_weight(gated):
    _compare((2, 19, 64), gated, torch.bfloat16, torch.bfloat16, 5e-3, 1e-2)


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
def test_the_switch_sends_the_modules_to_the_kernels(monkeypatch):
    """With LINMEM_FUSED_NORM=1 and the Triton backend, RMSNorm and GatedRMSNorm run the fused kernels and give the
    PyTorch path's outputs; LINMEM_FUSED_NORM=0 keeps the PyTorch path; bad shapes are named."""
    from linmem.kernels.norm import triton_norm
    from linmem.modeling.layers import GatedRMSNorm, RMSNorm

    calls = []
    original = triton_norm.RMSNormFunction.apply
    monkeypatch.setattr(triton_norm.RMSNormFunction, "apply", lambda *a: calls.append(1) or original(*a))
    norm, gated = RMSNorm(40, eps=1e-5), GatedRMSNorm(40, eps=1e-5)
    x, gate = torch.randn(2, 5, 40), torch.randn(2, 5, 40)
    with use_backend("torch"):
        expected = norm(x), gated(x, gate)
    monkeypatch.setenv("LINMEM_FUSED_NORM", "0")
    with use_backend("triton"):
        norm(x)
    assert not calls
    monkeypatch.setenv("LINMEM_FUSED_NORM", "1")
    with use_backend("triton"):
        got = norm(x), gated(x, gate)
        with pytest.raises(ValueError, match=r"gate: expected shape x's shape = \[2, 5, 40\], got \[2, 5, 39\]"):
            gated(x, gate[..., :39])
    assert len(calls) == 2
    for a, b in zip(got, expected):
        assert relative_rms(a, b) <= 1e-6


@pytest.mark.skipif(not INTERPRET, reason="interpreter tests run on CPU")
def test_l2_norm_on_the_kernels_equals_l2norm(monkeypatch):
    """The mixers' q/k norm through the fused kernels (constant weight, no weight gradient) against
    linmem.kernels.utils.l2norm in float64, output and input gradient."""
    from linmem.kernels.norm import l2_norm
    from linmem.kernels.utils import l2norm

    x64 = torch.randn(2, 9, 3, 40, dtype=torch.float64)
    x = x64.float().requires_grad_(True)
    monkeypatch.setenv("LINMEM_FUSED_NORM", "1")
    with use_backend("triton"):
        y = l2_norm(x)
    ref = x64.clone().requires_grad_(True)
    ry = l2norm(ref)
    dy = torch.randn(y.shape, dtype=torch.float64)
    (y.double() * dy).sum().backward()
    (ry * dy).sum().backward()
    assert relative_rms(y, ry) <= 1e-5 and relative_rms(x.grad, ref.grad) <= 1e-5
    monkeypatch.setenv("LINMEM_FUSED_NORM", "0")  # the PyTorch path is l2norm's computation, bit for bit
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        assert torch.equal(l2_norm(x64.to(dtype)), l2norm(x64.to(dtype)))


@pytest.mark.gpu
@pytest.mark.skipif(INTERPRET, reason="needs CUDA")
@pytest.mark.parametrize("gated,shape", [(False, (4, 4096, 1024)), (True, (4, 4096, 4, 256))])
def test_triton_rms_norm_gpu_bf16(gated, shape):
    """The 340M model's block norm and its mixers' gated output norm, bf16 activations and weights."""
    _compare(shape, gated, torch.bfloat16, torch.bfloat16, 5e-3, 1e-2)
