"""benchmarks/ccq_fusion_bound.py runs end to end (CPU, interpreter, tiny shapes), so the next GPU session can use
it: both CCQ ops and their backbones are timed and the savings priced from the copy bandwidth."""

from __future__ import annotations

import pytest

from tests.benchmark_smoke import run_smoke


def test_smoke_run_prices_the_saved_traffic(tmp_path):
    result = run_smoke("ccq_fusion_bound.py", "ccq-fusion-bound", tmp_path)
    assert result["saved_copies_of_q_tilde"] == {"prefill": 3, "train": 6}
    assert [(r["ccq"], r["backbone"]) for r in result["rows"]] == [("ccq_gated_delta_rule", "gated_delta_rule"),
                                                                   ("ccq_gla", "gla")]
    for row in result["rows"]:
        assert row["q_tilde_MB"] == pytest.approx(1 * 40 * 2 * 16 * 2 / 1e6)  # bf16 q̃ of B1 T40 H2 d16
        for use, copies in result["saved_copies_of_q_tilde"].items():
            seconds_per_byte = row["copy_ms"] / (2 * row["q_tilde_MB"])
            assert row[f"{use}_most_saved_ms"] == pytest.approx(copies * row["q_tilde_MB"] * seconds_per_byte)
            total = row["ccq_fwd_ms"] if use == "prefill" else row["ccq_fwdbwd_ms"]
            assert row[f"{use}_most_saved_fraction"] == pytest.approx(row[f"{use}_most_saved_ms"] / total)
