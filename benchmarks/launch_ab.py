"""A/B of launch-setting variables on whole ops, in one process: is a kernel's winner also faster in the op?

    python benchmarks/launch_ab.py --ops gated_delta_rule,qdelta_rule --seq-lens 4096,16384 \\
        --variants "bv64:LINMEM_GDN_STATE_BV=64;bwd128:LINMEM_GDN_STATE_BWD_BV=128" [--rounds 3] [--out DIR]
    python benchmarks/launch_ab.py --ops gla --shapes "8,4096,4,256,512" --variants "sums:LINMEM_GLA_SLICE_SUMS=1"
    python benchmarks/launch_ab.py --smoke --out /tmp/x     # CPU interpreter, tiny shapes: checks the script

The LINMEM_* launch variables are read at every call, so each variant is the same process with os.environ
changed: no second start, no second compilation of the other kernels. For each op and T (B·T = 32K, H16 d128,
bf16, inputs as benchmarks/kernels.py makes them; or each of --shapes' B,T,H,d_k,d_v): the output and every gradient
under each variant against linmem's defaults (relative RMS: a miscompiled setting shows), whether two calls give
bitwise-equal results, and the fwd+bwd median of triton.testing.do_bench, timed in --rounds rounds that visit the
variants in turn (so a drifting clock does not favour the variant timed first); the row's time is the median over
rounds. Writes launch-ab-<gpu>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from contextlib import AbstractContextManager
from pathlib import Path
from unittest import mock

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

import torch  # noqa: E402

from benchmarks.kernels import fwd_bwd_call, gpu_file_name, make_inputs, result_header  # noqa: E402
from benchmarks.launch_settings import op_shape, worst_rrms  # noqa: E402

TOKENS = 32768


def parse_variants(text: str) -> dict[str, dict[str, str]]:
    """'name:VAR=VALUE,VAR=VALUE;name2:...' -> {name: {VAR: VALUE}}, after 'default' (no variables)."""
    variants: dict[str, dict[str, str]] = {"default": {}}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, _, assignments = item.partition(":")
        if not name or name in variants:
            raise ValueError(f"--variants: each variant needs a new name before ':', got {item!r}")
        pairs = [a.split("=", 1) for a in assignments.split(",") if a.strip()]
        if not pairs or any(len(p) != 2 or not p[0].startswith("LINMEM_") for p in pairs):
            raise ValueError(f"--variants: {item!r} must set LINMEM_* variables as VAR=VALUE, comma-separated")
        variants[name] = {var.strip(): value.strip() for var, value in pairs}
    return variants


def environment(variables: dict[str, str]) -> AbstractContextManager:
    """A context in which os.environ also holds `variables` (restored, or removed, on exit)."""
    return mock.patch.dict(os.environ, variables)


def _results(fn, inputs: dict, grad_out: torch.Tensor) -> list[torch.Tensor]:
    for t in inputs.values():
        t.grad = None
    out = fn(**inputs)[0]
    out.backward(grad_out)
    return [out.detach().clone()] + [t.grad.clone() for t in inputs.values()]


def shapes_of(seq_lens: str, shapes: str | None) -> list[tuple[int, int, int, int, int]]:
    """(B, T, H, d_k, d_v) to compare at: --shapes ('B,T,H,d_k,d_v;...') if given, else B·T = 32K H16 d128 at each
    of --seq-lens."""
    if shapes:
        return [op_shape(text) for text in shapes.split(";") if text.strip()]
    return [op_shape(f"{TOKENS // int(t)},{t}") for t in seq_lens.split(",")]


def compare(op: str, shape: tuple, variants: dict[str, dict[str, str]], rounds: int, smoke: bool) -> list[dict]:
    """One row per variant of `op` at shape (B, T, H, d_k, d_v): max rrms against the default, repeatability,
    fwd+bwd ms."""
    import linmem.kernels as K
    from linmem.kernels.utils import relative_rms

    batch, seq_len, heads, dk, dv = (1, shape[1], 2, 32, 32) if smoke else shape
    inputs = make_inputs(op, batch, seq_len, heads, dk, dv, device="cpu" if smoke else "cuda")
    if smoke:  # the interpreter's bf16 products are wrong (NaN dg, dbeta): fp32 on the CPU
        inputs = {name: t.float() for name, t in inputs.items()}
    for t in inputs.values():
        t.requires_grad_(True)
    fn = getattr(K, op)
    rows = {name: {"op": op, "T": seq_len, "B": batch, "H": heads, "dk": dk, "dv": dv, "variant": name, "variables": v}
            for name, v in variants.items()}
    with K.use_backend("triton"):
        grad_out = torch.randn_like(fn(**inputs)[0])
        reference = _results(fn, inputs, grad_out)
        names = ["o"] + [f"d{n}" for n in inputs]
        for name, variables in variants.items():
            with environment(variables):
                try:
                    first, second = _results(fn, inputs, grad_out), _results(fn, inputs, grad_out)
                    errors = {n: relative_rms(a, b) for n, a, b in zip(names, first, reference)}
                    rows[name].update(max_rrms=worst_rrms(errors.values()), rrms=errors,
                                      deterministic=all(torch.equal(a, b) for a, b in zip(first, second)))
                except Exception as error:  # noqa: BLE001 - a variant that fails is a result
                    rows[name]["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        if not smoke:
            from triton.testing import do_bench

            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, variables in variants.items():
                    if "error" not in rows[name]:
                        with environment(variables):
                            times[name].append(do_bench(fwd_bwd_call(fn, inputs, grad_out), warmup=25, rep=100,
                                                        return_mode="median"))
            for name, ms in times.items():
                if ms:
                    rows[name].update(fwdbwd_ms=statistics.median(ms), fwdbwd_ms_rounds=ms)
    default_ms = rows["default"].get("fwdbwd_ms")
    for row in rows.values():
        if default_ms and row.get("fwdbwd_ms"):
            row["vs_default"] = row["fwdbwd_ms"] / default_ms
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default="gated_delta_rule,qdelta_rule")
    parser.add_argument("--seq-lens", default="4096,16384")
    parser.add_argument("--shapes", default=None, help="'B,T,H,d_k,d_v;...' instead of --seq-lens (e.g. the fla-1.3B "
                        "GDN layer 8,4096,6,256,512)")
    parser.add_argument("--variants", default="bv64:LINMEM_GDN_STATE_BV=64;bwd128:LINMEM_GDN_STATE_BWD_BV=128")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (interpreter), no timing")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    variants = parse_variants(args.variants)
    shapes = [(1, 40, 2, 32, 32)] if args.smoke else shapes_of(args.seq_lens, args.shapes)
    rows = []
    for op in args.ops.split(","):
        for shape in shapes:
            for row in compare(op, shape, variants, args.rounds, args.smoke):
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in ("rrms", "fwdbwd_ms_rounds")}), flush=True)
    header = {"device": "cpu (interpreter)"} if args.smoke else result_header()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"launch-ab-{gpu_file_name(args.smoke)}.json"
    path.write_text(json.dumps({**header, "rounds": args.rounds, "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
