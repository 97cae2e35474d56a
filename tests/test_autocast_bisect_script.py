"""benchmarks/autocast_bisect.py runs end to end (CPU, interpreter, fp16): each split really swaps a pass (its
gradient differs from the all-Triton one) and the all-PyTorch row is the PyTorch path's error."""

from __future__ import annotations

from tests.benchmark_smoke import run_smoke


def test_smoke_run_reports_every_split(tmp_path):
    result = run_smoke("autocast_bisect.py", "autocast-bisect", tmp_path, "--variants", "ccq-gla")
    (row,) = result["rows"]
    errors = row["errors"]
    assert list(errors) == ["triton", "torch", "stat_torch", "backbone_torch", "stat_fp32"]
    assert all(0 < e < 1e-2 for e in errors.values()), errors
    assert len(set(errors.values())) == len(errors), "a split changed nothing"
    assert row["triton_over_torch"] == errors["triton"] / errors["torch"]
