"""Offline (no GPU) resource usage of Triton kernels compiled for sm_90: shared memory, registers, stack."""
import os, re, subprocess, tempfile
import triton
from triton.compiler import ASTSource
from triton.backends.compiler import GPUTarget

TARGET = GPUTarget("cuda", 90, 32)
CUOBJDUMP = os.path.join(os.path.dirname(triton.backends.nvidia.__file__), "bin", "cuobjdump")


def build(fn, ptrs: dict, consts: dict, num_warps: int, num_stages: int = 3, label: str = ""):
    """ptrs: name -> '*bf16' etc (None = absent pointer); other non-constexpr args are i32."""
    signature, constexprs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in consts:
            signature[name] = "constexpr"; constexprs[(i,)] = consts[name]
        elif name in ptrs and ptrs[name] is None:
            signature[name] = "constexpr"; constexprs[(i,)] = None
        elif name in ptrs:
            signature[name] = ptrs[name]
        elif name == "scale":
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
    try:
        k = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs), target=TARGET,
                           options={"num_warps": num_warps, "num_stages": num_stages})
    except Exception as e:
        print(f"{label:46s} compile error: {str(e)[:300]}")
        return
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as f:
        f.write(k.asm["cubin"])
    out = subprocess.run([CUOBJDUMP, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    use = dict(re.findall(r"(REG|STACK|LOCAL):(\d+)", out))
    print(f"{label:46s} smem {k.metadata.shared:7d} B  regs {use.get('REG'):>4}  stack {use.get('STACK'):>5}")


if __name__ == "__main__":
    from linmem.kernels.ccq.triton_stats_kernels import ccq_stats_bwd_kernel, ccq_stats_fwd_kernel
    f32 = "*fp32"
    for K, KP, BV, nw in ((64, 64, 64, 4), (128, 128, 64, 8), (128, 128, 64, 4), (128, 128, 32, 4), (256, 256, 64, 8), (256, 256, 32, 8)):
        for ns in (3, 1):
            common = dict(H=16, K=K, BT=64, KP=KP, BV=BV, CENTER=False, IS_VARLEN=False, PREC="tf32")
            build(ccq_stats_fwd_kernel,
                  dict(q="*bf16", k="*bf16", g=f32, lam=f32, M0=None, z0=None, m0=None, out="*bf16", u_s=f32,
                       z_s=f32, m_s=None, MT=None, zT=None, mT=None, cu_seqlens=None, chunk_offsets=None),
                  dict(common, HAS_M0=False, HAS_Z0=False, HAS_MM0=False, RAW_U=False, SAVE=True,
                       STORE_FINAL=False), nw, ns, f"stats fwd K{K} BV{BV} nw{nw} ns{ns}")
            build(ccq_stats_bwd_kernel,
                  dict(q="*bf16", k="*bf16", g=f32, du=f32, dz=f32, dm=None, dMT=None, dzT=None, dmT=None,
                       dk_key=f32, dk_val=f32, zw=f32, dM0=None, dz0=None, dm0=None, cu_seqlens=None,
                       chunk_offsets=None),
                  dict(common, HAS_DMT=False, HAS_DZT=False, HAS_DMMT=False, STORE_D0=False), nw, ns,
                  f"stats bwd K{K} BV{BV} nw{nw} ns{ns}")
