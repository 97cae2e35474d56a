"""Exact tensor reshapes used by the mappings (they also run on meta tensors for dry runs)."""

from __future__ import annotations

import torch


def repeat_heads(weight: torch.Tensor, groups: int, head_dim: int) -> torch.Tensor:
    """Repeat each head's block of rows `groups` times, consecutively.

    weight [H_src * head_dim, ...] -> [H_src * groups * head_dim, ...]; output head j holds source head
    j // groups, which is how grouped k/v heads (GQA/MQA) and fla's grouped q/k heads map onto full heads.
    Works for Linear weights [out, in], biases [out] and depthwise conv weights [out, 1, W].
    """
    if groups == 1:
        return weight
    rows = weight.shape[0]
    if rows % head_dim:
        raise ValueError(f"`weight` has {rows} rows, not a multiple of head_dim={head_dim}")
    blocks = weight.reshape(rows // head_dim, head_dim, *weight.shape[1:])
    return blocks.repeat_interleave(groups, dim=0).reshape(rows * groups, *weight.shape[1:])


def identity_conv_(weight: torch.Tensor) -> None:
    """Depthwise causal conv weight [D, 1, W] set in place to the identity (only the current tap is 1)."""
    with torch.no_grad():
        weight.zero_()
        weight[..., -1] = 1.0


def add_one(weight: torch.Tensor) -> torch.Tensor:
    """A norm stored as (1 + w) (Gemma) as a plain multiplicative weight."""
    return weight.float() + 1.0
