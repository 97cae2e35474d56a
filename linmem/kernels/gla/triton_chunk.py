"""Triton chunkwise GLA (per-channel decay): forward and backward as one autograd.Function.

`triton_gla` has the op signature of `naive_gla` (see linmem/kernels/gla/naive.py for the semantics):
    S_t = diag(exp(gk_t)) S_{t-1} + k_t v_t^T,   o_t = scale * S_t^T q_t.
Kernels are in triton_chunk_kernels.py; the batch layout (dense, or varlen through device tables with
no host synchronisation) in ../triton_layout.py. Fixed tile table, no autotuning.
"""

from __future__ import annotations

import os

import torch
import triton

from .triton_chunk_kernels import (
    gla_bwd_dA_dv_kernel,
    gla_bwd_dqk_kernel,
    gla_bwd_inter_kernel,
    gla_cumsum_kernel,
    gla_dg_finish_kernel,
    gla_intra_A_kernel,
    gla_output_kernel,
    gla_state_bwd_kernel,
    gla_state_fwd_kernel,
)
from ..backend import TileLaunch, env_int, env_launch
from ..library import opaque_op
from ..triton_layout import ChunkLayout

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEFAULT_CHUNK_SIZE = 64
SUB_CHUNK = 16  # secondary chunk (rows of the exact-exponent diagonal blocks); tensor-core minimum
DIAGONAL_CHANNELS = 16  # key channels per [BC, BC, *] step of the forward's exact diagonal blocks
#: The diagonal sub-blocks split their exponent e^{b_t - b_i} at the sub-chunk's first row, as products on fp32
#: operands, when every |b_t - b_first| of the sub-chunk is at most this (both factors then lie in [e^-30, e^30], far
#: inside fp32's range); sub-chunks with stronger decay take the exact per-element exponent (triton_chunk_kernels).
SPLIT_EXPONENT_MAX = 30.0

#: Warps of the per-sub-chunk kernels: gla_intra_A_kernel (LINMEM_GLA_A_WARPS overrides it at each call) and
#: gla_bwd_dqk_kernel (LINMEM_GLA_DQK_WARPS). Both at 4 warps were faster than both at 2 or at 8 on the
#: H200 (GLA fwd+bwd 7.17 ms against 9.11 and 8.54 ms at B16 T2K); the A kernel with its [16, 16, 16] diagonal
#: products then took 2.52 ms of forward at 8 warps, 2.59 at 4 (benchmarks/results/h200-2026-12-03-gla).
A_WARPS = 8
DQK_WARPS = 4


def _a_warps() -> int:
    return env_int("LINMEM_GLA_A_WARPS", A_WARPS)


def _dqk_warps() -> int:
    return env_int("LINMEM_GLA_DQK_WARPS", DQK_WARPS)


