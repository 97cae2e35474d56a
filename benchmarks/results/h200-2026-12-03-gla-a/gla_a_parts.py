"""Where does gla_intra_A_kernel's time go? Variants of its off-diagonal and diagonal parts, timed alone (H200)."""
import json, os, sys, itertools
import torch, triton, triton.language as tl
from triton.testing import do_bench
from linmem.kernels.gla.triton_chunk_kernels import _tile, _row, _mm, _diagonal_block
from linmem.kernels.triton_layout import chunk_span


@triton.jit
def _diag_rows(q, k, gcs, first, t1, i_h, H: tl.constexpr, K: tl.constexpr, KP: tl.constexpr, BC: tl.constexpr):
    r_c = tl.arange(0, BC)
    rows = first + r_c
    rm = rows < t1
    offs = tl.arange(0, KP)
    qs = _tile(q, rows, rm, i_h, H, K, offs)
    gs = _tile(gcs, rows, rm, i_h, H, K, offs)
    block = tl.zeros([BC, BC], tl.float32)
    for j in range(0, BC):
        valid = first + j < t1
        kj = _row(k, first + j, valid, i_h, H, K, offs)
        gj = _row(gcs, first + j, valid, i_h, H, K, offs)
        col = tl.sum(qs * kj[None, :] * tl.exp(tl.where(rm[:, None], gs - gj[None, :], 0.0)), 1)
        col = tl.where(r_c >= j, col, 0.0)
        block = tl.where(r_c[None, :] == j, col[:, None], block)
    return block


@triton.jit
def _diag_split(q, k, gcs, first, t1, i_h, H: tl.constexpr, K: tl.constexpr, KP: tl.constexpr, BC: tl.constexpr,
                DT: tl.constexpr, DOT_PREC: tl.constexpr):
    r_c = tl.arange(0, BC)
    rows = first + r_c
    rm = rows < t1
    offs = tl.arange(0, KP)
    qs = _tile(q, rows, rm, i_h, H, K, offs)
    ks = _tile(k, rows, rm, i_h, H, K, offs)
    gs = _tile(gcs, rows, rm, i_h, H, K, offs)
    g0 = _row(gcs, first, first < t1, i_h, H, K, offs)
    qd = qs * tl.exp(gs - g0[None, :])
    kd = ks * tl.exp(g0[None, :] - gs)
    b = _mm(qd, tl.trans(kd), DT, DOT_PREC)
    return tl.where(r_c[:, None] >= r_c[None, :], b, 0.0)


