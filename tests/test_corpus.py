"""`linmem prepare-data`: the offline English mix, deduplicated, split by document, tokenized to compact .npy."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from linmem.conversion_scripts.corpus import dedup_and_split, iter_documents, prepare_data
from linmem.demo import train_tokenizer


def _fake_bigbench_sdist(folder) -> None:
    """A tiny stand-in for the BIG-bench sdist: one task.json with list, string and scored targets."""
    task = {"examples": [
        {"input": "Q: " + "why is the sky blue? " * 12, "target": ["Rayleigh scattering."]},
        {"input": "Q: " + "name a prime number larger than ten. " * 6, "target": "Eleven."},
        {"input": "Q: " + "which is heavier, a kilogram of iron or of feathers? " * 5,
         "target_scores": {"iron": 0, "neither": 1}},
    ]}
    data = json.dumps(task).encode()
    with tarfile.open(folder / "bigbench-0.0.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("bigbench-0.0/bigbench/benchmark_tasks/toy/task.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def test_bigbench_examples_become_documents_with_their_targets(tmp_path):
    _fake_bigbench_sdist(tmp_path)
    docs = [text for source, text in iter_documents(["bigbench"], tmp_path)]
    assert len(docs) == 3
    assert docs[0].endswith("Rayleigh scattering.") and docs[1].endswith("Eleven.") and docs[2].endswith("neither")


def test_dedup_split_and_unknown_source():
    docs = [("a", "x" * 300), ("b", " ".join(["x" * 300])), ("a", "short"), ("a", "y" * 300), ("a", "z" * 300)]
    train, held = dedup_and_split(docs, holdout=0.34, seed=0)
    assert sorted(t for _, t in train + held) == ["x" * 300, "y" * 300, "z" * 300]
    assert len(held) == 1
    with pytest.raises(ValueError, match="unknown sources"):
        list(iter_documents(["wikipedia"], "."))


def test_prepare_data_writes_compact_tokens_and_meta(tmp_path):
    from pydoc_data.topics import topics

    tokenizer = train_tokenizer("\n\n".join(topics.values())[:200_000], vocab_size=512)
    meta = prepare_data(tokenizer, tmp_path / "out", sources=["pydoc"], holdout=0.05, max_tokens=20_000)
    train = np.load(tmp_path / "out" / "train.npy")
    held = np.load(tmp_path / "out" / "eval.npy")
    assert train.dtype == np.uint16 and train.size == 20_000 == meta["splits"]["train"]["tokens"]
    assert held.size == meta["splits"]["eval"]["tokens"] > 0
    assert (held == tokenizer.eos_token_id).sum() == meta["splits"]["eval"]["documents"]
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["splits"]["train"]["sha256"]
