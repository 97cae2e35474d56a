"""benchmarks/kernel_repeatability.py: it records every Triton launch of an op and finds the ones whose results
differ between identical launches (CPU, interpreter for the end-to-end run; stand-in kernels for the comparison)."""

from __future__ import annotations

import importlib

import torch

from tests.benchmark_smoke import run_smoke

repeatability = importlib.import_module("benchmarks.kernel_repeatability")


class _StandInKernel:
    """A launchable object like a JIT kernel: kernel[grid](out, x) runs `body(out, x)`."""

    arg_names = ["out", "x"]

    def __init__(self, body):
        self.body = body

    def __getitem__(self, grid):
        return self.body


def test_smoke_run_records_every_kernel_of_the_forward_and_backward(tmp_path):
    result = run_smoke("kernel_repeatability.py", "kernel-repeatability", tmp_path, "--ops", "qdelta_rule")
    kernels = [row["kernel"] for row in result["rows"]]
    for name in ("wy_A_kernel", "wy_solve_kernel", "wy_wu_kernel", "state_fwd_kernel", "output_fwd_kernel",
                 "state_bwd_kernel", "output_dqk_kernel", "wy_bwd_gates_kernel", "wy_bwd_keys_kernel"):
        assert name in kernels, (name, kernels)
    assert all(row["repeatable"] for row in result["rows"]), [r for r in result["rows"] if not r["repeatable"]]


def test_a_kernel_that_accumulates_into_its_output_is_repeatable():
    out, x = torch.zeros(8), torch.randn(8)
    kernel = _StandInKernel(lambda out, x: out.add_(x))
    assert repeatability.check_launch(kernel, (1,), (out, x), {}, repeats=3) == {}
    assert torch.equal(out, torch.zeros(8))  # the arguments are left as recorded


def test_a_kernel_with_a_race_is_named_with_the_argument_it_corrupts():
    generator = torch.Generator().manual_seed(0)
    kernel = _StandInKernel(lambda out, x: out.copy_(x + 1e-3 * torch.rand(8, generator=generator)))
    differing = repeatability.check_launch(kernel, (1,), (torch.zeros(8), torch.randn(8)), {}, repeats=3)
    assert list(differing) == ["out"] and differing["out"]["runs_differing"] == 2
    assert 0 < differing["out"]["max_abs_diff"] < 1e-3


def test_nan_written_the_same_way_twice_counts_as_equal():
    kernel = _StandInKernel(lambda out, x: out.fill_(float("nan")))
    assert repeatability.check_launch(kernel, (1,), (torch.zeros(4), torch.zeros(4)), {}, repeats=2) == {}
