"""Curvature-Conditioned Query (CCQ) on GLA and Gated DeltaNet: state, naive reference, PyTorch chunk, ops."""

from .chunk import chunk_ccq_gated_delta_rule, chunk_ccq_gla
from .naive import naive_ccq_gated_delta_rule, naive_ccq_gla
from .op import ccq_gated_delta_rule, ccq_gla
from .state import CCQState

__all__ = ["CCQState", "ccq_gated_delta_rule", "ccq_gla", "chunk_ccq_gated_delta_rule", "chunk_ccq_gla",
           "naive_ccq_gated_delta_rule", "naive_ccq_gla"]
