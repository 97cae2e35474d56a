"""Shared memory, registers and spill stack of linmem's Triton kernels, compiled for sm_90 without a GPU.

    python benchmarks/kernel_resources.py [--head-dims 64,128,256] [--gla-warps 8]

Triton compiles to a cubin offline (its bundled ptxas), and `cuobjdump --dump-resource-usage` reads the
register count and the per-thread stack (spills) from it. Use it to choose tiles before spending GPU
time: a kernel at 255 registers with a stack is spilling, and shared memory above about 227 KB per block
does not launch on an H100/H200. The numbers are for this machine's Triton, not necessarily the GPU host's.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
CUOBJDUMP = os.path.join(os.path.dirname(triton.backends.nvidia.__file__), "bin", "cuobjdump")


def resources(fn, pointers: dict, constexprs: dict, num_warps: int, num_stages: int) -> dict:
    """{"smem", "regs", "stack"} of `fn` built for sm_90. pointers: name -> "*bf16" / "*fp32" / None (absent);
    other arguments not in constexprs are i32 (`scale`, `max_exponent` and `eps` fp32)."""
    signature, values = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in constexprs or (name in pointers and pointers[name] is None):
            signature[name] = "constexpr"
            values[(i,)] = constexprs.get(name)
        else:
            signature[name] = pointers.get(name, "fp32" if name in ("scale", "max_exponent", "eps") else "i32")
    kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=values), target=TARGET,
                            options={"num_warps": num_warps, "num_stages": num_stages})
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as f:
        f.write(kernel.asm["cubin"])
    dump = subprocess.run([CUOBJDUMP, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    os.unlink(f.name)
    use = dict(re.findall(r"(REG|STACK):(\d+)", dump))
    return {"smem": kernel.metadata.shared, "regs": int(use["REG"]), "stack": int(use["STACK"])}


def ccq_statistic_kernels(K: int):
    """(label, fn, pointers, constexprs, warps, stages) of the CCQ statistic kernels as linmem launches them."""
    from linmem.kernels.ccq import triton_stats as host
    from linmem.kernels.ccq import triton_stats_kernels as kernels

    f32, bf16 = "*fp32", "*bf16"
    kp, bv_state, fwd, bwd = host._split_tiles(K)  # the LINMEM_CCQ_CHUNK_* and _FWD_* variables apply here too
    # without centring, the default (ccq_center=False) that the benchmarks time
    common = dict(H=16, K=K, BT=64, KP=kp, CENTER=False, IS_VARLEN=False, PREC="tf32")
    starts = dict(M0=None, z0=None, m0=None, MT=None, zT=None, mT=None, cu_seqlens=None, chunk_offsets=None,
                  table=None)
    yield ("forward recurrence", kernels.ccq_stats_fwd_state_kernel, dict(starts, k=bf16, g=f32, S_st=bf16,
                                                                           z_st=f32, m_st=f32),
           dict(common, BV=bv_state, HAS_M0=False, HAS_Z0=False, HAS_MM0=False, STORE_FINAL=False), 8, 3)
    yield ("forward outputs", kernels.ccq_stats_fwd_chunk_kernel,
           dict(starts, q=bf16, k=bf16, g=f32, lam=f32, S_st=bf16, z_st=f32, m_st=f32, out=bf16, u_s=f32, z_s=f32,
                m_s=f32), dict(common, BV=fwd.bv, SPLIT=fwd.split, SAVE=True), fwd.warps, fwd.stages)
    grads = dict(q=bf16, k=bf16, g=f32, dqt=bf16, du_scale=f32, dz=f32, dm=None, dMT=None, dzT=None, dmT=None,
                 dM0=None, dz0=None, dm0=None, cu_seqlens=None, chunk_offsets=None, table=None)
    flags = dict(HAS_DMT=False, HAS_DZT=False, HAS_DMMT=False, STORE_D0=False)
    yield ("backward recurrence", kernels.ccq_stats_bwd_state_kernel,
           dict(grads, dS_st=f32, dz_st=f32, dm_st=None), dict(common, BV=bv_state, **flags), 8, 3)
    yield ("backward k gradients", kernels.ccq_stats_bwd_chunk_kernel,
           dict(grads, dS_st=f32, dz_st=f32, dm_st=None, dk=bf16, writer=f32),
           dict(common, BV=bwd.bv), bwd.warps, 1 if kp > 128 else bwd.stages)
    yield ("backward q gradient (Mᵀ)", kernels.ccq_stats_fwd_chunk_kernel,
           dict(starts, q=bf16, k=bf16, g=f32, lam=f32, S_st=bf16, z_st=f32, m_st=None, out=bf16, u_s=None,
                z_s=None, m_s=None),
           dict(common, BV=fwd.bv, SPLIT=fwd.split, SAVE=False, TRANSPOSED=True, ADD_U=False), fwd.warps, fwd.stages)


def gla_kernels(K: int, warps: int | None = None, stages: int = 3):
    """The chunked GLA kernels at K = V, bf16, B8 H16, as triton_chunk.py launches them (its warps unless `warps`;
    `stages` for the kernels outside its launch tables)."""
    from linmem.kernels.gla import triton_chunk as host
    from linmem.kernels.gla import triton_chunk_kernels as kernels

    f32, bf16 = "*fp32", "*bf16"
    bk, _ = host._tiles(K, K)
    base = dict(H=16, K=K, V=K, BT=64, IS_VARLEN=False)
    seq = dict(cu_seqlens=None, chunk_offsets=None)

    def tabled(launch: dict, **constexprs):  # (constexprs with the launch's blocks, warps, stages)
        return dict(base, BK=launch["BK"], BV=launch["BV"], **constexprs), warps or launch["num_warps"], \
            launch["num_stages"]

    def chunk(name: str) -> dict:
        return host._chunk_launch(name, K, K, torch.bfloat16)

    def state(name: str) -> dict:
        return host._state_launch(name, K, K, 16 * 8, torch.bfloat16)

    yield ("gla intra-chunk A", kernels.gla_intra_A_kernel, dict(q=bf16, k=bf16, gcs=f32, A=f32, table=None),
           dict(H=16, K=K, BT=64, BC=host.SUB_CHUNK, BK=bk, BKD=host.DIAGONAL_CHANNELS, IS_VARLEN=False,
                DOT_PREC="tf32"), warps or host.A_WARPS, stages)
    yield ("gla states (forward)", kernels.gla_state_fwd_kernel,
           dict(seq, k=bf16, v=bf16, gcs=f32, h0=None, h=bf16, ht=None),
           *tabled(state("STATE_FWD"), VS=K, HAS_H0=False, STORE_HT=False, DOT_PREC="tf32", MM_FP32=False))
    yield ("gla output", kernels.gla_output_kernel, dict(q=bf16, v=bf16, gcs=f32, A=f32, h=bf16, o=bf16, table=None),
           *tabled(chunk("OUTPUT"), DOT_PREC="tf32"))
    yield ("gla state gradients", kernels.gla_state_bwd_kernel,
           dict(seq, q=bf16, do=bf16, gcs=f32, dht=None, dh=f32, dh0=None),
           *tabled(state("STATE_BWD"), VS=K, HAS_DHT=False, STORE_DH0=False, DOT_PREC="tf32"))
    yield ("gla dA, dv", kernels.gla_bwd_dA_dv_kernel,
           dict(k=bf16, v=bf16, gcs=f32, A=f32, do=bf16, dh=f32, dA=f32, dv=bf16, table=None),
           *tabled(chunk("DA_DV"), VS=K, DOT_PREC="tf32"))
    dqk = dict(q=bf16, k=bf16, gcs=f32, dA=f32, dq_inter=f32, dk_inter=f32,
               dq=bf16, dk=bf16, dg=f32, dg_sub=f32, table=None)
    yield ("gla inter-chunk dq, dk", kernels.gla_bwd_inter_kernel,
           dict(v=bf16, gcs=f32, h=f32, do=bf16, dh=f32, dq_inter=f32, dk_inter=f32, table=None),
           *tabled(chunk("INTER"), VS=K, DOT_PREC="tf32"))
    yield ("gla dq, dk, dgk", kernels.gla_bwd_dqk_kernel, dqk,
           dict(base, BC=host.SUB_CHUNK, BK=bk, DOT_PREC="tf32", MM_FP32=True,
                DIAG_PREC=host._diagonal_precision(torch.bfloat16)), warps or host.DQK_WARPS, stages)


def gdn_kernels(K: int):
    """The Gated DeltaNet WY kernels (also with Q-Delta's probe rows) and the dq/dk read at K = V, bf16, as
    triton_chunk.py launches them; the WY backward also at 8 warps, which was not reproducible on the H200
    (see WY_BWD_NUM_WARPS)."""
    from linmem.kernels.gated_delta_rule import triton_config as host
    from linmem.kernels.gated_delta_rule import triton_output, triton_state, triton_wy

    f32, bf16 = "*fp32", "*bf16"
    bk = min(64, triton.next_power_of_2(K))
    base = dict(H=16, K=K, V=K, BT=64, BK=bk, BV=bk, IS_VARLEN=False, DOT_PREC="tf32", chunk_table=None)
    stages = host._stages(torch.bfloat16)
    wy_fwd = dict(q=bf16, k=bf16, v=bf16, g=f32, beta=f32, lam=f32, gc_out=f32, t_out=f32, x_out=bf16, x=bf16,
                  w_out=bf16, u_out=bf16)
    setting = host._wy_bwd_config()
    fwd_bk = min(host._wy_fwd_block(), triton.next_power_of_2(K))
    wy_warps = host._wy_fwd_warps()
    wu = host._wu_launch(K, K, torch.bfloat16)
    # "qdelta+X": the probe rows stored by wy_A and read by wy_wu and the gates kernel (STORE_PROBE)
    for op, has_lam, stored in (("gdn", False, False), ("qdelta", True, False), ("qdelta+X", True, True)):
        yield (f"{op} wy fwd A", triton_wy.wy_A_kernel, wy_fwd,
               dict(base, BK=fwd_bk, HAS_LAM=has_lam, STORE_X=stored), wy_warps, stages)
        yield (f"{op} wy fwd W/U", triton_wy.wy_wu_kernel, dict(wy_fwd, gc=f32, t_in=f32),
               dict(base, BK=wu.block_k, BV=wu.block_v, HAS_LAM=has_lam, STORED_X=stored), wu.warps, wu.stages)
    yield ("wy fwd solve", triton_wy.wy_solve_kernel, dict(t_io=f32), base, wy_warps, stages)
    gates = dict(q=bf16, k=bf16, v=bf16, beta=f32, lam=f32, gc=f32, t_in=f32, x=bf16, dw=bf16, du=bf16,
                 dgc_part=f32, dv_out=bf16, dg_out=f32, dbeta_out=f32, e_out=bf16)
    keys = dict(q=bf16, k=bf16, beta=f32, lam=f32, gc=f32, t_in=f32, dw=bf16, e_in=bf16, dq_part=f32, dk_part=f32,
                dq_out=bf16, dk_out=bf16, dlam_out=f32)
    key_flags = {n: v for n, v in base.items() if n not in ("V", "BV")}
    for op, has_lam, warps, stored in (("gdn", False, host.WY_BWD_NUM_WARPS, False), ("gdn", False, 8, False),
                                       ("qdelta", True, host.WY_BWD_NUM_WARPS, False),
                                       ("qdelta+X", True, host.WY_BWD_NUM_WARPS, True)):
        gates_bk = min(setting.gates_block, triton.next_power_of_2(K))
        keys_warps = warps if warps == 8 else setting.keys_warps  # the 8-warp rows: both kernels at 8
        yield (f"{op} wy bwd 1/2 ({warps} warps)", triton_wy.wy_bwd_gates_kernel, gates,
               dict(base, BK=gates_bk, BV=gates_bk, NKP=triton.cdiv(K, bk), HAS_LAM=has_lam, STORED_X=stored),
               warps, stages)
        yield (f"{op} wy bwd 2/2 ({keys_warps} warps)", triton_wy.wy_bwd_keys_kernel, keys,
               dict(key_flags, BK=min(setting.keys_block, triton.next_power_of_2(K)), HAS_LAM=has_lam),
               keys_warps, stages)
    dqk = host._dqk_launch(K, K, torch.bfloat16)
    yield ("gdn dq, dk, dw, dg", triton_output.output_dqk_kernel,
           dict(q=bf16, k=bf16, vnew=bf16, h=bf16, dh=bf16, gc=f32, do=bf16, dvnew=bf16, dq_part=f32, dk_part=f32,
                dw_out=bf16, dgc_part=f32), dict(base, BK=dqk.block_k, BV=dqk.block_v), dqk.warps, dqk.stages)
    states = dict(q=bf16, k=bf16, w=bf16, u=bf16, gc=f32, h0=f32, h_out=bf16, vnew_out=bf16, ht_out=f32, do=bf16,
                  dv_local=bf16, dht=f32, dh_out=bf16, dvnew_out=bf16, dh0_out=f32, cu_seqlens="*i32",
                  chunk_offsets="*i32")
    for label, kernel, backward, flags in (
            ("gdn states (forward)", triton_state.state_fwd_kernel, False, dict(HAS_H0=True, STORE_HT=True)),
            ("gdn states (backward)", triton_state.state_bwd_kernel, True, dict(HAS_DHT=True, STORE_DH0=True))):
        sbk, sbv, swarps, sstages = host._state_tiles(K, K, torch.bfloat16, 16 * 8, backward=backward)
        pointers = {n: t for n, t in states.items() if n in kernel.arg_names}
        yield (label, kernel, pointers, dict(base, BK=sbk, BV=sbv, **flags), swarps, sstages)


def norm_kernels(K: int):
    """The fused RMSNorm kernels at rows of K and of the 340M model's width 1024, gated and plain."""
    from linmem.kernels.norm import triton_norm as host

    for D in sorted({K, 1024}):
        rows, width = host._tile(D)
        for gated in (False, True):
            name = f"{'gated ' if gated else ''}rms norm D{D}"
            gate = "*bf16" if gated else None
            shapes = dict(BR=rows, BD=width, HAS_GATE=gated)
            yield (f"{name} (forward)", host.rms_norm_fwd_kernel,
                   dict(x="*bf16", gate=gate, w="*bf16", y="*bf16", rstd_out="*fp32"), shapes, host.WARPS, 1)
            yield (f"{name} (backward)", host.rms_norm_bwd_kernel,
                   dict(x="*bf16", gate=gate, w="*bf16", rstd_in="*fp32", dy="*bf16", dx="*bf16", dgate=gate,
                        dw_part="*fp32"), dict(shapes, HAS_DW=True), host.WARPS, 1)


def conv_and_loss_kernels():
    """The short convolution's kernels (the 340M value conv, D 1024, width 4, SiLU, dense) as triton_conv.py launches
    them, the one-kernel backward included, and the cross-entropy kernel of the fused loss (bf16 logits)."""
    from linmem.kernels.conv import triton_conv as conv
    from linmem.kernels.loss import triton_ce

    fwd, bwd = conv.FWD_LAUNCH, conv.BWD_LAUNCH
    dense = dict(W=4, HAS_H0=False, IS_VARLEN=False, h0=None, seq_idx=None, cu=None)
    pointers = dict(x="*bf16", w="*bf16", bias=None, dy="*bf16", dpre="*fp32", dx="*bf16", dw_part="*fp32",
                    db_part="*fp32")
    for grad in (False, True):
        yield (f"conv {'dpre pass' if grad else 'forward'} D1024", conv.causal_conv1d_fwd_kernel,
               dict(pointers, out="*fp32" if grad else "*bf16", dy="*bf16" if grad else None),
               dict(dense, BR=fwd.rows, BD=fwd.channels, HAS_BIAS=False, SILU=True, GRAD=grad), fwd.warps, 1)
    yield ("conv backward D1024", conv.causal_conv1d_bwd_kernel, pointers,
           dict(dense, BR=bwd.rows, BD=bwd.channels), bwd.warps, 1)
    yield ("conv fused backward D1024", conv.causal_conv1d_bwd_fused_kernel, pointers,
           dict(dense, BR=bwd.rows, BD=bwd.channels, HAS_BIAS=False, SILU=True), bwd.warps, 1)
    yield ("cross-entropy V32000", triton_ce.ce_loss_and_grad_kernel,
           dict(logits="*bf16", labels="*i64", denominator="*fp32", loss_rows="*fp32"),
           dict(IGNORE=-100, BV=triton_ce.BLOCK_V), 8, 1)


def kernel_builds(K: int, gla_warps: int | None = None, headless: bool = True) -> list[tuple]:
    """Every (label, fn, pointers, constexprs, warps, stages) this report builds at head dim K; with `headless` also
    the kernels without a head dimension (the convolution's and the loss's)."""
    return (list(ccq_statistic_kernels(K)) + list(gla_kernels(K, gla_warps)) + list(gdn_kernels(K))
            + list(norm_kernels(K)) + (list(conv_and_loss_kernels()) if headless else []))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--head-dims", default="64,128,256")
    parser.add_argument("--gla-warps", type=int, default=None, help="try the GLA kernels with this many warps")
    args = parser.parse_args()
    print(f"{'kernel':32s} {'K':>4s} {'smem KB':>8s} {'regs':>5s} {'stack B':>8s}")
    for index, K in enumerate(int(k) for k in args.head_dims.split(",")):
        for label, fn, pointers, constexprs, warps, stages in kernel_builds(K, args.gla_warps, headless=index == 0):
            try:
                r = resources(fn, pointers, constexprs, warps, stages)
                print(f"{label:32s} {K:4d} {r['smem'] / 1024:8.1f} {r['regs']:5d} {r['stack']:8d}", flush=True)
            except Exception as error:  # a kernel that does not build is a result too
                print(f"{label:32s} {K:4d} failed to build: {str(error)[:120]}", flush=True)


if __name__ == "__main__":
    main()
