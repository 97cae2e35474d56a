"""WY/UT representation of one chunk of the (probe-)delta rule, forward and backward Triton kernels.

Per chunk of BT tokens (G = within-chunk cumsum of g, X = probe rows: X = K for Gated DeltaNet,
X = K + diag(lam) Q for Q-Delta):
    A = strict_lower(diag(beta) (Gamma o X K^T)),  Gamma_ij = exp(G_i - G_j)
    T = (I + A)^-1,  W = T diag(beta e^G) X,  U = T diag(beta) V
The inverse is built from four BC = BT/4 diagonal blocks (each by repeated squaring)
joined by block products; A, W and U are whole-chunk tensor-core products.

The backward never applies tl.trans to an fp32 tile or to a dot result: T^T is loaded through transposed
addresses and the transposed [BT, BT] products (dT^T, dA^T) get their own tl.dot. On Hopper with Triton
3.4+ a transposed MMA-layout tensor fed to another dot is miscompiled (fla issue #640: dg, dbeta off by
a few %). Even so, at 8 warps a fused one-kernel backward gave dg/dbeta that changed from call to call on the
H200 (Triton 3.6); the backward is now two kernels at 2 warps (triton_config.WY_BWD_NUM_WARPS).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..triton_layout import chunk_rows
from .triton_common import load_gate, load_rows, store_rows


@triton.jit
def _inv_unit_lower(a, BC: tl.constexpr):
    """(I + a)^-1 for a strictly lower-triangular fp32 [BC, BC] tile, BC <= 16, by repeated squaring: N = -a is
    nilpotent (N^16 = 0 exactly, by structure), so (I + a)^-1 = (I + N)(I + N^2)(I + N^4)(I + N^8): six small
    products with fp32 (ieee) operands. A 16-step row-by-row substitution made GDN's forward 2.03 ms at B8 T4K on
    the H200; this makes it 1.41 ms (benchmarks/results/kernel-forms-h200.json)."""
    tl.static_assert(BC <= 16, "three squarings invert a nilpotent part of order <= 16 only")
    r = tl.arange(0, BC)
    eye = (r[:, None] == r[None, :]).to(tl.float32)
    power = -a
    t = eye + power
    for _ in tl.static_range(3):
        power = tl.dot(power, power, input_precision="ieee")
        t = tl.dot(t, eye + power, input_precision="ieee")
    return t


@triton.jit
def _invert_blocks(a10, a20, a21, a30, a31, a32, t00, t11, t22, t33, DOT_PREC: tl.constexpr):
    """The six off-diagonal [BC, BC] blocks of T = (I + A)^-1 from those of the strictly lower A and the inverted
    diagonal blocks t_ii = inv(I + A_ii) (_inv_unit_lower): T_ij = -T_ii sum_{j <= l < i} A_il T_lj. fp32."""
    t10 = -tl.dot(t11, tl.dot(a10, t00, input_precision=DOT_PREC), input_precision=DOT_PREC)
    t21 = -tl.dot(t22, tl.dot(a21, t11, input_precision=DOT_PREC), input_precision=DOT_PREC)
    t32 = -tl.dot(t33, tl.dot(a32, t22, input_precision=DOT_PREC), input_precision=DOT_PREC)
    t20 = -tl.dot(t22, tl.dot(a20, t00, input_precision=DOT_PREC)
                  + tl.dot(a21, t10, input_precision=DOT_PREC), input_precision=DOT_PREC)
    t31 = -tl.dot(t33, tl.dot(a31, t11, input_precision=DOT_PREC)
                  + tl.dot(a32, t21, input_precision=DOT_PREC), input_precision=DOT_PREC)
    t30 = -tl.dot(t33, tl.dot(a30, t00, input_precision=DOT_PREC)
                  + tl.dot(a31, t10, input_precision=DOT_PREC)
                  + tl.dot(a32, t20, input_precision=DOT_PREC), input_precision=DOT_PREC)
    return t10, t20, t21, t30, t31, t32


@triton.jit
def _lam_rows(lam, tok, m, i_h, H: tl.constexpr, HAS_LAM: tl.constexpr):
    """lam of the chunk's rows, fp32 [R] (zeros without HAS_LAM: Gated DeltaNet reads nothing)."""
    if HAS_LAM:
        lr = load_gate(lam, tok, m, i_h, H)
    else:
        lr = tl.zeros_like(tok).to(tl.float32)
    return lr


