"""Launch settings of the Gated DeltaNet / Q-Delta Triton kernels.

A fixed table, no autotuning (no first-call tuning storm). LINMEM_GDN_NUM_WARPS and the LINMEM_GDN_WY_BWD_*
variables, read at every call, override it for diagnosis on a new GPU or Triton. Tests patch this module.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton

from ..backend import TileLaunch, env_block as _block, env_int, env_launch
from ..triton_layout import sequential_block


def _pow2(n: int) -> int:
    return triton.next_power_of_2(n)


def _dot_precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


# Fixed launch table (no autotuning). 8 warps: at 4 warps ptxas spills heavily on sm_90 (checked offline with
# cuobjdump -res-usage, benchmarks/kernel_resources.py). LINMEM_GDN_NUM_WARPS overrides it (read at each call;
# diagnosis of Hopper codegen issues, which fla ties to 8 warps).
NUM_WARPS = 8


def _num_warps() -> int:
    return env_int("LINMEM_GDN_NUM_WARPS", NUM_WARPS)


# The WY backward (two kernels, see triton_wy.py) runs at 2 warps whatever the table above says. On the H200
# with Triton 3.6, a one-kernel form at 8 warps gave a different dg and dbeta on every call of the same inputs: a
# miscompile, rrms 0.5-5.5e-2 against the fp64 reference where the interpreter gives 3e-4. The two-kernel form
# drifts from call to call at 4 and 8 warps too; at 2 warps repeated calls are bitwise equal, with dg/dbeta as
# accurate as dk, and GDN fwd+bwd at B8 T4K takes 5.5 ms (benchmarks/results/gdn-wy-bwd-configs-h200.json).
# fla pins its WY backward to 2 warps on Hopper for the same reason (fla #984).
WY_BWD_NUM_WARPS = 2

#: Register cap of the WY backward (None: ptxas decides). maxnreg=255 cuts the offline sm_90 stack, but on the
#: H200 it was no faster (5.55 against 5.52 ms) and did not make 4 warps reproducible.
WY_BWD_MAXNREG = None


#: Warps of the WY backward's second kernel (dq, dk, dlam) alone; None: as the first. The drift at 4 and 8 warps
#: showed in dg and dbeta, which the first kernel computes; dk stayed bitwise equal from call to call. At 4 warps
#: every gradient of GDN and Q-Delta repeats bitwise on the H200, and Q-Delta fwd+bwd at B8 T4K H16 d128 takes
#: 5.20 ms instead of 5.45 (GDN 4.89 instead of 4.92; gdn-wy-keys-warps-h200.json, 2+4 against 2).
WY_BWD_KEYS_NUM_WARPS = 4


#: Key/value block of the gates kernel and key block of the keys kernel. At 2 warps every [64, 64] fp32 tile costs 64
#: registers a thread, and with 64-wide blocks ptxas gave up and spilled nearly everything (32 registers, an 8 KB
#: stack for GDN, 12 KB for Q-Delta; offline sm_90 build, Triton 3.6). With 16-wide blocks the gates kernel keeps a
#: 1.4-1.6 KB stack and with 32-wide the keys kernel 0.2-0.4 KB: GDN fwd+bwd (B8 T4K H16 d128, H200) 0.30 ms faster,
#: Q-Delta 0.37 ms, bitwise repeatable (benchmarks/results/gdn-wy-bwd-blocks-h200.json).
WY_BWD_GATES_BLOCK = 16
WY_BWD_KEYS_BLOCK = 32

#: Key block of the WY forward (LINMEM_GDN_WY_FWD_BLOCK overrides it). Chosen for the earlier one-kernel forward
#: (at 64 Q-Delta's build kept a 160 B stack, at 32 none; 1.28 against 1.38 ms on the H200,
#: benchmarks/results/h200-2026-12-03-blocks); the three kernels build without a stack at 32 (offline sm_90).
WY_FWD_BLOCK = 32


#: Warps of the three WY forward kernels (LINMEM_GDN_WY_FWD_WARPS overrides it). GDN fwd+bwd at B16 T2K on the
#: H200, in one run that shared the GPU with a background compile: 3.96 ms at 4 warps, 4.11 at 8
#: (benchmarks/results/h200-2026-12-03-wy-split).
WY_FWD_NUM_WARPS = 4


def _wy_fwd_warps() -> int:
    return env_int("LINMEM_GDN_WY_FWD_WARPS", WY_FWD_NUM_WARPS)


def _wy_fwd_block() -> int:
    return _block("LINMEM_GDN_WY_FWD_BLOCK", WY_FWD_BLOCK)


#: Pipeline stages of wy_A_kernel for Q-Delta (the probe x = k + lam q read beside k). At the dtype's 3 stages its
#: A differed between identical launches on the H200 with Triton 3.6 (B8 T4K H16 d128 bf16, up to 0.065 absolute;
#: benchmarks/kernel_repeatability.py, h200-2026-12-03b-qdelta-gla), a codegen race like output_dqk's; GDN's
#: wy_A, which reads only k, repeated bitwise. At 2 stages every launch repeats bitwise and Q-Delta fwd+bwd takes
#: 3.518 ms against 3.546 at 1 stage (B8 T4K, h200-2026-12-04-state-qdelta).
WY_A_PROBE_STAGES = 2


def _wy_a_stages(dtype: torch.dtype, has_probe: bool) -> int:
    """wy_A_kernel's pipeline stages; LINMEM_GDN_A_STAGES overrides them (GDN and Q-Delta alike)."""
    return env_int("LINMEM_GDN_A_STAGES", min(WY_A_PROBE_STAGES, _stages(dtype)) if has_probe else _stages(dtype))


