"""Triton depthwise causal short convolution, forward and backward, dense or varlen, in the [B, T, D] layout.

    y_t = act(pre_t),  pre_t = sum_{j<W} weight[:, j] x_{t-W+1+j} + bias,  act SiLU or none,
inputs before a sequence's start taken from initial_state [N, D, W-1] (zeros without). The PyTorch path
(op.py) transposes to [B, D, T], concatenates the history and runs F.conv1d: on the H200 the 72 convolutions
of a 340M GDN training step took about 30 ms that way (conv, its backward, the concatenations; profile-h200.json),
plus the strided copies of the transposes. Here each program reads a [BR, BD] tile and its W - 1 earlier rows
in place. The backward recomputes pre (no activation saved), writes dpre = dy act'(pre) in fp32, then
dx_s = sum_j weight[:, j] dpre_{s+W-1-j} (same sequence only) and per-tile partial sums of dweight and dbias.
With FUSED_BACKWARD one kernel does the backward instead: it recomputes dpre in registers for its rows and the
W - 1 rows after them (each shifted tile from its own taps, hits in L1/L2), so the fp32 dpre is neither written nor
read back. The final state (the last W - 1 inputs) is gathered by the caller with differentiable PyTorch indexing.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ..backend import env_int
from ..library import opaque_op
from ..offsets_memo import remembered


class ConvLaunch(NamedTuple):
    """A kernel's tile [rows, channels] and warps."""
    rows: int
    channels: int
    warps: int


#: The forward kernel (and the backward's dpre pass, the same kernel), then the dx / dweight kernel (or the fused
#: backward kernel).
FWD_LAUNCH = ConvLaunch(32, 128, 4)
BWD_LAUNCH = ConvLaunch(32, 128, 4)

#: One backward kernel without the fp32 dpre buffer (not where initial_state needs a gradient: dh0 reads dpre).
#: Off until timed on the GPU against the two-kernel backward (benchmarks/conv_launch.py, its "fused" rows) and run
#: in the GPU tests; CPU tests run it under the interpreter. LINMEM_CONV_FUSED_BWD=1 or 0 overrides it at each call.
FUSED_BACKWARD = False


@triton.jit
def _row_spans(rows, rmask, seq_idx, cu, T, IS_VARLEN: tl.constexpr):
    """(sequence n, its first row bos, its end eos) of each flat row (dense: row // T)."""
    if IS_VARLEN:
        n = tl.load(seq_idx + rows, mask=rmask, other=0).to(tl.int64)
        bos = tl.load(cu + n, mask=rmask, other=0).to(tl.int64)
        eos = tl.load(cu + n + 1, mask=rmask, other=0).to(tl.int64)
    else:
        n = rows // T
        bos = n * T
        eos = bos + T
    return n, bos, eos


@triton.jit
def _tap(x, h0, rows, rmask, n, bos, cols, cmask, D, j, W: tl.constexpr, HAS_H0: tl.constexpr):
    """[BR, BD] fp32: the input at row - (W - 1) + j, from initial_state before the sequence start."""
    src = rows - (W - 1) + j
    inside = src >= bos
    value = tl.load(x + tl.maximum(src, 0)[:, None] * D + cols[None, :],
                    mask=(rmask & inside)[:, None] & cmask[None, :], other=0.0).to(tl.float32)
    if HAS_H0:
        past = tl.maximum((W - 1) + (src - bos), 0)  # in [0, W - 2] where not inside
        value += tl.load(h0 + (n[:, None] * D + cols[None, :]) * (W - 1) + past[:, None],
                         mask=(rmask & ~inside)[:, None] & cmask[None, :], other=0.0).to(tl.float32)
    return value


