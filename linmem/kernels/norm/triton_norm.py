"""Triton RMSNorm and gated RMSNorm, forward and backward, over the last dimension of any [..., D] input.

    n = x * rstd,  rstd = 1 / sqrt(mean(x^2) + eps),  y = n * w  (* silu(gate) for the gated norm),
all in float32 from inputs of any float dtype, y rounded once to x's dtype: the PyTorch path's numerics (op.py) in one
read of x (and gate) and one write of y. On the H200 the eager 340M CCQ-GDN training step spent about 40 of its
162 ms of kernels in the PyTorch path's norms: the float32 copies of x and back, F.rms_norm and its backward, whose
weight gradient alone took 7.4 ms (h200-2026-12-04b-wide-keys/6-cuda-graph-train/prof-train).
Each program normalises whole rows (D up to op.MAX_DIM), TILE_ELEMENTS of them at a time in 8 warps (16 fp32
values a thread per [rows, D] tensor: the backward keeps about six live); the backward recomputes n from x and the
saved rstd, and writes per-program partial sums of dweight that PyTorch adds.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..library import opaque_op

TILE_ELEMENTS = 4096
WARPS = 8


def _tile(D: int) -> tuple[int, int]:
    """(rows per program, the row's padded width) for rows of D channels."""
    width = triton.next_power_of_2(D)
    return max(1, TILE_ELEMENTS // width), width


@triton.jit
def _rows(x, gate, w, r0, R, D, BR: tl.constexpr, BD: tl.constexpr, HAS_GATE: tl.constexpr):
    """(rows, row mask, element offsets, element mask, x [BR, BD] fp32, gate fp32 (x without a gate), w [BD] fp32)
    of the tile of rows r0 .. r0 + BR."""
    rows = r0 + tl.arange(0, BR)
    cols = tl.arange(0, BD)
    rmask = rows < R
    cmask = cols < D
    mask = rmask[:, None] & cmask[None, :]
    offs = rows.to(tl.int64)[:, None] * D + cols[None, :]
    xt = tl.load(x + offs, mask=mask, other=0.0).to(tl.float32)
    gt = xt
    if HAS_GATE:
        gt = tl.load(gate + offs, mask=mask, other=0.0).to(tl.float32)
    wt = tl.load(w + cols, mask=cmask, other=0.0).to(tl.float32)
    return rows, rmask, offs, mask, xt, gt, wt


@triton.jit
def rms_norm_fwd_kernel(x, gate, w, y, rstd_out, R, D, eps, BR: tl.constexpr, BD: tl.constexpr,
                        HAS_GATE: tl.constexpr):
    """Grid (cdiv(R, BR),). y = x rstd w (* silu(gate)); rstd [R] fp32 kept for the backward."""
    rows, rmask, offs, mask, xt, gt, wt = _rows(x, gate, w, tl.program_id(0) * BR, R, D, BR, BD, HAS_GATE)
    rstd = 1.0 / tl.sqrt(tl.sum(xt * xt, 1) / D + eps)
    yt = xt * rstd[:, None] * wt[None, :]
    if HAS_GATE:
        yt = yt * gt * tl.sigmoid(gt)
    tl.store(y + offs, yt.to(y.dtype.element_ty), mask=mask)
    tl.store(rstd_out + rows, rstd, mask=rmask)


@triton.jit
def rms_norm_bwd_kernel(x, gate, w, rstd_in, dy, dx, dgate, dw_part, R, D, BR: tl.constexpr, BD: tl.constexpr,
                        HAS_GATE: tl.constexpr, HAS_DW: tl.constexpr):
    """Grid (cdiv(R, BR),). dx = rstd (dn - n mean(dn n)) with dn = dy' w, dy' = dy (* silu(gate));
    dgate = dy n w silu'(gate); with HAS_DW, dw_part[program] = sum over the program's rows of dy' n."""
    rows, rmask, offs, mask, xt, gt, wt = _rows(x, gate, w, tl.program_id(0) * BR, R, D, BR, BD, HAS_GATE)
    rstd = tl.load(rstd_in + rows, mask=rmask, other=0.0)
    dyt = tl.load(dy + offs, mask=mask, other=0.0).to(tl.float32)
    n = xt * rstd[:, None]
    if HAS_GATE:
        sig = tl.sigmoid(gt)
        dgt = dyt * n * wt[None, :] * sig * (1.0 + gt * (1.0 - sig))
        tl.store(dgate + offs, dgt.to(dgate.dtype.element_ty), mask=mask)
        dyt = dyt * gt * sig
    if HAS_DW:
        cols = tl.arange(0, BD)
        tl.store(dw_part + tl.program_id(0).to(tl.int64) * D + cols, tl.sum(dyt * n, 0), mask=cols < D)
    dn = dyt * wt[None, :]
    dxt = rstd[:, None] * (dn - n * (tl.sum(dn * n, 1) / D)[:, None])
    tl.store(dx + offs, dxt.to(dx.dtype.element_ty), mask=mask)


@opaque_op("rms_norm_fwd")
def _forward_op(x2: torch.Tensor, g2: torch.Tensor | None, weight: torch.Tensor,
                eps: float) -> list[torch.Tensor | None]:
    """x2, g2 [R, D] -> [y [R, D] in x's dtype, rstd [R] fp32]."""
    R, D = x2.shape
    y = torch.empty_like(x2)
    rstd = torch.empty(R, device=x2.device, dtype=torch.float32)
    br, bd = _tile(D)
    rms_norm_fwd_kernel[(triton.cdiv(R, br),)](x2, g2, weight, y, rstd, R, D, eps, BR=br, BD=bd,
                                               HAS_GATE=g2 is not None, num_warps=WARPS)
    return [y, rstd]


@opaque_op("rms_norm_bwd")
def _backward_op(x2: torch.Tensor, g2: torch.Tensor | None, weight: torch.Tensor, rstd: torch.Tensor,
                 dy2: torch.Tensor, has_dw: bool) -> list[torch.Tensor | None]:
    """-> [dx [R, D], dgate [R, D] or None, dweight [D] (weight's dtype) or None]."""
    R, D = x2.shape
    dx = torch.empty_like(x2)
    dgate = torch.empty_like(g2) if g2 is not None else None
    br, bd = _tile(D)
    programs = triton.cdiv(R, br)
    dw_part = torch.empty(programs, D, device=x2.device, dtype=torch.float32) if has_dw else None
    rms_norm_bwd_kernel[(programs,)](x2, g2, weight, rstd, dy2, dx, dgate, dw_part, R, D, BR=br, BD=bd,
                                     HAS_GATE=g2 is not None, HAS_DW=has_dw, num_warps=WARPS)
    return [dx, dgate, dw_part.sum(0).to(weight.dtype) if has_dw else None]


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, gate: torch.Tensor | None, eps: float) -> torch.Tensor:
        D = x.shape[-1]
        x2 = x.reshape(-1, D)  # contiguous() was done by the caller
        g2 = gate.reshape(-1, D) if gate is not None else None
        y, rstd = _forward_op(x2, g2, weight, eps)
        ctx.save_for_backward(x2, g2, weight, rstd)
        ctx.shape = x.shape
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, g2, weight, rstd = ctx.saved_tensors
        dx, dgate, dweight = _backward_op(x2, g2, weight, rstd, dy.reshape(x2.shape).contiguous(),
                                          ctx.needs_input_grad[1])
        return dx.view(ctx.shape), dweight, dgate.view(ctx.shape) if dgate is not None else None, None


def triton_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float,
                    gate: torch.Tensor | None = None) -> torch.Tensor:
    """The op's Triton path (op.rms_norm validates): x [..., D], weight [D], gate like x or None."""
    return RMSNormFunction.apply(x.contiguous(), weight.contiguous(),
                                 gate.contiguous() if gate is not None else None, eps)