@triton.jit
def _probe_rows(q, k, lr, tok, m, i_h, offs_k, H: tl.constexpr, K: tl.constexpr, HAS_LAM: tl.constexpr):
    """(k rows, q rows, probe rows x = k + lr q) as fp32 [R, BK], lr the rows' lam (_lam_rows). Without HAS_LAM
    q is not read: its rows are returned as the k rows, and x = k."""
    kr = load_rows(k, tok, m, i_h, H, K, offs_k).to(tl.float32)
    if HAS_LAM:
        qr = load_rows(q, tok, m, i_h, H, K, offs_k).to(tl.float32)
        xr = kr + lr[:, None] * qr
    else:
        qr = kr
        xr = kr
    return kr, qr, xr


@triton.jit
def _key_and_probe_rows(q, k, x, lr, tok, m, i_h, offs_k, H: tl.constexpr, K: tl.constexpr, HAS_LAM: tl.constexpr,
                        STORED_X: tl.constexpr):
    """(k rows, probe rows) as fp32 [R, BK]: the probe read from x, where wy_A_kernel stored it (STORED_X, Q-Delta
    only), or formed from k, q and lr as _probe_rows does (lr unused, and its load dropped, with STORED_X)."""
    if STORED_X:
        kr = load_rows(k, tok, m, i_h, H, K, offs_k).to(tl.float32)
        xr = load_rows(x, tok, m, i_h, H, K, offs_k).to(tl.float32)
    else:
        kr, qr, xr = _probe_rows(q, k, lr, tok, m, i_h, offs_k, H, K, HAS_LAM)
    return kr, xr


@triton.jit
def _load_block(t_io, tok, m, i_h, col0, H: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr):
    """[BC, BC] fp32 sub-block at rows `tok`, columns col0 .. col0 + BC of a [*, H, BT] buffer."""
    return tl.load(t_io + (tok[:, None] * H + i_h) * BT + col0 + tl.arange(0, BC)[None, :],
                   mask=m[:, None], other=0.0)


@triton.jit
def _store_block_row(t_io, tok, m, i_h, H: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, b0, b1, b2, b3):
    """One row of four [BC, BC] blocks (columns 0 .. BT) at rows `tok` of a [*, H, BT] buffer."""
    rc = tl.arange(0, BC)
    store_rows(t_io, b0, tok, m, i_h, H, BT, rc)
    store_rows(t_io, b1, tok, m, i_h, H, BT, BC + rc)
    store_rows(t_io, b2, tok, m, i_h, H, BT, 2 * BC + rc)
    store_rows(t_io, b3, tok, m, i_h, H, BT, 3 * BC + rc)


# The forward runs as three kernels: A (wy_A_kernel), the block inverse in place (wy_solve_kernel), then W and U with
# one program per key or value block (wy_wu_kernel). One 8-warp program per chunk doing all three (242 registers per
# thread on sm_90: one program per SM) took GDN's forward 1.365 ms at B16 T2K on the H200 against 1.097 for these
# (benchmarks/results/h200-2026-12-03-ccq-bwd/gdn-*).

