"""benchmarks/kernel_settings.py runs end to end (CPU, interpreter): each kernel's launch is recorded and
relaunched under a setting other than linmem's, and a launch that leaves part of an output unwritten is caught."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from tests.benchmark_smoke import run_smoke

settings_script = importlib.import_module("benchmarks.kernel_settings")


def test_smoke_run_relaunches_every_kernel_under_another_setting(tmp_path):
    result = run_smoke("kernel_settings.py", "kernel-settings", tmp_path)
    rows = result["rows"]
    assert [r["kernel"] for r in rows if r["linmem"]] == list(settings_script.SWEEPS)  # GDN's and GLA's
    for name in settings_script.SWEEPS:
        ours, *others = [r for r in rows if r["kernel"] == name]
        assert others and all(r["setting"] != ours["setting"] for r in others), name
        for row in (ours, *others):
            assert "error" not in row, row
            assert row["deterministic"] and row["max_rrms"] < 1e-2, row


def test_unwritten_output_tiles_show_as_nan(monkeypatch):
    launches = settings_script.record_launches(["output_dqk"], smoke=True)
    kernel, grid, args, kwargs = launches["output_dqk"]
    sweep = settings_script.SWEEPS["output_dqk"]
    reference = [t.clone() for t in settings_script._launch(kernel, sweep, grid, args, kwargs, {})]
    half = sweep._replace(grid=lambda kw, g: (1, *g[1:]))  # one key block of two: dq's second half stays NaN
    outputs = settings_script._launch(kernel, half, grid, args, {**kwargs, "BK": 16}, {})
    from linmem.kernels.utils import relative_rms

    assert math.isnan(relative_rms(outputs[0], reference[0]))
    assert not any(t.isnan().any() for t in reference)


def test_each_sweep_relaunches_the_launch_it_names():
    """GLA's state forward runs twice in one fwd+bwd: with the input dtype's states (forward) and with fp32 states
    (backward); each sweep must relaunch its own. The forward that gives the gradient's shape is not recorded (it
    once made the fp32 sweep relaunch the bf16 forward)."""
    launches = settings_script.record_launches(["gla_state_fwd", "gla_state_fwd_fp32"], smoke=True)
    assert launches["gla_state_fwd"][3]["MM_FP32"] is False
    assert launches["gla_state_fwd_fp32"][3]["MM_FP32"] is True
    assert launches["gla_state_fwd_fp32"][2][4].dtype == torch.float32  # h, the states it writes
    with pytest.raises(ValueError, match="update SWEEPS"):
        bad = settings_script.SWEEPS["gla_output"]._replace(launch=1)
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(settings_script.SWEEPS, "gla_output", bad)
            settings_script.record_launches(["gla_output"], smoke=True)


def test_worst_error_is_nan_wherever_a_nan_falls():
    from benchmarks.launch_settings import worst_rrms

    assert worst_rrms([1e-3, 2e-3]) == 2e-3
    assert math.isnan(worst_rrms([math.nan, 1e-3])) and math.isnan(worst_rrms([1e-3, math.nan]))


def test_shape_argument_takes_two_or_five_sizes():
    from benchmarks.launch_settings import op_shape, shape_label

    assert op_shape("2,16384") == (2, 16384, 16, 128, 128)
    assert op_shape("8,4096,6,256,512") == (8, 4096, 6, 256, 512)
    assert shape_label(op_shape("8,4096,6,256,512")) == "B8 T4096 H6 dk256 dv512 bf16"
    for bad in ("8", "8,4096,6", "8,0", "8,x"):
        with pytest.raises(ValueError, match="--shape"):
            op_shape(bad)


if __name__ == "__main__":
    pytest.main([__file__])
