"""benchmarks/profile_gpu.py runs end to end in its CPU smoke mode, so the next GPU session can rely on it."""

from __future__ import annotations

from tests.benchmark_smoke import run_smoke


def test_smoke_profile_covers_every_op_and_decode(tmp_path):
    result = run_smoke("profile_gpu.py", "profile", tmp_path)
    assert set(result["ops"]) == {"gla", "ccq_gla", "gated_delta_rule", "qdelta_rule", "ccq_gated_delta_rule"}
    assert all(rows and rows[0]["us"] > 0 for rows in result["ops"].values())
    assert result["decode"]["new_tokens"] == 32 and result["decode"]["wall_ms_per_token"] > 0
    assert result["train"]["top_operators_us_per_step"]  # CPU smoke: operators only, no device kernels
    assert result["train"]["wall_ms_per_step"] > 0


def test_smoke_profile_of_the_compiled_training_step(tmp_path):
    result = run_smoke("profile_gpu.py", "profile", tmp_path, "--ops", "", "--no-decode", "--compile")
    assert result["ops"] == {} and "decode" not in result
    assert result["train"]["compiled"] and result["train"]["top_operators_us_per_step"]
