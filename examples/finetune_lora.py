"""LoRA fine-tuning of a linmem model from the Hub on real text, then push the adapter (and a merged model).

    python examples/finetune_lora.py --model you/ccq-gdn-small --steps 300 --push-to you/ccq-gdn-small-lora
    python examples/finetune_lora.py --model you/ccq-gdn-small --dataset wikitext --dataset-config wikitext-2-raw-v1

Text: the English of the Python docs shipped with every Python (`pydoc_data`, the default) or any
`datasets` text dataset (`--dataset NAME [--dataset-config C] [--split S] [--text-column text]`; needs
`pip install datasets`). Shows a progress bar, prints held-out loss before and after, writes a loss plot.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

# = linmem.LORA_TARGET_MODULES, spelled out so the script also runs where linmem is not installed.
LORA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "g_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="base model: Hub repo id or local directory")
    parser.add_argument("--revision", help="revision of the base model")
    parser.add_argument("--dataset", default="pydoc_data", help="'pydoc_data' or a `datasets` dataset name")
    parser.add_argument("--dataset-config", default=None)
    parser.add_argument("--split", default="train")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--eval-batches", type=int, default=8)
    parser.add_argument("--output-dir", default="lora-output")
    parser.add_argument("--plot", default=None, help="loss plot PNG (default: <output-dir>/loss.png)")
    parser.add_argument("--push-to", help="push the adapter to this repo id")
    parser.add_argument("--merge-and-push", help="merge the adapter into the base and push the plain model here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def load_text(args: argparse.Namespace) -> str:
    if args.dataset == "pydoc_data":
        from pydoc_data.topics import topics

        return "\n\n".join(topics[key] for key in sorted(topics))
    from datasets import load_dataset  # pip install datasets

    data = load_dataset(args.dataset, args.dataset_config, split=args.split)
    return "\n\n".join(row[args.text_column] for row in data if row[args.text_column])


def load_model(args: argparse.Namespace):
    try:
        import linmem  # noqa: F401
        trust_remote_code = False
    except ImportError:
        trust_remote_code = True  # the checkpoint's own code
    model = AutoModelForCausalLM.from_pretrained(args.model, revision=args.revision,
                                                 trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(args.model, revision=args.revision)
    return model.to(args.device), tokenizer


def batches(tokens: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator):
    while True:
        starts = torch.randint(0, tokens.numel() - seq_len - 1, (batch_size,), generator=generator).tolist()
        yield torch.stack([tokens[s : s + seq_len] for s in starts])


@torch.no_grad()
def evaluate(model, tokens: torch.Tensor, args: argparse.Namespace) -> float:
    model.eval()
    stream = batches(tokens, args.batch_size, args.seq_len, torch.Generator().manual_seed(1234))
    losses = [model(x := next(stream).to(args.device), labels=x).loss.item() for _ in range(args.eval_batches)]
    model.train()
    return sum(losses) / len(losses)


def plot_losses(losses: list[float], eval_points: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(range(1, len(losses) + 1), losses, alpha=0.4, label="train (per step)")
    window = max(1, len(losses) // 20)
    smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
              for i in range(len(losses))]
    axis.plot(range(1, len(losses) + 1), smooth, label=f"train (mean of {window})")
    axis.plot(*zip(*eval_points), "o-", label="held-out")
    axis.set(xlabel="step", ylabel="cross-entropy (nats/token)", title="LoRA fine-tuning")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(args.seed)
    model, tokenizer = load_model(args)
    tokens = torch.tensor(tokenizer(load_text(args))["input_ids"], dtype=torch.long)
    split = int(tokens.numel() * 0.98)  # the last 2% is held out
    train_tokens, held_out = tokens[:split], tokens[split:]
    if held_out.numel() <= args.seq_len + 1:
        raise ValueError(f"--seq-len {args.seq_len} is longer than the held-out text ({held_out.numel()} tokens)")

    model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                                             target_modules=LORA_TARGET_MODULES, task_type="CAUSAL_LM"))
    model.print_trainable_parameters()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
    eval_points = [(0, evaluate(model, held_out, args))]
    print(f"held-out loss before: {eval_points[0][1]:.4f}")

    stream = batches(train_tokens, args.batch_size, args.seq_len, torch.Generator().manual_seed(args.seed))
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    progress = tqdm(range(args.steps), desc="LoRA", unit="step")
    for step in progress:
        x = next(stream).to(args.device)
        loss = model(x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        progress.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % max(1, args.steps // 4) == 0 or step + 1 == args.steps:
            eval_points.append((step + 1, evaluate(model, held_out, args)))
    seconds = time.perf_counter() - start
    print(f"held-out loss after {args.steps} steps: {eval_points[-1][1]:.4f} ({seconds:.0f} s)")

    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    plot_path = Path(args.plot) if args.plot else output / "loss.png"
    plot_losses(losses, eval_points, plot_path)
    model.save_pretrained(output / "adapter")
    print(f"adapter saved to {output / 'adapter'}, loss plot {plot_path}")
    metadata = {"dataset": args.dataset, "steps": args.steps,
                "batch_size": args.batch_size, "seq_len": args.seq_len, "learning_rate": args.lr,
                "lora_rank": args.rank, "held_out_loss_before": round(eval_points[0][1], 4),
                "held_out_loss_after": round(eval_points[-1][1], 4)}
    if not Path(args.model).exists():
        metadata["base_model"] = args.model  # a Hub repo id (the card's front matter links it)
    if args.push_to:
        model.push_to_hub(args.push_to)
        print(f"adapter pushed to {args.push_to}")
    if args.merge_and_push:
        merged = model.merge_and_unload()
        merged.push_to_hub(args.merge_and_push, training_metadata=metadata)
        tokenizer.push_to_hub(args.merge_and_push)
        print(f"merged model pushed to {args.merge_and_push}")
    return {"losses": losses, "eval": eval_points, "plot": str(plot_path)}


if __name__ == "__main__":
    main()
