"""Is the Gated DeltaNet / Q-Delta backward deterministic and accurate in each WY-backward configuration?

    python benchmarks/gdn_backward_determinism.py [--configs 2+4,2/16+4/32@32,...] [--repeats 4] [--out DIR]

On the GPU only. A configuration is warps[:maxnreg][/block][+keys_warps[/keys_block]][@dqk_bv]: the warps, register
cap and key/value block of wy_bwd_gates_kernel, the warps and key block of wy_bwd_keys_kernel, and the value block
of output_dqk_kernel, set through the LINMEM_GDN_* variables read by
linmem.kernels.gated_delta_rule.triton_config (apply() says what is left out). For each, runs the
backward of three real-size cases `--repeats` times on the same inputs and records: whether every gradient is
bitwise equal across repeats, the rrms of dg, dbeta, dk, dq (and dlam) against the float64 per-token reference,
and GDN and Q-Delta fwd+bwd time at B8 T4K H16 d128 (bf16, median of triton.testing.do_bench). Writes
gdn-wy-bwd-configs-<gpu>.json.
A miscompiled kernel shows up as "deterministic": false with dg/dbeta errors far above dk's.
Pick the fastest configuration that is deterministic with dg/dbeta near dk in every case.
"""

from __future__ import annotations

import os

import torch

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

from benchmarks.kernels import fwd_bwd_call, make_inputs as bench_inputs  # noqa: E402
from benchmarks.launch_settings import arguments, sweep  # noqa: E402
from linmem.kernels.gated_delta_rule.triton_chunk import triton_gated_delta_rule  # noqa: E402
from linmem.kernels.gated_delta_rule.naive import naive_gated_delta_rule  # noqa: E402
from linmem.kernels.qdelta.naive import naive_qdelta_rule  # noqa: E402
from linmem.kernels.qdelta.triton_chunk import triton_qdelta_rule  # noqa: E402
from linmem.kernels.utils import relative_rms  # noqa: E402
from tests.test_kernels_triton_gdn import make_inputs, run_fwd_bwd  # noqa: E402

GDN_NAMES = ("q", "k", "v", "g", "beta", "initial_state")
QDELTA_NAMES = ("q", "k", "v", "g", "beta", "lam", "initial_state")


def cases(device: str = "cuda", smoke: bool = False) -> list[tuple]:
    """(name, kernel, reference, input names, inputs): the shapes whose gate gradients failed on the H200
    (smoke: tiny shapes for a CPU run under TRITON_INTERPRET=1, which checks only that the script works)."""
    t1, t2, d1, d2 = (40, 37, 16, 20) if smoke else (1000, 1500, 128, 100)
    return [
        (f"gdn fp16 T{t1} d{d1}", triton_gated_delta_rule, naive_gated_delta_rule, GDN_NAMES,
         make_inputs(1, t1, 2, d1, d1, dtype=torch.float16, device=device, seed=11)),
        (f"gdn bf16 T{t2} d{d2}", triton_gated_delta_rule, naive_gated_delta_rule, GDN_NAMES,
         make_inputs(1, t2, 2, d2, d2, dtype=torch.float32 if smoke else torch.bfloat16, device=device,
                     seed=1500)),
        (f"qdelta fp16 T{t1} d{d1}", triton_qdelta_rule, naive_qdelta_rule, QDELTA_NAMES,
         make_inputs(1, t1, 2, d1, d1, dtype=torch.float16, device=device, seed=11, with_lam=True)),
    ]


def check(case: tuple, reference_grads: dict, repeats: int) -> dict:
    name, fn, _, names, x = case
    runs = [run_fwd_bwd(fn, x, names)[2] for _ in range(repeats)]
    return {
        "case": name,
        "deterministic": all(torch.equal(runs[0][n], run[n]) for run in runs[1:] for n in names),
        **{f"d{n}_rrms": [relative_rms(run[n], reference_grads[n]) for run in runs]
           for n in ("g", "beta", "k", "q", "lam") if n in names},
    }


def fwd_bwd_ms(op: str) -> float:
    """fwd+bwd of linmem's `op` (gated_delta_rule or qdelta_rule) at B8 T4K H16 d128, bf16."""
    from triton.testing import do_bench

    import linmem.kernels as K

    inputs = bench_inputs(op, 8, 4096, 16, 128, 128)
    for t in inputs.values():
        t.requires_grad_(True)
    fn = getattr(K, op)
    with K.use_backend("triton"):
        grad_out = torch.randn_like(fn(**inputs)[0])
        return do_bench(fwd_bwd_call(fn, inputs, grad_out), warmup=25, rep=100, return_mode="median")


DEFAULT_CONFIGS = "2/16+4/32,2/16+4/16,2/16+8/32,4/16+4/32"


def apply(config: str) -> dict:
    """Set the LINMEM_GDN_* variables of 'warps[:maxnreg][/block][+keys_warps[/keys_block]][@dqk_bv]'; -> the
    setting the kernels will run with, as a dict. Left out: maxnreg unset, the keys kernel at the gates kernel's
    warps, and linmem's default blocks (recorded as resolved, so a row says what it timed)."""
    from linmem.kernels.gated_delta_rule.triton_config import _wy_bwd_config

    config, _, dqk_bv = config.partition("@")
    gates, _, keys = config.partition("+")
    gates, _, gates_block = gates.partition("/")
    warps, _, maxnreg = gates.partition(":")
    keys_warps, _, keys_block = keys.partition("/")
    # without +keys_warps the keys kernel runs at the gates kernel's warps, not at linmem's default
    values = {"LINMEM_GDN_WY_BWD_WARPS": warps, "LINMEM_GDN_WY_BWD_MAXNREG": maxnreg,
              "LINMEM_GDN_WY_KEYS_WARPS": keys_warps or warps, "LINMEM_GDN_WY_GATES_BLOCK": gates_block,
              "LINMEM_GDN_WY_KEYS_BLOCK": keys_block, "LINMEM_GDN_DQK_BV": dqk_bv}
    os.environ.update(values)
    setting = _wy_bwd_config()
    return {"num_warps": setting.warps, "maxnreg": setting.maxnreg, "keys_num_warps": setting.keys_warps,
            "gates_block": setting.gates_block, "keys_block": setting.keys_block,
            "dqk_value_block": setting.dqk_value_block}


def main() -> None:
    args = arguments(__doc__, DEFAULT_CONFIGS, repeats=4)
    all_cases = cases("cpu" if args.smoke else "cuda", args.smoke)
    references = []
    for _, _, ref, names, x in all_cases:
        x64 = {n: t.detach().double().requires_grad_(True) for n, t in x.items()}
        references.append(run_fwd_bwd(ref, x64, names)[2])

    def measure() -> dict:
        return {"cases": [check(c, r, args.repeats) for c, r in zip(all_cases, references)],
                **({} if args.smoke else {"gdn_fwdbwd_ms_B8_T4096_H16_d128": fwd_bwd_ms("gated_delta_rule"),
                                          "qdelta_fwdbwd_ms_B8_T4096_H16_d128": fwd_bwd_ms("qdelta_rule")})}

    sweep(args, "gdn-wy-bwd-configs", apply, measure)


if __name__ == "__main__":
    main()
