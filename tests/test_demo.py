"""The main job, `python -m linmem demo`, end to end in short mode: it trains (loss falls), saves, reloads
through AutoModelForCausalLM, generates with the cache and prints its report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_short_mode_loss_falls_and_checkpoint_reloads(tmp_path):
    out_dir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "linmem", "demo", "--steps", "40", "--batch-size", "8", "--seq-len", "64",
         "--new-tokens", "8", "--device", "cpu", "--output-dir", str(out_dir)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = result.stdout
    match = re.search(r"training loss\s+([\d.]+) \(first 10% of steps\) -> ([\d.]+)", report)
    assert match, report
    first, last = float(match.group(1)), float(match.group(2))
    assert last < first - 0.3, (first, last)
    assert re.search(r"decode \(generate\)\s+[\d,.]+ tokens/s", report)
    assert re.search(r"recurrent state\s+[\d,]+ bytes per sequence", report)
    assert (Path(out_dir) / "config.json").exists() and (Path(out_dir) / "model.safetensors").exists()
