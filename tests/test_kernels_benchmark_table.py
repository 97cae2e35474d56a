"""benchmarks/kernels.py --table prints the committed H200 sweep as a table, without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "kernels-h200.json"


def test_table_of_the_committed_sweep():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernels.py"), "--table", str(RESULT)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    rows = json.loads(RESULT.read_text())["rows"]
    assert len(lines) == 2 + len(rows)
    gdn_4k = next(r for r in rows if r["op"] == "gated_delta_rule" and r["T"] == 4096 and r["H"] == 16)
    line = next(x for x in lines if x.startswith("gated_delta_rule ") and " 4096  16 " in x)
    assert f"{gdn_4k['fwdbwd_ms']:.2f}" in line and f"{gdn_4k['fwdbwd_vs_fla']:.2f}" in line
    assert len({len(x) for x in lines[2:] if "Error" not in x}) == 1  # fixed-width columns


def test_warm_compile_covers_every_shape_family_of_the_sweep():
    """benchmarks/warm_compile.py compiles ahead what the sweep times: every op at H16 d128 and at the fla-1.3B
    shapes (the committed sweep's rows are the reference)."""
    from benchmarks.kernels import OURS, PEERS
    from benchmarks.warm_compile import warm_tasks

    tasks = set(warm_tasks(PEERS + OURS))
    swept = {(r["op"], r["H"], r["dk"], r["dv"]) for r in json.loads(RESULT.read_text())["rows"]}
    assert swept <= tasks and len(tasks) == len(swept)
    assert set(warm_tasks(["gla"])) == {("gla", 16, 128, 128), ("gla", 4, 256, 512)}
