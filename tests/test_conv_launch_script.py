"""benchmarks/conv_launch.py runs end to end (CPU, interpreter): every launch of each kind is tried and compared
with the default launch, and the module's launches are restored afterwards."""

from __future__ import annotations

import os

from linmem.kernels.conv import triton_conv
from tests.benchmark_smoke import run_smoke


def test_smoke_run_tries_every_launch(tmp_path):
    before = (triton_conv.FWD_LAUNCH, triton_conv.BWD_LAUNCH)
    result = run_smoke("conv_launch.py", "conv-launch", tmp_path)
    rows = result["rows"]
    assert [(r["kernel"], r["rows"], r["channels"], r["warps"]) for r in rows] == [
        ("fwd", 16, 16, 1), ("fwd", 32, 16, 2), ("bwd", 16, 16, 1), ("bwd", 32, 16, 2), ("fused", 16, 16, 1),
        ("fused", 32, 16, 2)]
    assert all("error" not in r and r["rrms"] < 1e-6 for r in rows), rows
    assert (triton_conv.FWD_LAUNCH, triton_conv.BWD_LAUNCH) == before and "LINMEM_CONV_FUSED_BWD" not in os.environ
