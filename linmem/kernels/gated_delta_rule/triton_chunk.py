"""Triton chunkwise Gated DeltaNet (WY/UT form), forward and backward, dense or varlen.

`chunk_delta_rule_triton` is shared with Q-Delta: with `lam` given, the probe x = k + lam q replaces k
on the probe side of the delta rule (A and W of the WY form); with `lam=None` it is Gated DeltaNet.
Kernels: triton_wy (A, T, W, U and their backward), triton_state (inter-chunk recurrence),
triton_output (chunk read and its backward). Semantics are those of `naive_gated_delta_rule`.
"""

from __future__ import annotations

import os

import torch
import triton

from ..library import opaque_op
from ..triton_layout import ChunkLayout
from .triton_config import (_dot_precision, _num_warps, _pow2, _stages, _state_tiles, _store_probe, _wy_a_stages,
                            _wy_bwd_config, _wy_fwd_block, _wy_fwd_warps, _wu_launch, _dqk_launch)
from .triton_output import output_dqk_kernel, output_dv_kernel, output_fwd_kernel
from .triton_state import state_bwd_kernel, state_fwd_kernel
from .triton_wy import wy_A_kernel, wy_bwd_gates_kernel, wy_bwd_keys_kernel, wy_solve_kernel, wy_wu_kernel

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
# Chunk length. Fixed at 64 on GPUs (the sub-block inverse uses BT/4 = 16 rows, the tensor-core minimum);
# the interpreter accepts 16 or 32 too, which the CPU tests use to check chunk-size independence.
DEFAULT_CHUNK_SIZE = 64


def _forward(q, k, v, g, beta, lam, scale, initial_state, output_final_state, layout: ChunkLayout):
    B, T, H, K = k.shape
    V = v.shape[-1]
    BT = layout.chunk_size
    dev, dt = k.device, k.dtype
    prec = _dot_precision(dt)
    gc = torch.empty(B, T, H, device=dev, dtype=torch.float32)
    tm = torch.empty(B, T, H, BT, device=dev, dtype=torch.float32)
    w = torch.empty(B, T, H, K, device=dev, dtype=dt)
    u = torch.empty(B, T, H, V, device=dev, dtype=dt)
    table, T_arg, NT = layout.kernel_args()
    lam_arg = lam if lam is not None else beta
    bk = min(_wy_fwd_block(), _pow2(K))
    flags = dict(H=H, BT=BT, IS_VARLEN=layout.is_varlen, DOT_PREC=prec, num_stages=_stages(dt))
    wy_warps, grid = _wy_fwd_warps(), (layout.slot_grid, B * H)
    x = torch.empty_like(k) if lam is not None and _store_probe() else None  # the probe rows, kept for the backward
    wy_A_kernel[grid](q, k, g, beta, lam_arg, gc, tm, x, table, T_arg, NT, K=K, BK=bk, HAS_LAM=lam is not None,
                      STORE_X=x is not None, num_warps=wy_warps,
                      **dict(flags, num_stages=_wy_a_stages(dt, lam is not None)))
    wy_solve_kernel[grid](tm, table, T_arg, NT, num_warps=wy_warps, **flags)
    wu = _wu_launch(K, V, dt)
    wy_wu_kernel[(triton.cdiv(K, wu.block_k) + triton.cdiv(V, wu.block_v), layout.slot_grid, B * H)](
        q, k, v, beta, lam_arg, gc, tm, x, w, u, table, T_arg, NT, K=K, V=V, BK=wu.block_k, BV=wu.block_v,
        HAS_LAM=lam is not None, STORED_X=x is not None, num_warps=wu.warps, **dict(flags, num_stages=wu.stages))
    h = torch.empty(layout.n_slots, H, K, V, device=dev, dtype=dt)
    vnew = torch.empty(B, T, H, V, device=dev, dtype=dt)
    final = torch.empty(layout.n_seqs, H, K, V, device=dev, dtype=torch.float32) if output_final_state else None
    cu, offs, _, _ = layout.seq_args()
    bk, bv, nw, ns = _state_tiles(K, V, dt, layout.n_seqs * H)
    state_fwd_kernel[(triton.cdiv(V, bv), layout.n_seqs * H)](
        k, w, u, gc, initial_state, h, vnew, final, cu, offs, T_arg, NT,
        H=H, K=K, V=V, BT=BT, BK=bk, BV=bv, HAS_H0=initial_state is not None,
        STORE_HT=output_final_state, IS_VARLEN=layout.is_varlen, DOT_PREC=prec, num_warps=nw, num_stages=ns,
    )
    layout.zero_unused_slots(h)
    o = torch.empty(B, T, H, V, device=dev, dtype=q.dtype)
    bv_o = min(64, _pow2(V))
    output_fwd_kernel[(triton.cdiv(V, bv_o), layout.slot_grid, B * H)](
        q, k, vnew, h, gc, o, table, T_arg, NT, scale,
        H=H, K=K, V=V, BT=BT, BK=min(64, _pow2(K)), BV=bv_o, IS_VARLEN=layout.is_varlen,
        DOT_PREC=prec, num_warps=_num_warps(), num_stages=_stages(dt),
    )
    return o, final, (gc, tm, w, u, h, vnew, x)


