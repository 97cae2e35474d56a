"""RMSNorm, plain or gated: the public op (PyTorch, or fused Triton kernels when enabled)."""

from .op import rms_norm

__all__ = ["rms_norm"]
