"""benchmarks/pick_launch_settings.py exports the fastest launch settings that passed, and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.pick_launch_settings import ccq_exports, wy_exports

ACCURATE = [{"case": "bf16 K64", "result": "ok"}, {"case": "bf16 K128", "result": "ok"}]


def ccq_row(config, ms, accuracy=ACCURATE, deterministic=True):
    return {"config": config, "accuracy": accuracy, "deterministic": deterministic,
            "fwdbwd_ms_B8_T4096_H16_K128": ms}


def wy_row(config, gdn_ms, qdelta_ms, deterministic=True, dg=1e-3):
    case = {"case": "gdn fp16", "deterministic": deterministic, "dg_rrms": [dg, dg]}
    return {"config": config, "cases": [case], "gdn_fwdbwd_ms_B8_T4096_H16_d128": gdn_ms,
            "qdelta_fwdbwd_ms_B8_T4096_H16_d128": qdelta_ms}


def test_ccq_picks_the_fastest_row_that_passed():
    split = {"num_warps": 4, "BV": 32, "num_stages": 2, "split": True}
    rows = [ccq_row({"num_warps": 8, "BV": 32, "num_stages": 2}, 9.0),
            ccq_row({"num_warps": 8, "BV": 32, "num_stages": 2, "forward": split}, 8.0),
            ccq_row({"num_warps": 4, "BV": 32, "num_stages": 1}, 1.0, deterministic=False),
            ccq_row({"num_warps": 4, "BV": 64, "num_stages": 1}, 2.0,
                    accuracy=[{"case": "bf16 K64", "result": "failed: q_tilde"}]),
            {"config": {"num_warps": 16, "BV": 32, "num_stages": 1}, "error": "illegal memory access"}]
    assert ccq_exports(rows) == {
        "LINMEM_CCQ_CHUNK_WARPS": "8", "LINMEM_CCQ_CHUNK_BV": "32", "LINMEM_CCQ_CHUNK_STAGES": "2",
        "LINMEM_CCQ_FWD_WARPS": "4", "LINMEM_CCQ_FWD_BV": "32", "LINMEM_CCQ_FWD_STAGES": "2",
        "LINMEM_CCQ_FWD_SPLIT": "1"}
    assert ccq_exports(rows[2:]) == {}


def test_wy_picks_the_fastest_deterministic_accurate_row():
    rows = [wy_row({"num_warps": 2, "maxnreg": None}, 5.0, 5.6),
            wy_row({"num_warps": 2, "maxnreg": None, "keys_num_warps": 4}, 4.9, 5.3),
            wy_row({"num_warps": 2, "maxnreg": None, "keys_num_warps": 8}, 4.0, 4.0, deterministic=False),
            wy_row({"num_warps": 4, "maxnreg": 255}, 4.0, 4.0, dg=3e-2)]
    blocks_64 = {"LINMEM_GDN_WY_GATES_BLOCK": "64", "LINMEM_GDN_WY_KEYS_BLOCK": "64", "LINMEM_GDN_DQK_BV": "64"}
    assert wy_exports(rows) == {"LINMEM_GDN_WY_BWD_WARPS": "2", "LINMEM_GDN_WY_BWD_MAXNREG": "",
                                "LINMEM_GDN_WY_KEYS_WARPS": "4", **blocks_64}
    assert wy_exports(rows[:1]) == {"LINMEM_GDN_WY_BWD_WARPS": "2", "LINMEM_GDN_WY_BWD_MAXNREG": "",
                                    "LINMEM_GDN_WY_KEYS_WARPS": "2", **blocks_64}
    narrow = {"num_warps": 2, "maxnreg": 255, "keys_num_warps": 4, "gates_block": 16, "keys_block": 32,
              "dqk_value_block": 32}
    assert wy_exports(rows + [wy_row(narrow, 4.5, 4.6)]) == {
        "LINMEM_GDN_WY_BWD_WARPS": "2", "LINMEM_GDN_WY_BWD_MAXNREG": "255", "LINMEM_GDN_WY_KEYS_WARPS": "4",
        "LINMEM_GDN_WY_GATES_BLOCK": "16", "LINMEM_GDN_WY_KEYS_BLOCK": "32", "LINMEM_GDN_DQK_BV": "32"}
    assert wy_exports(rows[2:]) == {}


def test_command_line_prints_export_lines(tmp_path):
    rows = [ccq_row({"num_warps": 8, "BV": 32, "num_stages": 3}, 9.0)]
    (tmp_path / "ccq-stats-configs-h200.json").write_text(json.dumps({"rows": rows}))
    run = subprocess.run([sys.executable, "benchmarks/pick_launch_settings.py", "--results", str(tmp_path),
                          "--gpu", "h200"], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines() == ["export LINMEM_CCQ_CHUNK_WARPS=8", "export LINMEM_CCQ_CHUNK_BV=32",
                                       "export LINMEM_CCQ_CHUNK_STAGES=3"]