def _backward(q, k, v, g, beta, lam, scale, initial_state, saved, do, dht, layout: ChunkLayout):
    gc, tm, w, u, h, vnew, x = saved
    B, T, H, K = k.shape
    V = v.shape[-1]
    BT = layout.chunk_size
    dev, dt = k.device, k.dtype
    prec = _dot_precision(dt)
    table, T_arg, NT = layout.kernel_args()
    cu, offs, _, _ = layout.seq_args()
    bk_o, bv_o = min(64, _pow2(K)), min(64, _pow2(V))

    dv_local = torch.empty(B, T, H, V, device=dev, dtype=dt)
    output_dv_kernel[(layout.slot_grid, B * H)](
        q, k, gc, do, dv_local, table, T_arg, NT, scale,
        H=H, K=K, V=V, BT=BT, BK=bk_o, BV=bv_o, IS_VARLEN=layout.is_varlen, DOT_PREC=prec, num_warps=_num_warps(), num_stages=_stages(dt),
    )
    dh = torch.empty(layout.n_slots, H, K, V, device=dev, dtype=dt)
    dvnew = torch.empty(B, T, H, V, device=dev, dtype=dt)
    dh0 = torch.empty_like(initial_state, dtype=torch.float32) if initial_state is not None else None
    bk, bv, nw, ns = _state_tiles(K, V, dt, layout.n_seqs * H, backward=True)
    state_bwd_kernel[(triton.cdiv(V, bv), layout.n_seqs * H)](
        q, k, w, gc, do, dv_local, dht, dh, dvnew, dh0, cu, offs, T_arg, NT, scale,
        H=H, K=K, V=V, BT=BT, BK=bk, BV=bv, HAS_DHT=dht is not None, STORE_DH0=dh0 is not None,
        IS_VARLEN=layout.is_varlen, DOT_PREC=prec, num_warps=nw, num_stages=ns,
    )
    setting = _wy_bwd_config()
    dqk = _dqk_launch(K, V, dt)
    nkp = triton.cdiv(K, dqk.block_k)
    dq_part = torch.empty(B, T, H, K, device=dev, dtype=torch.float32)
    dk_part = torch.empty(B, T, H, K, device=dev, dtype=torch.float32)
    dw = torch.empty(B, T, H, K, device=dev, dtype=dt)
    dgc_part = torch.empty(nkp, B, T, H, device=dev, dtype=torch.float32)
    output_dqk_kernel[(nkp, layout.slot_grid, B * H)](
        q, k, vnew, h, dh, gc, do, dvnew, dq_part, dk_part, dw, dgc_part, table, T_arg, NT, B * T, scale,
        H=H, K=K, V=V, BT=BT, BK=dqk.block_k, BV=dqk.block_v, IS_VARLEN=layout.is_varlen,
        DOT_PREC=prec, num_warps=dqk.warps, num_stages=dqk.stages,
    )
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    dg, dbeta = torch.empty_like(g), torch.empty_like(beta)
    dlam = torch.empty_like(lam) if lam is not None else None
    lam_arg = lam if lam is not None else beta
    common = dict(H=H, K=K, BT=BT, HAS_LAM=lam is not None, IS_VARLEN=layout.is_varlen, DOT_PREC=prec,
                  num_stages=_stages(dt), **({"maxnreg": setting.maxnreg} if setting.maxnreg else {}))
    e = torch.empty(B, T, H, BT, device=dev, dtype=dt)
    wy_bwd_gates_kernel[(layout.slot_grid, B * H)](
        q, k, v, beta, lam_arg, gc, tm, x, dw, dvnew, dgc_part, dv, dg, dbeta, e, table, T_arg, NT, B * T,
        V=V, BK=min(setting.gates_block, _pow2(K)), BV=min(setting.gates_block, _pow2(V)), NKP=nkp,
        STORED_X=x is not None, num_warps=setting.warps, **common)
    wy_bwd_keys_kernel[(layout.slot_grid, B * H)](
        q, k, beta, lam_arg, gc, tm, dw, e, dq_part, dk_part, dq, dk, dlam if dlam is not None else dbeta,
        table, T_arg, NT, BK=min(setting.keys_block, _pow2(K)), num_warps=setting.keys_warps, **common)
    return dq, dk, dv, dg, dbeta, dlam, dh0


