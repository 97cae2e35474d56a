"""Which launch settings (blocks, warps, pipeline stages) make each GDN and GLA kernel fastest on this GPU?

    python benchmarks/kernel_settings.py [--kernels state_fwd,gla_state_bwd,...] [--jobs 8] [--shape 8,4096[,H,dk,dv]]
                                         [--out DIR]
    python benchmarks/kernel_settings.py --smoke --out /tmp/x    # CPU interpreter, tiny shapes: checks the script

Records the launches of the chosen kernels in one fwd+bwd of their op (gated_delta_rule or gla, H16 d128 bf16 at
B8 T4K or --shape's B,T (and H,d_k,d_v), as benchmarks/kernels.py makes its inputs), then relaunches each kernel
alone under every setting of its grid in SWEEPS, on the recorded inputs: the median time of triton.testing.do_bench,
the largest relative RMS of its outputs against the launch linmem makes (outputs poisoned with NaN before every
launch, so a tile left unwritten shows), and whether two launches give bitwise-equal outputs. Compilation runs
first in --jobs processes (Triton's on-disk cache); the timing then runs in this one process, alone on the GPU.
Writes kernel-settings-<gpu>.json.
The sweep times kernels, not the op: a winner becomes a default (triton_config.py, gla/triton_chunk.py) only after
the op's fwd+bwd (benchmarks/kernels.py) and the GPU tests agree. --exports writes the winners' LINMEM_* `export`
lines, to time the op under them (for the sweep's shape and dtype only: they apply to every shape).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import triton

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

from benchmarks.kernels import gpu_file_name, result_header  # noqa: E402
from benchmarks.launch_settings import op_shape, record_op_launches, shape_label, worst_rrms  # noqa: E402


def _grid(**axes) -> list[dict]:
    """Every combination of the axes' values, as launch keyword arguments."""
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


class KernelSweep(NamedTuple):
    op: str  # the op whose fwd+bwd launches the kernel (a linmem.kernels function)
    kernel: str  # the kernel function's name
    outputs: tuple[str, ...]  # the kernel's arguments it writes
    grid: Callable[[dict, tuple], tuple]  # (launch keyword arguments, recorded grid) -> grid
    settings: list[dict]  # overrides of the launch's keyword arguments
    env: str = ""  # prefix of the LINMEM_* variables that set the kernel's launch
    key_partials: tuple[str, ...] = ()  # outputs holding one partial per key block (first axis), summed later
    launch: int = 0  # which of the kernel's launches in one fwd+bwd (GLA's state forward runs twice)


def _value_grid(kw: dict, grid: tuple) -> tuple:
    return (triton.cdiv(kw["V"], kw["BV"]), *grid[1:])


def _key_grid(kw: dict, grid: tuple) -> tuple:
    return (triton.cdiv(kw["K"], kw["BK"]), *grid[1:])


def _key_value_grid(kw: dict, grid: tuple) -> tuple:
    return (triton.cdiv(kw["K"], kw["BK"]), triton.cdiv(kw["V"], kw["BV"]), *grid[2:])


_TILES = dict(BK=(32, 64, 128), BV=(32, 64, 128))
_STATE_SETTINGS = _grid(**_TILES, num_warps=(2, 4, 8), num_stages=(2, 3))  # GLA's states: a BK x BV tile each
_CHUNK_SETTINGS = _grid(**_TILES, num_warps=(4, 8), num_stages=(2, 3))

