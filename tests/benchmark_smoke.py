"""Run a benchmark script in its CPU smoke mode (Triton interpreter, tiny shapes) and read the JSON it writes
(tests only): the GPU-session scripts are checked to work before device time is spent on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_smoke(script: str, result_stem: str, out: Path, *args: str) -> dict:
    """`python benchmarks/<script> --smoke <args> --out <out>`; asserts it succeeds; -> the parsed
    <out>/<result_stem>-cpu-smoke.json."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args, "--out", str(out)],
                         capture_output=True, text=True, env=dict(os.environ, TRITON_INTERPRET="1"), timeout=600,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads((out / f"{result_stem}-cpu-smoke.json").read_text())
