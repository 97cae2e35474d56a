"""Chunk layout of a dense or varlen batch for every chunked Triton kernel (device tables, no host sync),
and the per-sequence state tile the sequential state kernels start from.

Activations are read as a flat token axis [B*T, H, D]. A "slot" is one chunk of BT tokens of one
sequence; per-chunk tensors (chunk-start states h, state gradients dh, per-chunk sums) live at that slot.
Dense: slot = b * NT + c (NT = ceil(T / BT)). Varlen (B == 1): slots follow the sequences in order;
their number is bounded by T // BT + N without reading cu_seqlens on the host, and a device table gives
each slot its token span [t0, t1) (unused slots get an empty span and exit at once).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .offsets_memo import remembered


class ChunkLayout:
    """Where each chunk of a batch lives.

    Attributes: `n_seqs` (B or N), `n_chunks` (NT, dense only; 0 for varlen), `n_slots`, `slot_grid`
    (size of the chunk-parallel grid axis), and for varlen `table` [n_slots, 2] int32 token spans,
    `cu_seqlens` [N+1] int32, `chunk_offsets` [N+1] int32 (first slot of each sequence), `slot_seq`
    [n_slots] int64 (sequence of each slot, clamped), `slot_used` [n_slots] bool.
    """

    #: How many tensors `tables()` returns.
    N_TABLES = 5

    def __init__(self, batch: int, seq_len: int, cu_seqlens: torch.Tensor | None, chunk_size: int) -> None:
        self.batch, self.seq_len, self.chunk_size = batch, seq_len, chunk_size
        self.is_varlen = cu_seqlens is not None
        if cu_seqlens is None:
            self.n_seqs = batch
            self.n_chunks = triton.cdiv(seq_len, chunk_size)
            self.n_slots = batch * self.n_chunks
            self.slot_grid = self.n_chunks
            self.table = self.cu_seqlens = self.chunk_offsets = self.slot_seq = self.slot_used = None
            return
        cu = cu_seqlens.to(torch.int64)
        n_seqs = cu.numel() - 1
        counts = (cu[1:] - cu[:-1] + chunk_size - 1) // chunk_size
        offsets = torch.zeros(n_seqs + 1, dtype=torch.int64, device=cu.device)
        offsets[1:] = torch.cumsum(counts, 0)
        slot = torch.arange(max(seq_len // chunk_size + n_seqs, 1), device=cu.device)
        seq = torch.searchsorted(offsets[1:], slot, right=True).clamp_(max=max(n_seqs - 1, 0))
        used = slot < offsets[-1]
        start = cu[seq] + (slot - offsets[seq]) * chunk_size
        end = torch.minimum(start + chunk_size, cu[seq + 1])
        table = torch.stack([torch.where(used, start, 0), torch.where(used, end, 0)], 1).to(torch.int32)
        self._set_varlen_tables(table.contiguous(), cu.to(torch.int32).contiguous(),
                                offsets.to(torch.int32).contiguous(), seq, used)

    @classmethod
    def of(cls, batch: int, seq_len: int, cu_seqlens: torch.Tensor | None, chunk_size: int) -> "ChunkLayout":
        """The layout, built once per cu_seqlens tensor (see offsets_memo: every op of every layer of a model's
        forward and backward gets the same one) rather than once per op call."""
        if cu_seqlens is None:
            return cls(batch, seq_len, None, chunk_size)
        return remembered(cu_seqlens, ("chunk layout", batch, seq_len, chunk_size),
                          lambda: cls(batch, seq_len, cu_seqlens, chunk_size))

    def _set_varlen_tables(self, table: torch.Tensor, cu_seqlens: torch.Tensor, chunk_offsets: torch.Tensor,
                           slot_seq: torch.Tensor, slot_used: torch.Tensor) -> None:
        self.table, self.cu_seqlens, self.chunk_offsets = table, cu_seqlens, chunk_offsets
        self.slot_seq, self.slot_used = slot_seq, slot_used
        self.n_seqs = cu_seqlens.numel() - 1
        self.n_chunks = 0
        self.n_slots = self.slot_grid = table.shape[0]

    def tables(self) -> list[torch.Tensor | None]:
        """The varlen device tables (table, cu_seqlens, chunk_offsets, slot_seq, slot_used; Nones for a dense
        batch): a forward op returns them so that its backward op takes the forward's layout (`from_tables`)
        instead of building it again (a dozen small launches)."""
        return [self.table, self.cu_seqlens, self.chunk_offsets, self.slot_seq, self.slot_used]

    @classmethod
    def from_tables(cls, batch: int, seq_len: int, chunk_size: int,
                    tables: list[torch.Tensor | None]) -> "ChunkLayout":
        """The layout whose `tables()` these are (no device work)."""
        if len(tables) != cls.N_TABLES:
            raise ValueError(f"expected {cls.N_TABLES} layout tables, got {len(tables)}")
        if tables[0] is None:
            return cls(batch, seq_len, None, chunk_size)
        layout = cls.__new__(cls)
        layout.batch, layout.seq_len, layout.chunk_size, layout.is_varlen = batch, seq_len, chunk_size, True
        layout._set_varlen_tables(*tables)
        return layout

    def kernel_args(self) -> tuple:
        """(chunk_table, T, NT) as the chunk-parallel kernels take them."""
        return self.table, self.seq_len, self.n_chunks

    def seq_args(self) -> tuple:
        """(cu_seqlens, chunk_offsets, T, NT) as the sequential state kernels take them."""
        return self.cu_seqlens, self.chunk_offsets, self.seq_len, self.n_chunks

    def zero_unused_slots(self, *buffers: torch.Tensor | None) -> None:
        """Zero the slots no chunk uses (varlen: at most n_seqs, all at the end) of per-slot buffers [n_slots, ...],
        in place and without a host sync, so that an op's saved per-slot tensors are a function of its inputs."""
        if not self.is_varlen:
            return
        tail = torch.arange(max(self.n_slots - self.n_seqs, 0), self.n_slots, device=self.table.device)
        unused = tail >= self.chunk_offsets[-1]
        for buffer in buffers:
            if buffer is not None:
                buffer[tail] = torch.where(unused.view(-1, *([1] * (buffer.dim() - 1))), 0, buffer[tail])

    def suffix_of_later_chunks(self, totals: torch.Tensor) -> torch.Tensor:
        """totals [n_slots, ...] per-chunk sums -> for each slot the sum over the LATER chunks of its sequence."""
        if not self.is_varlen:
            t = totals.view(self.batch, self.n_chunks, *totals.shape[1:])
            rc = t.flip(1).cumsum(1).flip(1)
            return (rc - t).reshape(totals.shape)
        t = torch.where(self.slot_used.view(-1, *([1] * (totals.dim() - 1))), totals, 0)
        rc = torch.cat([t.flip(0).cumsum(0).flip(0), torch.zeros_like(t[:1])], 0)
        seq_end = self.chunk_offsets.to(torch.int64)[self.slot_seq + 1]
        return rc[1:] - rc[seq_end]

    def per_slot(self, per_seq: torch.Tensor) -> torch.Tensor:
        """per_seq [N, ...] -> [n_slots, ...] (each slot gets its sequence's row)."""
        if not self.is_varlen:
            return per_seq.repeat_interleave(self.n_chunks, dim=0)
        return per_seq[self.slot_seq]


