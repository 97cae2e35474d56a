"""linmem/kernels/offsets_memo.py: what the ops derive from cu_seqlens is derived once per live, unchanged tensor."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from linmem.kernels import gated_delta_rule, use_backend
from linmem.kernels.library import through_dispatcher
from linmem.kernels.offsets_memo import remembered
from linmem.kernels.triton_layout import ChunkLayout


def _counting_builder():
    calls = []

    def build():
        calls.append(1)
        return torch.arange(len(calls))

    return build, calls


def test_same_unchanged_tensor_is_derived_once():
    cu = torch.tensor([0, 3, 8], dtype=torch.int32)
    build, calls = _counting_builder()
    first = remembered(cu, "k", build)
    assert remembered(cu, "k", build) is first and len(calls) == 1
    remembered(cu, "other key", build)
    assert len(calls) == 2


def test_a_modified_or_new_tensor_is_derived_again():
    cu = torch.tensor([0, 3, 8], dtype=torch.int32)
    build, calls = _counting_builder()
    remembered(cu, "k", build)
    cu[1] = 4  # in place: a new version
    remembered(cu, "k", build)
    remembered(cu.clone(), "k", build)  # equal values, another tensor
    assert len(calls) == 3


def test_inference_tensors_and_dispatched_ops_are_not_remembered():
    build, calls = _counting_builder()
    with torch.inference_mode():
        cu = torch.tensor([0, 3, 8], dtype=torch.int32)  # no version counter
        remembered(cu, "k", build), remembered(cu, "k", build)
    assert len(calls) == 2
    plain = torch.tensor([0, 3, 8], dtype=torch.int32)
    from linmem.kernels.library import _dispatched

    with _dispatched.on():  # a custom op's outputs must be fresh: tensor values are built anew there
        remembered(plain, "k", build), remembered(plain, "k", build)
        remembered(plain, "flag", lambda: True, holds_tensors=False)
    assert len(calls) == 4
    assert remembered(plain, "flag", lambda: False, holds_tensors=False) is True


def test_the_memo_keeps_no_tensor_alive():
    cu = torch.tensor([0, 3, 8], dtype=torch.int32)
    remembered(cu, "k", lambda: torch.zeros(2))
    ref = weakref.ref(cu)
    del cu
    gc.collect()
    assert ref() is None


def test_a_bad_cu_seqlens_still_raises_every_time():
    q = k = torch.randn(1, 8, 1, 4)
    v = torch.randn(1, 8, 1, 4)
    g, beta = -torch.rand(1, 8, 1), torch.rand(1, 8, 1)
    bad = torch.tensor([0, 5, 3, 8], dtype=torch.int32)
    for _ in range(2):
        with pytest.raises(ValueError, match="non-decreasing"):
            gated_delta_rule(q, k, v, g, beta, cu_seqlens=bad)


@pytest.mark.parametrize("dispatched", [False, True], ids=["eager", "through the dispatcher"])
def test_a_model_step_builds_its_chunk_layout_once(dispatched, monkeypatch):
    """A padded batch through a two-layer CCQ-GDN model on the Triton path, forward and backward: one chunk layout
    for all the ops of both layers in eager mode (each op built its own before), one per op call when the ops run
    through the dispatcher (compiled code), whose outputs must not be shared."""
    from .variants import make_model

    built = []
    build = ChunkLayout.__init__

    def counted_build(self, batch, seq_len, cu_seqlens, chunk_size):
        built.append(cu_seqlens is not None)
        build(self, batch, seq_len, cu_seqlens, chunk_size)

    monkeypatch.setattr(ChunkLayout, "__init__", counted_build)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = make_model("ccq-gdn").float().train().to(device)
    batch = torch.randint(3, 96, (2, 21), device=device)
    mask = torch.ones_like(batch)
    mask[0, :5] = 0
    with use_backend("triton"), (through_dispatcher() if dispatched else torch.enable_grad()):
        model(batch, attention_mask=mask, labels=batch).loss.backward()
    varlen_builds = sum(built)
    ops_per_layer = 2  # the CCQ statistic and the delta rule; the backward ops take their forward's layout
    assert varlen_builds == (1 if not dispatched else ops_per_layer * model.config.num_hidden_layers)


@pytest.mark.gpu
@pytest.mark.parametrize("dispatched", [False, True], ids=["eager", "through the dispatcher"])
def test_a_model_step_builds_its_chunk_layout_once_on_the_gpu(dispatched, monkeypatch):
    """The same on CUDA (compiled kernels); run with -m gpu."""
    test_a_model_step_builds_its_chunk_layout_once(dispatched, monkeypatch)


def test_offsets_the_model_builds_are_not_checked_again(monkeypatch):
    """cu_seqlens built from a padding mask or from offsets already checked are valid by construction: the ops skip
    their host-side check (a device-to-host copy); offsets given by the caller are checked once."""
    from linmem.kernels import utils
    from .variants import make_model

    checked = []
    check = utils._check_offsets
    monkeypatch.setattr(utils, "_check_offsets",
                        lambda values, seq_len: checked.append(values) or check(values, seq_len))
    model = make_model("qdelta")
    ids = torch.randint(3, 96, (2, 11))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    model(ids, attention_mask=mask)
    model(ids.view(1, -1), position_ids=torch.cat([torch.arange(11), torch.arange(11)])[None])
    assert checked == []
    offsets = torch.tensor([0, 5, 22], dtype=torch.int32)
    model(ids.view(1, -1), cu_seq_lens_q=offsets)
    assert checked == [[0, 5, 22]]