@triton.jit
def _pre_activation(x, w, bias, h0, rows, rmask, n, bos, cols, cmask, D, W: tl.constexpr, HAS_BIAS: tl.constexpr,
                    HAS_H0: tl.constexpr, BR: tl.constexpr, BD: tl.constexpr):
    pre = tl.zeros([BR, BD], tl.float32)
    for j in tl.static_range(W):
        wj = tl.load(w + cols * W + j, mask=cmask, other=0.0).to(tl.float32)
        pre += _tap(x, h0, rows, rmask, n, bos, cols, cmask, D, j, W, HAS_H0) * wj[None, :]
    if HAS_BIAS:
        pre += tl.load(bias + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    return pre


@triton.jit
def _silu_backward(dy, pre):
    """dy * SiLU'(pre), fp32: the gradient at the pre-activation."""
    s = tl.sigmoid(pre)
    return dy * s * (1.0 + pre * (1.0 - s))


@triton.jit
def causal_conv1d_fwd_kernel(x, w, bias, h0, seq_idx, cu, dy, out, R, T, D, W: tl.constexpr, BR: tl.constexpr,
                             BD: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, SILU: tl.constexpr,
                             GRAD: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Grid (cdiv(R, BR), cdiv(D, BD)); R = B*T flat rows of x [R, D]. out [R, D] = act(pre) in out's dtype, or
    with GRAD the backward's first step: dpre = dy * SiLU'(pre) (fp32), pre recomputed."""
    rows = (tl.program_id(0) * BR + tl.arange(0, BR)).to(tl.int64)
    cols = tl.program_id(1) * BD + tl.arange(0, BD)
    rmask, cmask = rows < R, cols < D
    n, bos, _ = _row_spans(rows, rmask, seq_idx, cu, T, IS_VARLEN)
    pre = _pre_activation(x, w, bias, h0, rows, rmask, n, bos, cols, cmask, D, W, HAS_BIAS, HAS_H0, BR, BD)
    tile = rows[:, None] * D + cols[None, :]
    both = rmask[:, None] & cmask[None, :]
    if GRAD:
        result = _silu_backward(tl.load(dy + tile, mask=both, other=0.0).to(tl.float32), pre)
    elif SILU:
        result = pre * tl.sigmoid(pre)
    else:
        result = pre
    tl.store(out + tile, result.to(out.dtype.element_ty), mask=both)


@triton.jit
def causal_conv1d_bwd_kernel(x, w, h0, seq_idx, cu, dpre, dx, dw_part, db_part, R, T, D, W: tl.constexpr,
                             BR: tl.constexpr, BD: tl.constexpr, HAS_H0: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Grid as the forward. dx [R, D] (dx's dtype); dw_part [tiles, W, D] and db_part [tiles, D] (fp32) are this
    row tile's sums of dpre * tap_j and of dpre."""
    i_r = tl.program_id(0).to(tl.int64)
    rows = (i_r * BR + tl.arange(0, BR)).to(tl.int64)
    cols = tl.program_id(1) * BD + tl.arange(0, BD)
    rmask, cmask = rows < R, cols < D
    n, bos, eos = _row_spans(rows, rmask, seq_idx, cu, T, IS_VARLEN)
    here = tl.load(dpre + rows[:, None] * D + cols[None, :], mask=rmask[:, None] & cmask[None, :], other=0.0)
    grad = tl.zeros([BR, BD], tl.float32)
    for j in tl.static_range(W):
        wj = tl.load(w + cols * W + j, mask=cmask, other=0.0).to(tl.float32)
        later = rows + (W - 1) - j  # the output row that reads this row through tap j
        ok = rmask & (later < eos)
        grad += wj[None, :] * tl.load(dpre + later[:, None] * D + cols[None, :], mask=ok[:, None] & cmask[None, :],
                                      other=0.0)
        tap = _tap(x, h0, rows, rmask, n, bos, cols, cmask, D, j, W, HAS_H0)
        tl.store(dw_part + (i_r * W + j) * D + cols, tl.sum(here * tap, 0), mask=cmask)
    tl.store(db_part + i_r * D + cols, tl.sum(here, 0), mask=cmask)
    tl.store(dx + rows[:, None] * D + cols[None, :], grad.to(dx.dtype.element_ty), mask=rmask[:, None] & cmask[None, :])


@triton.jit
def _dpre(x, w, bias, h0, dy, rows, ok, n, bos, cols, cmask, D, W: tl.constexpr, HAS_BIAS: tl.constexpr,
          HAS_H0: tl.constexpr, SILU: tl.constexpr, BR: tl.constexpr, BD: tl.constexpr):
    """[BR, BD] fp32 dpre = dy * act'(pre) at `rows` (all of sequence n), 0 where not ok."""
    tile = rows[:, None] * D + cols[None, :]
    both = ok[:, None] & cmask[None, :]
    grad = tl.load(dy + tile, mask=both, other=0.0).to(tl.float32)
    if SILU:
        grad = _silu_backward(grad, _pre_activation(x, w, bias, h0, rows, ok, n, bos, cols, cmask, D, W, HAS_BIAS,
                                                    HAS_H0, BR, BD))
    return grad


@triton.jit
def causal_conv1d_bwd_fused_kernel(x, w, bias, h0, seq_idx, cu, dy, dx, dw_part, db_part, R, T, D,
                                   W: tl.constexpr, BR: tl.constexpr, BD: tl.constexpr, HAS_BIAS: tl.constexpr,
                                   HAS_H0: tl.constexpr, SILU: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Grid as the forward. The backward in one pass: dx [R, D] (dx's dtype) = sum_j weight[:, j] dpre_{s+W-1-j}
    over the rows of the same sequence, each shifted dpre tile recomputed from x and dy; dw_part [tiles, W, D] and
    db_part [tiles, D] (fp32) as causal_conv1d_bwd_kernel's."""
    i_r = tl.program_id(0).to(tl.int64)
    rows = (i_r * BR + tl.arange(0, BR)).to(tl.int64)
    cols = tl.program_id(1) * BD + tl.arange(0, BD)
    rmask, cmask = rows < R, cols < D
    n, bos, eos = _row_spans(rows, rmask, seq_idx, cu, T, IS_VARLEN)
    here = _dpre(x, w, bias, h0, dy, rows, rmask, n, bos, cols, cmask, D, W, HAS_BIAS, HAS_H0, SILU, BR, BD)
    w_last = tl.load(w + cols * W + (W - 1), mask=cmask, other=0.0).to(tl.float32)
    grad = w_last[None, :] * here
    for j in tl.static_range(W):
        if j < W - 1:
            later = rows + (W - 1) - j  # the output row that reads this row through tap j
            ok = rmask & (later < eos)
            wj = tl.load(w + cols * W + j, mask=cmask, other=0.0).to(tl.float32)
            grad += wj[None, :] * _dpre(x, w, bias, h0, dy, later, ok, n, bos, cols, cmask, D, W, HAS_BIAS, HAS_H0,
                                        SILU, BR, BD)
        tap = _tap(x, h0, rows, rmask, n, bos, cols, cmask, D, j, W, HAS_H0)
        tl.store(dw_part + (i_r * W + j) * D + cols, tl.sum(here * tap, 0), mask=cmask)
    tl.store(db_part + i_r * D + cols, tl.sum(here, 0), mask=cmask)
    tl.store(dx + rows[:, None] * D + cols[None, :], grad.to(dx.dtype.element_ty), mask=rmask[:, None] & cmask[None, :])


def _weight_grads(dw_part: torch.Tensor, db_part: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(dweight [D, W], dbias [D] or None) from the row tiles' partial sums, in the parameters' dtypes."""
    dbias = db_part.sum(0).to(bias.dtype) if bias is not None else None
    return dw_part.sum(0).t().to(weight.dtype), dbias


def _grid(R: int, D: int, launch: ConvLaunch) -> tuple[int, int]:
    return triton.cdiv(R, launch.rows), triton.cdiv(D, launch.channels)


def _sequence_bounds(x: torch.Tensor, cu_seqlens: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(bos [N], eos [N]) int64: each sequence's first and end flat row of x [B, T, D]."""
    B, T, _ = x.shape
    if cu_seqlens is None:
        bos = torch.arange(B, device=x.device) * T
        return bos, bos + T
    cu = cu_seqlens.to(device=x.device, dtype=torch.int64)
    return cu[:-1], cu[1:]


def _row_sequences(x: torch.Tensor, cu_seqlens: torch.Tensor | None, seq_idx: torch.Tensor | None = None):
    """(cu [N + 1] int64, seq_idx [T] int32: each row's sequence) for the varlen kernels (no host sync), or
    (None, None) for a dense batch. A given seq_idx (the forward's, in the backward) is taken as it is; otherwise
    it is built once per cu_seqlens tensor (offsets_memo)."""
    if cu_seqlens is None:
        return None, None
    cu = cu_seqlens.to(device=x.device, dtype=torch.int64)
    if seq_idx is None:
        seq_idx = remembered(cu_seqlens, ("row sequences", x.shape[1], x.device), lambda: torch.searchsorted(
            cu[1:], torch.arange(x.shape[1], device=x.device), right=True).to(torch.int32))
    return cu, seq_idx


@opaque_op("causal_conv1d_fwd")
def _forward_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, initial_state: torch.Tensor | None,
                silu: bool, cu_seqlens: torch.Tensor | None) -> list[torch.Tensor | None]:
    """-> [y, seq_idx (each row's sequence, varlen; None for a dense batch), for the backward]."""
    B, T, D = x.shape
    cu, seq_idx = _row_sequences(x, cu_seqlens)
    y = torch.empty_like(x)
    fwd = FWD_LAUNCH
    causal_conv1d_fwd_kernel[_grid(B * T, D, fwd)](
        x, weight, bias, initial_state, seq_idx, cu, None, y, B * T, T, D, W=weight.shape[1], BR=fwd.rows,
        BD=fwd.channels, HAS_BIAS=bias is not None, HAS_H0=initial_state is not None, SILU=silu, GRAD=False,
        IS_VARLEN=cu is not None, num_warps=fwd.warps)
    return [y, seq_idx]


@opaque_op("causal_conv1d_bwd")
def _backward_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 initial_state: torch.Tensor | None, dy: torch.Tensor, silu: bool, needs_dh0: bool,
                 cu_seqlens: torch.Tensor | None, seq_idx: torch.Tensor | None) -> list[torch.Tensor | None]:
    """-> [dx, dweight, dbias, dh0] (dbias None without a bias, dh0 None unless needs_dh0)."""
    B, T, D = x.shape
    W = weight.shape[1]
    R = B * T
    cu, seq_idx = _row_sequences(x, cu_seqlens, seq_idx)
    flags = dict(W=W, HAS_H0=initial_state is not None, IS_VARLEN=cu is not None)
    bwd = BWD_LAUNCH
    grid = _grid(R, D, bwd)
    dx = torch.empty_like(x)
    dw_part = torch.empty(grid[0], W, D, device=x.device, dtype=torch.float32)
    db_part = torch.empty(grid[0], D, device=x.device, dtype=torch.float32)
    if not needs_dh0 and env_int("LINMEM_CONV_FUSED_BWD", int(FUSED_BACKWARD)):
        causal_conv1d_bwd_fused_kernel[grid](
            x, weight, bias, initial_state, seq_idx, cu, dy, dx, dw_part, db_part, R, T, D, BR=bwd.rows,
            BD=bwd.channels, HAS_BIAS=bias is not None, SILU=silu, num_warps=bwd.warps, **flags)
        return [dx, *_weight_grads(dw_part, db_part, weight, bias), None]
    if silu:
        fwd = FWD_LAUNCH
        dpre = torch.empty(B, T, D, device=x.device, dtype=torch.float32)
        causal_conv1d_fwd_kernel[_grid(R, D, fwd)](
            x, weight, bias, initial_state, seq_idx, cu, dy, dpre, R, T, D, BR=fwd.rows, BD=fwd.channels,
            HAS_BIAS=bias is not None, SILU=True, GRAD=True, num_warps=fwd.warps, **flags)
    else:
        dpre = dy.float()
    causal_conv1d_bwd_kernel[grid](x, weight, initial_state, seq_idx, cu, dpre, dx, dw_part, db_part, R, T, D,
                                   BR=bwd.rows, BD=bwd.channels, num_warps=bwd.warps, **flags)
    dweight, dbias = _weight_grads(dw_part, db_part, weight, bias)
    dh0 = None
    if needs_dh0:
        # history slot i (input bos - (W-1) + i) reaches output bos + i - j through tap j <= i
        bos, eos = _sequence_bounds(x, cu_seqlens)
        flat = dpre.view(R, D)
        dh0 = torch.zeros(initial_state.shape, device=x.device, dtype=torch.float32)
        for i in range(W - 1):
            for j in range(i + 1):
                out_row = bos + i - j
                reach = (out_row < eos).unsqueeze(-1)
                reached = torch.where(reach, flat[out_row.clamp(max=max(R - 1, 0))], 0.0)
                dh0[:, :, i] += reached * weight[:, j].float()
        dh0 = dh0.to(initial_state.dtype)
    return [dx, dweight, dbias, dh0]


class CausalConv1dFunction(torch.autograd.Function):
    """y = act(conv(x)); differentiable in x, weight, bias and initial_state."""

    @staticmethod
    def forward(ctx, x, weight, bias, initial_state, silu, cu_seqlens):
        y, seq_idx = _forward_op(x, weight, bias, initial_state, silu, cu_seqlens)
        ctx.save_for_backward(x, weight, bias, initial_state, cu_seqlens, seq_idx)
        ctx.silu = silu
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias, initial_state, cu_seqlens, seq_idx = ctx.saved_tensors
        needs_dh0 = initial_state is not None and ctx.needs_input_grad[3]
        dx, dweight, dbias, dh0 = _backward_op(x, weight, bias, initial_state, dy.contiguous(), ctx.silu, needs_dh0,
                                               cu_seqlens, seq_idx)
        return dx, dweight, dbias, dh0, None, None


def final_conv_state(x: torch.Tensor, initial_state: torch.Tensor | None, W: int,
                     cu_seqlens: torch.Tensor | None) -> torch.Tensor:
    """The last W - 1 inputs of each sequence [N, D, W - 1] (x's dtype), from initial_state where a sequence is
    shorter; differentiable PyTorch indexing."""
    B, T, D = x.shape
    bos, eos = _sequence_bounds(x, cu_seqlens)
    N = bos.shape[0]
    if W == 1:
        return x.new_zeros(N, D, 0)
    flat = x.reshape(B * T, D)
    position = eos.unsqueeze(1) - (W - 1) + torch.arange(W - 1, device=x.device)  # [N, W - 1]
    inside = (position >= bos.unsqueeze(1)).unsqueeze(1)  # [N, 1, W - 1]
    taken = flat[position.clamp(min=0, max=max(B * T - 1, 0))].transpose(1, 2)  # [N, D, W - 1]
    if initial_state is None:
        past = taken.new_zeros(N, D, W - 1)
    else:
        slot = (W - 1 + position - bos.unsqueeze(1)).clamp(min=0, max=W - 2)  # [N, W - 1]
        past = torch.gather(initial_state.to(x.dtype), 2, slot.unsqueeze(1).expand(N, D, W - 1))
    return torch.where(inside, taken, past)


def triton_causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, activation: str | None = None,
    initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`causal_conv1d` on Triton (inputs validated by the op): y [B, T, D] in x's dtype, final state or None."""
    x = x.contiguous()
    W = weight.shape[1]
    state = initial_state.contiguous() if initial_state is not None else None
    y = CausalConv1dFunction.apply(x, weight.contiguous(), bias.contiguous() if bias is not None else None, state,
                                   activation == "silu", cu_seqlens)
    return y, (final_conv_state(x, initial_state, W, cu_seqlens) if output_final_state else None)
