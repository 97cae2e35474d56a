"""The Triton kernels' custom ops (linmem/kernels/library.py) as torch.library expects them.

Each public op runs forward and backward on the Triton path while a dispatch mode records every custom-op call;
`torch.library.opcheck` then checks each recorded call: its schema (no input mutated, no output aliasing an input),
its fake implementation (the dry run with launches skipped gives the real outputs' shapes, dtypes and strides) and
its tracing by AOT autograd with dynamic shapes. Under the interpreter on the CPU, on the kernels on a GPU.
"""

from __future__ import annotations

import contextlib
import threading

import pytest
import torch
import triton
import triton.language as tl
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

from linmem.kernels import causal_conv1d, ccq_gated_delta_rule, ccq_gla, gated_delta_rule, gla, qdelta_rule, use_backend
from linmem.kernels.loss import linear_cross_entropy
from linmem.kernels.library import NAMESPACE, dry_run, through_dispatcher

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
B, T, H, K, V = 2, 19, 2, 16, 32


class _Recorder(TorchDispatchMode):
    """Records (op, args, kwargs) of every custom op of linmem's namespace."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == NAMESPACE:  # detached: the autograd.Function calls the ops with autograd off
            self.calls.append((func, *tree_map_only(torch.Tensor, torch.Tensor.detach, (args, kwargs))))
        return func(*args, **kwargs)


def _rand(*shape, requires_grad=True):
    return torch.randn(*shape, device=DEVICE).requires_grad_(requires_grad)


def _linear_attention_inputs():
    q, k = _rand(B, T, H, K), _rand(B, T, H, K)
    with torch.no_grad():
        k /= k.norm(dim=-1, keepdim=True)
    return q, k, _rand(B, T, H, V)


def _head_gate():
    return (-torch.rand(B, T, H, device=DEVICE)).requires_grad_()


def _gdn():
    q, k, v = _linear_attention_inputs()
    return gated_delta_rule(q, k, v, _head_gate(), torch.rand(B, T, H, device=DEVICE).requires_grad_(),
                            initial_state=_rand(B, H, K, V), output_final_state=True)


def _gdn_varlen():
    q, k, v = (t[:1].detach().requires_grad_() for t in _linear_attention_inputs())
    g, beta = _head_gate()[:1].detach().requires_grad_(), torch.rand(1, T, H, device=DEVICE).requires_grad_()
    cu_seqlens = torch.tensor([0, 7, 7, T], device=DEVICE, dtype=torch.int32)
    return gated_delta_rule(q, k, v, g, beta, cu_seqlens=cu_seqlens, output_final_state=True)


def _qdelta():
    q, k, v = _linear_attention_inputs()
    return qdelta_rule(q, k, v, _head_gate(), torch.rand(B, T, H, device=DEVICE).requires_grad_(),
                       (0.3 * torch.rand(B, T, H, device=DEVICE)).requires_grad_(), output_final_state=True)


def _gla():
    q, k, v = _linear_attention_inputs()
    gk = (-0.1 * torch.rand(B, T, H, K, device=DEVICE)).requires_grad_()
    return gla(q, k, v, gk, initial_state=_rand(B, H, K, V), output_final_state=True)


def _ccq_gdn():
    q, k, v = _linear_attention_inputs()
    lam = torch.rand(B, T, H, device=DEVICE).requires_grad_()
    o, _ = ccq_gated_delta_rule(q, k, v, _head_gate(), torch.rand(B, T, H, device=DEVICE).requires_grad_(), lam)
    return o, None


def _ccq_gla_varlen():
    q, k, v = (t[:1].detach().requires_grad_() for t in _linear_attention_inputs())
    gk = (-0.1 * torch.rand(1, T, H, K, device=DEVICE)).requires_grad_()
    lam = torch.rand(1, T, H, device=DEVICE).requires_grad_()
    cu_seqlens = torch.tensor([0, 5, 5, T], device=DEVICE, dtype=torch.int32)  # an empty sequence, unused slots
    o, _ = ccq_gla(q, k, v, gk, lam, cu_seqlens=cu_seqlens)
    return o, None


def _conv():
    x, weight, bias = _rand(B, T, V), _rand(V, 4), _rand(V)
    return causal_conv1d(x, weight, bias, activation="silu", output_final_state=True)


def _conv_varlen():
    x, weight, bias = _rand(1, T, V), _rand(V, 4), _rand(V)
    cu_seqlens = torch.tensor([0, 6, 6, T], device=DEVICE, dtype=torch.int32)
    return causal_conv1d(x, weight, bias, activation="silu", cu_seqlens=cu_seqlens)


def _gated_norm():
    from linmem.kernels.norm import rms_norm

    x, gate, weight = _rand(B, T, V), _rand(B, T, V), _rand(V)
    return rms_norm(x, weight, 1e-6, gate), None


def _loss():
    hidden, weight = _rand(B, T, V), _rand(50, V)
    return linear_cross_entropy(hidden, weight, torch.randint(0, 50, (B, T), device=DEVICE)), None


CASES = {"gated_delta_rule": _gdn, "gated_delta_rule varlen": _gdn_varlen, "qdelta_rule": _qdelta, "gla": _gla,
         "ccq_gated_delta_rule": _ccq_gdn, "ccq_gla varlen": _ccq_gla_varlen, "causal_conv1d": _conv,
         "causal_conv1d varlen": _conv_varlen,
         "rms_norm gated": _gated_norm, "linear_cross_entropy": _loss}


@pytest.mark.parametrize("case", list(CASES))
def test_every_custom_op_call_passes_opcheck(case):
    torch.manual_seed(0)
    recorder = _Recorder()
    with use_backend("triton"), through_dispatcher(), recorder:
        out, final = CASES[case]()
        loss = out.float().square().sum() + (final.float().sum() if final is not None else 0)
        loss.backward()
    names = [func.name() for func, _, _ in recorder.calls]
    assert any(n.endswith("_fwd") for n in names) and any(n.endswith("_bwd") for n in names) or \
        case == "linear_cross_entropy", names  # the loss's backward is two matmuls, no op
    for func, args, kwargs in recorder.calls:
        torch.library.opcheck(func, args, kwargs,
                              test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


@pytest.mark.gpu
@pytest.mark.parametrize("case", list(CASES))
def test_every_custom_op_call_passes_opcheck_on_the_gpu(case):
    """The same on CUDA (DEVICE), compiled kernels; run with -m gpu."""
    test_every_custom_op_call_passes_opcheck(case)


@pytest.mark.parametrize("case", [case for case in CASES if case.endswith("varlen")])
def test_a_varlen_backward_takes_the_layout_its_forward_built(case, monkeypatch):
    """The backward ops take the chunk layout (and the convolution's row-to-sequence index) that their forward
    built from cu_seqlens and returned, instead of building it again (a dozen small launches per op)."""
    from linmem.kernels.triton_layout import ChunkLayout

    built, searched = [], []
    build, search = ChunkLayout.__init__, torch.searchsorted

    def counted_build(self, *args):
        built.append(args)
        build(self, *args)

    def counted_search(*args, **kwargs):
        searched.append(args)
        return search(*args, **kwargs)

    monkeypatch.setattr(ChunkLayout, "__init__", counted_build)
    monkeypatch.setattr(torch, "searchsorted", counted_search)
    torch.manual_seed(0)
    with use_backend("triton"):
        out, final = CASES[case]()
        assert (built if "conv" not in case else searched), "the forward builds its layout"
        built.clear(), searched.clear()
        (out.float().square().sum() + (final.float().sum() if final is not None else 0)).backward()
    assert not built
    if "conv" in case:
        assert not searched


@triton.jit
def _fill_kernel(out, value, N: tl.constexpr):
    tl.store(out + tl.arange(0, N), value)


def _fill(value: float) -> torch.Tensor:
    out = torch.full((16,), float("nan"), device=DEVICE)
    _fill_kernel[(1,)](out, value, N=16)
    return out


def test_dry_run_skips_launches_only_in_its_thread():
    """The fake implementations' dry run: launches inside dry_run() write nothing, in that thread only."""
    from_other_thread = []
    with dry_run():
        skipped = _fill(1.0)
        worker = threading.Thread(target=lambda: from_other_thread.append(_fill(2.0)))
        worker.start()
        worker.join()
    assert torch.isnan(skipped).all()
    assert torch.equal(from_other_thread[0], torch.full((16,), 2.0, device=DEVICE))
    assert torch.equal(_fill(3.0), torch.full((16,), 3.0, device=DEVICE))


def test_a_module_run_again_registers_its_ops_under_new_names():
    """importlib.reload of a kernel module (or remote code re-executed) defines its ops again: a custom op cannot be
    redefined, so the second definition gets a versioned name and both keep working."""
    from linmem.kernels.library import opaque_op

    def double(x: torch.Tensor) -> list[torch.Tensor | None]:
        return [2 * x, None]

    first, second = opaque_op("test_double")(double), opaque_op("test_double")(double)
    assert first.op._qualname != second.op._qualname
    assert second.op._qualname.startswith(f"{NAMESPACE}::test_double_v")
    x = torch.arange(3.0)
    for call in (first, second):
        for path in (contextlib.nullcontext(), through_dispatcher()):  # eager: the function itself; the op
            with path:
                doubled, absent = call(x)
            assert torch.equal(doubled, 2 * x) and absent is None