def _pow2(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


#: Launches of the chunk-parallel output and backward kernels, from a sweep of each kernel relaunched alone on the
#: H200 (benchmarks/kernel_settings.py, B8 T4K and B2 T16K H16 d128 bf16; h200-2026-12-03b-qdelta-gla): output
#: 0.373 -> 0.260 ms, dA/dv 0.583 -> 0.385, inter 0.769 -> 0.600, all bitwise repeatable. Until then every GLA
#: kernel ran 64 x 64 (state kernels 32 x 32) tiles at 8 warps and Triton's 3 stages.
CHUNK_LAUNCH = {"OUTPUT": TileLaunch(64, 128, 4, 2), "DA_DV": TileLaunch(128, 128, 4, 2),
                "INTER": TileLaunch(32, 32, 4, 3)}

#: Launches of the sequential state kernels (forward with the input dtype's or fp32 states, backward): with many
#: sequences x heads (STATE_MANY_PROGRAMS or more, e.g. B8 H16), and with fewer (B2 T16K H16), where wider tiles
#: leave too few programs. State forward 0.473 -> 0.202 ms (B8 T4K) and 0.505 -> 0.329 (B2 T16K); backward
#: 0.715 -> 0.291 and 0.745 -> 0.431 (same sweep). STATE_FP32 (the backward's fp32 states) swept alone at B8 T4K:
#: 0.660 ms at the forward's 64 x 128 tile, 0.294 at 32 x 128 with 2 warps and 2 stages (h200-2026-12-04-state-qdelta);
#: with fewer programs (B2 T16K) the forward's setting was already the fastest.
STATE_LAUNCH = {"STATE_FWD": (TileLaunch(64, 128, 8, 3), TileLaunch(32, 64, 8, 3)),
                "STATE_FP32": (TileLaunch(32, 128, 2, 2), TileLaunch(32, 64, 8, 3)),
                "STATE_BWD": (TileLaunch(32, 128, 2, 2), TileLaunch(32, 128, 4, 3))}
STATE_MANY_PROGRAMS = 128

#: Key dims above WIDE_KEY with 16-bit inputs (the fla-1.3B GLA layer, B8 T4K H4 d_k 256 d_v 512) take these instead
#: of the tables above. Swept per kernel on the H200 (h200-2026-12-04-state-qdelta/3-fla-shapes): state forward
#: 0.541 -> 0.296 ms, fp32 states (one 128-wide value slice) 0.234 -> 0.180, dA/dv 0.219 -> 0.166, outputs bitwise
#: equal, repeatable; in the op GLA fwd+bwd 6.72 -> 6.05 ms, 5.68 with SLICE_SUMS_IN_KERNELS (launch_ab.py,
#: h200-2026-12-04b-wide-keys). fp32 inputs keep the tables above (these tiles were not swept in fp32).
WIDE_KEY_LAUNCH = {"STATE_FWD": TileLaunch(128, 128, 4, 2), "STATE_FP32": TileLaunch(32, 128, 4, 2),
                   "DA_DV": TileLaunch(32, 128, 4, 3)}
WIDE_KEY = 128


def _launch(name: str, k_dim: int, v_dim: int, default: TileLaunch) -> dict:
    """BK, BV, num_warps and num_stages of one kernel's launch: `default` (blocks capped at the head dims) unless
    LINMEM_GLA_<name>_{BK,BV,WARPS,STAGES} say otherwise (for timing other settings, benchmarks/kernel_settings.py;
    names: STATE_FWD, STATE_FP32 (the backward's fp32 states), STATE_BWD, OUTPUT, DA_DV, INTER)."""
    return env_launch(f"LINMEM_GLA_{name}_", default, _pow2(k_dim), _pow2(v_dim)).kwargs()


def _wide_key_or(name: str, k_dim: int, dtype: torch.dtype, default: TileLaunch) -> TileLaunch:
    """WIDE_KEY_LAUNCH's entry for `name` at key dims above WIDE_KEY with 16-bit inputs, else `default`."""
    wide = k_dim > WIDE_KEY and dtype != torch.float32 and name in WIDE_KEY_LAUNCH
    return WIDE_KEY_LAUNCH[name] if wide else default


def _chunk_launch(name: str, k_dim: int, v_dim: int, dtype: torch.dtype) -> dict:
    """The launch of a chunk-parallel kernel (CHUNK_LAUNCH, or WIDE_KEY_LAUNCH for wide keys), `dtype` the inputs'."""
    return _launch(name, k_dim, v_dim, _wide_key_or(name, k_dim, dtype, CHUNK_LAUNCH[name]))


def _state_launch(name: str, k_dim: int, v_dim: int, n_seq_heads: int, dtype: torch.dtype) -> dict:
    """The launch of a sequential state kernel (grid: key blocks x value blocks x sequences * heads); `dtype` is the
    inputs' (not the states')."""
    many, few = STATE_LAUNCH[name]
    return _launch(name, k_dim, v_dim,
                   _wide_key_or(name, k_dim, dtype, many if n_seq_heads >= STATE_MANY_PROGRAMS else few))


#: Product precision of the backward's fp32-operand dots for 16-bit inputs ("tf32"); "ieee" trades speed for
#: exact fp32 products (diagnostics of bf16 gradient error).
BACKWARD_DOT_PRECISION = "tf32"


def _dot_precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


def _backward_precision(dtype: torch.dtype) -> str:
    """Precision of the backward's fp32-operand products: exact for fp32 inputs, else BACKWARD_DOT_PRECISION."""
    return "ieee" if dtype == torch.float32 else BACKWARD_DOT_PRECISION


def _diagonal_precision(dtype: torch.dtype) -> str:
    """Precision of the backward's split diagonal-block products (gla_bwd_dqk_kernel). With tf32 (one product of
    rounded operands), bf16 dgk missed its 1e-2 rrms on the H200 (1.1-1.5e-2); with "ieee" (FMA, no tensor
    cores) it passed, but the ieee product cost as much as the exact form. tf32x3 (three tensor-core products)
    keeps about fp32 accuracy at little cost; fp32 inputs take ieee, as every product of theirs."""
    return "ieee" if dtype == torch.float32 else "tf32x3"


def _tiles(k_dim: int, v_dim: int) -> tuple[int, int]:
    """(BK, BV) of the chunk-parallel kernels."""
    return min(64, _pow2(k_dim)), min(64, _pow2(v_dim))


def _grid_args(layout: ChunkLayout) -> tuple:
    return layout.table, layout.seq_len, layout.n_chunks


def _seq_args(layout: ChunkLayout) -> tuple:
    return layout.cu_seqlens, layout.chunk_offsets, layout.seq_len, layout.n_chunks


def _states_forward(k, v, gcs, h0, layout: ChunkLayout, store_final: bool, h_dtype: torch.dtype,
                    value_stride: int | None = None):
    """h [n_slots, H, K, V] (state at each chunk start, h_dtype) and the final state (fp32 or None). v is contiguous,
    or with `value_stride` a value slice [..., lo:hi] of a contiguous tensor that many channels wide.

    fp32 h (the backward's) is also built from fp32 operands: dq, dk and dgk are sensitive to its rounding.
    """
    B, T, H, K = k.shape
    V = v.shape[-1]
    h = torch.empty(layout.n_slots, H, K, V, device=k.device, dtype=h_dtype)
    ht = torch.empty((layout.n_seqs, H, K, V), device=k.device, dtype=torch.float32) \
        if store_final else None
    launch = _state_launch("STATE_FP32" if h_dtype == torch.float32 else "STATE_FWD", K, V, layout.n_seqs * H,
                           k.dtype)
    gla_state_fwd_kernel[(triton.cdiv(K, launch["BK"]), triton.cdiv(V, launch["BV"]), layout.n_seqs * H)](
        k, v, gcs, h0, h, ht, *_seq_args(layout),
        H=H, K=K, V=V, VS=value_stride or V, BT=layout.chunk_size, HAS_H0=h0 is not None, STORE_HT=store_final,
        IS_VARLEN=layout.is_varlen, MM_FP32=h_dtype == torch.float32,
        DOT_PREC=_backward_precision(k.dtype) if h_dtype == torch.float32 else _dot_precision(k.dtype), **launch,
    )
    return h, ht


def gla_forward(q, k, v, gk, scale: float, h0, output_final_state: bool, layout: ChunkLayout):
    """-> o [B,T,H,V] (q.dtype), final state or None, gcs [B,T,H,K] fp32, A [B,T,H,BT] fp32."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT = layout.chunk_size
    dev = q.device
    prec = _dot_precision(q.dtype)
    bk, bv = _tiles(K, V)
    targs = _grid_args(layout)
    gcs = torch.empty(B, T, H, K, device=dev, dtype=torch.float32)
    gla_cumsum_kernel[(triton.cdiv(K, bk), layout.slot_grid, B * H)](
        gk, gcs, *targs, H=H, K=K, BT=BT, BK=bk, IS_VARLEN=layout.is_varlen)
    A = torch.empty(B, T, H, BT, device=dev, dtype=torch.float32)
    gla_intra_A_kernel[(BT // SUB_CHUNK, layout.slot_grid, B * H)](
        q, k, gcs, A, *targs, scale, SPLIT_EXPONENT_MAX, H=H, K=K, BT=BT, BC=SUB_CHUNK, BK=bk, BKD=DIAGONAL_CHANNELS,
        IS_VARLEN=layout.is_varlen, DOT_PREC=prec, num_warps=_a_warps())
    h, ht = _states_forward(k, v, gcs, h0, layout, output_final_state, q.dtype)
    o = torch.empty((B, T, H, V), device=dev, dtype=q.dtype)
    launch = _chunk_launch("OUTPUT", K, V, q.dtype)
    gla_output_kernel[(triton.cdiv(V, launch["BV"]), layout.slot_grid, B * H)](
        q, v, gcs, A, h, o, *targs, scale, H=H, K=K, V=V, BT=BT, IS_VARLEN=layout.is_varlen, DOT_PREC=prec, **launch)
    return o, ht, gcs, A


# Widest value slice one backward kernel takes. On the H100 with Triton 3.6, V = 256 in one pass gave wrong
# dq / dk (correct under the interpreter, and correct on the GPU for K = 256 with V <= 128): a compiler
# problem like fla issue #640. The value-dependent kernels run per slice of at most this many value channels;
# dA and the inter-chunk parts of dq, dk are sums over value channels, so the slices' are added and the dq/dk/dgk
# kernel (which never sees V) runs once. With that kernel out of the slices, 256- and 512-wide slices still gave
# dq with relative error 0.99 on the H200 (K 128/V 256 and K 256/V 512): the miscompile is in a value-dependent
# kernel (benchmarks/results/h200-2026-12-03-final/gla-one-product/vslice.json).
MAX_BWD_V = 128


#: Whether the kernels of the value slices after the first add into dA, dq_inter and dk_inter themselves
#: (their ACCUMULATE) instead of PyTorch adding per-slice buffers: at the fla-1.3B GLA shape (d_v 512, four slices)
#: those additions were about 0.6 ms of the backward's 1.0 ms of elementwise work (H200 profile,
#: h200-2026-12-04-state-qdelta/3-fla-shapes/prof-gla); in the op GLA fwd+bwd 6.72 -> 6.35 ms, outputs within
#: 6e-5 rrms of the PyTorch sums, repeatable (h200-2026-12-04b-wide-keys). GPU test: test_gla_gpu_value_slices;
#: tests/test_kernels_triton_gla.py runs both ways on the CPU. LINMEM_GLA_SLICE_SUMS=1 or 0 overrides it at each call.
SLICE_SUMS_IN_KERNELS = True

#: Whether the value slices' kernels read v and dO and write dv in place (row stride VS) instead of on per-slice
#: copies: GLA fwd+bwd at the fla-1.3B shape 5.78 -> 5.29 ms, outputs and gradients bitwise equal
#: (h200-2026-12-04c-defaults/1-candidates/ab-gla; GPU test test_gla_gpu_value_slices passed both ways).
#: LINMEM_GLA_SLICES_IN_PLACE=1 or 0 overrides it at each call.
VALUE_SLICES_IN_PLACE = True


def gla_backward(q, k, v, gcs, A, do, dht, h0, scale: float, layout: ChunkLayout, gk_dtype: torch.dtype):
    """-> dq, dk, dv, dgk, dh0 (dh0 fp32 or None)."""
    V = v.shape[-1]
    in_kernels = bool(env_int("LINMEM_GLA_SLICE_SUMS", int(SLICE_SUMS_IN_KERNELS)))
    in_place = V <= MAX_BWD_V or bool(env_int("LINMEM_GLA_SLICES_IN_PLACE", int(VALUE_SLICES_IN_PLACE)))
    dh0_parts = []
    sums = final_term = None  # (dA, dq_inter, dk_inter) summed over value slices
    dv = torch.empty_like(v)  # v and do are contiguous (ChunkGLAFunction), and so is dv
    for lo in range(0, V, MAX_BWD_V):
        sl = slice(lo, min(lo + MAX_BWD_V, V))

        def cut(x):
            return x if x is None or V <= MAX_BWD_V else x[..., sl].contiguous()

        if in_place:  # the kernels read v and dO and write dv through the full tensors' row stride V
            v_s, do_s, dv_s, value_stride = v[..., sl], do[..., sl], dv[..., sl], V
        else:
            v_s, do_s = cut(v), cut(do)
            dv_s, value_stride = torch.empty_like(v_s), v_s.shape[-1]
        into = sums if in_kernels else None
        dh0_s, slice_sums, final_s = _value_slice_backward(
            q, k, v_s, gcs, A, do_s, dv_s, value_stride, cut(dht), cut(h0), scale, layout, into)
        if not in_place:
            dv[..., sl] = dv_s
        dh0_parts.append(dh0_s)
        if sums is None or in_kernels:  # in the kernels: slice_sums is sums, added to in place
            sums = slice_sums
        else:
            for total, piece in zip(sums, slice_sums):
                total += piece
        final_term = final_s if final_term is None else final_term + final_s
    dq, dk, dgk = _key_gradients(q, k, gcs, *sums, final_term, scale, layout, gk_dtype)
    dh0 = None if h0 is None else (dh0_parts[0] if len(dh0_parts) == 1 else torch.cat(dh0_parts, -1))
    return dq, dk, dv, dgk, dh0


def _value_slice_backward(q, k, v, gcs, A, do, dv, value_stride: int, dht, h0, scale: float, layout: ChunkLayout,
                          into: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
    """The value-dependent part of the backward for V <= MAX_BWD_V value channels: v, do and dv (written) are
    contiguous, or slices [..., lo:hi] of contiguous tensors `value_stride` channels wide, read and written in place.

    -> dh0 (or None), (dA [B, T, H, BT], dq_inter and dk_inter [B, T, H, K]: this slice's sums over its value
    channels, all fp32 but dv; with `into`, those buffers with this slice's sums added in place by the kernels), and
    the final state's gradient term sum_v S_T dS_T [N, H, K] (or None without dht)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT = layout.chunk_size
    dev = q.device
    prec = _backward_precision(q.dtype)
    bk, bv = _tiles(K, V)
    targs = _grid_args(layout)
    # fp32 chunk states in the backward: dq, dk (hence dgk) are sensitive to their rounding. The final state is
    # recomputed too: its gradient term sum_v S_T dS_T reaches every token's dgk, and the forward's (built
    # from 16-bit products) made bf16 dgk 5x less accurate than dq or dk.
    h, ht = _states_forward(k, v, gcs, h0, layout, dht is not None, torch.float32, value_stride)
    dh = torch.empty(layout.n_slots, H, K, V, device=dev, dtype=torch.float32)
    dh0 = torch.empty((layout.n_seqs, H, K, V), device=dev, dtype=torch.float32) \
        if h0 is not None else None
    launch = _state_launch("STATE_BWD", K, V, layout.n_seqs * H, k.dtype)
    gla_state_bwd_kernel[(triton.cdiv(K, launch["BK"]), triton.cdiv(V, launch["BV"]), layout.n_seqs * H)](
        q, do, gcs, dht, dh, dh0, *_seq_args(layout), scale,
        H=H, K=K, V=V, VS=value_stride, BT=BT, HAS_DHT=dht is not None, STORE_DH0=h0 is not None,
        IS_VARLEN=layout.is_varlen, DOT_PREC=prec, **launch)
    accumulate = into is not None
    dA, dq_inter, dk_inter = into if accumulate else (
        torch.empty(B, T, H, BT, device=dev, dtype=torch.float32),
        torch.empty(B, T, H, K, device=dev, dtype=torch.float32),
        torch.empty(B, T, H, K, device=dev, dtype=torch.float32))
    gla_bwd_dA_dv_kernel[(layout.slot_grid, B * H)](
        k, v, gcs, A, do, dh, dA, dv, *targs, H=H, K=K, V=V, VS=value_stride, BT=BT,
        IS_VARLEN=layout.is_varlen, DOT_PREC=prec, ACCUMULATE=accumulate,
        **_chunk_launch("DA_DV", K, V, k.dtype))
    launch = _chunk_launch("INTER", K, V, k.dtype)
    gla_bwd_inter_kernel[(triton.cdiv(K, launch["BK"]), layout.slot_grid, B * H)](
        v, gcs, h, do, dh, dq_inter, dk_inter, *targs, scale, H=H, K=K, V=V, VS=value_stride, BT=BT,
        IS_VARLEN=layout.is_varlen, DOT_PREC=prec, ACCUMULATE=accumulate, **launch)
    final_term = (ht * dht).sum(-1) if dht is not None else None
    return dh0, (dA, dq_inter, dk_inter), final_term


def _key_gradients(q, k, gcs, dA, dq_inter, dk_inter, final_term, scale: float, layout: ChunkLayout,
                   gk_dtype: torch.dtype):
    """dq, dk (inputs' dtypes) and dgk (gk_dtype) from dA and the inter-chunk parts summed over value channels.
    final_term [N, H, K] (or None): the final state's gradient term, added to every token of its sequence."""
    B, T, H, K = q.shape
    BT = layout.chunk_size
    dev = q.device
    bk, _ = _tiles(K, K)
    targs = _grid_args(layout)
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dg = torch.empty(B, T, H, K, device=dev, dtype=torch.float32)
    dg_sub = torch.zeros(layout.n_slots, BT // SUB_CHUNK, H, K, device=dev, dtype=torch.float32)
    gla_bwd_dqk_kernel[(triton.cdiv(K, bk) * (BT // SUB_CHUNK), layout.slot_grid, B * H)](
        q, k, gcs, dA, dq_inter, dk_inter, dq, dk, dg, dg_sub, *targs, scale, SPLIT_EXPONENT_MAX,
        H=H, K=K, BT=BT, BC=SUB_CHUNK, BK=bk, IS_VARLEN=layout.is_varlen,
        DOT_PREC=_backward_precision(q.dtype), MM_FP32=True, DIAG_PREC=_diagonal_precision(q.dtype),
        num_warps=_dqk_warps())
    add = layout.suffix_of_later_chunks(dg_sub.sum(1))
    if final_term is not None:
        add = add + layout.per_slot(final_term)
    dgk = torch.empty((B, T, H, K), device=dev, dtype=gk_dtype)
    gla_dg_finish_kernel[(triton.cdiv(K, bk), layout.slot_grid, B * H)](
        dg, dg_sub, add.contiguous(), dgk, *targs, H=H, K=K, BT=BT, BC=SUB_CHUNK, BK=bk, IS_VARLEN=layout.is_varlen)
    return dq, dk, dgk


@opaque_op("gla_fwd")
def _forward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, h0: torch.Tensor | None,
                scale: float, output_final_state: bool, cu_seqlens: torch.Tensor | None,
                chunk_size: int) -> list[torch.Tensor | None]:
    """-> [o, final state, gcs, A (see gla_forward), *the chunk layout's tables]."""
    layout = ChunkLayout.of(q.shape[0], q.shape[1], cu_seqlens, chunk_size)
    return [*gla_forward(q, k, v, gk, scale, h0, output_final_state, layout), *layout.tables()]


@opaque_op("gla_bwd")
def _backward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gcs: torch.Tensor, A: torch.Tensor,
                 do: torch.Tensor, dht: torch.Tensor | None, h0: torch.Tensor | None, scale: float,
                 layout_tables: list[torch.Tensor | None], chunk_size: int,
                 gk_dtype: torch.dtype) -> list[torch.Tensor | None]:
    """-> [dq, dk, dv, dgk, dh0] (see gla_backward)."""
    layout = ChunkLayout.from_tables(q.shape[0], q.shape[1], chunk_size, layout_tables)
    return list(gla_backward(q, k, v, gcs, A, do, dht, h0, scale, layout, gk_dtype))


class ChunkGLAFunction(torch.autograd.Function):
    """Differentiable in q, k, v, gk and initial_state."""

    @staticmethod
    def forward(ctx, q, k, v, gk, h0, scale, output_final_state, cu_seqlens, chunk_size):
        o, ht, gcs, A, *layout_tables = _forward_op(q, k, v, gk, h0, scale, output_final_state, cu_seqlens,
                                                    chunk_size)
        ctx.save_for_backward(q, k, v, gcs, A, h0, *layout_tables)
        ctx.scale, ctx.chunk_size, ctx.gk_dtype = scale, chunk_size, gk.dtype
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, gcs, A, h0, *layout_tables = ctx.saved_tensors
        do = do.contiguous()
        dht = dht.contiguous().float() if dht is not None else None
        dq, dk, dv, dgk, dh0 = _backward_op(q, k, v, gcs, A, do, dht, h0, ctx.scale, layout_tables, ctx.chunk_size,
                                            ctx.gk_dtype)
        return dq, dk, dv, dgk, dh0, None, None, None, None


def triton_gla_chunked(q, k, v, gk, *, scale=None, initial_state=None, output_final_state=False,
                       cu_seqlens=None, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """`triton_gla` with an explicit chunk size (16, 32 or 64; tests use the small ones)."""
    if chunk_size not in (16, 32, 64):
        raise ValueError(f"chunk_size: expected 16, 32 or 64, got {chunk_size}")
    K = q.shape[-1]
    scale = K ** -0.5 if scale is None else float(scale)
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    o, ht = ChunkGLAFunction.apply(q.contiguous(), k.contiguous(), v.contiguous(), gk.contiguous(), h0, scale,
                                   bool(output_final_state), cu_seqlens, chunk_size)
    return o, ht


def triton_gla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """GLA on Triton. q, k, gk [B, T, H, K]; v [B, T, H, V]; initial_state [B or N, H, K, V] fp32.

    Returns o [B, T, H, V] in q's dtype and the final state [B or N, H, K, V] fp32 (or None).
    Inputs are validated by the public op (linmem.kernels.gla.op) before dispatch.
    """
    return triton_gla_chunked(q, k, v, gk, scale=scale, initial_state=initial_state,
                              output_final_state=output_final_state, cu_seqlens=cu_seqlens)
