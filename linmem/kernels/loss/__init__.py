"""Causal-LM loss from the last hidden states without materialising float32 logits (the LM head fused in)."""

from .op import linear_cross_entropy

__all__ = ["linear_cross_entropy"]
