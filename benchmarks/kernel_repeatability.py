"""Which of an op's Triton kernels gives different results for identical launches?

    python benchmarks/kernel_repeatability.py --ops qdelta_rule [--shape 8,4096[,16,128,128]] [--repeats 4] [--out DIR]
    LINMEM_GDN_WU_BK=64 python benchmarks/kernel_repeatability.py ...   # the same under other launch settings
    python benchmarks/kernel_repeatability.py --smoke --out /tmp/x     # CPU interpreter, tiny shapes: checks the script

tests/test_kernels_gpu_determinism.py says whether a whole fwd+bwd is bitwise repeatable; this names the kernel when
it is not. Records every linmem Triton launch of one fwd+bwd of each op (inputs as benchmarks/kernels.py makes them,
bf16), then relaunches each launch --repeats times from the same starting contents of all its tensor arguments
(restored before every launch, so kernels that accumulate into or overwrite their inputs start alike) and compares
every tensor argument afterwards bitwise. A kernel whose results differ is a compiler or kernel race (a miscompiled
pipeline, a missing barrier), never a property of the inputs. Writes kernel-repeatability-<gpu>.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

import torch  # noqa: E402

from benchmarks.kernels import gpu_file_name, result_header  # noqa: E402
from benchmarks.launch_settings import op_shape, record_op_launches  # noqa: E402


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A view whose equality is bitwise (NaN equals the same NaN)."""
    return t.reshape(-1).contiguous().view(torch.uint8)


@torch.no_grad()  # the recorded arguments include the op's inputs, leaves that require grad
def check_launch(kernel, grid, args: tuple, kwargs: dict, repeats: int) -> dict:
    """Relaunch `repeats` times from the same contents of every tensor argument; which arguments ever differ."""
    names = list(kernel.arg_names)
    tensors = {i: a for i, a in enumerate(args) if isinstance(a, torch.Tensor)}
    start = {i: t.clone() for i, t in tensors.items()}
    results = []
    for _ in range(repeats):
        for i, t in tensors.items():
            t.copy_(start[i])
        kernel[grid](*args, **kwargs)
        results.append({i: t.clone() for i, t in tensors.items()})
    for i, t in tensors.items():  # leave the arguments as recorded
        t.copy_(start[i])
    differing = {}
    for i in tensors:
        first = results[0][i]
        bad = [r[i] for r in results[1:] if not torch.equal(_bits(r[i]), _bits(first))]
        if bad:
            diff = max((b.float() - first.float()).abs().nan_to_num(float("inf")).max().item() for b in bad)
            differing[names[i]] = {"runs_differing": len(bad), "max_abs_diff": diff}
    return differing


def check_op(op: str, shape: tuple, repeats: int, smoke: bool) -> list[dict]:
    rows = []
    for index, (name, kernel, grid, args, kwargs) in enumerate(record_op_launches(
            op, shape, "cpu" if smoke else "cuda", torch.float32 if smoke else None)):
        launch = {key: kwargs[key] for key in ("BK", "BV", "BT", "num_warps", "num_stages") if key in kwargs}
        row = {"op": op, "launch": index, "kernel": name, "grid": list(grid), "settings": launch}
        try:
            row["differing"] = check_launch(kernel, grid, args, kwargs, repeats)
            row["repeatable"] = not row["differing"]
        except Exception as error:  # noqa: BLE001 - a launch that fails alone is a result
            row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default="qdelta_rule,gated_delta_rule")
    parser.add_argument("--shape", default="8,4096", type=op_shape, help="B,T (H16 d128) or B,T,H,d_k,d_v")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (interpreter)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2 (one launch cannot differ from itself)")
    shape = (1, 40, 2, 32, 32) if args.smoke else args.shape
    rows = [row for op in args.ops.split(",") for row in check_op(op, shape, args.repeats, args.smoke)]
    header = {"device": "cpu (interpreter)"} if args.smoke else result_header()
    variables = {k: v for k, v in os.environ.items() if k.startswith("LINMEM_")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"kernel-repeatability-{gpu_file_name(args.smoke)}.json"
    path.write_text(json.dumps({**header, "shape": "B,T,H,dk,dv = " + ",".join(map(str, shape)), "repeats":
                                args.repeats, "variables": variables, "rows": rows}, indent=2))
    failing = sorted({(r["op"], r["kernel"]) for r in rows if not r.get("repeatable", False)})
    print("every launch repeatable" if not failing else f"NOT repeatable (or failed): {failing}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