SWEEPS = {
    "state_fwd": KernelSweep("gated_delta_rule", "state_fwd_kernel", ("h_out", "vnew_out", "ht_out"),
                             _value_grid, _grid(BV=(16, 32, 64, 128), num_warps=(2, 4, 8), num_stages=(2, 3, 4)),
                             env="LINMEM_GDN_STATE_FWD_"),
    "state_bwd": KernelSweep("gated_delta_rule", "state_bwd_kernel", ("dh_out", "dvnew_out", "dh0_out"),
                             _value_grid, _grid(BV=(16, 32, 64, 128), num_warps=(2, 4, 8), num_stages=(2, 3, 4)),
                             env="LINMEM_GDN_STATE_BWD_"),
    "output_dqk": KernelSweep("gated_delta_rule", "output_dqk_kernel",
                              ("dq_part", "dk_part", "dw_out", "dgc_part"), _key_grid, _CHUNK_SETTINGS,
                              env="LINMEM_GDN_DQK_", key_partials=("dgc_part",)),
    "wy_wu": KernelSweep("gated_delta_rule", "wy_wu_kernel", ("w_out", "u_out"),
                         lambda kw, grid: (triton.cdiv(kw["K"], kw["BK"]) + triton.cdiv(kw["V"], kw["BV"]), *grid[1:]),
                         _grid(**_TILES, num_warps=(2, 4, 8), num_stages=(2, 3)), env="LINMEM_GDN_WU_"),
    "gla_state_fwd": KernelSweep("gla", "gla_state_fwd_kernel", ("h", "ht"), _key_value_grid, _STATE_SETTINGS,
                                 env="LINMEM_GLA_STATE_FWD_"),
    "gla_state_fwd_fp32": KernelSweep("gla", "gla_state_fwd_kernel", ("h", "ht"), _key_value_grid,
                                      _STATE_SETTINGS, env="LINMEM_GLA_STATE_FP32_", launch=1),  # the backward's
    "gla_state_bwd": KernelSweep("gla", "gla_state_bwd_kernel", ("dh", "dh0"), _key_value_grid, _STATE_SETTINGS,
                                 env="LINMEM_GLA_STATE_BWD_"),
    "gla_output": KernelSweep("gla", "gla_output_kernel", ("o",), _value_grid, _CHUNK_SETTINGS,
                              env="LINMEM_GLA_OUTPUT_"),
    "gla_bwd_dA_dv": KernelSweep("gla", "gla_bwd_dA_dv_kernel", ("dA", "dv"), lambda kw, grid: grid,
                                 _CHUNK_SETTINGS, env="LINMEM_GLA_DA_DV_"),
    "gla_bwd_inter": KernelSweep("gla", "gla_bwd_inter_kernel", ("dq_inter", "dk_inter"), _key_grid,
                                 _CHUNK_SETTINGS, env="LINMEM_GLA_INTER_"),
}
SMOKE_SETTINGS = {"state_fwd": [dict(BV=16, num_warps=2)], "state_bwd": [dict(BV=16, num_warps=2)],
                  "output_dqk": [dict(BK=16, BV=16)], "wy_wu": [dict(BK=16, BV=16)],
                  **{name: [dict(BK=16, BV=16, num_warps=2)] for name in SWEEPS if name.startswith("gla")}}
#: Launch settings Triton uses where a launch names none.
TRITON_DEFAULTS = {"num_warps": 4, "num_stages": 3}


def record_launches(names: list[str], smoke: bool, shape: tuple = (8, 4096, 16, 128, 128)) -> dict[str, tuple]:
    """{sweep name: (kernel, grid, args, kwargs)} of its launch in one fwd+bwd of its op at shape (B, T, H, d_k, d_v),
    bf16."""
    launches = {}
    shape = (1, 40, 2, 32, 32) if smoke else shape
    for op in dict.fromkeys(SWEEPS[name].op for name in names):
        recorded = record_op_launches(op, shape, "cpu" if smoke else "cuda")
        for name in [n for n in names if SWEEPS[n].op == op]:
            sweep = SWEEPS[name]
            mine = [r for r in recorded if r.name == sweep.kernel]
            if len(mine) <= sweep.launch:
                raise ValueError(f"{name}: {op} launched {sweep.kernel} {len(mine)} times, the sweep wants launch "
                                 f"{sweep.launch}: update SWEEPS")
            launches[name] = mine[sweep.launch][1:]
    return launches


class _Launch(NamedTuple):
    run: Callable[[], None]  # launches the kernel under the setting
    buffers: list[torch.Tensor]  # what it writes
    outputs: Callable[[], list[torch.Tensor]]  # its outputs, key-block partials summed


def _prepare(kernel, sweep: KernelSweep, grid: tuple, args: tuple, kwargs: dict, setting: dict) -> _Launch:
    """The recorded launch under `setting`, with fresh buffers for outputs whose size depends on it."""
    named = dict(zip(kernel.arg_names, args))
    missing = [n for n in sweep.outputs if n not in named]
    if missing:
        raise ValueError(f"{kernel.fn.__name__} has no arguments {missing}: update SWEEPS")
    kw = {**kwargs, **setting}
    for name in sweep.key_partials:  # as many partials as the setting has key blocks
        named[name] = named[name].new_empty(triton.cdiv(kw["K"], kw["BK"]), *named[name].shape[1:])
    launch_grid, launch_args = sweep.grid(kw, grid), tuple(named.values())
    written = [n for n in sweep.outputs if named[n] is not None]
    return _Launch(lambda: kernel[launch_grid](*launch_args, **kw), [named[n] for n in written],
                   lambda: [named[n].sum(0) if n in sweep.key_partials else named[n] for n in written])


def _launch(kernel, sweep: KernelSweep, grid: tuple, args: tuple, kwargs: dict, setting: dict) -> list[torch.Tensor]:
    """Poison the outputs with NaN, launch under `setting`, return the outputs."""
    launch = _prepare(kernel, sweep, grid, args, kwargs, setting)
    for t in launch.buffers:
        t.fill_(float("nan"))
    launch.run()
    return launch.outputs()


def _settings(name: str, smoke: bool) -> list[dict]:
    return SMOKE_SETTINGS[name] if smoke else SWEEPS[name].settings


def _compile_share(names: list[str], part: int, parts: int, shape: tuple) -> int:
    """Worker: launch every part-th (kernel, setting) once, which compiles it into Triton's cache."""
    launches = record_launches(names, False, shape)
    todo = [(n, s) for n in names for s in SWEEPS[n].settings][part::parts]
    for name, setting in todo:
        kernel, grid, args, kwargs = launches[name]
        try:
            _launch(kernel, SWEEPS[name], grid, args, kwargs, setting)
        except Exception:  # noqa: BLE001 - the timing pass records the error
            pass
    torch.cuda.synchronize()
    return len(todo)


