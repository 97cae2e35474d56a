"""Depthwise causal short convolution (ShortConv): per-token reference and the public op."""

from .naive import naive_causal_conv1d
from .op import causal_conv1d

__all__ = ["causal_conv1d", "naive_causal_conv1d"]
