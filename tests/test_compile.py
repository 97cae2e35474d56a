"""`torch.compile` of a whole linmem model: one graph on the Triton path, same loss, gradients and tokens as eager.

The Triton kernels are opaque custom ops (linmem/kernels/library.py), so Dynamo traces every layer, the ops'
validation and dispatch included, into one graph (`fullgraph=True`); the PyTorch path's ops stay opaque calls
(graph breaks). Here on the CPU: the Triton kernels under the interpreter and Dynamo with the "aot_eager" backend
(the graphs and their autograd), and once with Inductor's C++ code generation; the GPU test in test_model_gpu.py
compiles with Inductor.
"""

from __future__ import annotations

import pytest
import torch

from linmem.kernels import relative_rms, use_backend

from .variants import VARIANTS, loss_and_grads, make_model

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU test (Triton interpreter); GPU: test_model_gpu")


@pytest.fixture(autouse=True)
def _fresh_dynamo(monkeypatch):
    import torch._dynamo

    # Compiled code always takes the norms' PyTorch path (Inductor fuses it); eager does too here, so the two runs
    # do the same arithmetic (the fused kernels sum in another order: up to 2e-5 on near-cancelling gradients).
    monkeypatch.setenv("LINMEM_FUSED_NORM", "0")
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _assert_same_training_step(eager, compiled) -> None:
    (out, grads), (compiled_out, compiled_grads) = eager, compiled
    loss, compiled_loss = out.loss.detach(), compiled_out.loss.detach()
    assert torch.allclose(compiled_loss, loss, rtol=1e-5), (compiled_loss, loss)
    assert grads.keys() == compiled_grads.keys()
    for param_name, g in grads.items():
        assert relative_rms(compiled_grads[param_name], g) <= 1e-5, param_name


