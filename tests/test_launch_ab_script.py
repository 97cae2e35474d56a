"""benchmarks/launch_ab.py runs end to end (CPU, interpreter): each variant's variables are in force for its own
calls only, its results are compared with the defaults', and a variant that fails is recorded, not fatal."""

from __future__ import annotations

import importlib

import pytest

from tests.benchmark_smoke import run_smoke

launch_ab = importlib.import_module("benchmarks.launch_ab")


def test_smoke_run_compares_each_variant_with_the_defaults(tmp_path):
    result = run_smoke("launch_ab.py", "launch-ab", tmp_path, "--ops", "gated_delta_rule",
                       "--variants", "narrow:LINMEM_GDN_STATE_BV=16,LINMEM_GDN_DQK_BK=16;bad:LINMEM_GDN_DQK_BK=24")
    rows = {row["variant"]: row for row in result["rows"]}
    assert list(rows) == ["default", "narrow", "bad"]
    assert rows["default"]["max_rrms"] == 0 and rows["default"]["deterministic"]
    assert 0 < rows["narrow"]["max_rrms"] < 1e-2 and rows["narrow"]["deterministic"], rows["narrow"]
    assert "LINMEM_GDN_DQK_BK: a block must be a power of two >= 16, got 24" in rows["bad"]["error"]


def test_variables_apply_inside_the_variant_only(monkeypatch):
    monkeypatch.setenv("LINMEM_GDN_STATE_BV", "32")
    with launch_ab.environment({"LINMEM_GDN_STATE_BV": "64", "LINMEM_GDN_WU_BK": "16"}):
        import os
        assert os.environ["LINMEM_GDN_STATE_BV"] == "64" and os.environ["LINMEM_GDN_WU_BK"] == "16"
    import os
    assert os.environ["LINMEM_GDN_STATE_BV"] == "32" and "LINMEM_GDN_WU_BK" not in os.environ


@pytest.mark.parametrize("text", ["x", "a:FOO=1", "a:LINMEM_X=1;a:LINMEM_Y=2", ":LINMEM_X=1"])
def test_malformed_variants_are_refused(text):
    with pytest.raises(ValueError, match="--variants"):
        launch_ab.parse_variants(text)


def test_shapes_are_seq_lens_at_32k_tokens_or_given_whole():
    assert launch_ab.shapes_of("4096,16384", None) == [(8, 4096, 16, 128, 128), (2, 16384, 16, 128, 128)]
    assert launch_ab.shapes_of("4096", "8,4096,6,256,512;2,1024") == [(8, 4096, 6, 256, 512), (2, 1024, 16, 128, 128)]
    with pytest.raises(ValueError, match="--shape"):
        launch_ab.shapes_of("4096", "8,4096,6")
