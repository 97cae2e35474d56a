"""The public RMSNorm of linmem's layers, plain or gated (the mixers' output norm RMSNorm(o) * SiLU(gate)).

Numerics: x (and gate) in float32 (float64 stays float64), normalised, weighted (and gated), rounded once to x's
dtype. PyTorch path: F.rms_norm on the float32 copy. Triton path (triton_norm.py: one read, one write, the float32
math in registers) when FUSED_NORM is on (LINMEM_FUSED_NORM=1 or 0 overrides it at each call), the backend resolves
to Triton, x is not float64 and its rows fit one tile. Under torch.compile only with FUSED_NORM_COMPILED (as custom
ops); by default Inductor fuses the PyTorch path itself.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..backend import env_int, load_triton, resolve_backend
from ..utils import check_floating, check_shape, l2norm_weight

#: On: the 340M CCQ-GDN training step (CUDA graph, B4 T4K) 100.2k -> 124.1k tokens/s, its kernels 162 -> 130 ms
#: (h200-2026-12-04c-defaults/1-candidates: train, train-norm, prof-norm); GPU tests in
#: tests/test_kernels_triton_norm.py.
FUSED_NORM = True


#: Under torch.compile: off, the PyTorch path, which Inductor fuses with its neighbours (the compiled 340M step's
#: 136.3k tokens/s, when the kernels were graph breaks). On (LINMEM_FUSED_NORM_COMPILED=1): the kernels as custom ops
#: inside the graph (linmem/kernels/library.py); not yet timed against Inductor's fusion.
FUSED_NORM_COMPILED = False

#: Widest row the kernels take (one row is one tile; triton_norm.py, which this module does not import: triton is
#: optional on the CPU).
MAX_DIM = 8192


def _fused(x: torch.Tensor) -> bool:
    return (bool(env_int("LINMEM_FUSED_NORM", int(FUSED_NORM))) and x.dtype != torch.float64
            and 0 < x.shape[-1] <= MAX_DIM and resolve_backend(x) == "triton")


def _validate(x: torch.Tensor, weight: torch.Tensor, gate: torch.Tensor | None) -> None:
    """The checks F.rms_norm makes itself on the PyTorch path, for the Triton path."""
    check_floating("x", x)
    check_shape("weight", weight, (x.shape[-1],), "[D], D = x.shape[-1]")
    for name, t in (("weight", weight), ("gate", gate)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name}: expected a tensor on x's device {x.device}, got {t.device}")
    if gate is not None:
        check_floating("gate", gate)
        check_shape("gate", gate, tuple(x.shape), "x's shape")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, gate: torch.Tensor | None = None) -> torch.Tensor:
    """x * rsqrt(mean(x^2, -1) + eps) * weight (* silu(gate)), computed in float32, returned in x's dtype.

    x [..., D]; weight [D]; gate None or x's shape.
    """
    if _fused(x) and (not torch.compiler.is_compiling() or env_int("LINMEM_FUSED_NORM_COMPILED",
                                                                    int(FUSED_NORM_COMPILED))):
        triton_rms_norm = load_triton(__package__, "triton_norm", "triton_rms_norm")  # None without triton
        if triton_rms_norm is not None:
            _validate(x, weight, gate)
            return triton_rms_norm(x, weight, eps, gate)
    compute = torch.promote_types(x.dtype, torch.float32)
    y = F.rms_norm(x.to(compute), (x.shape[-1],), weight.to(compute), eps)
    if gate is not None:
        y = y * F.silu(gate.to(compute))
    return y.to(x.dtype)


def l2_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(||x||^2 + eps) over the last dimension in float32 (float64 stays float64), returned in x's dtype: the
    q/k norm of the GDN-family mixers, as the RMS norm with the constant weight D^{-1/2} and eps / D. Its PyTorch path
    is exactly linmem.kernels.utils.l2norm's computation; the Triton path takes no weight gradient."""
    D = x.shape[-1]
    dtype = torch.promote_types(x.dtype, torch.float32)
    # Made once per size, dtype and device instead of a fill launch per call; fresh where it becomes part of a
    # graph (compiled, or captured by a CUDA graph).
    fresh = torch.compiler.is_compiling() or (x.is_cuda and torch.cuda.is_current_stream_capturing())
    return rms_norm(x, (l2norm_weight if fresh else _cached_l2norm_weight)(D, dtype, x.device), eps / D)


_cached_l2norm_weight = functools.lru_cache(maxsize=64)(l2norm_weight)
