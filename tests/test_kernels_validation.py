"""Bad inputs to every op (naive, chunk, public) raise ValueError/TypeError naming the argument and values."""

from __future__ import annotations

import pytest
import torch

from linmem.kernels import CCQState

from .test_kernels_torch import OPS, OpCase


def _call(op: OpCase, fn, args, **kwargs):
    return fn(*args, **{**op.kwargs, **kwargs})


def _good(op: OpCase):
    torch.manual_seed(0)
    return list(op.inputs(1, 6, 2, 4, 3))


def _fns(op: OpCase):
    return [op.naive, op.chunk, op.public]


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_mismatched_head_dims(op: OpCase) -> None:
    args = _good(op)
    args[1] = torch.randn(1, 6, 2, 5, dtype=torch.float64)
    for fn in _fns(op):
        with pytest.raises(ValueError, match=r"k: expected shape \[B, T, H, K\] \(q's\) = \[1, 6, 2, 4\], "
                                             r"got \[1, 6, 2, 5\]"):
            _call(op, fn, args)


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_v_wrong_length(op: OpCase) -> None:
    args = _good(op)
    args[2] = torch.randn(1, 5, 2, 3, dtype=torch.float64)
    for fn in _fns(op):
        with pytest.raises(ValueError, match=r"v: expected shape \[B, T, H, V\] with \[B, T, H\] = \[1, 6, 2\]"):
            _call(op, fn, args)


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_gate_wrong_shape(op: OpCase) -> None:
    args = _good(op)
    args[3] = args[3][..., :1] if args[3].dim() == 4 else args[3].unsqueeze(-1)
    for fn in _fns(op):
        with pytest.raises(ValueError, match=r"(gk|g): expected shape \[B, T, H(, K)?\]"):
            _call(op, fn, args)
    if op.name not in ("gla", "gated_delta_rule"):
        args = _good(op)
        args[-1] = args[-1][:, :3]
        for fn in _fns(op):
            with pytest.raises(ValueError, match=r"lam: expected shape \[B, T, H\] = \[1, 6, 2\], got \[1, 3, 2\]"):
                _call(op, fn, args)


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_cu_seqlens_errors(op: OpCase) -> None:
    args = _good(op)
    cases = [
        (torch.tensor([0.0, 6.0], dtype=torch.float64), TypeError,
         "cu_seqlens: expected dtype torch.int32 or torch.int64, got torch.float64"),
        (torch.tensor([0, 4], dtype=torch.int32), ValueError, r"cu_seqlens: expected last entry T = 6 .*, got 4"),
        (torch.tensor([1, 6], dtype=torch.int32), ValueError, "cu_seqlens: expected first entry 0, got 1"),
        (torch.tensor([0, 4, 2, 6], dtype=torch.int32), ValueError, "cu_seqlens: expected non-decreasing"),
        (torch.tensor([[0, 6]], dtype=torch.int32), ValueError, r"cu_seqlens: expected a 1-D tensor"),
    ]
    for fn in _fns(op):
        for cu, exc, pattern in cases:
            with pytest.raises(exc, match=pattern):
                _call(op, fn, args, cu_seqlens=cu)
    batched = [torch.cat([a, a], 0) for a in args]
    for fn in _fns(op):
        with pytest.raises(ValueError, match="cu_seqlens: varlen inputs must have batch size B == 1, got B = 2"):
            _call(op, fn, batched, cu_seqlens=torch.tensor([0, 6], dtype=torch.int32))


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_initial_state_wrong_shape(op: OpCase) -> None:
    args = _good(op)
    good = op.state(1, 2, 4, 3)
    if isinstance(good, CCQState):
        bad = good._replace(M=torch.zeros(1, 2, 4, 3))
        pattern = r"initial_state.M: expected shape \[N, H, K, K\] = \[1, 2, 4, 4\], got \[1, 2, 4, 3\]"
    else:
        bad = torch.zeros(1, 2, 3, 4)
        pattern = r"initial_state: expected shape \[N, H, K, V\] = \[1, 2, 4, 3\], got \[1, 2, 3, 4\]"
    for fn in _fns(op):
        with pytest.raises(ValueError, match=pattern):
            _call(op, fn, args, initial_state=bad)
    if isinstance(good, CCQState):
        for fn in _fns(op):
            with pytest.raises(TypeError, match="initial_state: expected a CCQState"):
                _call(op, fn, args, initial_state=good.S)


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_non_floating_q_and_bad_scale(op: OpCase) -> None:
    args = _good(op)
    args[0] = torch.ones(1, 6, 2, 4, dtype=torch.int64)
    for fn in _fns(op):
        with pytest.raises(TypeError, match="q: expected a floating-point tensor, got dtype torch.int64"):
            _call(op, fn, args)
    args = _good(op)
    for fn in _fns(op):
        with pytest.raises(ValueError, match="scale: expected a positive number, got -1.0"):
            _call(op, fn, args, scale=-1.0)


def test_cu_seqlens_values_are_read_once_per_tensor(monkeypatch) -> None:
    """A model hands one cu_seqlens to every layer: only the first check copies it to the host. A changed tensor
    (in-place write), another T or another batch size is checked again."""
    from linmem.kernels.utils import check_cu_seqlens

    cu = torch.tensor([0, 3, 3, 9], dtype=torch.int32)
    assert check_cu_seqlens(cu, 1, 9) == 3

    def no_host_copy(self):
        raise AssertionError("cu_seqlens values read again")

    monkeypatch.setattr(torch.Tensor, "tolist", no_host_copy)
    assert check_cu_seqlens(cu, 1, 9) == 3
    with pytest.raises(AssertionError, match="read again"):
        check_cu_seqlens(cu, 1, 10)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="last entry T = 10"):
        check_cu_seqlens(cu, 1, 10)
    with pytest.raises(ValueError, match="batch size B == 1"):
        check_cu_seqlens(cu, 2, 9)
    cu[2] = 1  # in place: the tensor's version changes, so it is read again
    with pytest.raises(ValueError, match="non-decreasing"):
        check_cu_seqlens(cu, 1, 9)