@triton.jit
def wy_A_kernel(q, k, g, beta, lam, gc_out, t_out, x_out, chunk_table, T, NT, H: tl.constexpr, K: tl.constexpr,
                BT: tl.constexpr, BK: tl.constexpr, HAS_LAM: tl.constexpr, STORE_X: tl.constexpr,
                IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr):
    """Grid (chunk slots, B*H). Writes G (fp32) and A = strict_lower(diag(beta) (Gamma o X K^T)) into t_out
    (fp32 [*, H, BT]), where wy_solve_kernel inverts it; with STORE_X also the probe rows X in x_out (k's dtype,
    [B, T, H, K]) for the W/U and the backward's gates kernels."""
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_h, t0, t1, slot, r, tok, m = chunk_rows(i_c, i_bh, chunk_table, T, NT, H, BT, IS_VARLEN)
    dt = k.dtype.element_ty
    gk = tl.cumsum(load_gate(g, tok, m, i_h, H), 0)
    tl.store(gc_out + tok * H + i_h, gk, mask=m)
    b = load_gate(beta, tok, m, i_h, H)
    lr = _lam_rows(lam, tok, m, i_h, H, HAS_LAM)
    a = tl.zeros([BT, BT], tl.float32)
    for i_k in range(0, tl.cdiv(K, BK)):
        offs_k = i_k * BK + tl.arange(0, BK)
        kr, qr, xr = _probe_rows(q, k, lr, tok, m, i_h, offs_k, H, K, HAS_LAM)
        if STORE_X:  # Q-Delta only (HAS_LAM)
            store_rows(x_out, xr, tok, m, i_h, H, K, offs_k)
        a += tl.dot(xr.to(dt), tl.trans(kr.to(dt)), input_precision=DOT_PREC)
    strict = (r[:, None] > r[None, :]) & m[:, None] & m[None, :]
    a = tl.where(strict, a * b[:, None] * tl.exp(tl.where(strict, gk[:, None] - gk[None, :], 0.0)), 0.0)
    store_rows(t_out, a, tok, m, i_h, H, BT, r)


@triton.jit
def wy_solve_kernel(t_io, chunk_table, T, NT, H: tl.constexpr, BT: tl.constexpr, IS_VARLEN: tl.constexpr,
                    DOT_PREC: tl.constexpr):
    """Grid (chunk slots, B*H). The chunk's A -> T = (I + A)^-1 in place, by blocks (_inv_unit_lower,
    _invert_blocks). The program's own rows of t_io are scratch: every read of A is done (barrier) before T
    overwrites it."""
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_h, t0, t1, slot, r, tok, m = chunk_rows(i_c, i_bh, chunk_table, T, NT, H, BT, IS_VARLEN)
    BC: tl.constexpr = BT // 4
    rc = tl.arange(0, BC)
    tk0, tk1, tk2, tk3 = t0 + rc, t0 + BC + rc, t0 + 2 * BC + rc, t0 + 3 * BC + rc
    m0, m1, m2, m3 = tk0 < t1, tk1 < t1, tk2 < t1, tk3 < t1
    a10 = _load_block(t_io, tk1, m1, i_h, 0, H, BT, BC)
    a20 = _load_block(t_io, tk2, m2, i_h, 0, H, BT, BC)
    a21 = _load_block(t_io, tk2, m2, i_h, BC, H, BT, BC)
    a30 = _load_block(t_io, tk3, m3, i_h, 0, H, BT, BC)
    a31 = _load_block(t_io, tk3, m3, i_h, BC, H, BT, BC)
    a32 = _load_block(t_io, tk3, m3, i_h, 2 * BC, H, BT, BC)
    t00 = _inv_unit_lower(_load_block(t_io, tk0, m0, i_h, 0, H, BT, BC), BC)
    t11 = _inv_unit_lower(_load_block(t_io, tk1, m1, i_h, BC, H, BT, BC), BC)
    t22 = _inv_unit_lower(_load_block(t_io, tk2, m2, i_h, 2 * BC, H, BT, BC), BC)
    t33 = _inv_unit_lower(_load_block(t_io, tk3, m3, i_h, 3 * BC, H, BT, BC), BC)
    t10, t20, t21, t30, t31, t32 = _invert_blocks(a10, a20, a21, a30, a31, a32, t00, t11, t22, t33, DOT_PREC)
    tl.debug_barrier()
    zero = tl.zeros([BC, BC], tl.float32)
    _store_block_row(t_io, tk0, m0, i_h, H, BT, BC, t00, zero, zero, zero)
    _store_block_row(t_io, tk1, m1, i_h, H, BT, BC, t10, t11, zero, zero)
    _store_block_row(t_io, tk2, m2, i_h, H, BT, BC, t20, t21, t22, zero)
    _store_block_row(t_io, tk3, m3, i_h, H, BT, BC, t30, t31, t32, t33)


