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
