"""Depthwise causal short convolution: op == per-token reference, streaming with states, varlen, gradients."""

from __future__ import annotations

import pytest
import torch

from linmem.kernels import causal_conv1d, naive_causal_conv1d, relative_rms

F64 = torch.float64


@pytest.mark.parametrize("W", [1, 2, 4])
@pytest.mark.parametrize("T", [1, 2, 9])
@pytest.mark.parametrize("with_bias,activation,with_state", [(False, None, False), (True, "silu", True),
                                                              (False, "silu", True)])
def test_op_matches_naive(W: int, T: int, with_bias: bool, activation, with_state: bool) -> None:
    torch.manual_seed(W * 10 + T)
    B, D = 2, 6
    x, w = torch.randn(B, T, D, dtype=F64), torch.randn(D, W, dtype=F64)
    bias = torch.randn(D, dtype=F64) if with_bias else None
    s0 = torch.randn(B, D, W - 1, dtype=F64) if with_state else None
    y_ref, s_ref = naive_causal_conv1d(x, w, bias, activation=activation, initial_state=s0, output_final_state=True)
    y, s = causal_conv1d(x, w, bias, activation=activation, initial_state=s0, output_final_state=True)
    assert y.shape == (B, T, D) and s.shape == (B, D, W - 1) and s.dtype == x.dtype
    assert relative_rms(y, y_ref) <= 1e-12 and torch.equal(s, s_ref)
    # explicit formula for the last token
    hist = torch.cat([s0 if s0 is not None else x.new_zeros(B, D, W - 1), x.transpose(1, 2)], -1)
    manual = (hist[:, :, -W:] * w).sum(-1) + (bias if bias is not None else 0)
    manual = torch.nn.functional.silu(manual) if activation == "silu" else manual
    assert relative_rms(y[:, -1], manual) <= 1e-12


def test_streaming_equals_full_sequence() -> None:
    torch.manual_seed(1)
    x, w, b = torch.randn(2, 11, 5, dtype=F64), torch.randn(5, 4, dtype=F64), torch.randn(5, dtype=F64)
    y_full, s_full = causal_conv1d(x, w, b, activation="silu", output_final_state=True)
    state, pieces = None, []
    for start, end in ((0, 2), (2, 3), (3, 11)):
        y, state = causal_conv1d(x[:, start:end], w, b, activation="silu", initial_state=state,
                                 output_final_state=True)
        pieces.append(y)
    assert relative_rms(torch.cat(pieces, 1), y_full) <= 1e-12 and torch.equal(state, s_full)


def test_varlen_equals_separate_sequences() -> None:
    torch.manual_seed(2)
    lengths, D, W = [3, 0, 1, 7], 4, 4
    cu = torch.tensor([0, 3, 3, 4, 11], dtype=torch.int32)
    x, w = torch.randn(1, sum(lengths), D, dtype=F64), torch.randn(D, W, dtype=F64)
    s0 = torch.randn(len(lengths), D, W - 1, dtype=F64)
    for fn in (causal_conv1d, naive_causal_conv1d):
        y, s = fn(x, w, activation="silu", initial_state=s0, output_final_state=True, cu_seqlens=cu)
        for n, (a, e) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
            y_n, s_n = naive_causal_conv1d(x[:, a:e], w, activation="silu", initial_state=s0[n:n + 1],
                                           output_final_state=True)
            assert relative_rms(y[:, a:e], y_n) <= 1e-12 if e > a else True
            assert torch.equal(s[n:n + 1], s_n)
        assert torch.equal(s[1], s0[1]), "an empty sequence passes its state through"


def test_no_final_state_returns_none_and_dtype_kept() -> None:
    x = torch.randn(1, 4, 3, dtype=torch.bfloat16)
    y, s = causal_conv1d(x, torch.randn(3, 4), None)
    assert s is None and y.dtype == torch.bfloat16
    _, s = causal_conv1d(x, torch.randn(3, 4), None, output_final_state=True)
    assert s.dtype == torch.bfloat16


def test_gradcheck() -> None:
    torch.manual_seed(3)
    x = torch.randn(1, 5, 3, dtype=F64, requires_grad=True)
    w = torch.randn(3, 4, dtype=F64, requires_grad=True)
    b = torch.randn(3, dtype=F64, requires_grad=True)
    s0 = torch.randn(1, 3, 3, dtype=F64, requires_grad=True)
    fn = lambda *t: causal_conv1d(t[0], t[1], t[2], activation="silu", initial_state=t[3],  # noqa: E731
                                  output_final_state=True)
    assert torch.autograd.gradcheck(fn, (x, w, b, s0))


@pytest.mark.parametrize("kwargs,exc,pattern", [
    ({"weight": torch.randn(4, 4)}, ValueError, r"weight: expected shape \[D, W\] with D = 3"),
    ({"activation": "relu"}, ValueError, "activation: expected one of"),
    ({"initial_state": torch.randn(1, 3, 2)}, ValueError, r"initial_state: expected shape \[N, D, W - 1\]"),
    ({"bias": torch.randn(2)}, ValueError, r"bias: expected shape \[D\]"),
    ({"x": torch.ones(1, 5, 3, dtype=torch.int64)}, TypeError, "x: expected a floating-point tensor"),
])
def test_validation(kwargs, exc, pattern) -> None:
    args = {"x": torch.randn(1, 5, 3), "weight": torch.randn(3, 4), "bias": None}
    args.update(kwargs)
    x, weight, bias = args.pop("x"), args.pop("weight"), args.pop("bias")
    for fn in (causal_conv1d, naive_causal_conv1d):
        with pytest.raises(exc, match=pattern):
            fn(x, weight, bias, **args)
