"""benchmarks/train_throughput.py times several windows of training steps (its figures moved by up to 25% between
single runs on the H200), checked on a tiny CPU model: one positive figure per window, and the steps really train
(the weights change). The CUDA-graph step it times is linmem.CUDAGraphTrainingStep (tests/test_training_graph.py)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.train_throughput import BATCH_LAYOUTS, config_340m, make_batch, measure_training
from linmem import CCQForCausalLM


@pytest.mark.parametrize("layout", BATCH_LAYOUTS)
def test_every_window_is_timed_and_trains(layout):
    torch.manual_seed(0)
    model = CCQForCausalLM(config_340m(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_heads=2, head_dim=8,
                                       intermediate_size=64))
    before = [p.detach().clone() for p in model.parameters()]
    windows = measure_training(model, batch_size=2, seq_len=16, steps=2, warmup=1, repeats=3, layout=layout)
    assert len(windows) == 3 and all(w > 0 for w in windows)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_batch_layouts_cover_the_same_positions():
    """Padded rows keep real lengths in [T/2, T] with labels ignored at the padding; packed documents tile the whole
    B x T row, each labelled from its second token, positions restarting at each document."""
    padded = make_batch("padded", 3, 200, 50, "cpu")
    real = padded["attention_mask"].sum(-1)
    assert ((real >= 100) & (real <= 200)).all()
    assert torch.equal(padded["labels"] == -100, padded["attention_mask"] == 0)
    packed = make_batch("packed", 3, 200, 50, "cpu")
    cu = packed["cu_seq_lens_q"]
    assert packed["input_ids"].shape == (1, 600) and cu[0] == 0 and cu[-1] == 600 and (cu.diff() > 0).all()
    assert torch.equal(packed["position_ids"][0, cu[:-1].long()], torch.zeros(len(cu) - 1, dtype=torch.long))
    assert torch.equal(packed["labels"][0] == -100, packed["position_ids"][0] == 0)
