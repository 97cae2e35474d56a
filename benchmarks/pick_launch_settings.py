"""The fastest launch settings that passed, from the two launch-setting sweeps, as shell `export` lines.

    eval "$(python benchmarks/pick_launch_settings.py --results DIR)"

Reads DIR/ccq-stats-configs-<gpu>.json (benchmarks/ccq_stats_configs.py) and DIR/gdn-wy-bwd-configs-<gpu>.json
(benchmarks/gdn_backward_determinism.py). A configuration qualifies when every accuracy case passed and repeated
calls were bitwise equal; of those, the fastest fwd+bwd wins (for the WY backward: GDN and Q-Delta together).
The GPU suite runs the sweeps first and the tests, benchmarks and profile under the winners, so the settings that
become linmem's defaults are the ones the tests passed with. A sweep that is missing or has no qualifying row
exports nothing for its kernels (the built-in table stays in force).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def ccq_exports(rows: list[dict]) -> dict[str, str]:
    """LINMEM_CCQ_* of the fastest accurate, deterministic statistic configuration."""
    good = [r for r in rows if "error" not in r and r.get("deterministic")
            and all(c["result"] == "ok" for c in r["accuracy"]) and r.get("fwdbwd_ms_B8_T4096_H16_K128")]
    if not good:
        return {}
    best = min(good, key=lambda r: r["fwdbwd_ms_B8_T4096_H16_K128"])["config"]
    out = {"LINMEM_CCQ_CHUNK_WARPS": best["num_warps"], "LINMEM_CCQ_CHUNK_BV": best["BV"],
           "LINMEM_CCQ_CHUNK_STAGES": best["num_stages"]}
    forward = best.get("forward")
    if forward:
        out.update(LINMEM_CCQ_FWD_WARPS=forward["num_warps"], LINMEM_CCQ_FWD_BV=forward["BV"],
                   LINMEM_CCQ_FWD_STAGES=forward["num_stages"], LINMEM_CCQ_FWD_SPLIT=int(forward["split"]))
    return {name: str(value) for name, value in out.items()}


def wy_exports(rows: list[dict], max_gate_rrms: float = 1e-2) -> dict[str, str]:
    """LINMEM_GDN_WY_* of the fastest deterministic WY-backward configuration whose dg stays accurate."""
    good = [r for r in rows if "error" not in r and r.get("gdn_fwdbwd_ms_B8_T4096_H16_d128")
            and all(c["deterministic"] and max(c["dg_rrms"]) < max_gate_rrms for c in r["cases"])]
    if not good:
        return {}
    best = min(good, key=lambda r: r["gdn_fwdbwd_ms_B8_T4096_H16_d128"] + r["qdelta_fwdbwd_ms_B8_T4096_H16_d128"])
    config = best["config"]
    # a row without keys_num_warps ran its keys kernel at num_warps (gdn_backward_determinism.apply); rows from
    # before the blocks were recorded ran at 64 (then the only width)
    return {"LINMEM_GDN_WY_BWD_WARPS": str(config["num_warps"]),
            "LINMEM_GDN_WY_BWD_MAXNREG": "" if config["maxnreg"] is None else str(config["maxnreg"]),
            "LINMEM_GDN_WY_KEYS_WARPS": str(config.get("keys_num_warps", config["num_warps"])),
            "LINMEM_GDN_WY_GATES_BLOCK": str(config.get("gates_block", 64)),
            "LINMEM_GDN_WY_KEYS_BLOCK": str(config.get("keys_block", 64)),
            "LINMEM_GDN_DQK_BV": str(config.get("dqk_value_block", 64))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="the folder the sweeps wrote to")
    parser.add_argument("--gpu", default=None, help="the <gpu> part of the file names (default: this GPU's)")
    args = parser.parse_args()
    gpu = args.gpu
    if gpu is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from benchmarks.kernels import gpu_file_name
        gpu = gpu_file_name()
    folder = Path(args.results)
    exports = {**ccq_exports(_rows(folder / f"ccq-stats-configs-{gpu}.json")),
               **wy_exports(_rows(folder / f"gdn-wy-bwd-configs-{gpu}.json"))}
    for name, value in exports.items():
        print(f"export {name}={value}")


if __name__ == "__main__":
    main()
