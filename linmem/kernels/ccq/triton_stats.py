"""CCQ statistic pass on Triton, shared by CCQ-GLA and CCQ-GDN (specs/ccq.md, "Chunkwise form").

With unit keys k̂ and a scalar log decay g_t = log γ_t per head:
    M_t = γ_t M_{t-1} + k̂_t k̂_tᵀ,  z_t = γ_t z_{t-1} + 1,  m_t = γ_t m_{t-1} + k̂_t (centring only),
    q̃_t = q_t − λ_t (M_t q_t / z_t − μ_t (μ_t · q_t)),  μ_t = m_t / z_t (the μ term only with centring).
Scalar-decay kernels (triton_stats_kernels.py): a light recurrence stores the statistics at chunk starts, and
a chunk-parallel kernel computes q̃ (and the final M, z, m come from the recurrence).
Backward (CCQStatsFunction): the elementwise part (u, z, m -> q̃) in one prep kernel; u's gradient is
du_t = r_t dq̃_t with r_t = −λ_t / z_t (never stored). q's gradient through M, M_tᵀ du_t, is the forward's chunk
kernel again, with query dq̃ and the forward's chunk-start M (kept for the backward, in the products' dtype) read
transposed. A reverse recurrence stores the statistics' gradient at every chunk end, and one chunk-parallel kernel
gives k̂'s gradient in both its roles (value and key of u) and the decay "writer" terms.
The log-decay gradient is, per sequence,
    dg_j = sum_{t >= j} (du_t·u_t + dz_t z_t + dm_t·m_t − k̂_t·dk̂_t^{value} − zw_t)   (+ final-state terms),
a reverse cumulative sum done in torch (float64 for varlen, where it runs across sequences).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton

from ..backend import env_int
from ..library import opaque_op
from ..triton_layout import ChunkLayout, sequential_block
from .triton_stats_kernels import (
    ccq_stats_bwd_chunk_kernel,
    ccq_stats_bwd_prep_kernel,
    ccq_stats_bwd_state_kernel,
    ccq_stats_fwd_chunk_kernel,
    ccq_stats_fwd_state_kernel,
)

DEFAULT_CHUNK_SIZE = 64


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(||x||^2 + eps) over the last dim, in fp32."""
    x = x.float()
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def _padded_k(K: int) -> int:
    return max(16, triton.next_power_of_2(K))


def _prec(dtype: torch.dtype) -> str:
    return "ieee" if dtype in (torch.float32, torch.float64) else "tf32"


