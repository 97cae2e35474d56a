"""Plot `kernels-<gpu>.json` (from benchmarks/kernels.py): fwd+bwd ms vs T, and ratios to fla / SDPA.

    python benchmarks/plot_kernels.py benchmarks/results/kernels-h100.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path: str) -> None:
    data = json.loads(Path(path).read_text())
    rows = [r for r in data["rows"] if r["H"] == 16 and "error" not in r]
    ops = sorted({r["op"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, key, title in ((axes[0], "fwd_ms", "forward"), (axes[1], "fwdbwd_ms", "forward + backward")):
        for op in ops:
            pts = sorted((r["T"], r[key]) for r in rows if r["op"] == op)
            style = "--" if op.startswith("fla") else (":" if op == "sdpa" else "-")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=op)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T (B*T = 32K tokens)")
        ax.set_ylabel("ms (median)")
        ax.set_title(f"{title}, bf16, H=16, d=128")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{data['device']} · torch {data['torch']} · triton {data['triton']} · fla {data['fla']}")
    fig.tight_layout()
    out = Path(path).with_suffix(".png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
