"""Timing of the Gated DeltaNet family Triton kernels (GDN, Q-Delta), for benchmarks/kernels.py.

Functions return plain rows (dicts) so the lead's kernels.py can merge them with the other ops:
    rows = bench_gdn_family(seq_lens=(1024, 4096), tokens=32768, heads=16, dk=128, dv=128)
Each row: op, T, B, H, dk, dv, fwd_ms, fwdbwd_ms (median of triton.testing.do_bench), fwd_tflops, fwd_gbps.
FLOP count (forward, chunk C = 64, per token and head, multiply-add = 2):
    2 * (3 C dk + 2 C dv + 3 dk dv)   [A and W: 2 C dk; U: C dv; W S, K^T V~, Q S: 3 dk dv; Q K^T: C dk; P V~: C dv]
Bytes (forward, minimum): read q, k, v, g, beta (and lam), write o: 2 (2 dk + 2 dv) + 8 per token-head in bf16.
Run directly on a GPU: `python benchmarks/bench_gdn.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gdn_inputs(batch: int, seq_len: int, heads: int, dk: int, dv: int, dtype: torch.dtype = torch.bfloat16,
               device: str = "cuda", with_lam: bool = False, requires_grad: bool = True,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Random GDN / Q-Delta inputs as the layer makes them: unit q, k; beta, lam in (0, 1); g <= 0."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, device=device, generator=gen)

    x = {
        "q": F.normalize(rand(batch, seq_len, heads, dk), dim=-1).to(dtype),
        "k": F.normalize(rand(batch, seq_len, heads, dk), dim=-1).to(dtype),
        "v": rand(batch, seq_len, heads, dv).to(dtype),
        "g": F.logsigmoid(rand(batch, seq_len, heads) + 4.0).float(),
        "beta": torch.sigmoid(rand(batch, seq_len, heads)).float(),
    }
    if with_lam:
        x["lam"] = torch.sigmoid(rand(batch, seq_len, heads) - 0.9).float()
    for t in x.values():
        t.requires_grad_(requires_grad)
    return x


def gdn_flops(tokens: int, heads: int, dk: int, dv: int, chunk: int = 64) -> float:
    return 2.0 * tokens * heads * (3 * chunk * dk + 2 * chunk * dv + 3 * dk * dv)


def gdn_bytes(tokens: int, heads: int, dk: int, dv: int, elem: int = 2, with_lam: bool = False) -> float:
    return float(tokens * heads * (elem * (2 * dk + 2 * dv) + 8 + (4 if with_lam else 0)))


def time_fwd_bwd(fn, inputs: dict[str, torch.Tensor], warmup_ms: int = 50, rep_ms: int = 200) -> tuple[float, float]:
    """Median ms of fn(**inputs) forward, and of forward + backward (o.backward(do))."""
    from triton.testing import do_bench

    with torch.no_grad():
        fwd = do_bench(lambda: fn(**inputs), warmup=warmup_ms, rep=rep_ms, return_mode="median")
    o = fn(**inputs)[0]
    do = torch.randn_like(o)

    def step():
        for t in inputs.values():
            t.grad = None
        fn(**inputs)[0].backward(do)

    fb = do_bench(step, warmup=warmup_ms, rep=rep_ms, return_mode="median")
    return fwd, fb


def gdn_ops() -> dict[str, tuple]:
    """name -> (callable taking the inputs dict, needs lam)."""
    from linmem.kernels.gated_delta_rule.triton_chunk import triton_gated_delta_rule
    from linmem.kernels.qdelta.triton_chunk import triton_qdelta_rule

    ops = {
        "linmem_gdn": (lambda q, k, v, g, beta: triton_gated_delta_rule(q, k, v, g, beta), False),
        "linmem_qdelta": (lambda q, k, v, g, beta, lam: triton_qdelta_rule(q, k, v, g, beta, lam), True),
    }
    return ops


def bench_gdn_family(seq_lens=(1024, 2048, 4096, 8192, 16384, 32768), tokens: int = 32768, heads: int = 16,
                     dk: int = 128, dv: int = 128, dtype: torch.dtype = torch.bfloat16,
                     ops: dict[str, tuple] | None = None) -> list[dict]:
    """Rows of timings at B * T = tokens for each T in seq_lens and each op."""
    ops = ops if ops is not None else gdn_ops()
    rows = []
    for seq_len in seq_lens:
        batch = max(1, tokens // seq_len)
        for name, (fn, with_lam) in ops.items():
            x = gdn_inputs(batch, seq_len, heads, dk, dv, dtype, with_lam=with_lam)
            fwd, fb = time_fwd_bwd(fn, x)
            flops = gdn_flops(batch * seq_len, heads, dk, dv)
            nbytes = gdn_bytes(batch * seq_len, heads, dk, dv, with_lam=with_lam)
            rows.append({"op": name, "T": seq_len, "B": batch, "H": heads, "dk": dk, "dv": dv,
                         "fwd_ms": fwd, "fwdbwd_ms": fb, "fwd_tflops": flops / fwd / 1e9,
                         "fwd_gbps": nbytes / fwd / 1e6})
            del x
            torch.cuda.empty_cache()
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"{'op':16s} {'T':>6s} {'B':>3s} {'H':>3s} {'dk':>4s} {'dv':>4s} {'fwd ms':>8s} {'f+b ms':>8s} "
          f"{'TFLOP/s':>8s} {'GB/s':>7s}")
    for r in rows:
        print(f"{r['op']:16s} {r['T']:6d} {r['B']:3d} {r['H']:3d} {r['dk']:4d} {r['dv']:4d} {r['fwd_ms']:8.3f} "
              f"{r['fwdbwd_ms']:8.3f} {r['fwd_tflops']:8.1f} {r['fwd_gbps']:7.0f}")


if __name__ == "__main__":
    rows = bench_gdn_family(seq_lens=(1024, 4096, 16384))
    rows += bench_gdn_family(seq_lens=(4096,), tokens=32768, heads=6, dk=256, dv=512)
    print_rows(rows)