#: Q-Delta: wy_A_kernel stores the probe rows X = k + lam q (k's dtype) and wy_wu and the backward's gates kernel
#: read them instead of forming them from q, k and lam again. At H16 d128 Q-Delta / GDN is 1.06-1.08 fwd+bwd, the
#: gap in those WY kernels (q read beside k, and at 2 warps the gates kernel spills 1.6 KB against GDN's 1.4 KB,
#: kernel_resources-sm90-triton3.6.txt). Off until timed on the GPU; the CPU tests run both ways.
#: LINMEM_QDELTA_STORE_PROBE=1 or 0 overrides it at each call.
STORE_PROBE = False


def _store_probe() -> bool:
    return bool(env_int("LINMEM_QDELTA_STORE_PROBE", int(STORE_PROBE)))


#: Value block of output_dqk_kernel (its key block is the output kernels' 64). At 32 its sm_90 build needs no stack
#: (584 B at 64), but GDN fwd+bwd on the H200 was 0.09 ms slower (gdn-wy-bwd-blocks-h200.json).
DQK_VALUE_BLOCK = 64


class WyBackwardSetting(NamedTuple):
    """Launch settings of the two WY-backward kernels (triton_wy.py) and of output_dqk_kernel's value block."""

    warps: int  # gates kernel (dv, dg, dbeta, E)
    maxnreg: int | None  # gates and keys kernels; None: ptxas decides
    keys_warps: int  # keys kernel (dq, dk, dlam)
    gates_block: int
    keys_block: int
    dqk_value_block: int


def _wy_bwd_config() -> WyBackwardSetting:
    """The WY backward's launch settings. LINMEM_GDN_WY_BWD_WARPS, LINMEM_GDN_WY_BWD_MAXNREG, LINMEM_GDN_WY_KEYS_WARPS,
    LINMEM_GDN_WY_GATES_BLOCK, LINMEM_GDN_WY_KEYS_BLOCK and LINMEM_GDN_DQK_BV override them at each call, for
    diagnosis on a new GPU or Triton (benchmarks/gdn_backward_determinism.py --configs)."""
    warps = env_int("LINMEM_GDN_WY_BWD_WARPS", WY_BWD_NUM_WARPS)
    return WyBackwardSetting(
        warps=warps, maxnreg=env_int("LINMEM_GDN_WY_BWD_MAXNREG", WY_BWD_MAXNREG),
        keys_warps=env_int("LINMEM_GDN_WY_KEYS_WARPS", WY_BWD_KEYS_NUM_WARPS or warps),
        gates_block=_block("LINMEM_GDN_WY_GATES_BLOCK", WY_BWD_GATES_BLOCK),
        keys_block=_block("LINMEM_GDN_WY_KEYS_BLOCK", WY_BWD_KEYS_BLOCK),
        dqk_value_block=_block("LINMEM_GDN_DQK_BV", DQK_VALUE_BLOCK))


