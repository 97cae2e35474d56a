"""Mixed precision the way `Trainer(bf16=True)` runs it: float32 weights under `torch.autocast(bfloat16)`.

Every variant trains a step on the CPU (PyTorch kernel path; the Triton interpreter's bf16 products are wrong, so
bf16 kernels are checked on the GPU): logits come out in bf16, every gradient is float32 and finite, the whole
gradient is close to the float32 step's (compared as one vector: parameters whose gradients are ~1e-7, e.g. the
query projection of a softmax layer with near-uniform attention, are all bf16 rounding on their own), and the gates
stay float32 (CCQ's lambda is computed with autocast off).

The Triton kernels themselves (interpreter) under fp16 autocast, whose products the interpreter computes correctly:
their gradient is no further from the float32 step's than the PyTorch path's under the same autocast (the GPU test
test_autocast_bf16_training_step_on_triton asks the same in bf16 of the compiled kernels).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from linmem.kernels import relative_rms, use_backend

from .variants import VARIANTS, make_model

# bf16 matmuls (8-bit mantissa) through two layers; measured: loss <= 3e-5, whole gradient <= 2.5e-2
LOSS_TOL, GRAD_TOL = 1e-3, 5e-2


def train_step(model, ids: torch.Tensor, autocast: bool, dtype: torch.dtype = torch.bfloat16,
               backend: str | None = None):
    """-> (output, {name: gradient}); backend None: the one in force (LINMEM_KERNEL_BACKEND or auto)."""
    model.zero_grad(set_to_none=True)
    with use_backend(backend) if backend else contextlib.nullcontext(), \
            torch.autocast("cpu", dtype=dtype, enabled=autocast):
        out = model(ids, labels=ids)
    out.loss.backward()
    return out, {n: p.grad for n, p in model.named_parameters()}


def whole_gradient(grads: dict) -> torch.Tensor:
    return torch.cat([grad.flatten() for grad in grads.values()])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_autocast_bf16_training_step(name):
    model = make_model(name, dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    ref, ref_grads = train_step(model, ids, autocast=False)
    out, grads = train_step(model, ids, autocast=True)
    assert out.logits.dtype == torch.bfloat16
    assert relative_rms(out.loss, ref.loss) <= LOSS_TOL
    for param_name, grad in grads.items():
        assert grad is not None and grad.dtype == torch.float32 and torch.isfinite(grad).all(), param_name
    assert relative_rms(whole_gradient(grads), whole_gradient(ref_grads)) <= GRAD_TOL


def test_ccq_lambda_is_float32_under_autocast():
    model = make_model("ccq-gdn", dtype=torch.float32)
    mixer = model.model.layers[0].attn
    q = torch.randn(2, 5, mixer.num_heads, mixer.head_k_dim)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lam = mixer.ccq_lambda(q)
    assert lam.dtype == torch.float32 and torch.equal(lam, mixer.ccq_lambda(q))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU test (Triton interpreter); GPU: test_model_gpu")
@pytest.mark.parametrize("name", ["ccq-gla", "ccq-gdn", "qdelta"])
def test_triton_kernels_under_fp16_autocast_add_no_error(name):
    """Measured (2 x 150 tokens): CCQ-GLA 1.07e-3 (Triton) against 1.07e-3 (PyTorch path); CCQ-GDN 1.43e-3 against
    1.58e-3."""
    pytest.importorskip("triton")
    model = make_model(name, dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 150), generator=torch.Generator().manual_seed(1))

    def gradient(backend: str, autocast: bool) -> torch.Tensor:
        return whole_gradient(train_step(model, ids, autocast, torch.float16, backend)[1])

    reference = gradient("torch", autocast=False)
    triton_error = relative_rms(gradient("triton", autocast=True), reference)
    torch_error = relative_rms(gradient("torch", autocast=True), reference)
    assert 0 < triton_error <= 1.5 * torch_error, (triton_error, torch_error)
