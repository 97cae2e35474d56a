"""benchmarks/gdn_backward_determinism.py runs end to end (CPU, interpreter, tiny shapes), so it works when the
next GPU session needs it: every configuration builds, runs twice, and lands in the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_every_configuration(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gdn_backward_determinism.py"), "--smoke",
                          "--configs", "2,4:255", "--repeats", "2", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads((tmp_path / "gdn-wy-bwd-configs-cpu-smoke.json").read_text())["rows"]
    assert [r["config"] for r in rows] == [{"num_warps": 2, "maxnreg": None}, {"num_warps": 4, "maxnreg": 255}]
    for row in rows:
        assert "error" not in row, row
        for case in row["cases"]:
            assert case["deterministic"], case
            assert max(case["dg_rrms"]) < 1e-2 and max(case["dk_rrms"]) < 1e-2, case
