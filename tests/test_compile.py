"""`torch.compile` of a whole linmem model: same loss and gradients as eager, graph breaks only at the kernel ops.

The public ops are opaque calls to Dynamo (`linmem.kernels.backend.kernel_op`), so a compiled model runs the Triton
kernels eagerly and compiles the glue around them. Here on the CPU: the Triton kernels under the interpreter and
Dynamo with the "aot_eager" backend (the graphs and their autograd, without Inductor's C++ code generation); the GPU
test in test_model_gpu.py compiles with Inductor.
"""

from __future__ import annotations

import pytest
import torch

from linmem.kernels import relative_rms

from .variants import VARIANTS, loss_and_grads, make_model

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU test (Triton interpreter); GPU: test_model_gpu")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_compiled_model_matches_eager_and_breaks_only_at_kernel_ops(name, monkeypatch):
    import torch._dynamo

    # Compiled code always takes the norms' PyTorch path (Inductor fuses it); eager does too here, so the two runs
    # do the same arithmetic (the fused kernels sum in another order: up to 2e-5 on near-cancelling gradients).
    monkeypatch.setenv("LINMEM_FUSED_NORM", "0")
    from torch._dynamo.utils import counters

    model = make_model(name, dtype=torch.float32).train()
    ids = torch.randint(3, model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    out, grads = loss_and_grads(model, ids, backend="triton")

    torch._dynamo.reset()
    counters.clear()
    model.compile(backend="aot_eager")
    compiled_out, compiled_grads = loss_and_grads(model, ids, backend="triton")

    loss, compiled_loss = out.loss.detach(), compiled_out.loss.detach()
    assert torch.allclose(compiled_loss, loss, rtol=1e-5), (compiled_loss, loss)
    assert len(grads) == len(list(model.parameters()))  # every parameter has an eager gradient
    for param_name, g in grads.items():
        cg = compiled_grads.get(param_name)
        assert cg is not None and relative_rms(cg, g) <= 1e-5, param_name
    breaks = dict(counters["graph_break"])
    assert breaks, "the kernel ops should be opaque calls (graph breaks), none were seen"
    # Learned position tables check the largest position id on the host (a clear error instead of an index fault).
    allowed = ("torch.compiler.disable",) + (("Tensor.item()",) if model.config.position_embedding_type == "learned"
                                              else ())
    assert all(any(a in reason for a in allowed) for reason in breaks), list(breaks)
