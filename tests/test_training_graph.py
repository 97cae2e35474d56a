"""linmem.CUDAGraphTrainingStep: forward and backward replayed as one CUDA graph train as the eager step does.

GPU (marked `gpu`): three steps on three different batches (one with ignored labels) move the weights as three eager
steps do and return the same losses; a batch of another shape and zeroed gradients are refused with clear errors.
CPU: the constructor's own checks.
"""

from __future__ import annotations

import copy

import pytest
import torch

from linmem import CUDAGraphTrainingStep
from linmem.kernels.utils import relative_rms

from .variants import make_model


def test_needs_a_cuda_model_in_training_mode():
    model = make_model("ccq-gdn", dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(ValueError, match="needs the model on a CUDA device, got cpu"):
        CUDAGraphTrainingStep(model, optimizer, batch_size=2, seq_len=16)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["ccq-gdn", "qdelta"])
def test_graphed_steps_train_as_eager_steps(name):
    """fp32 weights on the Triton kernels; fresh batches each step (the static input buffers are refilled)."""
    eager = make_model(name, dtype=torch.float32).cuda().train()
    graphed = copy.deepcopy(eager)
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True) for m in (eager, graphed)]
    with pytest.raises(ValueError, match="eval mode"):
        CUDAGraphTrainingStep(copy.deepcopy(eager).eval(), optimizers[0], batch_size=2, seq_len=48)
    step = CUDAGraphTrainingStep(graphed, optimizers[1], batch_size=2, seq_len=48, max_grad_norm=1.0)
    gen = torch.Generator(device="cuda").manual_seed(0)
    start = [p.detach().clone() for p in eager.parameters()]
    for i in range(3):
        ids = torch.randint(3, eager.config.vocab_size, (2, 48), device="cuda", generator=gen)
        labels = ids.clone()
        if i == 1:
            labels[:, :20] = -100
        loss = eager(ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(eager.parameters(), 1.0)
        optimizers[0].step()
        optimizers[0].zero_grad(set_to_none=True)
        graphed_loss = step(ids, labels)
        assert graphed_loss.shape == () and abs(graphed_loss.item() - loss.item()) <= 1e-4 * abs(loss.item())
    assert any(not torch.equal(p0, pe) for p0, pe in zip(start, eager.parameters()))
    for p0, pe, pg in zip(start, eager.parameters(), graphed.parameters()):
        assert relative_rms(pg - p0, pe - p0) <= 1e-3
    with pytest.raises(ValueError, match=r"captured for shape \(2, 48\), got \(2, 40\)"):
        step(ids[:, :40])
    optimizers[1].zero_grad(set_to_none=True)
    with pytest.raises(RuntimeError, match="no longer the captured graph's tensors"):
        step(ids)
