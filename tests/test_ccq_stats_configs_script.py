"""benchmarks/ccq_stats_configs.py runs end to end (CPU, interpreter, tiny shapes), so the next GPU session can use
it: each configuration builds, is checked against the float64 reference, runs twice, and lands in the JSON; and
the LINMEM_CCQ_CHUNK_* variables it sets are read and checked."""

from __future__ import annotations

import pytest

from tests.benchmark_smoke import run_smoke


def test_smoke_run_writes_every_configuration(tmp_path):
    rows = run_smoke("ccq_stats_configs.py", "ccq-stats-configs", tmp_path,
                     "--configs", "8:16:1,4:32:2+2:16:1:1", "--repeats", "2")["rows"]
    assert [r["config"] for r in rows] == [
        {"num_warps": 8, "BV": 16, "num_stages": 1},
        {"num_warps": 4, "BV": 32, "num_stages": 2, "forward": {"num_warps": 2, "BV": 16, "num_stages": 1,
                                                                "split": True}}]
    for row in rows:
        assert "error" not in row, row
        assert row["deterministic"] and all(case["result"] == "ok" for case in row["accuracy"]), row


def test_chunk_kernel_settings_come_from_the_table_or_the_environment(monkeypatch):
    from linmem.kernels.ccq.triton_stats import ChunkSetting, _split_tiles

    assert _split_tiles(128) == (128, 64, ChunkSetting(32, 4, 2), ChunkSetting(32, 8, 2))
    assert _split_tiles(20) == (32, 32, ChunkSetting(32, 8, 3), ChunkSetting(32, 8, 3))
    monkeypatch.setenv("LINMEM_CCQ_CHUNK_WARPS", "4")
    monkeypatch.setenv("LINMEM_CCQ_CHUNK_BV", "64")
    monkeypatch.setenv("LINMEM_CCQ_CHUNK_STAGES", "1")
    assert _split_tiles(128) == (128, 64, ChunkSetting(64, 4, 1), ChunkSetting(64, 4, 1))
    monkeypatch.setenv("LINMEM_CCQ_FWD_SPLIT", "1")
    monkeypatch.setenv("LINMEM_CCQ_FWD_BV", "16")
    assert _split_tiles(128) == (128, 64, ChunkSetting(16, 4, 1, True), ChunkSetting(64, 4, 1))
    monkeypatch.delenv("LINMEM_CCQ_FWD_SPLIT")
    monkeypatch.delenv("LINMEM_CCQ_FWD_BV")
    with pytest.raises(ValueError, match="LINMEM_CCQ_CHUNK_BV"):
        _split_tiles(20)  # BV 64 is wider than the padded key dim 32
    monkeypatch.setenv("LINMEM_CCQ_CHUNK_BV", "wide")
    with pytest.raises(ValueError, match="LINMEM_CCQ_CHUNK_BV: expected an integer"):
        _split_tiles(128)
    monkeypatch.setenv("LINMEM_CCQ_CHUNK_BV", "32")
    monkeypatch.setenv("LINMEM_CCQ_CHUNK_WARPS", "3")
    with pytest.raises(ValueError, match="LINMEM_CCQ_CHUNK_WARPS"):
        _split_tiles(128)
