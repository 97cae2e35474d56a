"""linear_cross_entropy (the LM head fused into the causal-LM loss) against Transformers' ForCausalLMLoss on the full
logits: loss, d hidden and d weight, with ignored labels, num_items_in_batch, both backends (PyTorch in float64; the
Triton kernel under the interpreter in float32 and bf16, its per-row loss buffer NaN-poisoned); the model switch
`fuse_linear_cross_entropy` for every variant. GPU (marked `gpu`): a 340M model's head at 8K tokens in bf16."""

from __future__ import annotations

import pytest
import torch
from transformers.loss.loss_utils import ForCausalLMLoss

from linmem.kernels import relative_rms, use_backend
from linmem.kernels.loss import linear_cross_entropy
from linmem.kernels import backend

from .variants import VARIANTS, loss_and_grads, make_model


def _inputs(dtype, B=2, T=13, H=24, V=300, seed=0):
    """hidden, weight (requiring gradients) and labels with ignored positions; logits of standard deviation ~1.5."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=gen, dtype=torch.float64)
    weight = torch.randn(V, H, generator=gen, dtype=torch.float64) * (1.5 / H ** 0.5)
    labels = torch.randint(0, V, (B, T), generator=gen)
    labels[0, :4] = -100
    labels[1, -3:] = -100
    return hidden.to(dtype).requires_grad_(), weight.to(dtype).requires_grad_(), labels


def _reference(hidden, weight, labels, num_items_in_batch=None):
    """Hugging Face's ForCausalLMLoss on the full logits, in float64 (it casts logits to float32 itself, so the
    same computation is spelled out here: labels shifted left, -100 ignored, mean or sum / num_items_in_batch)."""
    h, w = hidden.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:].reshape(-1)
    logits = (h @ w.t()).reshape(-1, w.shape[0])
    if num_items_in_batch is None:
        loss = torch.nn.functional.cross_entropy(logits, shifted, ignore_index=-100)
    else:
        loss = torch.nn.functional.cross_entropy(logits, shifted, ignore_index=-100, reduction="sum")
        loss = loss / num_items_in_batch
    loss.backward()
    return loss.detach(), h.grad, w.grad


def test_the_reference_is_transformers_loss():
    hidden, weight, labels = _inputs(torch.float32)
    for kwargs in ({}, {"num_items_in_batch": 40}):
        hf = ForCausalLMLoss(hidden.detach() @ weight.detach().t(), labels, vocab_size=weight.shape[0], **kwargs)
        assert relative_rms(hf, _reference(hidden, weight, labels, **kwargs)[0]) <= 1e-6


def _fused(hidden, weight, labels, **kwargs):
    hidden.grad = weight.grad = None
    loss = linear_cross_entropy(hidden, weight, labels, **kwargs)
    (2.5 * loss).backward()  # an incoming gradient other than 1
    return loss.detach(), hidden.grad / 2.5, weight.grad / 2.5


@pytest.mark.parametrize("kwargs", [{}, {"num_items_in_batch": 40}])
def test_pytorch_path_equals_transformers_loss_in_float64(kwargs):
    hidden, weight, labels = _inputs(torch.float64)
    with use_backend("torch"):
        got = _fused(hidden, weight, labels, **kwargs)
    for a, b in zip(got, _reference(hidden, weight, labels, **kwargs)):
        assert relative_rms(a, b) <= 1e-12


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_triton_kernel_matches_in_float32_and_bf16(dtype, tol, monkeypatch):
    """V 300 against a 128-wide vocabulary block: the online max/sum over several blocks, the last one partial."""
    from linmem.kernels.loss import triton_ce

    monkeypatch.setattr(triton_ce, "BLOCK_V", 128)
    hidden, weight, labels = _inputs(dtype)
    calls = []
    real = triton_ce.triton_ce_loss_and_grad_
    monkeypatch.setattr(triton_ce, "triton_ce_loss_and_grad_", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(backend, "_triton_functions", backend._FoundTritonFunctions())  # look the patched one up
    with use_backend("triton"):
        got = _fused(hidden, weight, labels)
    assert calls == [1]  # the kernel ran
    for a, b in zip(got, _reference(hidden, weight, labels)):
        assert torch.isfinite(a).all() and relative_rms(a, b) <= tol


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_a_label_outside_the_vocabulary_gives_nan_and_bad_shapes_are_named(backend):
    hidden, weight, labels = _inputs(torch.float32)
    labels[1, 5] = weight.shape[0]
    with use_backend(backend):
        assert torch.isnan(linear_cross_entropy(hidden, weight, labels))
    with pytest.raises(ValueError, match=r"labels \[B, T\] expected, got \(2, 13, 24\) and \(2, 12\)"):
        linear_cross_entropy(hidden, weight, labels[:, :12])
    with pytest.raises(ValueError, match=r"weight \[V, 24\] expected"):
        linear_cross_entropy(hidden, weight[:, :5], labels)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_model_switch_gives_the_same_loss_and_gradients(name):
    """fuse_linear_cross_entropy=True: in training the same loss and parameter gradients as the logits path, no
    logits; without labels, or in eval mode, the logits are there as usual. float32: Transformers' loss casts the
    logits to float32 itself."""
    model = make_model(name, dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[0, :3] = -100
    results = []
    for fused in (False, True):
        model.config.fuse_linear_cross_entropy = fused
        out, grads = loss_and_grads(model, ids, labels)
        assert (out.logits is None) == fused
        results.append((out.loss.detach(), grads))
    (loss, grads), (fused_loss, fused_grads) = results
    assert torch.allclose(fused_loss, loss, rtol=1e-6) and fused_grads.keys() == grads.keys()
    for n, g in grads.items():  # float32 sums in another order: 1.3e-5 seen on gradients of size 1e-9
        assert relative_rms(fused_grads[n], g) <= 1e-4, n
    assert model(ids).logits.shape == (2, 11, model.config.vocab_size)
    model.eval()  # evaluation keeps its logits (metrics need them), with the same loss
    with torch.no_grad():
        out = model(ids, labels=labels)
    assert out.logits.shape == (2, 11, model.config.vocab_size) and torch.allclose(out.loss, loss, rtol=1e-6)


def test_a_frozen_head_gets_no_gradient():
    hidden, weight, labels = _inputs(torch.float64)
    weight.requires_grad_(False)
    linear_cross_entropy(hidden, weight, labels).backward()
    assert weight.grad is None and relative_rms(hidden.grad, _reference(hidden, weight, labels)[1]) <= 1e-12


def test_the_config_field_is_checked():
    with pytest.raises(ValueError, match="fuse_linear_cross_entropy"):
        VARIANTS["ccq-gdn"](fuse_linear_cross_entropy="yes")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_at_a_training_size():
    """B2 T4K, hidden 1024, vocabulary 32000 (the 340M model's head): loss and gradients within bf16 tolerances."""
    hidden, weight, labels = _inputs(torch.bfloat16, B=2, T=4096, H=1024, V=32000, seed=3)
    hidden = hidden.detach().cuda().requires_grad_()
    weight = weight.detach().cuda().requires_grad_()
    got = _fused(hidden, weight, labels.cuda())
    for a, b, tol in zip(got, _reference(hidden, weight, labels.cuda()), (5e-3, 1e-2, 1e-2)):
        assert torch.isfinite(a).all() and relative_rms(a, b) <= tol
