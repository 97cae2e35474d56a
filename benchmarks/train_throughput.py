"""Training throughput and decode speed of a ~340M CCQ-GDN model on one GPU.

    python benchmarks/train_throughput.py [--seq-len 4096] [--batch-size 4] [--steps 10] [--repeats 3] [--compile
        [--compile-mode reduce-overhead]]
        [--batch-layout dense|padded|packed] [--cuda-graph] [--out results/]

Trains in bf16 autocast-free pure bf16 weights with fp32 AdamW states (the usual fla recipe) and reports
tokens/s (the median of --repeats timed windows of --steps steps each, every window recorded: single runs of 6
steps moved by up to 25% from one GPU session to the next); then measures `generate()` decode tokens/s at batch 1
and the recurrent-state bytes, which do not depend on the context length. With --compile the training step runs
`model.compile()` (one graph: the Triton kernels are opaque custom ops, linmem/kernels/library.py, and Inductor
fuses the glue around them); the warm-up steps include the compilation. --compile-mode reduce-overhead replays
the compiled forward and backward as CUDA graphs (Inductor's own capture, what Trainer(torch_compile_mode=...) uses).
--cuda-graph also times the step with forward and backward replayed as one CUDA graph (linmem.CUDAGraphTrainingStep),
against the eager step's launch overhead.
Writes `train_throughput-<gpu>.json` (`train_throughput-<gpu>-compiled.json` with --compile).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from pathlib import Path

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

import torch  # noqa: E402
import transformers  # noqa: E402

import linmem  # noqa: E402
from linmem import CCQConfig, CCQForCausalLM, CUDAGraphTrainingStep, cache_of  # noqa: E402
from benchmarks.kernels import gpu_file_name  # noqa: E402


def config_340m(**overrides) -> CCQConfig:
    base = dict(backbone="gated_deltanet", vocab_size=32000, hidden_size=1024, num_hidden_layers=24, num_heads=4,
                head_dim=128, expand_v=2, hidden_ratio=4, intermediate_size=2816, tie_word_embeddings=True)
    return CCQConfig(**{**base, **overrides})


#: How a batch of B x T positions is laid out (--batch-layout): dense rows; rows padded on the left to a real length
#: drawn from [T/2, T] (attention_mask, labels -100 at the padding); or every row's documents packed into one row
#: without a mask (padding-free training: documents of 64..T/2 tokens, marked by cu_seq_lens_q and restarting
#: position_ids, as transformers' DataCollatorWithFlattening(return_flash_attn_kwargs=True) gives).
BATCH_LAYOUTS = ("dense", "padded", "packed")


def make_batch(layout: str, batch_size: int, seq_len: int, vocab_size: int, device) -> dict:
    """Model inputs of `layout` (BATCH_LAYOUTS) over batch_size x seq_len positions, every position a real token
    except the padding of "padded"."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
    if layout == "dense":
        return {"input_ids": ids.to(device), "labels": ids.to(device)}
    if layout == "padded":
        lengths = torch.randint(seq_len // 2, seq_len + 1, (batch_size,), generator=generator)
        mask = (torch.arange(seq_len) >= seq_len - lengths[:, None]).long()
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
                "labels": ids.masked_fill(mask == 0, -100).to(device)}
    if layout != "packed":
        raise ValueError(f"batch layout: expected one of {BATCH_LAYOUTS}, got {layout!r}")
    total, offsets = batch_size * seq_len, [0]
    while offsets[-1] < total:
        offsets.append(min(total, offsets[-1] + int(torch.randint(64, max(seq_len // 2, 65), (1,), generator=generator))))
    cu = torch.tensor(offsets, dtype=torch.int32)
    positions = torch.arange(total) - cu[torch.searchsorted(cu[1:], torch.arange(total), right=True)]
    labels = ids.reshape(1, total).clone()
    labels[0, cu[:-1].long()] = -100  # no document predicts the first token of the next
    return {"input_ids": ids.reshape(1, total).to(device), "labels": labels.to(device),
            "position_ids": positions[None].to(device), "cu_seq_lens_q": cu.to(device), "cu_seq_lens_k": cu.to(device)}


def training_step(model, optimizer, batch: dict) -> None:
    """One language-modelling step on `batch` (make_batch): forward, backward, optimizer step."""
    torch.compiler.cudagraph_mark_step_begin()  # a new iteration for compiled CUDA graphs (a no-op otherwise)
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure_training(model, batch_size: int, seq_len: int, steps: int, warmup: int, repeats: int = 1,
                     cuda_graph: bool = False, layout: str = "dense") -> list[float]:
    """Training tokens/s (positions per second, padding included) of `repeats` back-to-back windows of `steps` steps
    each, after `warmup` steps, on the model's device; with `cuda_graph`, forward and backward replayed as one CUDA
    graph (linmem.CUDAGraphTrainingStep, dense batches only)."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    model.train()
    batch = make_batch(layout, batch_size, seq_len, model.config.vocab_size, device)
    if cuda_graph:
        if layout != "dense":
            raise ValueError("CUDAGraphTrainingStep takes dense batches only")
        step = functools.partial(CUDAGraphTrainingStep(model, optimizer, batch_size, seq_len), batch["input_ids"])
    else:
        step = functools.partial(training_step, model, optimizer, batch)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    windows = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        windows.append(steps * batch_size * seq_len / (time.perf_counter() - start))
    return windows


@torch.no_grad()
def measure_decode(model, prompt: torch.Tensor, new_tokens: int, cuda_graph: bool = False) -> float:
    """Greedy tokens/s at batch 1 after `prompt` [1, T] (prefill included), eager or with `cuda_graph_decode`."""
    model.eval()
    model.config.cuda_graph_decode = cuda_graph
    try:
        model.generate(prompt, max_new_tokens=8, do_sample=False, min_new_tokens=8)  # warm-up (compiles kernels)
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        torch.cuda.synchronize()
        return (out.shape[1] - prompt.shape[1]) / (time.perf_counter() - start)
    finally:
        model.config.cuda_graph_decode = False


@torch.no_grad()
def measure_state_bytes(model, prompt: torch.Tensor) -> tuple[int, int]:
    """Recurrent state bytes of the cache after 16 tokens and after the whole prompt."""
    short = cache_of(model(prompt[:, :16], use_cache=True)).recurrent_state_bytes()
    return short, cache_of(model(prompt, use_cache=True)).recurrent_state_bytes()


def measure_decoding(model, new_tokens: int) -> dict:
    """Decode tokens/s at batch 1 after a 2048-token prompt (eager and with cuda_graph_decode) and the recurrent
    state bytes after 16 and 2048 tokens."""
    prompt = torch.randint(3, model.config.vocab_size, (1, 2048), device="cuda")
    decode_tps = measure_decode(model, prompt, new_tokens)
    state_short, state_long = measure_state_bytes(model, prompt)
    try:  # recorded, not hidden: a failing capture shows in the JSON and the eager figures still land
        graph_tps = measure_decode(model, prompt, new_tokens, cuda_graph=True)
    except Exception as error:
        graph_tps = f"{type(error).__name__}: {str(error)[:300]}"
    return {"decode_tokens_per_s_batch1": decode_tps, "decode_tokens_per_s_batch1_cuda_graph": graph_tps,
            "decode_prompt_tokens": prompt.shape[1], "decode_new_tokens": new_tokens,
            "recurrent_state_bytes_16_tokens": state_short, "recurrent_state_bytes_2048_tokens": state_long}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed windows of --steps steps; the median is reported")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="train with model.compile() (Inductor)")
    parser.add_argument("--compile-mode", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                        help="torch.compile's mode with --compile")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="also time training with forward+backward replayed as one CUDA graph")
    parser.add_argument("--variants", default="ccq-gdn,gdn", help="comma-separated subset of ccq-gdn,gdn")
    parser.add_argument("--fused-loss", action="store_true",
                        help="train with config.fuse_linear_cross_entropy (the LM head fused into the loss)")
    parser.add_argument("--batch-layout", default="dense", choices=BATCH_LAYOUTS,
                        help="dense rows, left-padded rows, or packed documents (padding-free); see make_batch")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    if args.compile_mode is not None and not args.compile:
        parser.error("--compile-mode needs --compile")
    if args.cuda_graph and args.batch_layout != "dense":
        parser.error("--cuda-graph needs --batch-layout dense")

    torch.manual_seed(0)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "transformers": transformers.__version__,
               "linmem": linmem.__version__, "python": platform.python_version()}
    try:
        import triton
        results["triton"] = triton.__version__
    except ImportError:
        pass
    results["compiled"] = args.compile
    results["compile_mode"] = args.compile_mode if args.compile else None
    results["fuse_linear_cross_entropy"] = args.fused_loss
    results["batch_layout"] = args.batch_layout
    variants = args.variants.split(",")
    if not set(variants) <= {"ccq-gdn", "gdn"}:
        raise SystemExit(f"--variants: expected names from ccq-gdn,gdn, got {args.variants!r}")
    for variant in variants:
        config = config_340m(ccq=variant == "ccq-gdn", fuse_linear_cross_entropy=args.fused_loss)
        model = CCQForCausalLM(config).to("cuda", torch.bfloat16)
        row = {"parameters": sum(p.numel() for p in model.parameters()), "batch_size": args.batch_size,
               "seq_len": args.seq_len}
        if args.compile:
            model.compile(mode=args.compile_mode)
        windows = measure_training(model, args.batch_size, args.seq_len, args.steps, args.warmup, args.repeats,
                                   layout=args.batch_layout)
        row["train_tokens_per_s"] = statistics.median(windows)
        row["train_tokens_per_s_windows"] = windows
        row["train_steps_per_window"] = args.steps
        if args.cuda_graph:
            try:  # recorded, not hidden: a failing capture shows in the JSON and the eager figures still land
                graphed = measure_training(model, args.batch_size, args.seq_len, args.steps, args.warmup,
                                           args.repeats, cuda_graph=True)
                row["train_tokens_per_s_cuda_graph"] = statistics.median(graphed)
                row["train_tokens_per_s_cuda_graph_windows"] = graphed
            except Exception as error:
                row["train_tokens_per_s_cuda_graph"] = f"{type(error).__name__}: {str(error)[:300]}"
        if not args.compile and args.batch_layout == "dense":  # decode: measured once, eagerly
            row.update(measure_decoding(model, args.new_tokens))
        results[variant] = row
        print(variant, json.dumps(row), flush=True)
        del model
        torch.cuda.empty_cache()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = ("-compiled" + (f"-{args.compile_mode}" if args.compile_mode not in (None, "default") else "")
              if args.compile else "") + (f"-{args.batch_layout}" if args.batch_layout != "dense" else "")
    (out / f"train_throughput-{gpu_file_name()}{suffix}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
