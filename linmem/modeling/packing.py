"""Packed sequences: several documents in one row of a padding-free batch, each run as if alone.

transformers' padding-free training (`DataCollatorWithFlattening`, TRL's `padding_free=True`) concatenates the
examples of a batch into one row without an attention mask and marks where each starts in one of two ways:
position_ids that restart (a position that is not the previous one plus one starts a new sequence, as transformers'
own packed-sequence detection has it), or FlashAttention's `cu_seq_lens_q` / `cu_seq_lens_k` keyword arguments
(with `return_flash_attn_kwargs=True`). The recurrent layers then run the row as a varlen pack (`cu_seqlens`: every
sequence starts from a zero state and an empty convolution window) and softmax layers mask keys of other sequences.
Finding restarts in position_ids costs a host sync (and a graph break under torch.compile); without restarts the
batch runs as a dense one. Offsets cost neither: a compiled model traces a packed batch marked by cu_seq_lens_q into
one graph (its entries are checked in eager mode only, as the ops' cu_seqlens are).
"""

from __future__ import annotations

from typing import Any

import torch

from ..kernels.utils import check_cu_seqlens, mark_valid_cu_seqlens
from .padding import TokenLayout

#: FlashAttention-style keyword arguments of packed batches (transformers' names).
FLASH_ATTENTION_KWARGS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")


def packed_layout(position_ids: torch.Tensor | None, kwargs: dict[str, Any], batch: int,
                  seq_len: int) -> TokenLayout | None:
    """The layout of a packed batch [B, T] (pops the FlashAttention keyword arguments from kwargs), or None when
    each row holds one sequence. Called only for batches without an attention mask."""
    flash = {name: kwargs.pop(name) for name in FLASH_ATTENTION_KWARGS if kwargs.get(name) is not None}
    if "cu_seq_lens_q" in flash or "cu_seq_lens_k" in flash:
        return _from_offsets(flash, batch, seq_len)
    if position_ids is None or seq_len < 2:
        return None
    if position_ids.dim() != 2 or position_ids.shape[-1] != seq_len or position_ids.shape[0] not in (1, batch):
        raise ValueError(f"`position_ids` must be [batch, seq_len] = {[batch, seq_len]}, got shape "
                         f"{list(position_ids.shape)}")
    positions = position_ids.expand(batch, seq_len)
    starts = torch.ones(batch, seq_len, dtype=torch.bool, device=positions.device)
    starts[:, 1:] = positions[:, 1:] != positions[:, :-1] + 1
    if not bool(starts[:, 1:].any()):
        return None
    flat_starts = starts.reshape(-1)
    cu_seqlens = torch.cat([flat_starts.nonzero().squeeze(-1),
                            torch.tensor([batch * seq_len], device=positions.device)]).to(torch.int32)
    cu_seqlens = mark_valid_cu_seqlens(_bucketed(cu_seqlens, batch * seq_len), batch * seq_len)
    segments = (flat_starts.cumsum(0) - 1).view(batch, seq_len)
    return TokenLayout(None, cu_seqlens, batch, seq_len, segments)


def _from_offsets(flash: dict[str, Any], batch: int, seq_len: int) -> TokenLayout:
    cu_seqlens = flash.get("cu_seq_lens_q", flash.get("cu_seq_lens_k"))
    if batch != 1:
        raise ValueError(f"cu_seq_lens_q: a packed batch is one row (batch size 1), got batch size {batch}")
    check_cu_seqlens(cu_seqlens, 1, seq_len)
    other = flash.get("cu_seq_lens_k")
    if (other is not None and other is not cu_seqlens and not torch.compiler.is_compiling()
            and not torch.equal(other.to(cu_seqlens), cu_seqlens)):
        raise ValueError("cu_seq_lens_k must equal cu_seq_lens_q (causal self-attention over the same packed "
                         "sequences)")
    cu_seqlens = mark_valid_cu_seqlens(_bucketed(cu_seqlens.to(torch.int32), seq_len), seq_len)
    token = torch.arange(seq_len, device=cu_seqlens.device)
    segments = (torch.searchsorted(cu_seqlens[1:], token, right=True)).view(1, seq_len)
    return TokenLayout(None, cu_seqlens, 1, seq_len, segments)


#: The fewest offsets a packed batch's cu_seqlens is padded to (see _bucketed).
MIN_OFFSETS = 8


def _bucketed(cu_seqlens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """cu_seqlens [N + 1] padded with empty sequences at the end (entries T) to a power of two of at least
    MIN_OFFSETS entries. The kernels' launch settings are fixed per size, so a compiled model recompiles for every
    new size; with batches of varying numbers of sequences, the bucket keeps that to one graph per power of two
    (the loop's comparisons become range guards on the symbolic size, not an exact value). Empty sequences cost the
    kernels next to nothing."""
    entries = cu_seqlens.shape[0]
    bucket = MIN_OFFSETS
    while bucket < entries:
        bucket *= 2
    return torch.nn.functional.pad(cu_seqlens, (0, bucket - entries), value=seq_len)


def positions_within_sequences(layout: TokenLayout) -> torch.Tensor:
    """[B, T] each token's position within its own sequence of a packed layout (for RoPE and learned positions
    when only cu_seq_lens_q marked the sequences)."""
    token = torch.arange(layout.batch_size * layout.seq_len, device=layout.cu_seqlens.device)
    starts = layout.cu_seqlens.to(torch.int64)[layout.segments.reshape(-1)]
    return (token - starts).view(layout.batch_size, layout.seq_len)
