"""Gated DeltaNet: naive reference, PyTorch chunk (WY form), public op."""

from .chunk import chunk_gated_delta_rule
from .naive import naive_gated_delta_rule
from .op import gated_delta_rule

__all__ = ["chunk_gated_delta_rule", "gated_delta_rule", "naive_gated_delta_rule"]
