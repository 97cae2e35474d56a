"""How cheap CCQ can be: the statistic's matrix-product FLOPs against its backbone's, beside the measured ratios.

    python benchmarks/ccq_flop_bound.py [--kernels benchmarks/results/kernels-h200.json] [--out JSON]

No GPU: the counts are those of the chunkwise algorithms (chunk C = 64), per token and head, forward pass:
    GDN (WY/UT form)  A = KKᵀ, W = TK, QKᵀ: 6·C·d_k;  U = TV, PV: 4·C·d_v;  Wh, Kᵀ(U − Wh), Qh: 6·d_k·d_v;
                      the triangular solve C²/3
    GLA               intra-chunk QKᵀ: 2·C·d_k;  AV: 2·C·d_v;  Qh, the state update Kᵀ V: 4·d_k·d_v
    CCQ statistic     u = M q as a linear attention whose values are the keys (d_v = d_k):
                      QK̂ᵀ, (P)K̂: 4·C·d_k;  QM, the update K̂ᵀK̂: 4·d_k²
Every product Y = AB of a forward has the two backward products dA = dY Bᵀ and dB = Aᵀ dY, so forward and backward
together are about 3x the forward for all three, and the FLOP ratio of CCQ to its backbone is the forward's. It is
what CCQ-X / X would be if the statistic ran at its backbone's FLOP efficiency; the elementwise work (λ, z, q̃) and
the extra reads of q and k come on top. specs/ccq.md's "Pass A costs about half of a GLA forward at d_v = 2·d_k" is
this count (0.53 at d_k 256); the compass's targets (CCQ-GDN / GDN <= 1.10, CCQ-GLA / GLA <= 1.15) are below it at
every benchmark shape.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CHUNK = 64
RESULTS = Path(__file__).parent / "results"
TARGETS = {"ccq_gated_delta_rule": ("gated_delta_rule", 1.10), "ccq_gla": ("gla", 1.15)}


def gdn_flops(dk: int, dv: int, chunk: int = CHUNK) -> float:
    """Forward matrix-product FLOPs per token and head of the chunkwise gated delta rule."""
    return 6 * chunk * dk + 4 * chunk * dv + 6 * dk * dv + chunk * chunk / 3


def gla_flops(dk: int, dv: int, chunk: int = CHUNK) -> float:
    """Forward matrix-product FLOPs per token and head of chunkwise GLA."""
    return 2 * chunk * dk + 2 * chunk * dv + 4 * dk * dv


def ccq_statistic_flops(dk: int, chunk: int = CHUNK) -> float:
    """Forward matrix-product FLOPs per token and head of CCQ's u = M q (a linear attention with values k̂)."""
    return 4 * chunk * dk + 4 * dk * dk


def flop_ratio(ccq_op: str, dk: int, dv: int) -> float:
    """(statistic + backbone) / backbone FLOPs: CCQ-X / X at the backbone's FLOP efficiency."""
    backbone = gdn_flops(dk, dv) if ccq_op == "ccq_gated_delta_rule" else gla_flops(dk, dv)
    return 1 + ccq_statistic_flops(dk) / backbone


def rows_from(kernels: dict) -> list[dict]:
    """One row per CCQ op and shape of a kernels.py result: the FLOP ratio, the measured fwd+bwd ratio, the target."""
    rows = []
    for r in kernels["rows"]:
        if r["op"] not in TARGETS or r.get("fwdbwd_vs_our_backbone") is None:
            continue
        backbone, target = TARGETS[r["op"]]
        shape = f"B{r['B']} T{r['T']} H{r['H']} dk{r['dk']} dv{r['dv']}"
        rows.append({"op": r["op"], "backbone": backbone, "shape": shape,
                     "flop_ratio": flop_ratio(r["op"], r["dk"], r["dv"]),
                     "measured_fwdbwd_ratio": r["fwdbwd_vs_our_backbone"], "target": target})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernels", default=str(RESULTS / "kernels-h200.json"))
    parser.add_argument("--out", default=str(RESULTS / "ccq-flop-bound.json"))
    args = parser.parse_args()
    kernels = json.loads(Path(args.kernels).read_text())
    rows = rows_from(kernels)
    print(f"{'op':22} {'shape':32} {'FLOP ratio':>10} {'measured':>9} {'target':>7}")
    for r in rows:
        print(f"{r['op']:22} {r['shape']:32} {r['flop_ratio']:10.2f} {r['measured_fwdbwd_ratio']:9.2f} "
              f"{r['target']:7.2f}")
    out = {"chunk": CHUNK, "measured_from": Path(args.kernels).name, "device": kernels.get("device"),
           "note": "flop_ratio: (statistic + backbone) / backbone matrix-product FLOPs of the chunkwise algorithms "
                   "(benchmarks/ccq_flop_bound.py); measured: kernels.py's fwd+bwd time ratio", "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
