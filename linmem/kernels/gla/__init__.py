"""Gated linear attention (per-channel decay): naive reference, PyTorch chunk, public op."""

from .chunk import chunk_gla
from .naive import naive_gla
from .op import gla

__all__ = ["chunk_gla", "gla", "naive_gla"]