@pytest.mark.parametrize("name", list(VARIANTS))
def test_compiled_training_step_is_one_graph_and_matches_eager(name):
    model = make_model(name, dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    eager = loss_and_grads(model, ids, backend="triton")
    assert len(eager[1]) == len(list(model.parameters()))  # every parameter has a gradient

    model.compile(backend="aot_eager", fullgraph=True)  # a graph break would raise
    _assert_same_training_step(eager, loss_and_grads(model, ids, backend="triton"))


def test_a_model_compiled_before_any_eager_call(monkeypatch):
    """The first call of a fresh process being a compiled one (model.compile(); trainer.train()): the Triton
    functions are looked up while Dynamo traces, several in one graph (was a KeyError: Dynamo traced the lookup
    table from a snapshot taken before the later functions were found)."""
    from linmem.kernels import backend

    monkeypatch.setattr(backend, "_triton_functions", backend._FoundTritonFunctions())  # nothing found yet
    model = make_model("ccq-gdn", dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    model.compile(backend="aot_eager", fullgraph=True)  # a graph break would raise
    compiled = loss_and_grads(model, ids, backend="triton")
    eager_model = make_model("ccq-gdn", dtype=torch.float32).train()  # the same seed: the same weights
    _assert_same_training_step(loss_and_grads(eager_model, ids, backend="triton"), compiled)


def test_dynamic_shapes_specialise_at_the_kernel_ops():
    """compile(dynamic=True): the ops' fake implementations fix the sizes they see (the launch settings are chosen by
    size), so another batch shape recompiles instead of failing; both shapes match eager."""
    model = make_model("qdelta", dtype=torch.float32).train()
    batches = [torch.randint(3, model.config.vocab_size, shape, generator=torch.Generator().manual_seed(0))
               for shape in ((2, 21), (3, 17))]
    eager = [loss_and_grads(model, ids, backend="triton") for ids in batches]
    model.compile(backend="aot_eager", fullgraph=True, dynamic=True)
    for ids, expected in zip(batches, eager):
        _assert_same_training_step(expected, loss_and_grads(model, ids, backend="triton"))


def test_fused_norm_kernels_run_inside_the_compiled_graph_when_asked(monkeypatch):
    """LINMEM_FUSED_NORM_COMPILED=1: the norm kernels are custom ops in the graph too (by default compiled code takes
    the PyTorch norm, which Inductor fuses); eager on the same kernels gives the same step."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    from linmem.kernels.library import NAMESPACE

    called = set()

    def record(graph_module, example_inputs):  # the forward's and the backward's graph, as aot_eager runs them
        called.update(str(n.target) for n in graph_module.graph.nodes if n.op == "call_function")
        return make_boxed_func(graph_module.forward)

    monkeypatch.setenv("LINMEM_FUSED_NORM", "1")
    monkeypatch.setenv("LINMEM_FUSED_NORM_COMPILED", "1")
    model = make_model("ccq-gdn", dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    eager = loss_and_grads(model, ids, backend="triton")
    model.compile(backend=aot_autograd(fw_compiler=record, bw_compiler=record), fullgraph=True)
    _assert_same_training_step(eager, loss_and_grads(model, ids, backend="triton"))
    ops = {target.split(".")[1] for target in called if target.startswith(f"{NAMESPACE}.")}
    assert {"rms_norm_fwd", "rms_norm_bwd", "delta_rule_fwd", "delta_rule_bwd"} <= ops, ops


@pytest.mark.parametrize("name", ["qdelta", "ccq-gla-hybrid-window"])
def test_padded_batches_compile_to_one_graph_for_every_padding(name):
    """Compiled without a cache, a padded batch packs every position (real tokens first, the padding as one more
    sequence): no shape depends on the mask, so one graph (fullgraph) serves batches padded differently, each equal
    to eager (which packs the real tokens only)."""
    from torch._dynamo.utils import counters

    model = make_model(name, dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    masks = []
    for left, right in ((6, 0), (0, 4), (11, 2)):
        mask = torch.ones_like(ids)
        mask[0, :left] = 0
        mask[1, mask.shape[1] - right:] = 0
        masks.append(mask)

    def step(mask):
        model.zero_grad(set_to_none=True)
        with use_backend("triton"):
            out = model(ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
            out.loss.backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    eager = [step(mask) for mask in masks]
    counters.clear()
    model.compile(backend="aot_eager", fullgraph=True)  # a graph break would raise
    for mask, expected in zip(masks, eager):
        _assert_same_training_step(expected, step(mask))
    assert counters["stats"]["unique_graphs"] == 1


def test_a_padding_mask_with_symbolic_sizes():
    """Ids whose sizes are symbolic while the mask's are not (automatic dynamic shapes mark them so after earlier
    calls of other shapes): the mask's shape check holds (it raised a false ValueError: Dynamo evaluated `in` on a
    tuple of sizes wrongly), equal to eager."""
    model = make_model("qdelta-hybrid", dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0

    def step():
        model.zero_grad(set_to_none=True)
        with use_backend("triton"):
            out = model(ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
            out.loss.backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    eager = step()
    model.compile(backend="aot_eager", fullgraph=True)
    torch._dynamo.maybe_mark_dynamic(ids, 0)  # the ids' sizes symbolic, the mask's not
    torch._dynamo.maybe_mark_dynamic(ids, 1)
    _assert_same_training_step(eager, step())


def test_packed_sequences_marked_by_offsets_compile_to_one_graph():
    """Padding-free training (DataCollatorWithFlattening with return_flash_attn_kwargs=True): the row packs every
    token, so no data-dependent shape arises and the step is one graph, equal to eager."""
    model = make_model("qdelta-hybrid", dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (1, 29), generator=torch.Generator().manual_seed(0))
    offsets = torch.tensor([0, 9, 10, 22, 29], dtype=torch.int32)
    positions = torch.cat([torch.arange(n) for n in (9, 1, 12, 7)])[None]

    def step():
        model.zero_grad(set_to_none=True)
        with use_backend("triton"):
            out = model(ids, labels=ids, position_ids=positions, cu_seq_lens_q=offsets, cu_seq_lens_k=offsets)
            out.loss.backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    eager = step()
    model.compile(backend="aot_eager", fullgraph=True)  # a graph break would raise
    _assert_same_training_step(eager, step())


def test_packed_batches_of_varying_sequence_counts_share_a_graph_per_bucket():
    """The kernels' settings are fixed per size, so each new number of packed sequences would compile a new graph;
    their offsets are padded to a power of two of empty sequences, so counts of 4 to 7 (5 to 8 offsets) share one
    dynamic graph after the first (static) compile."""
    from torch._dynamo.utils import counters

    model = make_model("qdelta", dtype=torch.float32).train()
    model.compile(backend="aot_eager", fullgraph=True)
    length = 40
    counters.clear()
    for sequences in (3, 4, 5, 6, 7):
        offsets = torch.linspace(0, length, sequences + 1).round().to(torch.int32)
        ids = torch.randint(3, model.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))
        with use_backend("triton"):
            model(ids, labels=ids, cu_seq_lens_q=offsets).loss.backward()
    assert counters["stats"]["unique_graphs"] == 2


def test_inductor_compiles_the_graph_around_the_kernel_ops():
    """Inductor's own code generation (C++ on the CPU) around the custom ops: their list outputs and None markers
    reach the generated code as they do aot_eager's (one variant: Inductor takes about 30 s here)."""
    model = make_model("qdelta-hybrid", dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    eager = loss_and_grads(model, ids, backend="triton")
    model.compile(fullgraph=True)
    _assert_same_training_step(eager, loss_and_grads(model, ids, backend="triton"))


@pytest.mark.parametrize("name", ["ccq-gla", "qdelta-hybrid"])
def test_pytorch_path_ops_stay_opaque_calls(name):
    """On the PyTorch backend the ops' chunk loops are not unrolled into the graph: each op is one opaque call."""
    from torch._dynamo.utils import counters

    model = make_model(name, dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    eager = loss_and_grads(model, ids, backend="torch")
    counters.clear()
    model.compile(backend="aot_eager")
    _assert_same_training_step(eager, loss_and_grads(model, ids, backend="torch"))
    breaks = dict(counters["graph_break"])
    assert breaks and all("torch.compiler.disable" in reason for reason in breaks), list(breaks)


def test_compiled_generation_matches_eager():
    """Prefill through the compiled graph, decode steps through the step kernels (run eagerly: they update the
    cached state in place)."""
    model = make_model("ccq-gdn", dtype=torch.float32)
    ids = torch.randint(3, model.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(1))
    with use_backend("triton"):
        expected = model.generate(ids, max_new_tokens=4, do_sample=False)
        model.forward = torch.compile(model.forward, backend="aot_eager")
        assert torch.equal(model.generate(ids, max_new_tokens=4, do_sample=False), expected)


def test_bad_input_to_a_compiled_op_raises_the_ops_own_error():
    """The ops' validation is traced with them: a wrong shape still raises its ValueError naming the argument (with
    fullgraph=True Dynamo wraps it in its Unsupported error, whose text carries the same message)."""
    from linmem.kernels import gated_delta_rule

    q, k, v = torch.randn(1, 8, 2, 16), torch.randn(1, 8, 2, 16), torch.randn(1, 8, 2, 32)
    g, beta = -torch.rand(1, 8, 2), torch.rand(1, 8, 3)
    message = r"beta: expected shape \[B, T, H\] = \[1, 8, 2\], got \[1, 8, 3\]"
    with use_backend("triton"):
        with pytest.raises(ValueError, match=message):
            torch.compile(lambda *a: gated_delta_rule(*a)[0], backend="aot_eager")(q, k, v, g, beta)
        torch._dynamo.reset()
        with pytest.raises(Exception, match=message):
            torch.compile(lambda *a: gated_delta_rule(*a)[0], backend="aot_eager", fullgraph=True)(q, k, v, g, beta)
