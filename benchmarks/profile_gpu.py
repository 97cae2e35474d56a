"""Where the time goes: per-kernel GPU time of each op's fwd+bwd, and what one decode step costs.

    python benchmarks/profile_gpu.py [--ops gla,gated_delta_rule,fla_chunk_gated_delta_rule,...] [--shape 2,16384]
                                     [--out benchmarks/results]
    python benchmarks/profile_gpu.py --smoke --out /tmp/x      # CPU, tiny shapes: checks the script only
    python benchmarks/profile_gpu.py --no-decode --ops '' --compile   # only the training step, under model.compile()

ops: torch.profiler over 5 fwd+bwd calls of each op at B8 T4K H16 d128 (or --shape's B,T[,H,d_k,d_v]; bf16, backend
triton),
grouped by kernel name: calls and microseconds per fwd+bwd, largest first.
decode: the 340M CCQ-GDN of train_throughput.py (random weights), 32 greedy tokens after a 512-token prompt,
at batch 1: wall time per token, CPU time per token spent in Python/launches, GPU kernel time per token and
kernel launches per token. When GPU time is far below wall time, decode is bound by launch overhead; the wall
time per token with `cuda_graph_decode` (one replayed graph per token) says how much of it a graph removes.
train: one training step (forward, backward, fused AdamW) of that model at B4 T4K as train_throughput.py runs it,
grouped by kernel name (top 25) and by PyTorch operator (top 25): where the step's time goes outside the
linear-attention kernels; its wall time (unprofiled) beside the kernel time says whether the step is host-bound.
Writes profile-<gpu>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

from benchmarks.kernels import fwd_bwd_call, gpu_file_name, make_inputs as bench_inputs, op_function  # noqa: E402
from benchmarks.launch_settings import op_shape, shape_label  # noqa: E402
from benchmarks.train_throughput import config_340m, training_step  # noqa: E402

OPS = ["gla", "ccq_gla", "gated_delta_rule", "qdelta_rule", "ccq_gated_delta_rule"]


def device_events(prof) -> list:
    """Kernel-level events of a profile (device time > 0)."""
    return [e for e in prof.key_averages() if getattr(e, "device_time_total", 0) > 0]


def profile_op(op: str, smoke: bool, repeats: int = 5, shape: tuple = (8, 4096, 16, 128, 128)) -> list[dict]:
    """[{kernel, calls, us}] per fwd+bwd of `op` (one of ours, or a peer of benchmarks/kernels.py such as
    fla_chunk_gated_delta_rule, whose kernels then sit beside ours) at shape (B, T, H, d_k, d_v), largest first."""
    import linmem.kernels as K

    shape = (1, 64, 2, 16, 16) if smoke else shape
    inputs = bench_inputs(op, *shape, device="cpu" if smoke else "cuda")
    for t in inputs.values():
        t.requires_grad_(True)
    fn = op_function(op)
    backend = "torch" if smoke else "triton"
    with K.use_backend(backend):
        fwd_bwd = fwd_bwd_call(fn, inputs, torch.randn_like(fn(**inputs)[0]))
        for _ in range(2):  # compile and warm up outside the profile
            fwd_bwd()
        activities = [ProfilerActivity.CPU] if smoke else [ProfilerActivity.CUDA]
        with profile(activities=activities) as prof:
            for _ in range(repeats):
                fwd_bwd()
            if not smoke:
                torch.cuda.synchronize()
    events = device_events(prof) if not smoke else [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    rows = [{"kernel": e.key[:80], "calls": e.count / repeats,
             "us": (e.device_time_total if not smoke else e.self_cpu_time_total) / repeats} for e in events]
    return sorted(rows, key=lambda r: -r["us"])


@torch.no_grad()
def profile_decode(smoke: bool, new_tokens: int = 32) -> dict:
    from linmem import CCQForCausalLM

    device = "cpu" if smoke else "cuda"
    small = dict(hidden_size=64, num_heads=2, head_dim=16, intermediate_size=128, vocab_size=512, num_hidden_layers=4)
    config = config_340m(**(small if smoke else {}))
    model = CCQForCausalLM(config).to(device, torch.float32 if smoke else torch.bfloat16).eval()
    prompt = torch.randint(3, config.vocab_size, (1, 32 if smoke else 512), device=device)
    generate = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    model.generate(prompt, **dict(generate, max_new_tokens=4, min_new_tokens=4))  # warm-up (compiles kernels)
    sync = torch.cuda.synchronize if not smoke else (lambda: None)

    def seconds_to_generate() -> float:
        sync()
        start = time.perf_counter()
        model.generate(prompt, **generate)
        sync()
        return time.perf_counter() - start

    wall = seconds_to_generate()
    model.config.cuda_graph_decode = True  # the same decode replayed as one CUDA graph per token (eager on CPU)
    try:
        seconds_to_generate()  # captures
        graph_ms = seconds_to_generate() / new_tokens * 1e3
    except Exception as error:  # recorded, not hidden
        graph_ms = f"{type(error).__name__}: {str(error)[:300]}"
    model.config.cuda_graph_decode = False
    activities = [ProfilerActivity.CPU] + ([] if smoke else [ProfilerActivity.CUDA])
    with profile(activities=activities) as prof:
        model.generate(prompt, **generate)
        sync()
    # CPU operators (aten::linear, its aten::matmul, ...) carry their kernels' device time too: kernels only
    kernels = [e for e in device_events(prof) if not e.key.startswith("aten::")]
    by_name = defaultdict(float)
    for e in kernels:
        by_name[e.key[:80]] += e.device_time_total / new_tokens
    return {
        "layers": config.num_hidden_layers, "prompt": prompt.shape[1], "new_tokens": new_tokens,
        "wall_ms_per_token": wall / new_tokens * 1e3,
        "wall_ms_per_token_cuda_graph": graph_ms,
        "gpu_kernel_ms_per_token": sum(e.device_time_total for e in kernels) / new_tokens / 1e3,
        "kernel_launches_per_token": sum(e.count for e in kernels) / new_tokens,
        "top_kernels_us_per_token": dict(sorted(by_name.items(), key=lambda kv: -kv[1])[:15]),
        "note": "the prompt's prefill is inside these per-token figures (one forward of the prompt per generate)",
    }


def _top(by_name: dict, n: int = 25) -> dict:
    return {name: round(us, 1) for name, us in sorted(by_name.items(), key=lambda kv: -kv[1])[:n]}


#: Profiler ranges that are not kernels (operators, autograd nodes, Inductor's compiled regions and graph calls).
CPU_SIDE_RANGES = ("aten::", "autograd::", "Optimizer.", "ProfilerStep", "Torch-Compiled Region",
                   "## Call CompiledFxGraph")


def profile_train(smoke: bool, steps: int = 2, compiled: bool = False) -> dict:
    """Device time per training step of the 340M CCQ-GDN (B4 T4K bf16; smoke: a tiny model on the CPU), eager or
    with model.compile() (Inductor; "aot_eager" in the smoke run, which needs no C++ compiler)."""
    from linmem import CCQForCausalLM

    device = "cpu" if smoke else "cuda"
    small = dict(hidden_size=64, num_heads=2, head_dim=16, intermediate_size=128, vocab_size=512, num_hidden_layers=2)
    config = config_340m(**(small if smoke else {}))
    model = CCQForCausalLM(config).to(device, torch.float32 if smoke else torch.bfloat16).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=not smoke)
    ids = torch.randint(0, config.vocab_size, (1, 64) if smoke else (4, 4096), device=device)
    batch = {"input_ids": ids, "labels": ids}
    if compiled:
        model.compile(**({"backend": "aot_eager"} if smoke else {}))

    for _ in range(2 if compiled else 1):  # compiles the kernels (and the graphs: Inductor may recompile once)
        training_step(model, optimizer, batch)
    if not smoke:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):  # unprofiled: the step's wall time, to set against its kernel time
        training_step(model, optimizer, batch)
    if not smoke:
        torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - started) / steps * 1e3
    activities = [ProfilerActivity.CPU] + ([] if smoke else [ProfilerActivity.CUDA])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            training_step(model, optimizer, batch)
        if not smoke:
            torch.cuda.synchronize()
    kernels, operators = defaultdict(float), defaultdict(float)
    for e in prof.key_averages():
        device_us = getattr(e, "device_time_total", 0) if not smoke else 0
        # CPU-side ranges carry the device time of the kernels they launched: counting them would count twice
        is_cpu_side = e.key.startswith(CPU_SIDE_RANGES) or e.key.endswith(("Backward0", "Backward", "Function"))
        if device_us > 0 and not is_cpu_side:
            kernels[e.key[:80]] += device_us / steps
        elif e.key.startswith("aten::"):
            operators[e.key] += (device_us if not smoke else e.self_cpu_time_total) / steps
    return {"shape": "B1 T64 tiny (smoke)" if smoke else "B4 T4096 340M bf16", "compiled": compiled,
            "kernel_ms_per_step": sum(kernels.values()) / 1e3, "wall_ms_per_step": wall_ms,
            "top_kernels_us_per_step": _top(kernels), "top_operators_us_per_step": _top(operators)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--no-decode", action="store_true")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--compile", action="store_true", help="profile the training step under model.compile()")
    parser.add_argument("--shape", default="8,4096", type=op_shape,
                        help="B,T (H16 d128) or B,T,H,d_k,d_v of the ops' fwd+bwd (bf16)")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, PyTorch backend: checks the script")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    torch.manual_seed(0)
    result = {"device": "cpu (smoke)" if args.smoke else torch.cuda.get_device_name(), "torch": torch.__version__,
              "shape": "B1 T64 H2 d16 (smoke)" if args.smoke else shape_label(args.shape), "ops": {}}
    for op in [op for op in args.ops.split(",") if op]:
        result["ops"][op] = profile_op(op, args.smoke, shape=args.shape)
        top = ", ".join(f"{r['kernel']} {r['us']:.0f} us" for r in result["ops"][op][:4])
        print(f"{op}: {sum(r['us'] for r in result['ops'][op]) / 1e3:.2f} ms per fwd+bwd ({top})", flush=True)
    if not args.no_decode:
        result["decode"] = profile_decode(args.smoke)
        print("decode", json.dumps(result["decode"]), flush=True)
    if not args.no_train:
        result["train"] = profile_train(args.smoke, compiled=args.compile)
        print("train", json.dumps(result["train"]), flush=True)
    name = gpu_file_name(args.smoke)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"profile-{name}.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / f'profile-{name}.json'}")


if __name__ == "__main__":
    main()
