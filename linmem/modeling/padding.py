"""Exact handling of padded tokens in recurrent layers.

A padded position must not touch the recurrent state or the conv window of the real tokens. Rather
than masking every gate, the mixer drops padded tokens: the batch becomes one varlen sequence pack
(B = 1 plus `cu_seqlens`), the ops run on it with the per-sequence cached states, and the outputs are
scattered back, zeros at padded positions. Left padding is then exactly each sequence alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..kernels.utils import mark_valid_cu_seqlens


@dataclass
class TokenLayout:
    """Where the real tokens of a padded [B, T] batch live.

    Attributes:
        indices: [N_tok] flat indices (into B*T) of the real tokens, in order; None when every token is real
            (packed sequences, see packing.py: the pack is a reshape).
        cu_seqlens: [N + 1] int32 offsets of each sequence in the pack (N = B for a padded batch).
        batch_size, seq_len: the padded shape.
        segments: [B, T] the sequence of each token, for softmax layers' masks (packed sequences only).
        real: [B*T] which positions are real tokens, when the pack also holds the padding (`from_mask(static=True)`).
    """

    indices: torch.Tensor | None
    cu_seqlens: torch.Tensor
    batch_size: int
    seq_len: int
    segments: torch.Tensor | None = None
    real: torch.Tensor | None = None

    @classmethod
    def from_mask(cls, mask: torch.Tensor, static: bool = False) -> "TokenLayout | None":
        """mask [B, T] (1 = real token) -> layout, or None when every token is real.

        static: pack every position, the real tokens first (each row's in order, one sequence per row), then all the
        padding as one more sequence [B + 2 offsets], whose outputs are dropped. No shape then depends on the mask,
        so a compiled model traces a padded batch into one graph that serves every padding (at the cost of running
        the padding through the kernels). Without a cache only (the padding's sequence would add a state); off by
        default: the exact pack computes real tokens only."""
        keep = mask.bool()
        if not static and bool(keep.all()):
            return None
        batch_size, seq_len = keep.shape
        lengths = keep.sum(-1, dtype=torch.int32)
        cu_seqlens = torch.zeros(batch_size + 1 + static, dtype=torch.int32, device=mask.device)
        cu_seqlens[1:batch_size + 1] = lengths.cumsum(0)
        if not static:
            indices = keep.reshape(-1).nonzero(as_tuple=False).squeeze(-1)
            return cls(indices, mark_valid_cu_seqlens(cu_seqlens, indices.numel()), batch_size, seq_len)
        real = keep.reshape(-1)
        cu_seqlens[-1] = batch_size * seq_len
        indices = torch.argsort((~real).to(torch.int8), stable=True)  # real tokens first, each group in order
        return cls(indices, cu_seqlens, batch_size, seq_len, real=real)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, ...] -> [1, N_tok, ...]: the pack's tokens in its order (the real tokens only, unless static)."""
        flat = x.reshape(self.batch_size * self.seq_len, *x.shape[2:])
        return (flat if self.indices is None else flat.index_select(0, self.indices)).unsqueeze(0)

    def unpack(self, y: torch.Tensor) -> torch.Tensor:
        """y [1, N_tok, ...] -> [B, T, ...] with zeros at padded positions (pack's inverse)."""
        if self.indices is None:
            return y.reshape(self.batch_size, self.seq_len, *y.shape[2:])
        flat = y.new_zeros(self.batch_size * self.seq_len, *y.shape[2:])
        flat = flat.index_copy(0, self.indices, y.squeeze(0))
        if self.real is not None:  # the padding's own sequence
            flat = torch.where(self.real.view(-1, *([1] * (flat.dim() - 1))), flat, 0)
        return flat.reshape(self.batch_size, self.seq_len, *y.shape[2:])


def token_positions(mask: torch.Tensor | None, batch: int, seq_len: int, past_length: int,
                    device: torch.device) -> torch.Tensor:
    """Positions [B, T] of the current tokens: real tokens counted so far (mask [B, past + T]), so a
    left-padded row gets exactly the positions it would have alone; without a mask, past_length + t."""
    if mask is not None:
        return (mask.long().cumsum(-1) - 1).clamp_min(0)[:, -seq_len:]
    return torch.arange(past_length, past_length + seq_len, device=device).expand(batch, -1)
