"""benchmarks/gdn_backward_determinism.py runs end to end (CPU, interpreter, tiny shapes), so it works when the
next GPU session needs it: every configuration builds, runs twice, and lands in the JSON."""

from __future__ import annotations

from tests.benchmark_smoke import run_smoke


def test_smoke_run_writes_every_configuration(tmp_path):
    rows = run_smoke("gdn_backward_determinism.py", "gdn-wy-bwd-configs", tmp_path,
                     "--configs", "2,4:255/16+8/32@32", "--repeats", "2")["rows"]
    from linmem.kernels.gated_delta_rule import triton_config as default

    assert [r["config"] for r in rows] == [
        {"num_warps": 2, "maxnreg": None, "keys_num_warps": 2, "gates_block": default.WY_BWD_GATES_BLOCK,
         "keys_block": default.WY_BWD_KEYS_BLOCK, "dqk_value_block": default.DQK_VALUE_BLOCK},
        {"num_warps": 4, "maxnreg": 255, "keys_num_warps": 8, "gates_block": 16, "keys_block": 32,
         "dqk_value_block": 32}]
    for row in rows:
        assert "error" not in row, row
        for case in row["cases"]:
            assert case["deterministic"], case
            assert max(case["dg_rrms"]) < 1e-2 and max(case["dk_rrms"]) < 1e-2, case
