"""PyTorch kernel layer: chunkwise implementations and public ops vs the float64 naive recurrences.

Every op family (GLA, Gated DeltaNet, Q-Delta, CCQ-GLA, CCQ-GDN with and without centring) is checked for
chunk == naive (rrms <= 1e-10 in float64; <= 1e-3 for float32 inputs against the float64 reference), ragged
lengths, varlen == separate sequences, optional final states, gradcheck and chunk-vs-naive gradients.
Metric: relative RMS `rrms(a, ref) = ||a - ref|| / ||ref||`. The builders here are shared by the other
test_kernels_*.py files.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

from linmem.kernels import (
    CCQState,
    ccq_gated_delta_rule,
    ccq_gla,
    chunk_ccq_gated_delta_rule,
    chunk_ccq_gla,
    chunk_gated_delta_rule,
    chunk_gla,
    chunk_qdelta_rule,
    gated_delta_rule,
    gla,
    l2norm,
    naive_ccq_gated_delta_rule,
    naive_ccq_gla,
    naive_gated_delta_rule,
    naive_gla,
    naive_qdelta_rule,
    qdelta_rule,
    relative_rms,
    use_backend,
)
from linmem.kernels import backend as backend_module

F64 = torch.float64


# ------------------------------------------------------------------------------------------ input builders

def log_decay(*shape: int, dtype=F64, strength: float = 1.0) -> torch.Tensor:
    """Log decays <= 0, mostly mild (around -0.05) with a tail of strong ones."""
    return F.logsigmoid(torch.randn(*shape, dtype=dtype) * 1.5 + 3.0) * strength


@dataclass
class OpCase:
    """One op family: its naive, chunk and public functions, how to build inputs and states."""

    name: str
    naive: Callable
    chunk: Callable
    public: Callable
    gate_kinds: tuple[str, ...]  # per extra positional input after v: "channel_decay", "decay", "beta", "lam"
    unit_qk: bool
    ccq: bool = False
    kwargs: dict = field(default_factory=dict)

    def inputs(self, B: int, T: int, H: int, K: int, V: int, dtype=F64) -> tuple[torch.Tensor, ...]:
        q, k = torch.randn(B, T, H, K, dtype=dtype), torch.randn(B, T, H, K, dtype=dtype)
        if self.unit_qk:
            q, k = l2norm(q), l2norm(k)
        v = torch.randn(B, T, H, V, dtype=dtype)
        extra = []
        for kind in self.gate_kinds:
            if kind == "channel_decay":
                extra.append(log_decay(B, T, H, K, dtype=dtype, strength=0.5))
            elif kind == "decay":
                extra.append(log_decay(B, T, H, dtype=dtype))
            elif kind == "beta":
                extra.append(torch.rand(B, T, H, dtype=dtype))
            else:  # lam
                extra.append(torch.rand(B, T, H, dtype=dtype) * 0.8 + 0.1)
        return (q, k, v, *extra)

    def state(self, N: int, H: int, K: int, V: int, dtype=F64):
        S = torch.randn(N, H, K, V, dtype=dtype) * 0.5
        if not self.ccq:
            return S
        keys = l2norm(torch.randn(N, H, 5, K, dtype=dtype))
        M = keys.transpose(-1, -2) @ keys  # a PSD second moment of 5 unit keys
        z = torch.rand(N, H, dtype=dtype) * 4 + 1
        m = keys.sum(-2) if self.kwargs.get("center") else None
        return CCQState(S, M, z, m)


OPS = [
    OpCase("gla", naive_gla, chunk_gla, gla, ("channel_decay",), unit_qk=False),
    OpCase("gated_delta_rule", naive_gated_delta_rule, chunk_gated_delta_rule, gated_delta_rule,
           ("decay", "beta"), unit_qk=True),
    OpCase("qdelta_rule", naive_qdelta_rule, chunk_qdelta_rule, qdelta_rule, ("decay", "beta", "lam"), unit_qk=True),
    OpCase("ccq_gla", naive_ccq_gla, chunk_ccq_gla, ccq_gla, ("channel_decay", "lam"), unit_qk=False, ccq=True),
    OpCase("ccq_gla_center", naive_ccq_gla, chunk_ccq_gla, ccq_gla, ("channel_decay", "lam"), unit_qk=False,
           ccq=True, kwargs={"center": True}),
    OpCase("ccq_gated_delta_rule", naive_ccq_gated_delta_rule, chunk_ccq_gated_delta_rule, ccq_gated_delta_rule,
           ("decay", "beta", "lam"), unit_qk=True, ccq=True),
    OpCase("ccq_gated_delta_rule_center", naive_ccq_gated_delta_rule, chunk_ccq_gated_delta_rule,
           ccq_gated_delta_rule, ("decay", "beta", "lam"), unit_qk=True, ccq=True, kwargs={"center": True}),
]
OPS_BY_NAME = {op.name: op for op in OPS}


def state_tensors(state) -> list[torch.Tensor]:
    """The tensors of a final state (a tensor or a CCQState), None fields dropped."""
    if isinstance(state, CCQState):
        return [t for t in state if t is not None]
    return [state]


def assert_close(actual, expected, tol: float, what: str) -> None:
    err = relative_rms(actual, expected)
    assert err <= tol, f"{what}: rrms {err:.3e} > {tol:.1e}"


def assert_states_close(actual, expected, tol: float, what: str) -> None:
    a, e = state_tensors(actual), state_tensors(expected)
    assert len(a) == len(e), f"{what}: state has {len(a)} tensors, expected {len(e)}"
    for i, (x, y) in enumerate(zip(a, e)):
        assert x.shape == y.shape, f"{what}[{i}]: shape {list(x.shape)} vs {list(y.shape)}"
        assert_close(x, y, tol, f"{what}[{i}]")


# ------------------------------------------------------------------------------------------ forward

SHAPES = [(1, 16, 16), (63, 48, 32), (65, 64, 48), (130, 16, 48)]  # (T, K, V)


@pytest.mark.parametrize("with_state", [False, True], ids=["fresh", "state"])
@pytest.mark.parametrize("T,K,V", SHAPES)
@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_chunk_matches_naive_float64(op: OpCase, T: int, K: int, V: int, with_state: bool) -> None:
    torch.manual_seed(1000 + T + K)
    B, H = 2, 2
    args = op.inputs(B, T, H, K, V)
    state = op.state(B, H, K, V) if with_state else None
    o_ref, s_ref = op.naive(*args, initial_state=state, output_final_state=True, **op.kwargs)
    o, s = op.chunk(*args, initial_state=state, output_final_state=True, **op.kwargs)
    assert o.shape == (B, T, H, V) and o.dtype == F64
    assert_close(o, o_ref, 1e-10, "o")
    assert_states_close(s, s_ref, 1e-10, "final state")


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_float32_and_bfloat16_inputs(op: OpCase) -> None:
    """fp32 inputs: within 1e-3 of the fp64 reference, o float32, states float32; bf16: o bf16, states fp32."""
    torch.manual_seed(7)
    B, T, H, K, V = 1, 100, 2, 32, 16
    args64 = op.inputs(B, T, H, K, V)
    state64 = op.state(B, H, K, V)
    o_ref, s_ref = op.naive(*args64, initial_state=state64, output_final_state=True, **op.kwargs)
    state32 = state64.to(torch.float32) if isinstance(state64, torch.Tensor) else state64.to(torch.float32)
    for fn in (op.chunk, op.naive):
        o, s = fn(*(a.float() for a in args64), initial_state=state32, output_final_state=True, **op.kwargs)
        assert o.dtype == torch.float32
        assert all(t.dtype == torch.float32 for t in state_tensors(s))
        assert_close(o, o_ref, 1e-3, f"{fn.__name__} fp32 o")
        assert_states_close(s, s_ref, 1e-3, f"{fn.__name__} fp32 state")
    o, s = op.chunk(*(a.to(torch.bfloat16) for a in args64), initial_state=state32, output_final_state=True,
                    **op.kwargs)
    assert o.dtype == torch.bfloat16
    assert all(t.dtype == torch.float32 for t in state_tensors(s))
    assert_close(o, o_ref, 3e-2, "bf16 o")


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_chunk_size_does_not_change_results(op: OpCase) -> None:
    torch.manual_seed(11)
    args = op.inputs(1, 77, 2, 16, 16)
    state = op.state(1, 2, 16, 16)
    o64, s64 = op.chunk(*args, initial_state=state, output_final_state=True, chunk_size=64, **op.kwargs)
    for chunk_size in (5, 16, 32):
        o, s = op.chunk(*args, initial_state=state, output_final_state=True, chunk_size=chunk_size, **op.kwargs)
        assert_close(o, o64, 1e-10, f"o chunk {chunk_size}")
        assert_states_close(s, s64, 1e-10, f"state chunk {chunk_size}")


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_no_final_state_returns_none(op: OpCase) -> None:
    torch.manual_seed(3)
    args = op.inputs(1, 5, 1, 4, 4)
    for fn in (op.naive, op.chunk, op.public):
        o, s = fn(*args, **op.kwargs)
        assert s is None, f"{fn.__name__}: output_final_state=False must return None"
        assert o.shape == (1, 5, 1, 4)


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_varlen_equals_separate_sequences(op: OpCase, index_dtype: torch.dtype) -> None:
    """Ragged lengths 0, 1, 39, 67 packed in one row; each sequence starts from its own state row."""
    torch.manual_seed(5)
    lengths = [0, 1, 39, 67]
    H, K, V = 2, 16, 32
    T = sum(lengths)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=index_dtype)
    args = op.inputs(1, T, H, K, V)
    state = op.state(len(lengths), H, K, V)
    o_naive, s_naive = op.naive(*args, initial_state=state, output_final_state=True, cu_seqlens=cu, **op.kwargs)
    with use_backend("torch"):
        o_pub, s_pub = op.public(*args, initial_state=state, output_final_state=True, cu_seqlens=cu, **op.kwargs)
    o_chunk, s_chunk = op.chunk(*args, initial_state=state, output_final_state=True, cu_seqlens=cu,
                                chunk_size=16, **op.kwargs)
    for n, (start, end) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        row = state.row(n) if isinstance(state, CCQState) else state[n:n + 1]
        o_ref, s_ref = op.naive(*(a[:, start:end] for a in args), initial_state=row, output_final_state=True,
                                **op.kwargs)
        for what, o, s in (("naive", o_naive, s_naive), ("public", o_pub, s_pub), ("chunk", o_chunk, s_chunk)):
            if end > start:
                assert_close(o[:, start:end], o_ref, 1e-10, f"{what} o of sequence {n}")
            s_row = s.row(n) if isinstance(s, CCQState) else s[n:n + 1]
            assert_states_close(s_row, s_ref, 1e-10, f"{what} state of sequence {n}")
    # the empty sequence passes its state through unchanged
    empty_ref = state.row(0) if isinstance(state, CCQState) else state[0:1]
    empty_out = s_chunk.row(0) if isinstance(s_chunk, CCQState) else s_chunk[0:1]
    for a, b in zip(state_tensors(empty_out), state_tensors(empty_ref)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_public_op_follows_backend(op: OpCase) -> None:
    torch.manual_seed(9)
    args = op.inputs(1, 20, 1, 8, 8)
    o_naive, _ = op.naive(*args, **op.kwargs)
    o_chunk, _ = op.chunk(*args, **op.kwargs)
    with use_backend("naive"):
        assert torch.equal(op.public(*args, **op.kwargs)[0], o_naive)
    with use_backend("torch"):
        assert torch.equal(op.public(*args, **op.kwargs)[0], o_chunk)
    assert torch.equal(op.public(*args, **op.kwargs)[0], o_chunk), "auto on CPU must run the PyTorch chunk path"


# ------------------------------------------------------------------------------------------ gradients

def _flat_inputs(op: OpCase, args, state):
    """Tensors to differentiate: inputs and state fields."""
    return [*args, *state_tensors(state)]


def _rebuild_state(op: OpCase, state, tensors):
    if isinstance(state, CCQState):
        it = iter(tensors)
        return CCQState(*(None if t is None else next(it) for t in state))
    return tensors[0]


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_gradcheck_chunk(op: OpCase) -> None:
    """torch.autograd.gradcheck in float64 through every input, gate, lam and the initial state."""
    torch.manual_seed(13)
    args = op.inputs(1, 6, 1, 3, 2)
    state = op.state(1, 1, 3, 2)
    n_args = len(args)
    leaves = [t.clone().requires_grad_(True) for t in _flat_inputs(op, args, state)]

    def fn(*tensors):
        st = _rebuild_state(op, state, tensors[n_args:])
        o, s = op.chunk(*tensors[:n_args], initial_state=st, output_final_state=True, chunk_size=4, **op.kwargs)
        return (o, *state_tensors(s))

    # fast_mode checks random directional derivatives (vJ^T u) instead of every Jacobian entry: same
    # power to catch a wrong backward, a fraction of the time on 2 CPU cores.
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_chunk_gradients_match_naive(op: OpCase) -> None:
    torch.manual_seed(17)
    args = op.inputs(1, 70, 2, 16, 24)
    state = op.state(1, 2, 16, 24)
    n_args = len(args)
    base = _flat_inputs(op, args, state)
    grads = {}
    for name, fn in (("naive", op.naive), ("chunk", op.chunk)):
        leaves = [t.clone().requires_grad_(True) for t in base]
        o, s = fn(*leaves[:n_args], initial_state=_rebuild_state(op, state, leaves[n_args:]),
                  output_final_state=True, **op.kwargs)
        gen = torch.Generator().manual_seed(0)
        loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in (o, *state_tensors(s)))
        loss.backward()
        grads[name] = [leaf.grad for leaf in leaves]
    for i, (gc, gn) in enumerate(zip(grads["chunk"], grads["naive"])):
        assert gn is not None and gc is not None, f"input {i} got no gradient"
        assert gn.abs().sum() > 0, f"input {i}: zero reference gradient"
        assert_close(gc, gn, 1e-6, f"grad of input {i}")


# ------------------------------------------------------------------------------------------ backend

def test_backend_names_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(backend_module.ENV_VAR, raising=False)
    assert backend_module.requested_backend() == "auto"
    with use_backend("naive"):
        assert backend_module.requested_backend() == "naive"
        with use_backend("torch"):
            assert backend_module.requested_backend() == "torch"
        assert backend_module.requested_backend() == "naive"
    monkeypatch.setenv(backend_module.ENV_VAR, "naive")
    assert backend_module.requested_backend() == "naive"
    monkeypatch.setenv(backend_module.ENV_VAR, "cuda")
    with pytest.raises(ValueError, match="LINMEM_KERNEL_BACKEND.*'cuda'"):
        backend_module.requested_backend()
    with pytest.raises(ValueError, match="use_backend.*'fast'"):
        with use_backend("fast"):
            pass


def test_missing_triton_kernel_falls_back_once_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto on a device that would pick Triton, for an op without a Triton module: PyTorch + one warning."""
    monkeypatch.setattr(backend_module, "resolve_backend", lambda q: "triton")
    monkeypatch.setattr(backend_module, "_warned", set())
    calls = []
    chunk_fn = lambda x: calls.append("chunk") or x  # noqa: E731
    q = torch.zeros(1, 2, 1, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            backend_module.dispatch("not_an_op", "linmem.kernels.conv", None, chunk_fn, q, (q,), {})
    assert calls == ["chunk"] * 3
    messages = [str(w.message) for w in caught if "Triton kernel" in str(w.message)]
    assert len(messages) == 1 and "not_an_op" in messages[0]
    with use_backend("triton"):
        with pytest.raises(NotImplementedError, match="triton_not_an_op"):
            backend_module.dispatch("not_an_op", "linmem.kernels.conv", None, chunk_fn, q, (q,), {})


def test_load_triton_missing_module_is_none() -> None:
    assert backend_module.load_triton("linmem.kernels.conv", "triton_chunk", "triton_causal_conv1d") is None