@triton.jit
def wy_wu_kernel(q, k, v, beta, lam, gc, t_in, x, w_out, u_out, chunk_table, T, NT, H: tl.constexpr,
                 K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                 HAS_LAM: tl.constexpr, STORED_X: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr):
    """Grid (cdiv(K, BK) + cdiv(V, BV), chunk slots, B*H): one key block of W = T diag(beta e^G) X or one value
    block of U = T diag(beta) V, with T (from wy_solve_kernel) in the input dtype."""
    i_blk, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_h, t0, t1, slot, r, tok, m = chunk_rows(i_c, i_bh, chunk_table, T, NT, H, BT, IS_VARLEN)
    dt = k.dtype.element_ty
    tm = load_rows(t_in, tok, m, i_h, H, BT, r).to(dt)
    b = load_gate(beta, tok, m, i_h, H)
    n_key_blocks = tl.cdiv(K, BK)
    if i_blk < n_key_blocks:
        s = b * tl.where(m, tl.exp(load_gate(gc, tok, m, i_h, H)), 0.0)
        offs_k = i_blk * BK + tl.arange(0, BK)
        lr = _lam_rows(lam, tok, m, i_h, H, HAS_LAM)
        kr, xr = _key_and_probe_rows(q, k, x, lr, tok, m, i_h, offs_k, H, K, HAS_LAM, STORED_X)
        store_rows(w_out, tl.dot(tm, (xr * s[:, None]).to(dt), input_precision=DOT_PREC), tok, m, i_h, H, K, offs_k)
    else:
        offs_v = (i_blk - n_key_blocks) * BV + tl.arange(0, BV)
        y = (load_rows(v, tok, m, i_h, H, V, offs_v).to(tl.float32) * b[:, None]).to(v.dtype.element_ty)
        store_rows(u_out, tl.dot(tm, y, input_precision=DOT_PREC), tok, m, i_h, H, V, offs_v)


@triton.jit
def _load_transposed(ptr, tok, m, r, i_h, H: tl.constexpr, BT: tl.constexpr):
    """The transpose of a chunk's [BT, BT] block of a [*, H, BT] buffer, read through transposed addresses
    (never tl.trans of a computed tile: see the module doc)."""
    return tl.load(ptr + (tok[None, :] * H + i_h) * BT + r[:, None], mask=m[None, :], other=0.0)


@triton.jit
def _finish_gate_gradients(d_ag, b, xk, dbeta, dgv, dgc_part, dg_out, dbeta_out, tok, m, i_h, H: tl.constexpr,
                           NKP: tl.constexpr, NTOK):
    """Adds the dA terms to dbeta and dG, the output/state kernels' dG partials too, stores dg (the reverse
    cumsum of dG inside the chunk, since G is the cumsum of g) and dbeta; returns E = dA o Gamma diag(beta).
    d_ag = strict(-dA o Gamma) [BT, BT] fp32; xk = X K^T."""
    dbeta += tl.sum(d_ag * xk, 1)
    e = d_ag * b[:, None]
    pr = e * xk
    dgv += tl.sum(pr, 1) - tl.sum(pr, 0)
    for i_p in range(0, NKP):
        dgv += tl.load(dgc_part + (i_p * NTOK + tok) * H + i_h, mask=m, other=0.0)
    dg = tl.sum(dgv, 0) - tl.cumsum(dgv, 0) + dgv
    tl.store(dg_out + tok * H + i_h, dg.to(dg_out.dtype.element_ty), mask=m)
    tl.store(dbeta_out + tok * H + i_h, dbeta.to(dbeta_out.dtype.element_ty), mask=m)
    return e