def _stages(dtype: torch.dtype) -> int:
    """Software-pipelining depth: fp32 tiles overflow shared memory on sm_90 with Triton 3.6 at depth 3."""
    return 1 if dtype == torch.float32 else 3


#: Fewest programs the sequential state kernels should run (about one per SM of an H100/H200).
MIN_STATE_PROGRAMS = 128


#: (warps, stages) of the state kernels by value block, bf16/fp16 and d_k <= 128: each relaunched alone under 63
#: settings at B8 T4K H16 d128 on the H200 (benchmarks/results/h200-2026-12-03-kernel-settings): forward 0.218 ms
#: at BV 64 with 4 warps (0.404 at the previous BV 32 with 8 warps), backward 0.540 ms at BV 64 with 8 warps and
#: 2 stages (0.847). Wider blocks beat more programs here (256 programs at BV 64 against 512 at BV 32).
#: Not yet the default: the backward at BV 128 (one program per head at d_v 128) took 0.429 ms at 8 warps and 2
#: stages, bitwise repeatable, in the second sweep; the GPU tests have not run it (LINMEM_GDN_STATE_BWD_BV=128).
#: BV 32 is the block of B2 T16K H16 (32 sequences x heads, halved from 64 for 128 programs), swept there: forward
#: 0.474 -> 0.314 ms at 3 stages, backward 0.961 -> 0.830 at 8 warps and 3 stages, bitwise repeatable
#: (h200-2026-12-04-state-qdelta/1-profile-sweeps); at 2 stages the two took GDN 4.03 ms at 16K, fla 3.78.
STATE_FWD_LAUNCH = {16: (4, 3), 32: (4, 3), 64: (4, 3)}
STATE_BWD_LAUNCH = {16: (4, 2), 32: (8, 3), 64: (8, 2), 128: (8, 2)}


#: (BV, warps, stages) of both state kernels at key dims above 128 with 16-bit inputs. At the fla-1.3B GDN layer
#: (d_k 256 d_v 512, B8 T4K H6, H200; h200-2026-12-04-state-qdelta/3-fla-shapes) the state forward took 1.828 ->
#: 0.660 ms and the backward 2.183 -> 1.121 against the earlier BV 32 / 8 warps / 1 stage (still the fp32 inputs'),
#: outputs bitwise equal, repeatable; in the op GDN fwd+bwd 6.84 -> 4.67 ms, Q-Delta 7.03 -> 4.86
#: (launch_ab.py, h200-2026-12-04b-wide-keys).
WIDE_KEY_STATE_LAUNCH = (64, 8, 2)


