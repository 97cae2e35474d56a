"""benchmarks/conv_launch.py runs end to end (CPU, interpreter): every launch of each kind is tried and compared
with the default launch; in process, the module's launches and the caller's LINMEM_CONV_FUSED_BWD are as they were
afterwards."""

from __future__ import annotations

import importlib
import os

from linmem.kernels.conv import triton_conv
from tests.benchmark_smoke import run_smoke

conv_launch = importlib.import_module("benchmarks.conv_launch")


def test_smoke_run_tries_every_launch(tmp_path):
    result = run_smoke("conv_launch.py", "conv-launch", tmp_path)
    rows = result["rows"]
    assert [(r["kernel"], r["rows"], r["channels"], r["warps"]) for r in rows] == [
        ("fwd", 16, 16, 1), ("fwd", 32, 16, 2), ("bwd", 16, 16, 1), ("bwd", 32, 16, 2), ("fused", 16, 16, 1),
        ("fused", 32, 16, 2)]
    assert all("error" not in r and r["rrms"] < 1e-6 for r in rows), rows


def test_the_sweep_restores_the_launches_and_the_switch(monkeypatch):
    monkeypatch.setenv("LINMEM_CONV_FUSED_BWD", "1")
    before = (triton_conv.FWD_LAUNCH, triton_conv.BWD_LAUNCH)
    rows = conv_launch.sweep_dim(2, 19, 24, smoke=True)
    assert len(rows) == 6 and all("error" not in r for r in rows), rows
    assert (triton_conv.FWD_LAUNCH, triton_conv.BWD_LAUNCH) == before
    assert os.environ["LINMEM_CONV_FUSED_BWD"] == "1"