def measure(names: list[str], smoke: bool, shape: tuple = (8, 4096, 16, 128, 128)) -> list[dict]:
    from linmem.kernels.utils import relative_rms

    launches = record_launches(names, smoke, shape)
    rows = []
    for name in names:
        kernel, grid, args, kwargs = launches[name]
        sweep = SWEEPS[name]
        linmem_setting = {**TRITON_DEFAULTS, **{key: kwargs[key] for key in ("BK", "BV", "num_warps", "num_stages")
                                                if key in kwargs}}
        reference = [t.clone() for t in _launch(kernel, sweep, grid, args, kwargs, {})]
        for setting in [{}] + _settings(name, smoke):
            row = {"kernel": name, "setting": {**linmem_setting, **setting}, "linmem": not setting}
            try:
                first = [t.clone() for t in _launch(kernel, sweep, grid, args, kwargs, setting)]
                second = _launch(kernel, sweep, grid, args, kwargs, setting)
                row["max_rrms"] = worst_rrms(relative_rms(a, b) for a, b in zip(first, reference))
                row["deterministic"] = all(torch.equal(a, b) for a, b in zip(first, second))
                if not smoke:
                    from triton.testing import do_bench

                    run = _prepare(kernel, sweep, grid, args, kwargs, setting).run
                    row["ms"] = do_bench(run, warmup=10, rep=50, return_mode="median")
            except Exception as error:  # noqa: BLE001 - a setting that does not build is a result
                row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
            finally:  # linmem's outputs for the kernels after this one, whatever this setting left
                _launch(kernel, sweep, grid, args, kwargs, {})
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def best_settings(rows: list[dict], max_rrms: float = 5e-3) -> dict:
    """Per kernel: linmem's time, and the fastest setting that is accurate and deterministic."""
    summary = {}
    for name in dict.fromkeys(r["kernel"] for r in rows):
        ok = [r for r in rows if r["kernel"] == name and "ms" in r and r["deterministic"]
              and r["max_rrms"] <= max_rrms]  # NaN (an unwritten tile) compares False
        ours = next((r for r in rows if r["kernel"] == name and r["linmem"] and "ms" in r), None)
        if ok and ours:
            best = min(ok, key=lambda r: r["ms"])
            summary[name] = {"linmem_ms": ours["ms"], "best_ms": best["ms"], "best_setting": best["setting"]}
    return summary


_VARIABLES = {"BK": "BK", "BV": "BV", "num_warps": "WARPS", "num_stages": "STAGES"}


def exports(best: dict, min_gain: float = 0.03) -> list[str]:
    """`export` lines that put each kernel's winner in force, where it beats linmem's launch by min_gain or more."""
    lines = []
    for name, b in best.items():
        if b["best_ms"] <= (1 - min_gain) * b["linmem_ms"]:
            lines += [f"export {SWEEPS[name].env}{_VARIABLES[key]}={value}" for key, value in b["best_setting"].items()
                      if not (key == "BK" and name.startswith("state"))]  # the state kernels hold all of K
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", default=",".join(SWEEPS))
    parser.add_argument("--jobs", type=int, default=8, help="processes compiling the settings ahead of the timing")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (interpreter), no timing")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--shape", default="8,4096", type=op_shape,
                        help="B,T (H16 d128) or B,T,H,d_k,d_v of the recorded fwd+bwd (bf16)")
    parser.add_argument("--exports", default=None, help="write the winners' `export` lines to this file")
    args = parser.parse_args()
    names = args.kernels.split(",")
    unknown = sorted(set(names) - set(SWEEPS))
    if unknown:
        parser.error(f"unknown kernels {unknown}; choose from {sorted(SWEEPS)}")
    if not args.smoke and args.jobs > 1:
        # spawn: CUDA cannot be used in a forked child of a process that touched it
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = sum(pool.map(_compile_share, [names] * args.jobs, range(args.jobs), [args.jobs] * args.jobs,
                                [args.shape] * args.jobs))
        print(f"compiled {done} settings in {args.jobs} processes", flush=True)
    rows = measure(names, args.smoke, args.shape)
    header = {"device": "cpu (interpreter)"} if args.smoke else result_header()
    result = {**header, "shape": "B1 T40 H2 d32 (smoke)" if args.smoke else shape_label(args.shape),
              "rows": rows, "best": best_settings(rows)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"kernel-settings-{gpu_file_name(args.smoke)}.json"
    path.write_text(json.dumps(result, indent=2))
    for name, best in result["best"].items():
        print(f"{name}: linmem {best['linmem_ms']:.3f} ms, best {best['best_ms']:.3f} ms with {best['best_setting']}")
    print(f"wrote {path}")
    if args.exports:
        Path(args.exports).write_text("".join(line + "\n" for line in exports(result["best"])))


if __name__ == "__main__":
    main()