@opaque_op("delta_rule_fwd")
def _forward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
                lam: torch.Tensor | None, scale: float, initial_state: torch.Tensor | None, output_final_state: bool,
                cu_seqlens: torch.Tensor | None, chunk_size: int) -> list[torch.Tensor | None]:
    """-> [o, final state, *saved intermediates (see _forward), *the chunk layout's tables]."""
    layout = ChunkLayout.of(k.shape[0], k.shape[1], cu_seqlens, chunk_size)
    o, final, saved = _forward(q, k, v, g, beta, lam, scale, initial_state, output_final_state, layout)
    return [o, final, *saved, *layout.tables()]


@opaque_op("delta_rule_bwd")
def _backward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
                 lam: torch.Tensor | None, scale: float, initial_state: torch.Tensor | None,
                 saved: list[torch.Tensor | None], do: torch.Tensor, dht: torch.Tensor | None,
                 layout_tables: list[torch.Tensor | None], chunk_size: int) -> list[torch.Tensor | None]:
    """-> [dq, dk, dv, dg, dbeta, dlam, dh0] (see _backward)."""
    layout = ChunkLayout.from_tables(k.shape[0], k.shape[1], chunk_size, layout_tables)
    return list(_backward(q, k, v, g, beta, lam, scale, initial_state, saved, do, dht, layout))


class ChunkDeltaRuleFunction(torch.autograd.Function):
    """Autograd wrapper; saves the chunk intermediates (T, W, U, states, V~) and the chunk layout instead of
    recomputing them."""

    @staticmethod
    def forward(ctx, q, k, v, g, beta, lam, scale, initial_state, output_final_state, cu_seqlens, chunk_size):
        o, final, *saved = _forward_op(q, k, v, g, beta, lam, scale, initial_state, output_final_state, cu_seqlens,
                                       chunk_size)
        ctx.save_for_backward(q, k, v, g, beta, lam, initial_state, *saved)
        ctx.scale, ctx.chunk_size = scale, chunk_size
        return o, final

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, g, beta, lam, initial_state, *saved = ctx.saved_tensors
        saved, layout_tables = saved[:-ChunkLayout.N_TABLES], saved[-ChunkLayout.N_TABLES:]
        do = do.to(q.dtype).contiguous()
        dht = dht.float().contiguous() if dht is not None else None
        dq, dk, dv, dg, dbeta, dlam, dh0 = _backward_op(q, k, v, g, beta, lam, ctx.scale, initial_state, saved, do,
                                                        dht, layout_tables, ctx.chunk_size)
        return dq, dk, dv, dg, dbeta, dlam, None, dh0, None, None, None


def chunk_delta_rule_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    lam: torch.Tensor | None = None, *, scale: float | None = None, initial_state: torch.Tensor | None = None,
    output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None, chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated DeltaNet (lam None) or Q-Delta (lam [B, T, H]) on Triton; inputs validated by the op.

    q, k [B, T, H, K]; v [B, T, H, V]; g, beta [B, T, H]; initial_state [N, H, K, V] (cast to fp32).
    Returns o [B, T, H, V] (q's dtype) and the fp32 final state [N, H, K, V] or None.
    """
    if scale is None:
        scale = k.shape[-1] ** -0.5
    if chunk_size is None:
        chunk_size = DEFAULT_CHUNK_SIZE
    if chunk_size not in (16, 32, 64) or (chunk_size != 64 and not _INTERPRET):
        raise ValueError(f"chunk_size must be 64 (16 or 32 only under TRITON_INTERPRET=1), got {chunk_size}")
    dt = q.dtype
    q, k, v = q.contiguous(), k.to(dt).contiguous(), v.to(dt).contiguous()
    g, beta = g.contiguous(), beta.contiguous()
    lam = lam.contiguous() if lam is not None else None
    if initial_state is not None:
        initial_state = initial_state.float().contiguous()
    return ChunkDeltaRuleFunction.apply(
        q, k, v, g, beta, lam, float(scale), initial_state, output_final_state, cu_seqlens, chunk_size)


def triton_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, *,
    scale: float | None = None, initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None, chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated DeltaNet on Triton, same signature and semantics as `naive_gated_delta_rule`.

    S_t = e^{g_t} (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T;  o_t = scale S_t^T q_t.
    chunk_size: 64 (default); 16/32 are accepted only under TRITON_INTERPRET=1 (tests).
    """
    return chunk_delta_rule_triton(q, k, v, g, beta, None, scale=scale, initial_state=initial_state,
                                   output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                   chunk_size=chunk_size)
