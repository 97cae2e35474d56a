"""benchmarks/profile_gpu.py runs end to end in its CPU smoke mode, so the next GPU session can rely on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_profile_covers_every_op_and_decode(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "profile_gpu.py"), "--smoke", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=dict(os.environ, TRITON_INTERPRET="1"), timeout=600,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "profile-cpu-smoke.json").read_text())
    assert set(result["ops"]) == {"gla", "ccq_gla", "gated_delta_rule", "qdelta_rule", "ccq_gated_delta_rule"}
    assert all(rows and rows[0]["us"] > 0 for rows in result["ops"].values())
    assert result["decode"]["new_tokens"] == 32 and result["decode"]["wall_ms_per_token"] > 0
