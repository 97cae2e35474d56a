"""Fill Triton's on-disk cache for every op and shape family of `kernels.py`, many processes at once.

The sweep's first rows spend minutes compiling: fla autotunes each of its kernels over dozens of launch
settings, one compilation after another, and our kernels compile too. Compilation is CPU-bound, so one
process per (op, shape family) does it in parallel; the sweep then loads the compiled kernels from the cache
(`TRITON_CACHE_DIR`, default ~/.triton/cache) and spends its time on the GPU. Autotuning's timing choice is
not cached: the sweep still picks fla's launch settings itself, on an idle GPU.

    python benchmarks/warm_compile.py --jobs 8

Runs each op forward and forward+backward once at B = 1, T = 1024 (Triton specialises on divisibility by 16,
not on T, so the kernels compiled here are the sweep's). Prints one line per op with its wall time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

from benchmarks.kernels import FLA_SHAPES, OURS, PEERS  # noqa: E402

WARM_SEQ_LEN = 1024


def warm_tasks(ops: list[str]) -> list[tuple[str, int, int, int]]:
    """(op, heads, d_k, d_v) for every shape family the sweep times."""
    tasks = [(op, 16, 128, 128) for op in ops]
    tasks += [(op, heads, dk, dv) for op, heads, dk, dv in FLA_SHAPES if op in ops]
    return tasks


def warm_one(op: str, heads: int, dk: int, dv: int) -> tuple[str, float, str | None]:
    from benchmarks.kernels import time_op

    started = time.perf_counter()
    row = time_op(op, 1, WARM_SEQ_LEN, heads, dk, dv)
    return f"{op} H{heads} dk{dk} dv{dv}", time.perf_counter() - started, row.get("error")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="processes compiling at once")
    parser.add_argument("--ops", default=None, help=f"comma-separated subset of {PEERS + OURS}")
    args = parser.parse_args()
    ops = args.ops.split(",") if args.ops else PEERS + OURS
    tasks = warm_tasks(ops)
    started = time.perf_counter()
    failed = 0
    # spawn: CUDA cannot be used in a forked child of a process that touched it
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(warm_one, *task) for task in tasks]
        for future in as_completed(futures):
            name, seconds, error = future.result()
            failed += error is not None
            print(f"warmed {name:48s} {seconds:7.1f} s" + (f"  ERROR {error}" if error else ""), flush=True)
    print(f"warmed {len(tasks)} op shapes in {time.perf_counter() - started:.0f} s, {failed} failed")


if __name__ == "__main__":
    main()
