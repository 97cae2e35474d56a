"""Is the Gated DeltaNet / Q-Delta backward deterministic and accurate at each WY-backward warp count?

    python benchmarks/gdn_backward_determinism.py [--warps 8,4,2] [--repeats 4] [--out benchmarks/results]

On the GPU only. For each warp count of `wy_bwd_kernel` (set through
linmem.kernels.gated_delta_rule.triton_chunk.WY_BWD_NUM_WARPS), runs the backward of three real-size cases
`--repeats` times on the same inputs and records: whether every gradient is bitwise equal across repeats,
the rrms of dg, dbeta and dk against the float64 per-token reference, and GDN fwd+bwd time at
B8 T4K H16 d128 (bf16, median of triton.testing.do_bench). Writes gdn-wy-bwd-warps-<gpu>.json.
A miscompiled kernel shows up as "deterministic": false with dg/dbeta errors far above dk's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kernels import make_inputs as bench_inputs, result_header  # noqa: E402
from linmem.kernels.gated_delta_rule import triton_chunk  # noqa: E402
from linmem.kernels.gated_delta_rule.naive import naive_gated_delta_rule  # noqa: E402
from linmem.kernels.qdelta.naive import naive_qdelta_rule  # noqa: E402
from linmem.kernels.qdelta.triton_chunk import triton_qdelta_rule  # noqa: E402
from linmem.kernels.utils import relative_rms  # noqa: E402
from tests.test_kernels_triton_gdn import make_inputs, run_fwd_bwd  # noqa: E402

GDN_NAMES = ("q", "k", "v", "g", "beta", "initial_state")
QDELTA_NAMES = ("q", "k", "v", "g", "beta", "lam", "initial_state")


def cases() -> list[tuple]:
    """(name, kernel, reference, input names, inputs): the shapes whose gate gradients failed on the H200."""
    return [
        ("gdn fp16 T1000 d128", triton_chunk.triton_gated_delta_rule, naive_gated_delta_rule, GDN_NAMES,
         make_inputs(1, 1000, 2, 128, 128, dtype=torch.float16, device="cuda", seed=11)),
        ("gdn bf16 T1500 d100", triton_chunk.triton_gated_delta_rule, naive_gated_delta_rule, GDN_NAMES,
         make_inputs(1, 1500, 2, 100, 100, dtype=torch.bfloat16, device="cuda", seed=1500)),
        ("qdelta fp16 T1000 d128", triton_qdelta_rule, naive_qdelta_rule, QDELTA_NAMES,
         make_inputs(1, 1000, 2, 128, 128, dtype=torch.float16, device="cuda", seed=11, with_lam=True)),
    ]


def check(case: tuple, reference_grads: dict, repeats: int) -> dict:
    name, fn, _, names, x = case
    runs = [run_fwd_bwd(fn, x, names)[2] for _ in range(repeats)]
    return {
        "case": name,
        "deterministic": all(torch.equal(runs[0][n], run[n]) for run in runs[1:] for n in names),
        **{f"d{n}_rrms": [relative_rms(run[n], reference_grads[n]) for run in runs] for n in ("g", "beta", "k")},
    }


def gdn_fwd_bwd_ms() -> float:
    from triton.testing import do_bench

    import linmem.kernels as K

    inputs = bench_inputs("gated_delta_rule", 8, 4096, 16, 128, 128)
    for t in inputs.values():
        t.requires_grad_(True)
    with K.use_backend("triton"):
        grad_out = torch.randn_like(K.gated_delta_rule(**inputs)[0])
        return do_bench(lambda: K.gated_delta_rule(**inputs)[0].backward(grad_out), warmup=25, rep=100,
                        return_mode="median")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warps", default="8,4,2")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    all_cases = cases()
    references = []
    for _, _, ref, names, x in all_cases:
        x64 = {n: t.detach().double().requires_grad_(True) for n, t in x.items()}
        references.append(run_fwd_bwd(ref, x64, names)[2])
    rows = []
    for warps in (int(w) for w in args.warps.split(",")):
        triton_chunk.WY_BWD_NUM_WARPS = warps
        row = {"wy_bwd_num_warps": warps, "cases": [check(c, r, args.repeats) for c, r in zip(all_cases, references)],
               "gdn_fwdbwd_ms_B8_T4096_H16_d128": gdn_fwd_bwd_ms()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    name = torch.cuda.get_device_name().lower().replace("nvidia", "").strip().split()[0]
    path = Path(args.out) / f"gdn-wy-bwd-warps-{name}.json"
    path.write_text(json.dumps({**result_header(), "repeats": args.repeats, "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
