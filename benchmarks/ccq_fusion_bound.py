"""How much could one fused CCQ kernel (statistic read + backbone read in one pass) save over the two launches?

    python benchmarks/ccq_fusion_bound.py [--out benchmarks/results]
    python benchmarks/ccq_fusion_bound.py --smoke --out /tmp/x      # CPU, tiny shapes: checks the script only

CCQ runs the statistic pass (q -> q̃) and then the unchanged backbone on q̃. A kernel doing both in one pass
shares the loads of q and k and never writes q̃ out, so what it can save is memory traffic (and one launch):
  - prefill without gradients: q̃ written and read back, and k read a second time: 3 x |q̃| bytes;
  - training, generously: q̃ read back and k read twice more (forward, backward), and q̃'s gradient written and
    read back in the backward: 6 x |q̃| bytes (q̃ itself must still be written: the backward reads it).
Each saving is priced at the copy bandwidth measured here (a clone of q̃ moves 2 x |q̃| bytes) and set against
the measured time of the CCQ op, its statistic pass and the backbone alone. A fused kernel cannot beat the two
launches by more than that, whatever its code.

The statistic pass is itself a scalar-decay linear attention with values := k̂ (d_v = d_k). With fla installed,
fla's `chunk_simple_gla(q, k̂, k̂, log γ, scale=1)` is timed at the same shape as its peer: the CCQ / backbone
ratio the op would reach if the statistic ran at that speed (`ccq_over_backbone_at_peer_speed`, fwd+bwd) says
how far kernel work alone can take the CCQ targets. Writes ccq-fusion-bound-<gpu>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

from benchmarks.kernels import fwd_bwd_call, gpu_file_name, make_inputs, result_header  # noqa: E402

#: (CCQ op, its backbone op)
PAIRS = [("ccq_gated_delta_rule", "gated_delta_rule"), ("ccq_gla", "gla")]
SAVED_COPIES = {"prefill": 3, "train": 6}


def timer(smoke: bool):
    if smoke:
        def run(fn):
            start = time.perf_counter()
            fn()
            return (time.perf_counter() - start) * 1e3
        return run
    from triton.testing import do_bench
    return lambda fn: do_bench(fn, warmup=25, rep=100, return_mode="median")


def measure_pair(ccq_op: str, backbone_op: str, shape: tuple, smoke: bool) -> dict:
    import linmem.kernels as K
    from linmem.kernels.ccq.triton_stats import contract_query_from_state, l2_normalize

    device = "cpu" if smoke else "cuda"
    B, T, H, D = shape
    time_ms = timer(smoke)
    x = make_inputs(ccq_op, B, T, H, D, D, device=device)
    ccq, backbone = getattr(K, ccq_op), getattr(K, backbone_op)
    keys = x["k"] if ccq_op == "ccq_gated_delta_rule" else l2_normalize(x["k"])
    log_gamma = x["g"] if "g" in x else x["gk"].float().mean(-1)
    rest = {n: t for n, t in x.items() if n not in ("q", "lam")}

    def statistic():
        return contract_query_from_state(x["q"], keys, log_gamma, x["lam"], None, center=False,
                                         output_final_state=False)[0]

    with K.use_backend("triton"), torch.no_grad():
        q_tilde = statistic()
        row = {"ccq_fwd_ms": time_ms(lambda: ccq(**x)), "statistic_fwd_ms": time_ms(statistic),
               "backbone_fwd_ms": time_ms(lambda: backbone(q_tilde, **rest)),
               "copy_ms": time_ms(lambda: q_tilde.clone())}
    for t in x.values():
        t.requires_grad_(True)
    with K.use_backend("triton"):
        grad_out = torch.randn_like(ccq(**x)[0])  # the CCQ op's output and the backbone's have one shape
        row["ccq_fwdbwd_ms"] = time_ms(fwd_bwd_call(ccq, x, grad_out))
        row["backbone_fwdbwd_ms"] = time_ms(fwd_bwd_call(backbone, {"q": x["q"], **rest}, grad_out))
        stat_inputs = {"q": x["q"], "k": keys.detach().to(x["q"].dtype).requires_grad_(True),
                       "g": log_gamma.detach().requires_grad_(True), "lam": x["lam"]}
        row["statistic_fwdbwd_ms"] = time_ms(fwd_bwd_call(
            lambda q, k, g, lam: contract_query_from_state(q, k, g, lam, None, center=False, output_final_state=False),
            stat_inputs, torch.randn_like(x["q"])))
    row.update(peer_statistic(stat_inputs, time_ms, smoke))
    if row.get("peer_fwdbwd_ms") is not None:
        at_peer = row["ccq_fwdbwd_ms"] - row["statistic_fwdbwd_ms"] + row["peer_fwdbwd_ms"]
        row["ccq_over_backbone_fwdbwd"] = row["ccq_fwdbwd_ms"] / row["backbone_fwdbwd_ms"]
        row["ccq_over_backbone_at_peer_speed"] = at_peer / row["backbone_fwdbwd_ms"]
    q_bytes = q_tilde.numel() * q_tilde.element_size()
    row["q_tilde_MB"] = q_bytes / 1e6
    row["copy_GB_per_s"] = 2 * q_bytes / row["copy_ms"] / 1e6
    for use, copies in SAVED_COPIES.items():
        saved_ms = copies * q_bytes / (row["copy_GB_per_s"] * 1e6)
        total = row["ccq_fwd_ms"] if use == "prefill" else row["ccq_fwdbwd_ms"]
        row[f"{use}_most_saved_ms"] = saved_ms
        row[f"{use}_most_saved_fraction"] = saved_ms / total
    return {"ccq": ccq_op, "backbone": backbone_op, "shape": f"B{B} T{T} H{H} d{D}", **row}


def peer_statistic(stat_inputs: dict, time_ms, smoke: bool) -> dict:
    """fla's chunk_simple_gla on the statistic's own inputs (values := keys, scale 1): fwd and fwd+bwd ms, or
    {"peer": None} without fla (or on the CPU)."""
    try:
        if smoke:
            raise ImportError
        import fla.ops.common.chunk_o as fla_chunk_o
        from fla.ops.simple_gla import chunk_simple_gla
    except ImportError:
        return {"peer": None}
    fla_chunk_o.IS_NVIDIA_HOPPER = False  # timing only: fla's #640 guard (see kernels.py)

    def peer(q, k, g, lam):
        return chunk_simple_gla(q, k, k, g=g, scale=1.0)

    with torch.no_grad():
        fwd = time_ms(lambda: peer(**stat_inputs))
    fwdbwd = time_ms(fwd_bwd_call(peer, stat_inputs, torch.randn_like(stat_inputs["q"])))
    return {"peer": "fla chunk_simple_gla(q, k_hat, k_hat, log_gamma, scale=1)", "peer_fwd_ms": fwd,
            "peer_fwdbwd_ms": fwdbwd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (interpreter), no timing")
    args = parser.parse_args()
    shape = (1, 40, 2, 16) if args.smoke else (8, 4096, 16, 128)
    rows = []
    for ccq_op, backbone_op in PAIRS:
        rows.append(measure_pair(ccq_op, backbone_op, shape, args.smoke))
        print(json.dumps(rows[-1]), flush=True)
    header = {"device": "cpu (interpreter)"} if args.smoke else result_header()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"ccq-fusion-bound-{gpu_file_name(args.smoke)}.json"
    path.write_text(json.dumps({**header, "saved_copies_of_q_tilde": SAVED_COPIES, "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
