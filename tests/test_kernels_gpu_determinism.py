"""GPU only: every Triton op gives bitwise-equal outputs and gradients when called again on the same inputs.

Why: on the H200 with Triton 3.6 the Gated DeltaNet WY backward at 8 warps was miscompiled; its dg and dbeta
changed from call to call (rrms up to 5.5e-2), while every other gradient stayed put and passed. The kernels
have no atomics, so any difference between identical calls is a codegen race. Inputs: fp16 (the dtype
where the drift was largest), T = 1000 (not a multiple of the chunk), d = 128; and the benchmark's shape, B8 T4K
H16 d128 bf16, where every SM is busy: output_dqk_kernel at a 128-wide key block with 3 pipeline stages drifted
there (rrms 8e-4 between calls) and not at the small shape (benchmarks/kernel_settings.py,
h200-2026-12-03-kernel-settings).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

OPS = ["gla", "gated_delta_rule", "qdelta_rule", "ccq_gla", "ccq_gated_delta_rule"]


SHAPES = {"B1-T1000-H2-fp16": (1, 1000, 2, torch.float16), "B8-T4096-H16-bf16": (8, 4096, 16, torch.bfloat16)}


def inputs(op: str, B: int = 1, T: int = 1000, H: int = 2, dtype: torch.dtype = torch.float16, D: int = 128) -> dict:
    gen = torch.Generator(device="cuda").manual_seed(11)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device="cuda")

    x = {"q": F.normalize(randn(B, T, H, D), dim=-1).to(dtype), "k": F.normalize(randn(B, T, H, D), dim=-1).to(dtype),
         "v": randn(B, T, H, D).to(dtype)}
    if "gla" in op:
        x["gk"] = F.logsigmoid(randn(B, T, H, D)) / 16
    else:
        x["g"] = F.logsigmoid(randn(B, T, H) + 2.0)
        x["beta"] = torch.sigmoid(randn(B, T, H))
    if op != "gla" and op != "gated_delta_rule":
        x["lam"] = torch.sigmoid(randn(B, T, H) - 0.5)
    return x


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("op", OPS)
def test_repeated_calls_are_bitwise_equal(op, shape):
    import linmem.kernels as K

    x = inputs(op, *SHAPES[shape])
    for t in x.values():
        t.requires_grad_(True)
    fn = getattr(K, op)
    grad_out = torch.randn(x["v"].shape, generator=torch.Generator(device="cuda").manual_seed(1),
                           device="cuda").to(x["v"].dtype)
    runs = []
    with K.use_backend("triton"):
        for _ in range(3):
            out = fn(**x)[0]
            grads = torch.autograd.grad(out, list(x.values()), grad_out)
            runs.append([out.detach()] + list(grads))
    names = ["o"] + ["d" + n for n in x]
    unequal = sorted({n for run in runs[1:] for n, a, b in zip(names, runs[0], run) if not torch.equal(a, b)})
    assert not unequal, f"{op}: differs between identical calls: {unequal}"
