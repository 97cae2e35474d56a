"""Which tile and warps make the short convolution's Triton kernels fastest on this GPU?

    python benchmarks/conv_launch.py [--shape 4,4096] [--dims 512,1024] [--out DIR]
    python benchmarks/conv_launch.py --smoke --out /tmp/x     # CPU interpreter, tiny shapes: checks the script

The 340M GDN models run three convolutions a layer (q and k at D 512, v at 1024; width 4, SiLU, bf16) and a training
step spent about 12 ms of its 130 in them (h200-2026-12-04c-defaults/1-candidates/prof-norm), 7.3 of them in the
backward's dx / dweight kernel. For each D this times the op's forward under every forward launch
(linmem.kernels.conv.triton_conv.FWD_LAUNCH: rows, channels, warps), and its forward+backward (the backward: the
dpre pass, then dx and the dweight partial sums, and their reduction; or the one-kernel backward, FUSED_BACKWARD)
under every backward launch (BWD_LAUNCH), the forward at the default launch: the median of
triton.testing.do_bench_cudagraph (replays, no launch overhead, as in a graphed training step), outputs against the
default launch's (relative RMS, buffers NaN-poisoned; dweight's partial sums change with the tile's rows). Writes
conv-launch-<gpu>.json with the forward's achieved GB/s (x read and y written once).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from unittest import mock

import torch

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

from benchmarks.kernels import gpu_file_name, result_header  # noqa: E402
from benchmarks.launch_ab import environment  # noqa: E402
from linmem.kernels.poison import poisoned_buffers  # noqa: E402
from linmem.kernels.utils import relative_rms  # noqa: E402


#: The forward, the two-kernel backward and the one-kernel backward (FUSED_BACKWARD), each under every launch.
KINDS = ("fwd", "bwd", "fused")


def launches(smoke: bool) -> list[tuple[int, int, int]]:
    if smoke:
        return [(16, 16, 1), (32, 16, 2)]
    # 4-16 elements a thread: the offline sm_90 build (kernel_resources.py) spills 2.9 KB in the two-kernel backward at
    # the default 32 x 128 / 4 warps (32 a thread), none at 16; the one-kernel backward needs about 4 to spill none
    return list(itertools.product((8, 16, 32, 64), (64, 128), (4, 8)))


def _time(fn, smoke: bool) -> float:
    """Median ms of fn replayed in a CUDA graph: one op call is tens of microseconds, near its launch overhead,
    while a training step replays the kernels back to back (train_throughput.py --cuda-graph)."""
    if smoke:
        fn()
        return float("nan")
    import triton
    return triton.testing.do_bench_cudagraph(fn, rep=100, return_mode="median")


def sweep_dim(B: int, T: int, D: int, smoke: bool) -> list[dict]:
    from linmem.kernels.conv import triton_conv as conv

    device = "cpu" if smoke else "cuda"
    dtype = torch.float32 if smoke else torch.bfloat16
    gen = torch.Generator(device=device).manual_seed(D)
    x = torch.randn(B, T, D, device=device, dtype=dtype, generator=gen).requires_grad_()
    weight = (torch.randn(D, 4, device=device, dtype=dtype, generator=gen) * 0.5).requires_grad_()
    dy = torch.randn(B, T, D, device=device, dtype=dtype, generator=gen)

    def forward():
        return conv.triton_causal_conv1d(x, weight, activation="silu")[0]

    default_fwd, default_bwd = conv.FWD_LAUNCH, conv.BWD_LAUNCH
    y_ref = forward().detach()
    grads_ref = torch.autograd.grad(forward(), (x, weight), dy)
    rows = []
    gigabytes = 2 * x.numel() * x.element_size() / 1e9
    for kind, launch in itertools.product(KINDS, launches(smoke)):
        setting = conv.ConvLaunch(*launch)
        fwd, bwd = (setting, default_bwd) if kind == "fwd" else (default_fwd, setting)
        row = {"D": D, "B": B, "T": T, "kernel": kind, "rows": setting.rows, "channels": setting.channels,
               "warps": setting.warps}
        with environment({"LINMEM_CONV_FUSED_BWD": str(int(kind == "fused"))}), \
                mock.patch.multiple(conv, FWD_LAUNCH=fwd, BWD_LAUNCH=bwd):
            try:
                if kind == "fwd":
                    with torch.no_grad():
                        with poisoned_buffers(conv.__name__):
                            row["rrms"] = relative_rms(forward(), y_ref)
                        row["ms"] = _time(forward, smoke)
                    row["GB/s"] = gigabytes / (row["ms"] * 1e-3)
                else:
                    y = forward()
                    with poisoned_buffers(conv.__name__):
                        grads = torch.autograd.grad(y, (x, weight), dy, retain_graph=True)
                    row["rrms"] = max(relative_rms(g, r) for g, r in zip(grads, grads_ref))
                    # forward and backward in one replay: the backward's kernels run on the forward's stream, so
                    # a forward made outside the capture would put them outside it (capture invalidated)
                    row["fwdbwd_ms"] = _time(lambda: torch.autograd.grad(forward(), (x, weight), dy), smoke)
            except Exception as err:  # a launch the compiler refuses (shared memory, registers) is recorded
                row["error"] = f"{type(err).__name__}: {str(err)[:200]}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="4,4096", help="B,T")
    parser.add_argument("--dims", default="512,1024")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    B, T = (2, 19) if args.smoke else map(int, args.shape.split(","))
    dims = [24] if args.smoke else [int(d) for d in args.dims.split(",")]
    rows = [row for D in dims for row in sweep_dim(B, T, D, args.smoke)]
    result = {"header": {"smoke": True} if args.smoke else result_header(), "rows": rows}
    for D in dims:
        for kind in KINDS:
            key = "ms" if kind == "fwd" else "fwdbwd_ms"
            timed = [r for r in rows if r["D"] == D and r["kernel"] == kind and r.get(key, float("nan")) == r.get(key)]
            if timed:
                best = min(timed, key=lambda r: r[key])
                print(f"D {D} {kind}: best {best['rows']}x{best['channels']}/{best['warps']} {best[key]:.4f} ms")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"conv-launch-{gpu_file_name(args.smoke)}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
