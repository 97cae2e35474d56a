"""Held-out perplexity (`linmem perplexity`): exact on models whose answer is known, and the CLI end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from linmem.conversion_scripts.validate import heldout_perplexity


class Uniform(torch.nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids, use_cache=False):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


class NextToken(Uniform):
    def forward(self, input_ids, use_cache=False):
        return SimpleNamespace(logits=torch.nn.functional.one_hot(torch.roll(input_ids, -1, 1), self.vocab).float() * 30)


def test_uniform_model_scores_the_vocabulary_size_and_oracle_one():
    ids = np.random.default_rng(0).integers(0, 50, size=1000).astype(np.uint16)
    uniform = heldout_perplexity(Uniform(50), ids, seq_len=64, batch_size=3)
    assert uniform["tokens"] == 960 and math.isclose(uniform["perplexity"], 50.0, rel_tol=1e-5)
    assert heldout_perplexity(NextToken(50), ids, seq_len=64, max_tokens=300)["perplexity"] < 1.001
    with pytest.raises(ValueError, match="seq_len"):
        heldout_perplexity(Uniform(50), ids[:10], seq_len=64)


def test_perplexity_cli_on_a_saved_model(tmp_path, capsys):
    import linmem
    from linmem.cli import main
    from linmem.demo import train_tokenizer

    tokenizer = train_tokenizer("the cat sat on the mat. " * 200, vocab_size=280)
    model = linmem.QDeltaForCausalLM(linmem.QDeltaConfig(vocab_size=len(tokenizer), hidden_size=32,
                                                         num_hidden_layers=2, num_heads=2, head_dim=16))
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    ids = np.random.default_rng(1).integers(0, len(tokenizer), size=300).astype(np.uint16)
    np.save(tmp_path / "eval.npy", ids)
    assert main(["perplexity", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "eval.npy"),
                 "--seq-len", "64", "--output", str(tmp_path / "ppl.json")]) == 0
    result = json.loads((tmp_path / "ppl.json").read_text())
    direct = heldout_perplexity(model, ids, seq_len=64)
    assert result["tokens"] == 256 and math.isclose(result["perplexity"], direct["perplexity"], rel_tol=1e-5)
