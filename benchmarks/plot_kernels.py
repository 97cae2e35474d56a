"""Plot `kernels-<gpu>.json` (from benchmarks/kernels.py): forward and forward+backward ms per op, grouped by T.

    python benchmarks/plot_kernels.py benchmarks/results/kernels-h200.json

Bars (not lines) so a partial sweep still reads correctly: each group is one sequence length at
B*T = 32K tokens, H = 16, d = 128; peers (fla, SDPA) are hatched.
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
    # "+"-suffixed ops were one-off variants (e.g. +seqstats), kept in the JSON but not drawn
    rows = [r for r in data["rows"] if r["H"] == 16 and "error" not in r and "+" not in r["op"]]
    seq_lens = sorted({r["T"] for r in rows})
    ops = list(dict.fromkeys(r["op"] for r in rows))
    width = 0.8 / max(len(ops), 1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, key, title in ((axes[0], "fwd_ms", "forward"), (axes[1], "fwdbwd_ms", "forward + backward")):
        for j, op in enumerate(ops):
            xs, ys = [], []
            for i, seq_len in enumerate(seq_lens):
                match = [r for r in rows if r["op"] == op and r["T"] == seq_len]
                if match:
                    xs.append(i + (j - (len(ops) - 1) / 2) * width)
                    ys.append(match[0][key])
            peer = op.startswith("fla") or op == "sdpa"
            ax.bar(xs, ys, width, label=op, hatch="//" if peer else None, edgecolor="black", linewidth=0.4)
        ax.set_xticks(range(len(seq_lens)), [f"T={t // 1024}K" for t in seq_lens])
        ax.set_yscale("log")
        ax.set_ylabel("ms (median of do_bench)")
        ax.set_title(f"{title}, bf16, B*T=32K, H=16, d=128")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    partial = " (partial sweep)" if data.get("incomplete") else ""
    fig.suptitle(f"{data['device']} · torch {data['torch']} · triton {data['triton']} · fla {data['fla']}{partial}")
    if data.get("caption"):  # a correction or caveat that must travel with the picture
        fig.text(0.01, 0.01, data["caption"], fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0.06 if data.get("caption") else 0, 1, 1))
    out = Path(path).with_suffix(".png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
