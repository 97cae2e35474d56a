"""GLA / CCQ-GLA kernel timings (pieces for benchmarks/kernels.py).

`bench_gla_family(...)` times our Triton `triton_gla` and `triton_ccq_gla` (forward, and forward +
backward) with `triton.testing.do_bench` (median, ms) at B*T = total_tokens, bf16, and returns rows
{op, T, B, H, K, V, fwd_ms, fwdbwd_ms}. Run: `python benchmarks/bench_gla.py` on a CUDA machine.
"""

from __future__ import annotations

import json
import sys

import torch
import triton


def make_gla_inputs(B: int, T: int, H: int, K: int, V: int, dtype=torch.bfloat16, device="cuda", seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    q, k = (torch.randn(B, T, H, K, device=device, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(B, T, H, V, device=device, generator=g, dtype=dtype)
    gk = (torch.nn.functional.logsigmoid(torch.randn(B, T, H, K, device=device, generator=g)) / 16).to(dtype)
    lam = torch.rand(B, T, H, device=device, generator=g)
    return q, k, v, gk, lam


def time_fwd_and_fwdbwd(fn, inputs, grad_idx) -> tuple[float, float]:
    """Median ms of fn(*inputs)[0] and of its forward + backward (grads of inputs[grad_idx])."""
    def fwd():
        with torch.no_grad():
            fn(*inputs)

    leaves = [x.detach().requires_grad_(i in grad_idx) for i, x in enumerate(inputs)]
    do = torch.randn_like(fn(*leaves)[0])

    def fwdbwd():
        for x in leaves:
            x.grad = None
        fn(*leaves)[0].backward(do)

    return (triton.testing.do_bench(fwd, warmup=25, rep=100, return_mode="median"),
            triton.testing.do_bench(fwdbwd, warmup=25, rep=100, return_mode="median"))


def bench_gla_family(Ts=(1024, 4096, 16384), total_tokens=32768, H=16, K=128, V=128):
    from linmem.kernels.ccq.triton_chunk import triton_ccq_gla
    from linmem.kernels.gla.triton_chunk import triton_gla

    rows = []
    for T in Ts:
        B = max(1, total_tokens // T)
        q, k, v, gk, lam = make_gla_inputs(B, T, H, K, V)
        f_gla, fb_gla = time_fwd_and_fwdbwd(lambda q, k, v, gk: triton_gla(q, k, v, gk), [q, k, v, gk], {0, 1, 2, 3})
        rows.append(dict(op="gla", T=T, B=B, H=H, K=K, V=V, fwd_ms=f_gla, fwdbwd_ms=fb_gla))
        f_c, fb_c = time_fwd_and_fwdbwd(lambda q, k, v, gk, lam: triton_ccq_gla(q, k, v, gk, lam),
                                        [q, k, v, gk, lam], {0, 1, 2, 3, 4})
        rows.append(dict(op="ccq_gla", T=T, B=B, H=H, K=K, V=V, fwd_ms=f_c, fwdbwd_ms=fb_c,
                         ratio_to_gla_fwdbwd=fb_c / fb_gla))
        print(json.dumps(rows[-2]), json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    rows = bench_gla_family()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            json.dump(rows, f, indent=1)