def _state_tiles(k_dim: int, v_dim: int, dtype: torch.dtype, n_seq_heads: int,
                 backward: bool = False) -> tuple[int, int, int, int]:
    """(BK, BV, num_warps, num_stages) of the sequential state kernels: the whole key dim is one tile.

    These kernels walk the chunks one after another: BV = 64 (WIDE_KEY_STATE_LAUNCH's for key dims above 128, 32
    for those with fp32 inputs), halved while fewer than MIN_STATE_PROGRAMS programs would run (B1 T32K H16: 16),
    with the warps and stages of STATE_*_LAUNCH.
    fp32 inputs run unpipelined: at depth 3 state_bwd asked for 254 KB of shared memory at d = 128 on the H100
    (Triton 3.6), over the 227 KB limit; with depth 1 an offline sm_90 build with Triton 3.6 gave 52-80 KB
    (benchmarks/kernel_resources.py). LINMEM_GDN_STATE_BV overrides BV of both passes, and
    LINMEM_GDN_STATE_{FWD,BWD}_{BV,WARPS,STAGES} each pass's setting (benchmarks/kernel_settings.py).
    """
    bk = _pow2(k_dim)
    wide_16bit = bk > 128 and dtype != torch.float32
    base_bv = 64 if bk <= 128 else WIDE_KEY_STATE_LAUNCH[0] if wide_16bit else 32
    bv = sequential_block(min(_pow2(v_dim), base_bv), v_dim, n_seq_heads, MIN_STATE_PROGRAMS)
    pass_name = "BWD" if backward else "FWD"
    bv = _block(f"LINMEM_GDN_STATE_{pass_name}_BV", _block("LINMEM_GDN_STATE_BV", bv))
    if wide_16bit:
        warps, stages = WIDE_KEY_STATE_LAUNCH[1:]
    elif bk > 128:
        warps, stages = _num_warps(), 1
    else:
        warps, stages = (STATE_BWD_LAUNCH if backward else STATE_FWD_LAUNCH).get(bv, (_num_warps(), 3))
        stages = stages if dtype != torch.float32 else 1
    return (bk, bv, env_int(f"LINMEM_GDN_STATE_{pass_name}_WARPS", warps),
            env_int(f"LINMEM_GDN_STATE_{pass_name}_STAGES", stages))


def _tile_launch(name: str, k_dim: int, v_dim: int, dtype: torch.dtype, block_k: int, block_v: int,
                 warps: int | None = None, stages: int | None = None) -> TileLaunch:
    """A chunk-parallel kernel's launch: the given blocks (capped at the head dims), the table's warps and the
    dtype's stages; LINMEM_GDN_<name>_{BK,BV,WARPS,STAGES} override each (benchmarks/kernel_settings.py)."""
    default = TileLaunch(block_k, block_v, warps or _num_warps(), min(stages or 3, _stages(dtype)))
    return env_launch(f"LINMEM_GDN_{name}_", default, _pow2(k_dim), _pow2(v_dim))


#: Key and value block of wy_wu_kernel: at 128 (one program for W and one for U per chunk at d 128) 0.173 ms against
#: 0.262 at the earlier 32/64, B8 T4K H16 d128 on the H200, relaunched alone (h200-2026-12-03-kernel-settings).
WU_BLOCK = 128

#: Key block and pipeline stages of output_dqk_kernel (bf16/fp16): at a 128-wide key block one program per chunk and
#: head reads V~, dO, dV~ and forms dO V~^T once instead of once per 64-wide key block: 0.871 ms against 1.138 at
#: 64 (H200, B8 T4K H16 d128, relaunched alone). Not 3 stages (0.836 ms): there its outputs changed from call to
#: call (rrms 8e-4, a Triton 3.6 codegen race on Hopper, as in the WY backward), as did the 4-warp settings with 32- or
#: 64-wide key blocks and value blocks up to 64 (h200-2026-12-03-kernel-settings; tests/test_kernels_gpu_determinism.py
#: at B8 T4K).
DQK_KEY_BLOCK = 128
DQK_STAGES = 2


def _wu_launch(k_dim: int, v_dim: int, dtype: torch.dtype) -> TileLaunch:
    """wy_wu_kernel: W's key blocks and U's value blocks."""
    return _tile_launch("WU", k_dim, v_dim, dtype, WU_BLOCK, WU_BLOCK, _wy_fwd_warps())


def _dqk_launch(k_dim: int, v_dim: int, dtype: torch.dtype) -> TileLaunch:
    """output_dqk_kernel: one program per key block; the value dim is its loop."""
    return _tile_launch("DQK", k_dim, v_dim, dtype, DQK_KEY_BLOCK, _wy_bwd_config().dqk_value_block,
                        stages=DQK_STAGES)