def _buffer(shape, like: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """An output buffer on like's device, left uninitialised (the tests fill it with NaN: tests/conftest.py)."""
    return torch.empty(shape, device=like.device, dtype=dtype)


class ChunkSetting(NamedTuple):
    """Launch setting of chunk-parallel statistic kernels."""

    bv: int  # value-block width
    warps: int
    stages: int  # software-pipelining depth
    split: bool = False  # one value block per program (a third grid axis) instead of a loop over them


class Tiles(NamedTuple):
    """Launch settings of the statistic kernels at one head dim (8 warps for the recurrences)."""

    kp: int  # the key dim padded to a power of two
    bv_state: int  # widest value block of the two recurrences (_recurrence_block narrows it for few sequences)
    forward: ChunkSetting  # the forward's chunk-parallel kernel (it also runs the backward's Mᵀdu pass)
    backward: ChunkSetting  # the backward's chunk-parallel k-gradient kernel (it sums over value blocks: no split)


def _chunk_setting(prefix: str, kp: int, default: ChunkSetting) -> ChunkSetting:
    setting = ChunkSetting(env_int(f"{prefix}_BV", default.bv), env_int(f"{prefix}_WARPS", default.warps),
                           env_int(f"{prefix}_STAGES", default.stages),
                           bool(env_int(f"{prefix}_SPLIT", int(default.split))))
    if setting.bv not in (16, 32, 64, 128, 256) or setting.bv > kp:
        raise ValueError(f"{prefix}_BV: expected a power of two from 16 to {kp}, got {setting.bv}")
    if setting.warps not in (1, 2, 4, 8, 16) or setting.stages < 1:
        raise ValueError(f"{prefix}_WARPS / _STAGES: got {setting.warps} warps, {setting.stages} stages")
    return setting


def _split_tiles(K: int) -> Tiles:
    """The fixed table, chosen from offline sm_90 builds: wider blocks or deeper pipelines need more shared memory
    than the H100/H200 have at K = 128 (245 KB for BV = 64 with 3 stages), or spill more.

    The environment overrides it at each call, so one GPU session can time the alternatives
    (benchmarks/ccq_stats_configs.py): LINMEM_CCQ_CHUNK_BV, _WARPS and _STAGES set every chunk-parallel kernel;
    LINMEM_CCQ_FWD_BV, _WARPS, _STAGES and _SPLIT then override the forward's.
    """
    kp = _padded_k(K)
    bv, stages = (kp, 3) if kp <= 64 else (32, 2)
    backward = _chunk_setting("LINMEM_CCQ_CHUNK", kp, ChunkSetting(bv, 8, stages))
    # Wider heads: the forward chunk kernel at 4 warps (the statistic's fwd 1.56 -> 1.18 ms, fwd+bwd 6.76 -> 5.91 ms
    # at B8 T4K H16 K128 on the H200; a value block per program was slower: ccq-stats-configs-h200.json).
    forward_warps = env_int("LINMEM_CCQ_CHUNK_WARPS", 8 if kp <= 64 else 4)
    forward = _chunk_setting("LINMEM_CCQ_FWD", kp, backward._replace(warps=forward_warps))
    return Tiles(kp, bv_state=kp if kp <= 64 else 64, forward=forward, backward=backward)


#: The recurrences walk a sequence's chunks one after another, one program per (sequence, head, column block):
#: with few sequences (B1 T32K H16: 32 programs at 64 columns) most of the GPU idles, so the column block narrows
#: until there are at least this many programs (or it is 16 wide).
MIN_RECURRENCE_PROGRAMS = 256


def _recurrence_block(tiles: Tiles, K: int, n_seq_heads: int) -> int:
    """Column-block width of the two recurrences (LINMEM_CCQ_STATE_BV overrides it)."""
    bv = env_int("LINMEM_CCQ_STATE_BV", sequential_block(tiles.bv_state, K, n_seq_heads, MIN_RECURRENCE_PROGRAMS))
    if bv not in (16, 32, 64, 128, 256) or bv > tiles.kp:
        raise ValueError(f"LINMEM_CCQ_STATE_BV: expected a power of two from 16 to {tiles.kp}, got {bv}")
    return bv


def _per_chunk_statistics(layout: ChunkLayout, H: int, K: int, like: torch.Tensor, center: bool,
                          m_dtype: torch.dtype = torch.float32):
    """Buffers for one (M, z, m) (or their gradients) per chunk slot: [slots, H, K, K] in m_dtype,
    [slots, H] and [slots, H, K] (None without centring) in fp32."""
    n = layout.n_slots
    return (_buffer((n, H, K, K), like, m_dtype), _buffer((n, H), like),
            _buffer((n, H, K), like) if center else None)


def _stats_forward(q, k, g, lam, M0, z0, m0, layout: ChunkLayout, center: bool, save: bool, store_final: bool):
    """-> q̃ [B,T,H,K] (q.dtype), saved (u, z, m, chunk-start M) or None, finals (M, z, m) or None.

    q and k share a dtype: that of the matrix products, and of the chunk-start M (stored between the kernels
    and kept for the backward; the chunk kernel rounds it to that dtype anyway).
    """
    B, T, H, K = q.shape
    N = layout.n_seqs
    tiles = _split_tiles(K)
    out = _buffer((B, T, H, K), q, q.dtype)
    u_s = _buffer((B, T, H, K), q) if save else None
    z_s = _buffer((B, T, H), q) if save else None
    m_s = _buffer((B, T, H, K), q) if save and center else None
    MT = _buffer((N, H, K, K), q) if store_final else None
    zT = _buffer((N, H), q) if store_final else None
    mT = _buffer((N, H, K), q) if store_final and center else None
    flags = dict(H=H, K=K, BT=layout.chunk_size, KP=tiles.kp, CENTER=center, IS_VARLEN=layout.is_varlen,
                 PREC=_prec(q.dtype))
    starts = dict(HAS_M0=M0 is not None, HAS_Z0=z0 is not None, HAS_MM0=m0 is not None, STORE_FINAL=store_final)
    S_st, z_st, m_st = _per_chunk_statistics(layout, H, K, q, center, q.dtype)
    bv = _recurrence_block(tiles, K, N * H)
    ccq_stats_fwd_state_kernel[(triton.cdiv(K, bv), N * H)](
        k, g, M0, z0, m0, S_st, z_st, m_st, MT, zT, mT, layout.cu_seqlens, layout.chunk_offsets, T,
        layout.n_chunks, **flags, BV=bv, **starts, num_warps=8)
    layout.zero_unused_slots(S_st, z_st, m_st)
    _chunk_read(q, k, g, lam, S_st, z_st, m_st, out, (u_s, z_s, m_s) if save else None, layout, center)
    return out, ((u_s, z_s, m_s, S_st, z_st) if save else None), ((MT, zT, mT) if store_final else None)


def _reverse_cumsum_over_tokens(x: torch.Tensor) -> torch.Tensor:
    """x [..., T, H] -> the sum over later-or-equal tokens. The scan runs over the innermost dim: CUDA's scan
    over an outer dim runs one thread per column and took 0.7 ms for B8 T4K H16 on the H200."""
    return x.transpose(-1, -2).flip(-1).cumsum(-1).flip(-1).transpose(-1, -2)


def _seq_reverse_cumsum(x: torch.Tensor, layout: ChunkLayout) -> torch.Tensor:
    """x [B, T, H] -> sum over the later-or-equal tokens of the same sequence (no host sync)."""
    if not layout.is_varlen:
        return _reverse_cumsum_over_tokens(x)
    x64 = x[0].double()  # [T, H]; float64 because the sum runs across sequences and is differenced
    rc = torch.cat([_reverse_cumsum_over_tokens(x64), x64.new_zeros(1, x64.shape[1])], 0)
    cu = layout.cu_seqlens.to(torch.int64)
    tok = torch.arange(x.shape[1], device=x.device)
    seq_end = cu[torch.searchsorted(cu, tok, right=True)]
    return (rc[:-1] - rc[seq_end]).to(x.dtype).unsqueeze(0)


def _add_at_last_token(x: torch.Tensor, per_seq: torch.Tensor, layout: ChunkLayout) -> torch.Tensor:
    """x [B, T, H] plus per_seq [N, H] at the last token of each non-empty sequence."""
    if not layout.is_varlen:
        x = x.clone()
        x[:, -1] += per_seq
        return x
    cu = layout.cu_seqlens.to(torch.int64)
    nonempty = (cu[1:] > cu[:-1]).unsqueeze(-1)
    last = (cu[1:] - 1).clamp(min=0)
    return x.index_add(1, last, torch.where(nonempty, per_seq, 0).unsqueeze(0))


def _chunk_read(q, k, g, lam, S_st, z_st, m_st, out, saved, layout: ChunkLayout, center: bool,
                transposed: bool = False, add_u: bool = False) -> None:
    """ccq_stats_fwd_chunk_kernel at the forward's launch setting: out = q̃ (or, add_u, out += lam ∘ u) from the
    chunk-start statistics (M read transposed with `transposed`); saved: the (u, z, m) buffers to fill, or None."""
    B, T, H, K = q.shape
    tiles = _split_tiles(K)
    fwd = tiles.forward
    u_s, z_s, m_s = saved if saved is not None else (None, None, None)
    ccq_stats_fwd_chunk_kernel[(layout.slot_grid, B * H, triton.cdiv(K, fwd.bv) if fwd.split else 1)](
        q, k, g, lam, S_st, z_st, m_st, out, u_s, z_s, m_s, layout.table, T, layout.n_chunks,
        H=H, K=K, BT=layout.chunk_size, KP=tiles.kp, CENTER=center, IS_VARLEN=layout.is_varlen, PREC=_prec(q.dtype),
        BV=fwd.bv, SPLIT=fwd.split, SAVE=saved is not None, TRANSPOSED=transposed, ADD_U=add_u,
        num_warps=fwd.warps, num_stages=fwd.stages)


def _query_gradient(dqt, k, g, lam, du_scale, dq_direct, S_st, z_st, layout: ChunkLayout, center: bool):
    """q's gradient dq = dq_direct + diag(r) M_tᵀ dq̃ (q.dtype), M_t read transposed from the forward's chunk-start
    statistics S_st, z_st. Without centring (dq_direct = dq̃ and r = −λ/z) that is the forward's own formula
    q̃ = q − λ M q / z with Mᵀ and query dq̃; with centring the kernel adds r ∘ Mᵀdq̃ to dq_direct (fp32)."""
    dq = dq_direct if center else _buffer(dqt.shape, dqt, dqt.dtype)
    _chunk_read(dqt, k, g, du_scale if center else lam, S_st, z_st, None, dq, None, layout, center=False,
                transposed=True, add_u=center)
    return dq.to(dqt.dtype)


def _key_gradients(q, k, g, dqt, du_scale, dz, dm, dMT, dzT, dmT, layout: ChunkLayout, center: bool,
                   store_d0: bool):
    """k̂'s gradient through the statistics, given du = du_scale ∘ dqt, dz, dm (fp32, per token) and the
    final-state grads.

    -> dk [B, T, H, K] in k's dtype, writer [B, T, H] (the writer part of the log-decay gradient: the z writes
    and k̂ · dk̂ through the values), and dM0, dz0, dm0 when store_d0 (else None).
    """
    B, T, H, K = q.shape
    N = layout.n_seqs
    tiles = _split_tiles(K)
    writer = _buffer((B, T, H), q)
    dM0 = _buffer((N, H, K, K), q) if store_d0 else None
    dz0 = _buffer((N, H), q) if store_d0 else None
    dm0 = _buffer((N, H, K), q) if store_d0 and center else None
    finals = [d.float().contiguous() if d is not None else None for d in (dMT, dzT, dmT)]
    flags = dict(H=H, K=K, BT=layout.chunk_size, KP=tiles.kp, CENTER=center, IS_VARLEN=layout.is_varlen,
                 PREC=_prec(q.dtype))
    has = dict(HAS_DMT=dMT is not None, HAS_DZT=dzT is not None, HAS_DMMT=dmT is not None, STORE_D0=store_d0)
    dS_st, dz_st, dm_st = _per_chunk_statistics(layout, H, K, q, center)
    bv = _recurrence_block(tiles, K, N * H)
    ccq_stats_bwd_state_kernel[(triton.cdiv(K, bv), N * H)](
        q, g, dqt, du_scale, dz, dm, *finals, dS_st, dz_st, dm_st, dM0, dz0, dm0, layout.cu_seqlens,
        layout.chunk_offsets, T, layout.n_chunks, **dict(flags, BV=bv), **has, num_warps=8)
    dk = _buffer((B, T, H, K), q, k.dtype)
    chunk = tiles.backward
    ccq_stats_bwd_chunk_kernel[(layout.slot_grid, B * H)](
        q, k, g, dqt, du_scale, dz, dm, dS_st, dz_st, dm_st, dk, writer, layout.table, T, layout.n_chunks, **flags,
        BV=chunk.bv, num_warps=chunk.warps,
        # offline sm_90 build (Triton 3.6), K 256: 236 KB of shared memory at 2 stages (over the 227 KB), 168 at 1
        num_stages=1 if tiles.kp > 128 else chunk.stages)
    return dk, writer, dM0, dz0, dm0


@opaque_op("ccq_stats_fwd")
def _forward_op(q: torch.Tensor, k: torch.Tensor, g: torch.Tensor, lam: torch.Tensor, M0: torch.Tensor | None,
                z0: torch.Tensor | None, m0: torch.Tensor | None, center: bool, save: bool, output_final_state: bool,
                cu_seqlens: torch.Tensor | None, chunk_size: int) -> list[torch.Tensor | None]:
    """-> [q̃, M_T, z_T, m_T, u, z, m, chunk-start M, chunk-start z (these five None unless save),
    *the chunk layout's tables]."""
    layout = ChunkLayout.of(q.shape[0], q.shape[1], cu_seqlens, chunk_size)
    q_tilde, saved, finals = _stats_forward(q, k, g, lam, M0, z0, m0, layout, center, save, output_final_state)
    return [q_tilde, *(finals if finals is not None else (None,) * 3), *(saved if saved is not None else (None,) * 5),
            *layout.tables()]


@opaque_op("ccq_stats_bwd")
def _backward_op(q: torch.Tensor, k: torch.Tensor, g: torch.Tensor, lam: torch.Tensor, M0: torch.Tensor | None,
                 z0: torch.Tensor | None, m0: torch.Tensor | None, saved: list[torch.Tensor | None],
                 finals: list[torch.Tensor | None], dqt: torch.Tensor | None, dMT: torch.Tensor | None,
                 dzT: torch.Tensor | None, dmT: torch.Tensor | None, center: bool,
                 layout_tables: list[torch.Tensor | None], chunk_size: int) -> list[torch.Tensor | None]:
    """-> [dq, dk, dg, dlam, dM0, dz0, dm0] (the last three None where the start was not given)."""
    layout = ChunkLayout.from_tables(q.shape[0], q.shape[1], chunk_size, layout_tables)
    u, z, m, S_st, z_st = saved
    MT, zT, mT = finals
    B, T, H, K = q.shape
    N = layout.n_seqs
    kp = _padded_k(K)
    dqt = dqt.to(q.dtype).contiguous() if dqt is not None else torch.zeros_like(q)
    dq_direct, dm = (_buffer((B, T, H, K), q), _buffer((B, T, H, K), q)) if center else (None, None)
    du_scale, dz, dlam, reader = (_buffer((B, T, H), q) for _ in range(4))
    prep_rows = 16
    ccq_stats_bwd_prep_kernel[(triton.cdiv(B * T, prep_rows), H)](
        dqt, q, lam, u, z, m, du_scale, dz, dm, dq_direct, dlam, reader, B * T,
        H=H, K=K, BT=prep_rows, KP=kp, CENTER=center, num_warps=4)
    dq = _query_gradient(dqt, k, g, lam, du_scale, dq_direct, S_st, z_st, layout, center)
    store_d0 = any(x is not None for x in (M0, z0, m0))
    dk, writer, dM0, dz0, dm0 = _key_gradients(q, k, g, dqt, du_scale, dz, dm, dMT, dzT, dmT, layout, center,
                                               store_d0)
    dG = reader - writer
    final = torch.zeros(N, H, device=q.device, dtype=torch.float32)
    for d, x in ((dMT, MT), (dzT, zT), (dmT, mT)):
        if d is not None and x is not None:
            final = final + (d.float() * x).reshape(N, H, -1).sum(-1)
    dG = _add_at_last_token(dG, final, layout)
    dg = _seq_reverse_cumsum(dG, layout)
    return [dq, dk, dg.to(g.dtype), dlam.to(lam.dtype), dM0 if M0 is not None else None,
            dz0 if z0 is not None else None, dm0 if m0 is not None else None]


class CCQStatsFunction(torch.autograd.Function):
    """q̃ and the final (M, z, m); differentiable in q, k̂, g, lam, M0, z0, m0."""

    @staticmethod
    def forward(ctx, q, k, g, lam, M0, z0, m0, center, output_final_state, cu_seqlens, chunk_size):
        save = any(ctx.needs_input_grad[:7])
        q_tilde, MT, zT, mT, *saved = _forward_op(q, k, g, lam, M0, z0, m0, center, save, output_final_state,
                                                  cu_seqlens, chunk_size)
        if save:  # the chunk intermediates, then the layout's tables
            ctx.save_for_backward(q, k, g, lam, M0, z0, m0, MT, zT, mT, *saved)
        ctx.center, ctx.chunk_size = center, chunk_size
        ctx.set_materialize_grads(False)
        return q_tilde, MT, zT, mT

    @staticmethod
    def backward(ctx, dqt, dMT, dzT, dmT):
        q, k, g, lam, M0, z0, m0, MT, zT, mT, u, z, m, S_st, z_st, *layout_tables = ctx.saved_tensors
        grads = _backward_op(q, k, g, lam, M0, z0, m0, [u, z, m, S_st, z_st], [MT, zT, mT], dqt, dMT, dzT, dmT,
                             ctx.center, layout_tables, ctx.chunk_size)
        return (*grads, None, None, None, None)


def ccq_contract_query(
    q: torch.Tensor, khat: torch.Tensor, g: torch.Tensor, lam: torch.Tensor, *,
    M0: torch.Tensor | None = None, z0: torch.Tensor | None = None, m0: torch.Tensor | None = None,
    center: bool = False, output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
):
    """q̃ = q − λ Σ_t q [B, T, H, K] (q.dtype) and the final statistics (M_T [N, H, K, K], z_T [N, H],
    m_T [N, H, K] or None; fp32) when output_final_state, else None.

    q, khat [B, T, H, K] (khat unit keys, cast to q's dtype); g [B, T, H] log γ (<= 0); lam [B, T, H];
    M0 [N, H, K, K], z0 [N, H], m0 [N, H, K] initial statistics (None = zeros; m0 used only with center).
    chunk_size: 16, 32 or 64 (the small ones are for tests).
    """
    if chunk_size not in (16, 32, 64):
        raise ValueError(f"chunk_size: expected 16, 32 or 64, got {chunk_size}")

    def prep(x):
        return x.float().contiguous() if x is not None else None

    q_tilde, MT, zT, mT = CCQStatsFunction.apply(
        q.contiguous(), khat.to(q.dtype).contiguous(), g.float().contiguous(), lam.contiguous(),
        prep(M0), prep(z0), prep(m0) if center else None, bool(center), bool(output_final_state), cu_seqlens,
        chunk_size)
    return q_tilde, ((MT, zT, mT) if output_final_state else None)


def contract_query_from_state(q, khat, log_gamma, lam, state, *, center: bool, output_final_state: bool,
                              cu_seqlens=None, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """`ccq_contract_query` with the initial statistics taken from a CCQState (or None for zeros)."""
    return ccq_contract_query(
        q, khat.to(q.dtype), log_gamma, lam,
        M0=state.M if state is not None else None, z0=state.z if state is not None else None,
        m0=getattr(state, "m", None) if state is not None else None, center=center,
        output_final_state=output_final_state, cu_seqlens=cu_seqlens, chunk_size=chunk_size)