@triton.jit
def _wy_key_gradients(q, k, lam, dw, dq_part, dk_part, dq_out, dk_out, dlam_out, tok, m, i_h, tmc_t, s, ec, ec_t,
                      H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, HAS_LAM: tl.constexpr,
                      DOT_PREC: tl.constexpr):
    """The last step of the WY backward, per key block: dX = T^T dW diag(s) + E K, dk = dk_part + dX + E^T X,
    dq = dq_part (+ lam dX), dlam = sum(dX q). ec = E, ec_t = E^T in the input dtype, [BT, BT]."""
    dlam = tl.zeros([BT], tl.float32)
    lr = _lam_rows(lam, tok, m, i_h, H, HAS_LAM)
    for i_k in range(0, tl.cdiv(K, BK)):
        offs_k = i_k * BK + tl.arange(0, BK)
        kr, qr, xr = _probe_rows(q, k, lr, tok, m, i_h, offs_k, H, K, HAS_LAM)
        dwr = load_rows(dw, tok, m, i_h, H, K, offs_k)
        dx = tl.dot(tmc_t, dwr, input_precision=DOT_PREC) * s[:, None]
        dx += tl.dot(ec, kr.to(ec.dtype), input_precision=DOT_PREC)
        dk = load_rows(dk_part, tok, m, i_h, H, K, offs_k) + dx
        dk += tl.dot(ec_t, xr.to(ec.dtype), input_precision=DOT_PREC)
        store_rows(dk_out, dk, tok, m, i_h, H, K, offs_k)
        dq = load_rows(dq_part, tok, m, i_h, H, K, offs_k)
        if HAS_LAM:
            dq += lr[:, None] * dx
            dlam += tl.sum(dx * qr, 1)
        store_rows(dq_out, dq, tok, m, i_h, H, K, offs_k)
    if HAS_LAM:
        tl.store(dlam_out + tok * H + i_h, dlam.to(dlam_out.dtype.element_ty), mask=m)


# The backward runs as two kernels. A single fused kernel kept five [BT, BT] fp32 tiles live (T, T^T, dT, dT^T,
# X K^T); at 8 warps it was miscompiled on the H200 (dg/dbeta changed from call to call), and at the 2 warps that
# fixed it, it spilled ~14 KB per thread and took GDN fwd+bwd (B8 T4K) to 9.5 ms. Part 1 here keeps three tiles:
# it accumulates dT only and passes E = strict(-dA o Gamma) diag(beta) to part 2 through a [*, H, BT] buffer in the
# input dtype, which part 2 reads both as E and, through transposed addresses, as E^T (no tl.trans of a computed
# tile). At 2 warps the pair is bitwise reproducible and takes GDN fwd+bwd to 5.5 ms
# (benchmarks/results/gdn-wy-bwd-configs-h200.json).