@triton.jit
def a_kernel(q, k, gcs, A, table, T, NT, scale, H: tl.constexpr, K: tl.constexpr, KP: tl.constexpr, BT: tl.constexpr,
             BC: tl.constexpr, BK: tl.constexpr, BKD: tl.constexpr, IS_VARLEN: tl.constexpr, DOT_PREC: tl.constexpr,
             OFF: tl.constexpr, DIAG: tl.constexpr):
    i_r, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    t0, t1, _ = chunk_span(i_c, i_b, T, NT, table, IS_VARLEN, BT)
    DT = q.dtype.element_ty
    r_t = tl.arange(0, BT)
    r_c = tl.arange(0, BC)
    first = t0 + i_r * BC
    srows = first + r_c
    sm = srows < t1
    keys = t0 + r_t
    before = (keys < t1) & (r_t < i_r * BC)
    in_block = (r_t >= i_r * BC) & (r_t < i_r * BC + BC)
    ref = tl.minimum(first - 1, t1 - 1)
    if OFF == 1:
        acc = tl.zeros([BC, BT], tl.float32)
        if i_r > 0:
            for kb in range(0, tl.cdiv(K, BK)):
                offs_k = kb * BK + tl.arange(0, BK)
                qs = _tile(q, srows, sm, i_h, H, K, offs_k)
                gs = _tile(gcs, srows, sm, i_h, H, K, offs_k)
                g_ref = _row(gcs, ref, t1 > t0, i_h, H, K, offs_k)
                qd = tl.where(sm[:, None], qs * tl.exp(tl.where(sm[:, None], gs - g_ref[None, :], 0.0)), 0.0)
                kt = _tile(k, keys, before, i_h, H, K, offs_k)
                gt = _tile(gcs, keys, before, i_h, H, K, offs_k)
                kd = tl.where(before[:, None], kt * tl.exp(tl.where(before[:, None], g_ref[None, :] - gt, 0.0)), 0.0)
                acc += _mm(qd, tl.trans(kd), DT, DOT_PREC)
        tl.store(A + (srows[:, None] * H + i_h) * BT + r_t[None, :], acc * scale, mask=sm[:, None] & ~in_block[None, :])
    if OFF == 2:  # whole-K q tile once, then one [BC, KP] x [KP, BC] product per earlier sub-chunk
        offs = tl.arange(0, KP)
        g_ref = _row(gcs, ref, t1 > t0, i_h, H, K, offs)
        qs = _tile(q, srows, sm, i_h, H, K, offs)
        gs = _tile(gcs, srows, sm, i_h, H, K, offs)
        qd = tl.where(sm[:, None], qs * tl.exp(tl.where(sm[:, None], gs - g_ref[None, :], 0.0)), 0.0).to(DT)
        for s in range(0, i_r):
            krows = t0 + s * BC + r_c
            km = krows < t1
            kt = _tile(k, krows, km, i_h, H, K, offs)
            gt = _tile(gcs, krows, km, i_h, H, K, offs)
            kd = tl.where(km[:, None], kt * tl.exp(tl.where(km[:, None], g_ref[None, :] - gt, 0.0)), 0.0)
            blk = tl.dot(qd, tl.trans(kd.to(DT)), input_precision=DOT_PREC)
            tl.store(A + (srows[:, None] * H + i_h) * BT + s * BC + r_c[None, :], blk * scale, mask=sm[:, None])
        after = r_t >= i_r * BC + BC
        tl.store(A + (srows[:, None] * H + i_h) * BT + r_t[None, :], tl.zeros([BC, BT], tl.float32),
                 mask=sm[:, None] & after[None, :])
    if DIAG == 1:
        diag = _diagonal_block(q, k, gcs, first, t1, i_h, H, K, BC, BKD)
    elif DIAG == 2:
        diag = _diag_rows(q, k, gcs, first, t1, i_h, H, K, KP, BC)
    elif DIAG == 3:
        diag = _diag_split(q, k, gcs, first, t1, i_h, H, K, KP, BC, DT, DOT_PREC)
    else:
        diag = tl.zeros([BC, BC], tl.float32)
    tl.store(A + (srows[:, None] * H + i_h) * BT + i_r * BC + r_c[None, :], diag * scale, mask=sm[:, None])


def run(B=8, T=4096, H=16, K=128, dtype=torch.bfloat16):
    torch.manual_seed(0)
    q = torch.randn(B, T, H, K, device="cuda", dtype=dtype)
    k = torch.randn(B, T, H, K, device="cuda", dtype=dtype)
    gk = torch.nn.functional.logsigmoid(torch.randn(B, T, H, K, device="cuda")) / 16
    BT, BC = 64, 16
    gcs = gk.view(B, T // BT, BT, H, K).cumsum(2).view(B, T, H, K).contiguous()
    rows = []
    ref = None
    for warps, (off, diag) in itertools.product((4, 8), ((1, 1), (1, 0), (0, 1), (0, 2), (0, 3), (2, 0), (2, 1), (2, 2), (0, 0))):
        A = torch.full((B, T, H, BT), float("nan"), device="cuda")
        f = lambda: a_kernel[(BT // BC, T // BT, B * H)](q, k, gcs, A, None, T, T // BT, K ** -0.5, H=H, K=K,
                                                        KP=triton.next_power_of_2(K), BT=BT, BC=BC, BK=64, BKD=16,
                                                        IS_VARLEN=False, DOT_PREC="tf32", OFF=off, DIAG=diag,
                                                        num_warps=warps)
        try:
            f(); torch.cuda.synchronize()
            ms = do_bench(f, warmup=25, rep=100)
        except Exception as e:
            print(warps, off, diag, "failed", repr(e)[:200]); continue
        err = None
        if off and diag:
            if ref is None:
                ref = A.clone()
            err = ((A - ref).norm() / ref.norm()).item()
        rows.append(dict(warps=warps, off=off, diag=diag, ms=ms, rel_err_vs_first=err))
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    out = os.environ.get("OUT", ".")
    rows = run()
    json.dump(dict(device=torch.cuda.get_device_name(), triton=triton.__version__, torch=torch.__version__,
                   shape="B8 T4096 H16 K128 bf16, gk = logsigmoid/16", rows=rows), open(f"{out}/gla_a_parts.json", "w"), indent=1)
