"""linmem kernels: one folder per op (naive reference, PyTorch chunk, Triton) and the dispatching public ops.

Public ops (see backend.py for how one is picked):
  gla, gated_delta_rule, qdelta_rule, ccq_gla, ccq_gated_delta_rule, causal_conv1d
"""

from .backend import BACKENDS, requested_backend, resolve_backend, use_backend
from .ccq import (
    CCQState,
    ccq_gated_delta_rule,
    ccq_gla,
    chunk_ccq_gated_delta_rule,
    chunk_ccq_gla,
    naive_ccq_gated_delta_rule,
    naive_ccq_gla,
)
from .conv import causal_conv1d, naive_causal_conv1d
from .gated_delta_rule import chunk_gated_delta_rule, gated_delta_rule, naive_gated_delta_rule
from .gla import chunk_gla, gla, naive_gla
from .qdelta import chunk_qdelta_rule, naive_qdelta_rule, qdelta_rule, qdelta_rule_step
from .utils import l2norm, relative_rms

__all__ = [
    "BACKENDS", "CCQState", "causal_conv1d", "ccq_gated_delta_rule", "ccq_gla", "chunk_ccq_gated_delta_rule",
    "chunk_ccq_gla", "chunk_gated_delta_rule", "chunk_gla", "chunk_qdelta_rule", "gated_delta_rule", "gla",
    "l2norm", "naive_causal_conv1d", "naive_ccq_gated_delta_rule", "naive_ccq_gla", "naive_gated_delta_rule",
    "naive_gla", "naive_qdelta_rule", "qdelta_rule", "qdelta_rule_step", "relative_rms", "requested_backend",
    "resolve_backend", "use_backend",
]