@triton.jit
def wy_bwd_gates_kernel(
    q, k, v, beta, lam, gc, t_in, x, dw, du, dgc_part, dv_out, dg_out, dbeta_out, e_out, chunk_table, T, NT, NTOK,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, NKP: tl.constexpr, HAS_LAM: tl.constexpr, STORED_X: tl.constexpr, IS_VARLEN: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    """Grid (chunk slots, B*H). Part 1 of the split WY backward: dv, dg, dbeta, and E for part 2."""
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_h, t0, t1, slot, r, tok, m = chunk_rows(i_c, i_bh, chunk_table, T, NT, H, BT, IS_VARLEN)
    dt = k.dtype.element_ty

    gk = load_gate(gc, tok, m, i_h, H)
    b = load_gate(beta, tok, m, i_h, H)
    eg = tl.where(m, tl.exp(gk), 0.0)
    s = b * eg
    tm_t = _load_transposed(t_in, tok, m, r, i_h, H, BT)
    tmc_t = tm_t.to(dt)
    lr = _lam_rows(lam, tok, m, i_h, H, HAS_LAM)

    d_t = tl.zeros([BT, BT], tl.float32)
    xk = tl.zeros([BT, BT], tl.float32)
    dbeta = tl.zeros([BT], tl.float32)
    dgv = tl.zeros([BT], tl.float32)
    for i_k in range(0, tl.cdiv(K, BK)):
        offs_k = i_k * BK + tl.arange(0, BK)
        kr, xr = _key_and_probe_rows(q, k, x, lr, tok, m, i_h, offs_k, H, K, HAS_LAM, STORED_X)
        dwr = load_rows(dw, tok, m, i_h, H, K, offs_k)
        d_t += tl.dot(dwr, tl.trans((xr * s[:, None]).to(dt)), input_precision=DOT_PREC)
        red = tl.sum(xr * tl.dot(tmc_t, dwr, input_precision=DOT_PREC), 1)
        dbeta += red * eg
        dgv += red * s
        xk += tl.dot(xr.to(dt), tl.trans(kr.to(dt)), input_precision=DOT_PREC)
    for i_v in range(0, tl.cdiv(V, BV)):
        offs_v = i_v * BV + tl.arange(0, BV)
        vr = load_rows(v, tok, m, i_h, H, V, offs_v).to(tl.float32)
        dur = load_rows(du, tok, m, i_h, H, V, offs_v)
        d_t += tl.dot(dur, tl.trans((vr * b[:, None]).to(dt)), input_precision=DOT_PREC)
        tdu = tl.dot(tmc_t, dur, input_precision=DOT_PREC)
        store_rows(dv_out, tdu * b[:, None], tok, m, i_h, H, V, offs_v)
        dbeta += tl.sum(vr * tdu, 1)

    strict = (r[:, None] > r[None, :]) & m[:, None] & m[None, :]
    d_a = tl.dot(tl.dot(tm_t, d_t, input_precision=DOT_PREC), tm_t, input_precision=DOT_PREC)
    d_ag = tl.where(strict, -d_a * tl.exp(tl.where(strict, gk[:, None] - gk[None, :], 0.0)), 0.0)
    e = _finish_gate_gradients(d_ag, b, xk, dbeta, dgv, dgc_part, dg_out, dbeta_out, tok, m, i_h, H, NKP, NTOK)
    store_rows(e_out, e, tok, m, i_h, H, BT, r)


@triton.jit
def wy_bwd_keys_kernel(
    q, k, beta, lam, gc, t_in, dw, e_in, dq_part, dk_part, dq_out, dk_out, dlam_out, chunk_table, T, NT,
    H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, HAS_LAM: tl.constexpr,
    IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr,
):
    """Grid (chunk slots, B*H). Part 2 of the split WY backward: dq, dk (and dlam) from part 1's E."""
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_h, t0, t1, slot, r, tok, m = chunk_rows(i_c, i_bh, chunk_table, T, NT, H, BT, IS_VARLEN)
    dt = k.dtype.element_ty

    s = load_gate(beta, tok, m, i_h, H) * tl.where(m, tl.exp(load_gate(gc, tok, m, i_h, H)), 0.0)
    tmc_t = _load_transposed(t_in, tok, m, r, i_h, H, BT).to(dt)
    ec = load_rows(e_in, tok, m, i_h, H, BT, r)
    ec_t = _load_transposed(e_in, tok, m, r, i_h, H, BT)
    _wy_key_gradients(q, k, lam, dw, dq_part, dk_part, dq_out, dk_out, dlam_out, tok, m, i_h, tmc_t, s,
                      ec, ec_t, H, K, BT, BK, HAS_LAM, DOT_PREC)
