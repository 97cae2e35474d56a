"""Which launch settings of the CCQ statistic's chunk-parallel kernels are correct and fastest on this GPU?

    python benchmarks/ccq_stats_configs.py [--configs 8:32:2,8:32:2+4:32:2:1,...] [--repeats 3] [--out DIR] [--smoke]

A configuration is warps:BV:stages of the three chunk-parallel kernels (ccq_stats_fwd_chunk, ccq_stats_bwd_value,
ccq_stats_bwd_key), set through the LINMEM_CCQ_CHUNK_* variables read by linmem.kernels.ccq.triton_stats,
optionally followed by +warps:BV:stages:split for the forward chunk kernel alone (LINMEM_CCQ_FWD_*; split 1 gives
each program one value block instead of a loop over all of them). For each:
the GPU accuracy checks of tests/test_kernels_triton_ccq_stats.py (K = 64 dense, K = 128 varlen with centring;
every output and gradient against float64), whether `--repeats` fwd+bwd calls on the same inputs are bitwise
equal, and the time of ccq_contract_query fwd and fwd+bwd at B8 T4K H16 K128 (bf16, median of
triton.testing.do_bench). Writes ccq-stats-configs-<gpu>.json. Pick the fastest configuration that passes and is
deterministic; make it the table in triton_stats._split_tiles. --smoke: tiny shapes on the CPU (interpreter),
which checks only that the script works.
"""

from __future__ import annotations

import os

import torch

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

from benchmarks.launch_settings import arguments, sweep  # noqa: E402
from linmem.kernels.ccq.triton_stats import ccq_contract_query  # noqa: E402
from tests.test_kernels_triton_ccq_stats import CPU_CASES, GPU_CASES, check  # noqa: E402

DEFAULT_CONFIGS = "8:32:2,8:32:2+4:32:2:0,8:32:2+4:32:2:1,8:32:2+8:32:2:1,8:32:2+4:64:2:1,8:32:2+8:64:2:1"
FORWARD_VARIABLES = ("LINMEM_CCQ_FWD_WARPS", "LINMEM_CCQ_FWD_BV", "LINMEM_CCQ_FWD_STAGES", "LINMEM_CCQ_FWD_SPLIT")


def apply(config: str) -> dict:
    """Set the LINMEM_CCQ_CHUNK_* (and LINMEM_CCQ_FWD_*) variables for 'warps:BV:stages[+warps:BV:stages:split]';
    -> the config as a dict."""
    every, _, forward = config.partition("+")
    warps, bv, stages = every.split(":")
    os.environ.update(LINMEM_CCQ_CHUNK_WARPS=warps, LINMEM_CCQ_CHUNK_BV=bv, LINMEM_CCQ_CHUNK_STAGES=stages)
    described = {"num_warps": int(warps), "BV": int(bv), "num_stages": int(stages)}
    for name in FORWARD_VARIABLES:
        os.environ.pop(name, None)
    if forward:
        values = forward.split(":")
        os.environ.update(zip(FORWARD_VARIABLES, values))
        described["forward"] = {"num_warps": int(values[0]), "BV": int(values[1]), "num_stages": int(values[2]),
                                "split": bool(int(values[3]))}
    return described


def inputs(B: int, T: int, H: int, K: int, device: str, dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(B, T, H, K, device=device, generator=gen).to(dtype)
    k = torch.nn.functional.normalize(torch.randn(B, T, H, K, device=device, generator=gen), dim=-1).to(dtype)
    g = -0.1 * torch.rand(B, T, H, device=device, generator=gen)
    lam = torch.rand(B, T, H, device=device, generator=gen)
    return [x.requires_grad_() for x in (q, k, g, lam)]


def fwd_bwd(xs: list[torch.Tensor], grad: torch.Tensor) -> list[torch.Tensor]:
    q_tilde, _ = ccq_contract_query(*xs, center=True)
    return list(torch.autograd.grad(q_tilde, xs, grad))


def accuracy(smoke: bool) -> list[dict]:
    """The accuracy checks: 'ok' or the first assertion that failed."""
    device = "cpu" if smoke else "cuda"
    cases = [("cpu " + str(CPU_CASES[3][:6]), lambda: check(*CPU_CASES[3], torch.float32, device, 1e-4, 1e-3))] \
        if smoke else [(f"bf16 K{c[3]}", lambda c=c: check(*c[:4], 64, c[4], True, True, c[5], torch.bfloat16,
                                                          device, 5e-3, 1e-2, seed=c[3], decay=0.1))
                       for c in GPU_CASES[:2]]
    results = []
    for name, run in cases:
        try:
            run()
            results.append({"case": name, "result": "ok"})
        except AssertionError as error:
            results.append({"case": name, "result": f"failed: {str(error)[:200]}"})
    return results


def deterministic(repeats: int, smoke: bool) -> bool:
    shape = (1, 40, 2, 20) if smoke else (2, 2048, 4, 128)
    xs = inputs(*shape, "cpu" if smoke else "cuda", torch.float32 if smoke else torch.bfloat16)
    grad = torch.randn_like(xs[0])
    runs = [fwd_bwd(xs, grad) for _ in range(repeats)]
    return all(torch.equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run))


def timings() -> dict:
    from triton.testing import do_bench

    xs = inputs(8, 4096, 16, 128, "cuda", torch.bfloat16)
    grad = torch.randn_like(xs[0])
    with torch.no_grad():
        fwd = do_bench(lambda: ccq_contract_query(*xs, center=True), warmup=25, rep=100, return_mode="median")
    both = do_bench(lambda: fwd_bwd(xs, grad), warmup=25, rep=100, return_mode="median")
    return {"fwd_ms_B8_T4096_H16_K128": fwd, "fwdbwd_ms_B8_T4096_H16_K128": both}


def main() -> None:
    args = arguments(__doc__, DEFAULT_CONFIGS, repeats=3)

    def measure() -> dict:
        row = {"accuracy": accuracy(args.smoke), "deterministic": deterministic(args.repeats, args.smoke)}
        return row if args.smoke else {**row, **timings()}

    sweep(args, "ccq-stats-configs", apply, measure)


if __name__ == "__main__":
    main()
