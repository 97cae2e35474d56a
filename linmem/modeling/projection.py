"""Several linear projections of one input, optionally as one matmul.

A GDN-family layer projects its input six ways (q, k, v, beta, the decay, the output gate) and its MLP two ways
(gate, up). As separate nn.Linear calls each reads the input again and, in the backward, each gives its own input
gradient that autograd then adds up, one elementwise pass per extra projection over [tokens, hidden]. Fused, the
weights are concatenated (a small copy per call), one matmul gives every output as a column slice, and one matmul
gives the input gradient. Off by default until timed on the GPU (FUSED_PROJECTIONS, LINMEM_FUSED_PROJECTIONS=1).

Only plain nn.Linear modules without hooks are fused: a PEFT LoRA layer, a quantised or offloaded module keeps its
own forward (all projections of the call then run separately), so adapters are never bypassed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels.backend import env_int

#: One matmul per group of projections; off until train_throughput.py has timed it against separate calls.
#: LINMEM_FUSED_PROJECTIONS=1 or 0 overrides it at each call.
FUSED_PROJECTIONS = False


def is_plain_linear(module: nn.Module) -> bool:
    """An nn.Linear itself (not a subclass, a LoRA or quantised wrapper) with no hooks (accelerate's offloading
    included), so its forward is exactly F.linear with its own weight and bias and may be computed elsewhere."""
    return (type(module) is nn.Linear and not (module._forward_hooks or module._forward_pre_hooks)
            and not hasattr(module, "_hf_hook"))


def _fusable(linears: tuple[nn.Module, ...], x: torch.Tensor) -> bool:
    first = linears[0].weight
    return len(linears) > 1 and all(
        is_plain_linear(m) and m.weight.dtype == first.dtype == x.dtype and m.weight.device == first.device
        for m in linears)


def project(x: torch.Tensor, *linears: nn.Module) -> list[torch.Tensor]:
    """[linear(x) for linear in linears]; x [..., in_features], every linear from in_features.

    Fused: one F.linear with the concatenated weights (a missing bias is zeros where another has one); the outputs
    are column views of its result [..., sum of out_features], not contiguous.
    """
    if not (env_int("LINMEM_FUSED_PROJECTIONS", int(FUSED_PROJECTIONS)) and _fusable(linears, x)):
        return [linear(x) for linear in linears]
    weight = torch.cat([m.weight for m in linears])
    bias = None
    if any(m.bias is not None for m in linears):
        bias = torch.cat([m.bias if m.bias is not None else m.weight.new_zeros(m.out_features) for m in linears])
    return list(F.linear(x, weight, bias).split([m.out_features for m in linears], dim=-1))
