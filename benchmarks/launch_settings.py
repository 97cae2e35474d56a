"""Shared by the launch-setting sweeps (gdn_backward_determinism.py, ccq_stats_configs.py): their command line, and
the loop that applies each configuration, measures it and writes the JSON after every row."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable


def arguments(doc: str, default_configs: str, repeats: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=default_configs)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (interpreter), no timing")
    return parser.parse_args()


def sweep(args: argparse.Namespace, stem: str, apply: Callable[[str], dict], measure: Callable[[], dict]) -> Path:
    """For each comma-separated configuration: apply(config) -> its description, then measure() -> the row's
    results. A configuration that does not build or launch is a result too (the row's "error"). Writes
    <out>/<stem>-<gpu>.json (or -cpu-smoke) after every row and returns its path."""
    from benchmarks.kernels import gpu_file_name, result_header

    name = gpu_file_name(args.smoke)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"{stem}-{name}.json"
    header = {"device": "cpu (interpreter)"} if args.smoke else result_header()
    rows = []
    for config in args.configs.split(","):
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
