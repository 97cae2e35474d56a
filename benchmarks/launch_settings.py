"""Shared by the launch-setting sweeps (gdn_backward_determinism.py, ccq_stats_configs.py): their command line, and
the loop that applies each configuration, measures it and writes the JSON after every row; the worst error of a
setting's outputs (also kernel_settings.py, launch_ab.py); the recording of an op's kernel launches
(kernel_settings.py, kernel_repeatability.py); the --shape argument of the per-kernel scripts (op_shape)."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple
from unittest import mock


def arguments(doc: str, default_configs: str, repeats: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=default_configs)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (interpreter), no timing")
    return parser.parse_args()


def op_shape(text: str) -> tuple[int, int, int, int, int]:
    """--shape 'B,T' (H16 d_k = d_v = 128) or 'B,T,H,d_k,d_v' (the fla-1.3B GDN layer: 8,4096,6,256,512)."""
    parts = text.split(",")
    if len(parts) not in (2, 5) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--shape: expected B,T or B,T,H,d_k,d_v (positive integers), got {text!r}")
    sizes = [int(p) for p in parts]
    return tuple(sizes + [16, 128, 128] if len(sizes) == 2 else sizes)


def shape_label(shape: tuple) -> str:
    batch, seq_len, heads, dk, dv = shape
    return f"B{batch} T{seq_len} H{heads} dk{dk} dv{dv} bf16"


def worst_rrms(errors: Iterable[float]) -> float:
    """The largest relative RMS error, NaN if any is NaN (an output left unwritten or poisoned: max() would skip it
    or not, depending on where it falls)."""
    errors = list(errors)
    return math.nan if any(math.isnan(e) for e in errors) else max(errors)


def _in_child_process(args: argparse.Namespace, stem: str, config: str, apply: Callable[[str], dict]) -> dict:
    """One configuration's row, measured by this script in a fresh process: an illegal memory access leaves the
    CUDA context unusable, so in one process every later configuration would fail with it too."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, sys.argv[0], "--configs", config, "--repeats", str(args.repeats), "--out", tmp]
        run = subprocess.run(command, capture_output=True, text=True)
        written = list(Path(tmp).glob(f"{stem}-*.json"))
        if written:
            return json.loads(written[0].read_text())["rows"][0]
    return {"config": apply(config), "error": f"the process exited with {run.returncode}: {run.stderr[-300:]}"}


def sweep(args: argparse.Namespace, stem: str, apply: Callable[[str], dict], measure: Callable[[], dict]) -> Path:
    """For each comma-separated configuration: apply(config) -> its description, then measure() -> the row's
    results, each configuration in its own process on the GPU. A configuration that does not build or launch is
    a result too (the row's "error"). Writes <out>/<stem>-<gpu>.json (or -cpu-smoke) after every row and returns
    its path."""
    from benchmarks.kernels import gpu_file_name, result_header

    name = gpu_file_name(args.smoke)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"{stem}-{name}.json"
    header = {"device": "cpu (interpreter)"} if args.smoke else result_header()
    rows = []
    configs = args.configs.split(",")
    for config in configs:
        if len(configs) > 1 and not args.smoke:
            row = _in_child_process(args, stem, config, apply)
        else:
            row = {"config": apply(config)}
            try:
                row.update(measure())
            except Exception as error:
                row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        print(json.dumps(row), flush=True)
        rows.append(row)
        path.write_text(json.dumps({**header, "repeats": args.repeats, "rows": rows}, indent=2))
    print(f"wrote {path}")
    return path


class RecordedLaunch(NamedTuple):
    name: str  # the kernel function's name
    kernel: Any  # the JIT (or, under TRITON_INTERPRET, interpreted) kernel
    grid: tuple
    args: tuple
    kwargs: dict


def record_op_launches(op: str, shape: tuple, device: str, dtype=None) -> list[RecordedLaunch]:
    """Every linmem Triton launch of one fwd+bwd of the linmem.kernels function `op`, in order, on inputs as
    benchmarks/kernels.py makes them at shape (B, T, H, d_k, d_v) on `device` (bf16, or cast to `dtype`: the CPU
    interpreter's bf16 products are wrong, NaN dg and dbeta). The forward that gives the gradient's shape runs
    before recording."""
    import torch
    from triton.runtime.jit import KernelInterface

    import linmem.kernels as K
    from benchmarks.kernels import fwd_bwd_call, make_inputs

    inputs = make_inputs(op, *shape, device=device)
    if dtype is not None:
        inputs = {name: t.to(dtype) for name, t in inputs.items()}
    for t in inputs.values():
        t.requires_grad_(True)
    fn, launches, launch_with_grid = getattr(K, op), [], KernelInterface.__getitem__

    def recording(kernel, grid):  # `kernel[grid](...)` of every JIT or interpreted kernel
        run = launch_with_grid(kernel, grid)
        if not kernel.fn.__module__.startswith("linmem."):
            return run

        def launch(*args, **kwargs):
            launches.append(RecordedLaunch(kernel.fn.__name__, kernel, grid, args, kwargs))
            return run(*args, **kwargs)
        return launch

    with K.use_backend("triton"):
        grad_out = torch.randn_like(fn(**inputs)[0])
        with mock.patch.object(KernelInterface, "__getitem__", recording):
            fwd_bwd_call(fn, inputs, grad_out)()
    return launches
