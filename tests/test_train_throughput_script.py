"""benchmarks/train_throughput.py times several windows of training steps (its figures moved by up to 25% between
single runs on the H200), checked on a tiny CPU model: one positive figure per window, and the steps really train
(the weights change). The CUDA-graph step it times is linmem.CUDAGraphTrainingStep (tests/test_training_graph.py)."""

from __future__ import annotations

import torch

from benchmarks.train_throughput import config_340m, measure_training
from linmem import CCQForCausalLM


def test_every_window_is_timed_and_trains():
    torch.manual_seed(0)
    model = CCQForCausalLM(config_340m(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_heads=2, head_dim=8,
                                       intermediate_size=64))
    before = [p.detach().clone() for p in model.parameters()]
    windows = measure_training(model, batch_size=2, seq_len=16, steps=2, warmup=1, repeats=3)
    assert len(windows) == 3 and all(w > 0 for w in windows)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
