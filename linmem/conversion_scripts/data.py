"""Token data for distillation: fixed-length blocks from a pre-tokenized `.npy` file or a text file.

The order of blocks is a seeded permutation, so batch k is a pure function of (seed, k): a resumed run
continues with exactly the batches it had not seen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def load_token_ids(path: str | Path, tokenizer=None) -> np.ndarray:
    """1-D token ids: `.npy` (memory-mapped, any integer dtype) or text (`.txt` etc., needs `tokenizer`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"`--data` file {path} does not exist")
    if path.suffix == ".npy":
        ids = np.load(path, mmap_mode="r")
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"`--data` {path} must hold a 1-D integer array, got {ids.ndim}-D {ids.dtype}")
        return ids
    if tokenizer is None:
        raise ValueError(f"`--data` {path} is text: a tokenizer is needed")
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    documents = [doc for doc in path.read_text(encoding="utf-8").split("\n\n") if doc.strip()]
    ids: list[int] = []
    for document in documents:
        ids += tokenizer(document, add_special_tokens=False).input_ids + eos
    return np.asarray(ids, dtype=np.int64)


class TokenBlocks:
    """Non-overlapping blocks of `seq_len` tokens; `batch(k)` gives batch k of a seeded, epoch-wise order."""

    def __init__(self, ids: np.ndarray, seq_len: int, batch_size: int, seed: int = 0) -> None:
        if seq_len < 2 or batch_size < 1:
            raise ValueError(f"need seq_len >= 2 and batch_size >= 1, got seq_len={seq_len}, batch_size={batch_size}")
        self.num_blocks = len(ids) // seq_len
        if self.num_blocks < batch_size:
            raise ValueError(f"the data has {len(ids)} tokens: fewer than one batch of {batch_size} x {seq_len}")
        self.ids, self.seq_len, self.batch_size, self.seed = ids, seq_len, batch_size, seed
        self.batches_per_epoch = self.num_blocks // batch_size

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_blocks)

    def batch(self, k: int) -> dict[str, torch.Tensor]:
        """{"input_ids": [B, seq_len] int64, "attention_mask": all ones [B, seq_len]}."""
        epoch, index = divmod(k, self.batches_per_epoch)
        blocks = self._order(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
        rows = [np.asarray(self.ids[b * self.seq_len:(b + 1) * self.seq_len], dtype=np.int64) for b in blocks]
        input_ids = torch.from_numpy(np.stack(rows))
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
