"""benchmarks/kernel_resources.py builds the kernels for sm_90 without a GPU and reads their resource usage.

Runs in a subprocess: under TRITON_INTERPRET=1 (this test session on a CPU machine) kernels are
interpreted functions, which Triton cannot compile.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_offline_sm90_build_reports_every_kernel():
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernel_resources.py"), "--head-dims", "32"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split() for line in run.stdout.splitlines()[1:]]
    sys.path.insert(0, str(ROOT))
    from benchmarks.kernel_resources import kernel_builds

    assert len(rows) == len(kernel_builds(32)) >= 23 and not any("failed" in row for row in rows), run.stdout
    for row in rows:  # the elementwise kernels (convolution, cross-entropy) may use no shared memory
        smem_kb, regs, stack = float(row[-3]), int(row[-2]), int(row[-1])
        assert 0 <= smem_kb < 232 and 0 < regs <= 255 and stack >= 0, row
    assert sum(float(row[-3]) > 0 for row in rows) >= 23, run.stdout