def sequential_block(widest: int, width: int, n_seq_heads: int, min_programs: int) -> int:
    """Column block of a sequential state kernel (one program per sequence, head and block, walking the chunks one
    after another): `widest`, halved while fewer than `min_programs` programs would run, never below 16."""
    block = widest
    while block > 16 and triton.cdiv(width, block) * n_seq_heads < min_programs:
        block //= 2
    return block


@triton.jit
def chunk_span(i_c, i_b, T, NT, table, IS_VARLEN: tl.constexpr, BT: tl.constexpr):
    """Token span [t0, t1) of chunk slot i_c (dense: chunk i_c of batch row i_b) and the slot index."""
    if IS_VARLEN:
        t0 = tl.load(table + 2 * i_c).to(tl.int64)
        t1 = tl.load(table + 2 * i_c + 1).to(tl.int64)
        slot = i_c.to(tl.int64)
    else:
        row0 = i_b.to(tl.int64) * T
        t0 = row0 + i_c * BT
        t1 = tl.minimum(t0 + BT, row0 + T)
        slot = i_b.to(tl.int64) * NT + i_c
    return t0, t1, slot


@triton.jit
def chunk_rows(i_c, i_bh, chunk_table, T, NT, H: tl.constexpr, BT: tl.constexpr, IS_VARLEN: tl.constexpr):
    """The chunk a program of grid (.., slots, B*H) owns: (head, token span t0..t1, chunk slot, chunk-local
    rows r [BT], their flat token indices tok [BT], and which of them are real tokens m [BT])."""
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, slot = chunk_span(i_c, i_b, T, NT, chunk_table, IS_VARLEN, BT)
    r = tl.arange(0, BT)
    tok = t0 + r
    return i_h, t0, t1, slot, r, tok, tok < t1


@triton.jit
def token_span(i_n, T, cu_seqlens, IS_VARLEN: tl.constexpr):
    """Token span [bos, eos) of sequence i_n in the flat token axis (dense rows hold T tokens each)."""
    if IS_VARLEN:
        bos = tl.load(cu_seqlens + i_n).to(tl.int64)
        eos = tl.load(cu_seqlens + i_n + 1).to(tl.int64)
    else:
        bos = i_n.to(tl.int64) * T
        eos = bos + T
    return bos, eos


@triton.jit
def seq_span(i_n, T, NT, cu_seqlens, chunk_offsets, IS_VARLEN: tl.constexpr):
    """Token span [bos, eos) of sequence i_n and the slot of its first chunk."""
    bos, eos = token_span(i_n, T, cu_seqlens, IS_VARLEN)
    if IS_VARLEN:
        slot0 = tl.load(chunk_offsets + i_n).to(tl.int64)
    else:
        slot0 = i_n.to(tl.int64) * NT
    return bos, eos, slot0


@triton.jit
def state_tile(init, i_nh, i_k, i_v, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
               HAS_INIT: tl.constexpr):
    """One program's [BK, BV] tile of a sequence's [K, V] state: (start value, fp32: init[i_nh] when HAS_INIT
    else zeros; its offsets and mask within a state; its key and value columns)."""
    offs_k = i_k * BK + tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    smask = (offs_k < K)[:, None] & (offs_v < V)[None, :]
    soff = offs_k[:, None] * V + offs_v[None, :]
    S = tl.zeros([BK, BV], tl.float32)
    if HAS_INIT:
        S += tl.load(init + i_nh.to(tl.int64) * K * V + soff, mask=smask, other=0.0)
    return S, soff, smask, offs_k, offs_v
