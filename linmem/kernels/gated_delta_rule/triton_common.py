"""Shared Triton helpers of the delta-rule chunk kernels (Gated DeltaNet and Q-Delta).

Layout: activations are read as a flat token axis [B*T, H, D] (contiguous). A "chunk slot" is one
chunk of BT tokens of one sequence; its per-chunk tensors (states) are stored at that slot.
Dense batches: slot = b * NT + chunk. Varlen (B == 1): slots follow the sequences in order and a
device table gives each slot its token span, so no host synchronisation is needed.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def chunk_span(i_c, i_b, T, NT, chunk_table, IS_VARLEN: tl.constexpr, BT: tl.constexpr):
    """Token span [t0, t1) of chunk slot `i_c` (dense: chunk i_c of batch row i_b) and its slot index."""
    if IS_VARLEN:
        t0 = tl.load(chunk_table + 2 * i_c).to(tl.int64)
        t1 = tl.load(chunk_table + 2 * i_c + 1).to(tl.int64)
        slot = i_c
    else:
        row0 = i_b.to(tl.int64) * T
        t0 = row0 + i_c * BT
        t1 = tl.minimum(t0 + BT, row0 + T)
        slot = i_b * NT + i_c
    return t0, t1, slot


@triton.jit
def seq_span(i_n, T, NT, cu_seqlens, chunk_offsets, IS_VARLEN: tl.constexpr):
    """Token span [bos, eos) of sequence i_n and the slot of its first chunk."""
    if IS_VARLEN:
        bos = tl.load(cu_seqlens + i_n).to(tl.int64)
        eos = tl.load(cu_seqlens + i_n + 1).to(tl.int64)
        slot0 = tl.load(chunk_offsets + i_n).to(tl.int32)
    else:
        bos = i_n.to(tl.int64) * T
        eos = bos + T
        slot0 = i_n * NT
    return bos, eos, slot0


@triton.jit
def load_rows(ptr, tok, row_mask, i_h, H: tl.constexpr, D: tl.constexpr, offs_d):
    """Tile [R, BD] of a [*, H, D] tensor at tokens `tok`, head i_h, channels offs_d (zeros outside)."""
    p = ptr + (tok[:, None] * H + i_h) * D + offs_d[None, :]
    return tl.load(p, mask=row_mask[:, None] & (offs_d < D)[None, :], other=0.0)


@triton.jit
def store_rows(ptr, val, tok, row_mask, i_h, H: tl.constexpr, D: tl.constexpr, offs_d):
    p = ptr + (tok[:, None] * H + i_h) * D + offs_d[None, :]
    tl.store(p, val.to(ptr.dtype.element_ty), mask=row_mask[:, None] & (offs_d < D)[None, :])


@triton.jit
def load_gate(ptr, tok, row_mask, i_h, H: tl.constexpr):
    """Per-token, per-head scalar [R] as fp32 (zeros outside)."""
    return tl.load(ptr + tok * H + i_h, mask=row_mask, other=0.0).to(tl.float32)
