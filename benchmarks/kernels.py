"""Kernel benchmark: linmem's Triton ops vs flash-linear-attention (fla) and SDPA flash attention.

    python benchmarks/kernels.py [--quick] [--seq-lens 2048,4096] [--ops ...] [--resume] [--out benchmarks/results]
    python benchmarks/kernels.py --table benchmarks/results/kernels-h200.json     # the table of a past run

Times forward and forward+backward (median of `triton.testing.do_bench`, bf16) in one process for:
  ours: gla, gated_delta_rule, qdelta_rule, ccq_gla, ccq_gated_delta_rule (LINMEM backend forced to triton)
  fla 0.6.0: chunk_gla, chunk_gated_delta_rule (fla refuses its gated backward on Hopper with Triton
             3.4-3.7.0, a guard for a miscompile, fla issue #640; we switch the guard off for TIMING ONLY
             and say so in the JSON)
  SDPA: torch scaled_dot_product_attention, causal, flash backend
at B*T = 32K tokens, T in {1K..32K}, H = 16, d_k = d_v = 128, and at the fla-1.3B layer shapes.
Writes `kernels-<gpu>.json` after every row, with the row's wall time including compilation (`--resume` keeps
its rows and times only the missing ones, so a sweep can span several time-limited calls);
`benchmarks/plot_kernels.py` draws the plot from it.
Timings are only meaningful on an otherwise idle GPU: the run refuses to start while another process
uses the GPU (`--allow-busy-gpu` times anyway and records the other processes in the JSON).

FLOP model (forward, per token and head, chunk C = 64, multiply-add = 2 FLOPs):
  GLA:  2 (C d_k + C d_v + 2 d_k d_v)                    intra scores, intra PV, inter read, state update
  GDN:  GLA + 2 (C d_k + C d_v + d_k d_v)                 + WY representation (A, W, U) and W S
  CCQ:  backbone + 2 (C d_k + C d_k + 2 d_k d_k)          + the statistic pass with values = k (d_v := d_k)
  SDPA: 2 * 2 * T d / 2 per query and head (causal half of QK^T and PV)
Bytes (forward, minimum traffic): read q, k, v, gates; write o (bf16 activations, fp32 gates).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

CHUNK = 64


def make_inputs(op: str, batch: int, seq_len: int, heads: int, dk: int, dv: int, seed: int = 0,
                device: str = "cuda"):
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, device=device, generator=gen)

    bf = torch.bfloat16
    if op == "sdpa":
        q, k, v = (randn(batch, heads, seq_len, dk).to(bf) for _ in range(3))
        return dict(q=q, k=k, v=v)
    q = F.normalize(randn(batch, seq_len, heads, dk), dim=-1).to(bf)
    k = F.normalize(randn(batch, seq_len, heads, dk), dim=-1).to(bf)
    v = randn(batch, seq_len, heads, dv).to(bf)
    if "gla" in op:
        gk = (F.logsigmoid(randn(batch, seq_len, heads, dk)) / 16).float()
        inputs = dict(q=q, k=k, v=v, gk=gk)
    else:
        inputs = dict(q=q, k=k, v=v, g=F.logsigmoid(randn(batch, seq_len, heads) + 4).float(),
                      beta=torch.sigmoid(randn(batch, seq_len, heads)).float())
    if op in ("qdelta_rule", "ccq_gla", "ccq_gated_delta_rule"):
        inputs["lam"] = (0.5 * torch.sigmoid(randn(batch, seq_len, heads))).float()
    return inputs


def op_function(op: str):
    import linmem.kernels as K

    if op == "sdpa":
        return lambda q, k, v: (F.scaled_dot_product_attention(q, k, v, is_causal=True), None)
    if op == "fla_chunk_gla":
        from fla.ops.gla import chunk_gla

        return lambda q, k, v, gk: chunk_gla(q, k, v, gk)
    if op == "fla_chunk_gated_delta_rule":
        import fla.ops.common.chunk_o as fla_chunk_o
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule

        fla_chunk_o.IS_NVIDIA_HOPPER = False  # timing only: disables fla's #640 guard (see module docstring)
        return lambda q, k, v, g, beta: chunk_gated_delta_rule(q, k, v, g, beta)
    fn = getattr(K, op)
    return lambda **kw: fn(**kw)


def flops(op: str, tokens: int, heads: int, dk: int, dv: int, seq_len: int) -> float:
    gla = 2 * (CHUNK * dk + CHUNK * dv + 2 * dk * dv)
    wy = 2 * (CHUNK * dk + CHUNK * dv + dk * dv)
    ccq = 2 * (2 * CHUNK * dk + 2 * dk * dk)
    per = {"sdpa": 2 * seq_len * dk, "gla": gla, "fla_chunk_gla": gla, "ccq_gla": gla + ccq,
           "gated_delta_rule": gla + wy, "fla_chunk_gated_delta_rule": gla + wy, "qdelta_rule": gla + wy,
           "ccq_gated_delta_rule": gla + wy + ccq}[op]
    return float(tokens * heads * per)


def traffic(inputs: dict, out_elems: int) -> float:
    return float(sum(t.numel() * t.element_size() for t in inputs.values()) + 2 * out_elems)


def fwd_bwd_call(fn, inputs: dict, grad_out: torch.Tensor):
    """A no-argument fwd+bwd of fn(**inputs) to time or profile. Gradients are reset first: left to accumulate,
    autograd's adds into .grad (about 0.28 ms at B8 T4K H16 d128) would be timed as the op's."""

    def call():
        for t in inputs.values():
            t.grad = None
        fn(**inputs)[0].backward(grad_out)

    return call


def time_op(op: str, batch: int, seq_len: int, heads: int, dk: int, dv: int) -> dict:
    from triton.testing import do_bench

    from linmem.kernels import use_backend

    inputs = make_inputs(op, batch, seq_len, heads, dk, dv)
    fn = op_function(op)
    row = dict(op=op, T=seq_len, B=batch, H=heads, dk=dk, dv=dv)
    try:
        with use_backend("triton"):
            with torch.no_grad():
                fwd = do_bench(lambda: fn(**inputs), warmup=25, rep=100, return_mode="median")
            for t in inputs.values():
                t.requires_grad_(True)
            out = fn(**inputs)[0]
            both = do_bench(fwd_bwd_call(fn, inputs, torch.randn_like(out)), warmup=25, rep=100,
                            return_mode="median")
        row.update(fwd_ms=fwd, fwdbwd_ms=both,
                   fwd_tflops=flops(op, batch * seq_len, heads, dk, dv, seq_len) / fwd * 1e-9,
                   fwd_gbps=traffic(inputs, out.numel()) / fwd * 1e-6)
    except Exception as error:  # recorded, not hidden: a failing op shows up in the table and the JSON
        row.update(error=f"{type(error).__name__}: {str(error)[:300]}")
    inputs.clear()  # frees the tensors before empty_cache (the closures above are done with them)
    torch.cuda.empty_cache()
    return row


OURS = ["gla", "ccq_gla", "gated_delta_rule", "qdelta_rule", "ccq_gated_delta_rule"]
PEERS = ["fla_chunk_gla", "fla_chunk_gated_delta_rule", "sdpa"]
# (op, heads, d_k, d_v) at the fla-1.3B layer shapes
FLA_SHAPES = (("gated_delta_rule", 6, 256, 512), ("fla_chunk_gated_delta_rule", 6, 256, 512),
              ("ccq_gated_delta_rule", 6, 256, 512), ("qdelta_rule", 6, 256, 512),
              ("gla", 4, 256, 512), ("fla_chunk_gla", 4, 256, 512), ("ccq_gla", 4, 256, 512))


def add_ratios(rows: list[dict]) -> None:
    index = {(r["op"], r["T"], r["H"], r["dk"], r["dv"]): r for r in rows}

    def ratio(row, other, key):
        ref = index.get((other, row["T"], row["H"], row["dk"], row["dv"]))
        if ref and key in ref and key in row:
            return row[key] / ref[key]
        return None

    for row in rows:
        fla_peer = "fla_chunk_gla" if "gla" in row["op"] else "fla_chunk_gated_delta_rule"
        backbone = "gla" if "gla" in row["op"] else "gated_delta_rule"
        for key in ("fwd_ms", "fwdbwd_ms"):
            tag = key.split("_")[0]
            row[f"{tag}_vs_fla"] = ratio(row, fla_peer, key)
            row[f"{tag}_vs_sdpa"] = ratio(row, "sdpa", key)
            row[f"{tag}_vs_our_backbone"] = ratio(row, backbone, key)


def other_gpu_processes() -> list[str]:
    """Compute processes on the GPU other than this one (nvidia-smi), e.g. a training run left behind."""
    import os
    import subprocess

    try:
        lines = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in lines.splitlines()
            if line.strip() and line.split(",")[0].strip() != str(os.getpid())]


def gpu_file_name(smoke: bool = False) -> str:
    """The <gpu> part of a result file's name: "h200" for "NVIDIA H200", "h100" for "NVIDIA H100 80GB HBM3";
    "cpu-smoke" for a CPU smoke run."""
    return "cpu-smoke" if smoke else torch.cuda.get_device_name().lower().replace("nvidia", "").strip().split()[0]


def result_header() -> dict:
    import triton
    import transformers

    try:
        import fla
        fla_version = getattr(fla, "__version__", "0.6.0")
    except ImportError:
        fla_version = None
    return {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
        "transformers": transformers.__version__, "fla": fla_version, "python": platform.python_version(),
        "dtype": "bfloat16", "timer": "triton.testing.do_bench median, warmup 25 ms, rep 100 ms",
        "notes": "fla chunk_gated_delta_rule backward timed with its Hopper/Triton<3.7.1 guard (fla #640) "
                 "switched off: timing only, its gradients are not trusted on this stack.",
    }


def _fmt(value, spec: str) -> str:
    """value in spec (e.g. '8.2f'), or a right-aligned '-' of the same width when it is missing."""
    return format(value, spec) if value is not None else "-".rjust(int(spec.split(".")[0]))


def format_table(rows: list[dict]) -> str:
    """The sweep as a fixed-width table: ms, the ratios to fla, to SDPA and to our backbone (fwd+bwd), TFLOP/s
    and GB/s of the forward. One line per op and shape, grouped by shape."""
    header = (f"{'op':32s} {'T':>6s} {'H':>3s} {'dk':>4s} {'dv':>4s} {'fwd ms':>8s} {'f+b ms':>8s} {'f+b/fla':>8s} "
              f"{'f+b/sdpa':>8s} {'f+b/bb':>7s} {'TFLOP/s':>8s} {'GB/s':>7s}")
    lines = [header, "-" * len(header)]
    for r in sorted(rows, key=lambda r: (r["H"], r["dk"], r["dv"], r["T"])):
        if "error" in r:
            lines.append(f"{r['op']:32s} {r['T']:6d} {r['H']:3d} {r['dk']:4d} {r['dv']:4d}  {r['error'][:60]}")
            continue
        lines.append(
            f"{r['op']:32s} {r['T']:6d} {r['H']:3d} {r['dk']:4d} {r['dv']:4d} {r['fwd_ms']:8.2f} {r['fwdbwd_ms']:8.2f} "
            f"{_fmt(r.get('fwdbwd_vs_fla'), '8.2f')} {_fmt(r.get('fwdbwd_vs_sdpa'), '8.2f')} "
            f"{_fmt(r.get('fwdbwd_vs_our_backbone'), '7.2f')} {r['fwd_tflops']:8.1f} {r['fwd_gbps']:7.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", metavar="JSON", help="print the table of an existing result file and exit (no GPU)")
    parser.add_argument("--quick", action="store_true", help="T in {2K, 8K} only")
    parser.add_argument("--seq-lens", default=None, help="comma-separated T values (default 1K..32K); 'none' times only the fla-1.3B shapes")
    parser.add_argument("--ops", default=None, help=f"comma-separated subset of {PEERS + OURS}")
    parser.add_argument("--no-fla-shapes", action="store_true", help="skip the fla-1.3B layer shapes")
    parser.add_argument("--resume", action="store_true", help="keep the rows of an existing JSON, time the rest")
    parser.add_argument("--allow-busy-gpu", action="store_true", help="time even if other processes use the GPU")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    if args.table:
        print(format_table(json.loads(Path(args.table).read_text())["rows"]))
        return
    busy = other_gpu_processes()
    if busy and not args.allow_busy_gpu:
        raise SystemExit(f"other processes use the GPU, timings would be wrong: {busy} (--allow-busy-gpu to go on)")

    if args.seq_lens == "none":
        seq_lens = []
    elif args.seq_lens:
        seq_lens = [int(t) for t in args.seq_lens.split(",")]
    else:
        seq_lens = [2048, 8192] if args.quick else [1024, 2048, 4096, 8192, 16384, 32768]
    ops = args.ops.split(",") if args.ops else PEERS + OURS  # peers first: their numbers anchor the ratios
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = gpu_file_name()
    path = out / f"kernels-{name}.json"
    result = {**result_header(), "other_gpu_processes": busy, "rows": []}
    if args.resume and path.is_file():
        result["rows"] = [r for r in json.loads(path.read_text())["rows"] if "error" not in r]
    rows = result["rows"]
    done = {(r["op"], r["T"], r["H"], r["dk"], r["dv"]) for r in rows}

    def record(op: str, batch: int, seq_len: int, heads: int, dk: int, dv: int) -> None:
        if (op, seq_len, heads, dk, dv) in done:
            return
        # says where a slow first call (Triton compilation, fla's autotuning) is spending its time
        print(f"timing {op} B{batch} T{seq_len} H{heads} dk{dk} dv{dv}", flush=True)
        started = time.perf_counter()
        row = time_op(op, batch, seq_len, heads, dk, dv)
        row["wall_s"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
        add_ratios(rows)
        path.write_text(json.dumps(result, indent=2))  # after every row: a stopped run keeps what it timed

    for seq_len in seq_lens:
        for op in ops:
            record(op, 32768 // seq_len, seq_len, 16, 128, 128)
    if not args.no_fla_shapes:  # fla-1.3B layer shapes at T = 4K (B = 8)
        for op, heads, dk, dv in FLA_SHAPES:
            if op in ops:
                record(op, 8, 4096, heads, dk, dv)
    print(format_table(rows))
    print(f"wrote {path}")
    try:  # the plot beside the JSON (matplotlib is optional on a GPU host)
        from benchmarks.plot_kernels import main as plot
    except ImportError as error:
        print(f"no plot: {error}")
    else:
        plot(str(path))


if __name__ == "__main__":
    main()
