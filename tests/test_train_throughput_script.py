"""benchmarks/train_throughput.py times several windows of training steps (its figures moved by up to 25% between
single runs on the H200), checked on a tiny CPU model: one positive figure per window, and the steps really train
(the weights change)."""

from __future__ import annotations

import torch

import copy

import pytest

from benchmarks.train_throughput import config_340m, graphed_training_step, measure_training, training_step
from linmem import CCQForCausalLM
from linmem.kernels.utils import relative_rms


def test_every_window_is_timed_and_trains():
    torch.manual_seed(0)
    model = CCQForCausalLM(config_340m(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_heads=2, head_dim=8,
                                       intermediate_size=64))
    before = [p.detach().clone() for p in model.parameters()]
    windows = measure_training(model, batch_size=2, seq_len=16, steps=2, warmup=1, repeats=3)
    assert len(windows) == 3 and all(w > 0 for w in windows)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_training_step_trains_as_the_eager_step():
    """Two replayed steps (forward and backward as one CUDA graph, eager AdamW) move the weights as two eager steps
    do, so every replay sees the updated weights and writes fresh gradients (fp32, the Triton kernels)."""
    torch.manual_seed(0)
    eager = CCQForCausalLM(config_340m(vocab_size=256, hidden_size=128, num_hidden_layers=2, num_heads=2,
                                       head_dim=64, intermediate_size=256)).cuda()
    graphed = copy.deepcopy(eager)
    data = torch.randint(0, 256, (2, 256), device="cuda")
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True) for m in (eager, graphed)]
    step = graphed_training_step(graphed, optimizers[1], data)
    start = [p.detach().clone() for p in eager.parameters()]
    for _ in range(2):
        training_step(eager, optimizers[0], data)
        step()
    assert all(not torch.equal(p0, pe) for p0, pe in zip(start, eager.parameters()))
    for p0, pe, pg in zip(start, eager.parameters(), graphed.parameters()):
        assert relative_rms(pg - p0, pe - p0) <= 1e-4
