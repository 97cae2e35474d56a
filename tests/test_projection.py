"""Fused input projections (linmem/modeling/projection.py): one matmul gives what the separate nn.Linear calls give,
outputs and every gradient, for every variant; modules that are not plain nn.Linear (LoRA, hooks) are never fused."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from linmem import LORA_TARGET_MODULES
from linmem.kernels import relative_rms
from linmem.modeling import projection
from linmem.modeling.projection import project

from .variants import VARIANTS, loss_and_grads, make_model


def _linears(seed: int = 0) -> list[nn.Linear]:
    torch.manual_seed(seed)
    return [nn.Linear(12, 7, bias=True), nn.Linear(12, 3, bias=False), nn.Linear(12, 5, bias=True)]


def _outputs_and_grads(linears, x, fused: bool, monkeypatch):
    monkeypatch.setenv("LINMEM_FUSED_PROJECTIONS", str(int(fused)))
    for p in [x, *(p for m in linears for p in m.parameters())]:
        p.grad = None
    outs = project(x, *linears)
    sum(((o * torch.linspace(-1, 1, o.shape[-1])) ** 2).sum() for o in outs).backward()
    grads = [x.grad.clone()] + [p.grad.clone() for m in linears for p in m.parameters()]
    return [o.detach() for o in outs], grads


def test_fused_equals_separate(monkeypatch):
    linears = _linears()
    x = torch.randn(2, 5, 12, requires_grad=True)
    outs, grads = _outputs_and_grads(linears, x, False, monkeypatch)
    fused_outs, fused_grads = _outputs_and_grads(linears, x, True, monkeypatch)
    assert [o.shape for o in fused_outs] == [(2, 5, 7), (2, 5, 3), (2, 5, 5)]
    assert not fused_outs[1].is_contiguous()  # a column view of the one matmul's result: it really was fused
    for a, b in zip(fused_outs + fused_grads, outs + grads):
        assert relative_rms(a, b) <= 1e-6


def test_off_by_default_and_not_fused_around_hooks_or_subclasses(monkeypatch):
    assert projection.FUSED_PROJECTIONS is False
    x = torch.randn(3, 12)
    linears = _linears()
    assert all(o.is_contiguous() for o in project(x, *linears))  # separate calls
    monkeypatch.setenv("LINMEM_FUSED_PROJECTIONS", "1")
    calls = []
    linears[1].register_forward_hook(lambda *args: calls.append(1))
    project(x, *linears)
    assert calls == [1]  # the hooked module ran its own forward

    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    torch.manual_seed(0)
    scaled = Scaled(12, 4)
    out = project(x, _linears()[0], scaled)[1]
    assert torch.allclose(out, 2 * nn.functional.linear(x, scaled.weight, scaled.bias))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_trains_the_same_fused(name, monkeypatch):
    """Loss and every parameter gradient of a tiny model (float64, PyTorch path) fused and not."""
    model = make_model(name).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    results = []
    for fused in (False, True):
        monkeypatch.setenv("LINMEM_FUSED_PROJECTIONS", str(int(fused)))
        out, grads = loss_and_grads(model, ids)
        results.append((out.loss.detach(), grads))
    (loss, grads), (fused_loss, fused_grads) = results
    assert torch.allclose(fused_loss, loss, rtol=1e-12)
    assert fused_grads.keys() == grads.keys()
    for n, g in grads.items():
        assert relative_rms(fused_grads[n], g) <= 1e-10, n


def test_lora_layers_are_not_bypassed(monkeypatch):
    """With LoRA on the projections, fusing is skipped: the output with the switch on equals the output with it
    off, and both differ from the base model's once the adapters are non-zero."""
    base = make_model("ccq-gdn")
    ids = torch.randint(3, base.config.vocab_size, (1, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = base(ids).logits
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=LORA_TARGET_MODULES))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
        monkeypatch.setenv("LINMEM_FUSED_PROJECTIONS", "0")
        separate = model(ids).logits
        monkeypatch.setenv("LINMEM_FUSED_PROJECTIONS", "1")
        switched_on = model(ids).logits
    assert torch.equal(switched_on, separate)
    assert relative_rms(separate, plain) > 1e-3


@pytest.mark.parametrize("name", ["ccq-gdn", "ccq-gla"])
def test_triton_path_takes_the_column_views(name, monkeypatch):
    """On the Triton kernels (the interpreter here) the fused outputs, column views, reach the short convolution
    and the norms: the same loss and gradients as separate projections, float32."""
    model = make_model(name, dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    results = []
    for fused in (False, True):
        monkeypatch.setenv("LINMEM_FUSED_PROJECTIONS", str(int(fused)))
        out, grads = loss_and_grads(model, ids, backend="triton")
        results.append((out.loss.detach(), list(grads.values())))
    (loss, grads), (fused_loss, fused_grads) = results
    assert torch.allclose(fused_loss, loss, rtol=1e-5)
    for g, fg in zip(grads, fused_grads):  # float32 sums in another order: 1.2e-5 seen on a 2-element gradient
        assert relative_rms(fg, g) <= 1e-4
