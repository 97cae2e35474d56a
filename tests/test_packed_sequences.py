"""Padding-free batches: sequences packed into one row (transformers' DataCollatorWithFlattening) run each as if alone,
for every variant; marked by restarting position_ids or by FlashAttention's cu_seq_lens_q."""

from __future__ import annotations

import pytest
import torch
from transformers import DataCollatorWithFlattening

from linmem.kernels import use_backend

from .test_model_invariants import ATOL, ids
from .variants import VARIANTS, make_model

LENGTHS = (9, 1, 14, 5)


def _sequences():
    return [ids(1, n, seed=10 + i)[0] for i, n in enumerate(LENGTHS)]


def _alone(model, sequences):
    return torch.cat([model(s[None]).logits[0] for s in sequences])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_packed_row_equals_each_sequence_alone(name):
    model = make_model(name)
    sequences = _sequences()
    batch = DataCollatorWithFlattening(return_flash_attn_kwargs=True)([{"input_ids": s.tolist()} for s in sequences])
    row, positions = batch["input_ids"], batch["position_ids"]
    assert row.shape == (1, sum(LENGTHS)) and "attention_mask" not in batch
    expected = _alone(model, sequences)
    by_positions = model(row, position_ids=positions).logits[0]
    torch.testing.assert_close(by_positions, expected, atol=ATOL, rtol=0)
    by_offsets = model(row, cu_seq_lens_q=batch["cu_seq_lens_q"], cu_seq_lens_k=batch["cu_seq_lens_k"],
                       max_length_q=batch["max_length_q"], max_length_k=batch["max_length_k"]).logits[0]
    torch.testing.assert_close(by_offsets, expected, atol=ATOL, rtol=0)
    # unpacked (one sequence per row, no restarts) the row is one sequence: the packing is what separates them
    assert not torch.allclose(model(row).logits[0], expected, atol=1e-3)


def test_the_collators_labels_train_on_each_sequence_alone():
    """The loss of a packed batch (labels -100 at each sequence's first token) is the token-weighted mean of each
    sequence's own loss, and so are the gradients."""
    model = make_model("ccq-gdn-hybrid").train()
    sequences = _sequences()
    batch = DataCollatorWithFlattening()([{"input_ids": s.tolist()} for s in sequences])
    model(**batch).loss.backward()
    packed = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    total = sum(len(s) - 1 for s in sequences)
    sum(model(s[None], labels=s[None]).loss * (len(s) - 1) for s in sequences if len(s) > 1).div(total).backward()
    for p, g in zip(model.parameters(), packed):
        torch.testing.assert_close(g, p.grad, atol=1e-9, rtol=0)


def test_rows_of_packed_sequences_and_the_triton_path():
    """Two rows, each packing sequences (restarts within rows; a row start always starts one), on the Triton
    kernels (the interpreter on the CPU)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = make_model("ccq-gdn").float().to(device)
    first, single, third, fourth = (s.to(device) for s in _sequences())
    # row 0: 9 + 1 tokens, then the third sequence's first 4; row 1: its other 10, then the fourth's first 4
    rows = torch.stack([torch.cat([first, single, third[:4]]), torch.cat([third[4:], fourth[:4]])])
    positions = torch.stack([torch.cat([torch.arange(9), torch.arange(1), torch.arange(4)]),
                             torch.cat([torch.arange(4, 14), torch.arange(4)])]).to(device)
    with use_backend("triton"):
        logits = model(rows, position_ids=positions).logits
        alone = [model(s[None]).logits[0] for s in (first, single, third[:4], third[4:], fourth[:4])]
    # the third sequence's second part continues at position 4 but starts a row, so it starts a sequence
    torch.testing.assert_close(logits[0], torch.cat(alone[:3]), atol=1e-4, rtol=0)
    torch.testing.assert_close(logits[1], torch.cat(alone[3:]), atol=1e-4, rtol=0)


def test_packed_batches_refuse_a_cache_and_a_mask():
    model = make_model("qdelta")
    row = ids(1, 8)
    positions = torch.tensor([[0, 1, 2, 0, 1, 2, 3, 4]])
    with pytest.raises(ValueError, match="run without a cache"):
        model(row, position_ids=positions, use_cache=True)
    cache = model(row[:, :2], use_cache=True).past_key_values
    with pytest.raises(ValueError, match="run without a cache"):
        model(row, position_ids=positions, past_key_values=cache)
    with pytest.raises(ValueError, match="not both"):
        model(row, attention_mask=torch.ones_like(row), cu_seq_lens_q=torch.tensor([0, 3, 8], dtype=torch.int32))
    with pytest.raises(ValueError, match="cu_seq_lens_k must equal"):
        model(row, cu_seq_lens_q=torch.tensor([0, 3, 8], dtype=torch.int32),
              cu_seq_lens_k=torch.tensor([0, 4, 8], dtype=torch.int32))
    with pytest.raises(ValueError, match="last entry"):
        model(row, cu_seq_lens_q=torch.tensor([0, 3, 7], dtype=torch.int32))
    assert model.eval()(row, position_ids=positions).past_key_values is None  # the default cache is not made


@pytest.mark.gpu
def test_rows_of_packed_sequences_on_the_gpu():
    """The same on CUDA (compiled kernels); run with -m gpu."""
    test_rows_of_packed_sequences_and_the_triton_path()
