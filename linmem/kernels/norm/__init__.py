"""RMSNorm, plain or gated: the public op (PyTorch, or fused Triton kernels when enabled)."""

from .op import l2_norm, rms_norm

__all__ = ["l2_norm", "rms_norm"]
