"""`linmem demo`: train a small CCQ-GDN model on real English text, save, reload, generate, report.

Runs on CPU in under three minutes with the defaults (the GPU when CUDA is available):
  1. trains a byte-pair tokenizer and a small CCQ-GDN model on the Python docs' English (pydoc_data.topics),
  2. saves both with save_pretrained, reloads them with AutoModelForCausalLM / AutoTokenizer,
  3. generates text with the recurrent cache and prints a report.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .modeling.compat import cache_of

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]


def load_corpus() -> str:
    """The English text shipped with every Python install (~0.7 MB)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def train_tokenizer(text: str, vocab_size: int):
    """A byte-level BPE tokenizer trained on `text`, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def build_model(vocab_size: int, device: torch.device):
    from linmem import CCQConfig, CCQForCausalLM

    config = CCQConfig(backbone="gated_deltanet", vocab_size=vocab_size, hidden_size=128, num_hidden_layers=4,
                       num_heads=2, head_dim=32, expand_v=2, hidden_ratio=3, tie_word_embeddings=True,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    return CCQForCausalLM(config).to(device)


def batches(tokens: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator):
    while True:
        starts = torch.randint(0, tokens.numel() - seq_len - 1, (batch_size,), generator=generator)
        yield torch.stack([tokens[s : s + seq_len] for s in starts.tolist()])


def kv_cache_bytes(config, context: int, dtype_bytes: int = 2) -> int:
    """What a softmax Transformer of the same width and depth would hold for `context` tokens (K and V)."""
    return 2 * config.num_hidden_layers * config.hidden_size * context * dtype_bytes


@torch.no_grad()
def timed_generation(model, tokenizer, prompt: str, new_tokens: int, device: torch.device,
                     prefill_ids: torch.Tensor):
    """Prefill tokens/s on `prefill_ids` [1, T]; then sample `new_tokens` after `prompt` with the cache."""
    model(prefill_ids[:, :16].to(device))  # warm-up
    start = time.perf_counter()
    out = model(prefill_ids.to(device), use_cache=True)
    prefill_s = time.perf_counter() - start
    prefill_tps = prefill_ids.numel() / prefill_s
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    start = time.perf_counter()
    generated = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=True, top_k=20, temperature=0.8,
                               pad_token_id=tokenizer.pad_token_id)
    decode_s = time.perf_counter() - start
    decode_tps = (generated.shape[1] - inputs["input_ids"].shape[1]) / decode_s
    return tokenizer.decode(generated[0], skip_special_tokens=True), prefill_tps, decode_tps, cache_of(out)


def run_demo(steps: int = 250, batch_size: int = 16, seq_len: int = 96, output_dir: str = "linmem-demo",
             device: str = "auto", new_tokens: int = 60) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    text = load_corpus()
    tokenizer = train_tokenizer(text, vocab_size=1024)
    tokens = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
    held_out = tokens[-20_000:]
    tokens = tokens[:-20_000]
    model = build_model(len(tokenizer), dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"linmem demo: CCQ-GDN, {n_params / 1e6:.2f}M parameters, {tokens.numel():,} training tokens "
          f"(pydoc_data.topics), device {dev}")

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    data = batches(tokens, batch_size, seq_len, torch.Generator().manual_seed(0))
    model.train()
    losses = []
    progress = tqdm(range(steps), desc="training", unit="step")
    for _ in progress:
        batch = next(data).to(dev)
        loss = model(batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        progress.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()

    out_dir = Path(output_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir).to(dev).eval()
    tokenizer = AutoTokenizer.from_pretrained(out_dir)

    with torch.no_grad():
        eval_batch = held_out[: (held_out.numel() // seq_len) * seq_len].view(-1, seq_len)[:16].to(dev)
        held_out_loss = reloaded(eval_batch, labels=eval_batch).loss.item()
    sample, prefill_tps, decode_tps, cache = timed_generation(
        reloaded, tokenizer, "The import statement", new_tokens, dev, prefill_ids=held_out[None, :1024])

    head = sum(losses[: max(1, steps // 10)]) / max(1, steps // 10)
    tail = sum(losses[-max(1, steps // 10):]) / max(1, steps // 10)
    report = {
        "parameters": n_params,
        "loss_first_10pct": head,
        "loss_last_10pct": tail,
        "held_out_loss": held_out_loss,
        "held_out_perplexity": math.exp(held_out_loss),
        "prefill_tokens_per_s": prefill_tps,
        "decode_tokens_per_s": decode_tps,
        "recurrent_state_bytes": cache.recurrent_state_bytes(),
        "kv_cache_bytes_at_4k_bf16": kv_cache_bytes(reloaded.config, 4096),
        "saved_to": str(out_dir),
        "sample": sample,
    }
    print("\n=== linmem demo report ===")
    print(f"parameters            {n_params:,}")
    print(f"training loss         {head:.3f} (first 10% of steps) -> {tail:.3f} (last 10%)")
    print(f"held-out loss         {held_out_loss:.3f} (perplexity {math.exp(held_out_loss):.1f}), reloaded model")
    print(f"prefill               {prefill_tps:,.0f} tokens/s")
    print(f"decode (generate)     {decode_tps:,.1f} tokens/s, batch 1, with the recurrent cache")
    print(f"recurrent state       {report['recurrent_state_bytes']:,} bytes per sequence, at any context length")
    print(f"softmax KV cache      {report['kv_cache_bytes_at_4k_bf16']:,} bytes per sequence at 4K tokens (bf16, same width/depth)")
    print(f"saved + reloaded      {out_dir}/ (AutoModelForCausalLM.from_pretrained)")
    print(f"sample                {sample!r}")
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=250, help="training steps (default 250)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=96)
    parser.add_argument("--output-dir", default="linmem-demo")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    parser.add_argument("--new-tokens", type=int, default=60)
