"""Q-Delta (query-aware delta rule): naive reference, PyTorch chunk, public op."""

from .chunk import chunk_qdelta_rule
from .naive import naive_qdelta_rule, qdelta_rule_step
from .op import qdelta_rule

__all__ = ["chunk_qdelta_rule", "naive_qdelta_rule", "qdelta_rule", "qdelta_rule_step"]
