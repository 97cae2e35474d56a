"""Depthwise causal short convolution: per-token reference.

y_t = act(Σ_{j=0}^{W-1} weight[:, j] · x_{t−W+1+j} + bias), where inputs before the sequence start come from
initial_state [N, D, W−1] (the last W−1 inputs before this chunk, oldest first; zeros when absent).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..utils import check_cu_seqlens, check_floating, check_same_device, check_shape, run_per_sequence

ACTIVATIONS = (None, "silu")


def validate_conv(x, weight, bias, activation, initial_state, cu_seqlens) -> tuple[int, int, int, int, int]:
    """Validate the causal_conv1d arguments; return (B, T, D, W, N)."""
    check_floating("x", x)
    if x.dim() != 3:
        raise ValueError(f"x: expected a 3-D tensor [B, T, D], got shape {list(x.shape)}")
    B, T, D = x.shape
    check_floating("weight", weight)
    if weight.dim() != 2 or weight.shape[0] != D or weight.shape[1] < 1:
        raise ValueError(f"weight: expected shape [D, W] with D = {D} (x's channels) and W >= 1, "
                         f"got {list(weight.shape)}")
    check_same_device("weight", weight, x)
    W = weight.shape[1]
    if bias is not None:
        check_floating("bias", bias)
        check_shape("bias", bias, (D,), "[D]")
        check_same_device("bias", bias, x)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {list(ACTIVATIONS)}, got {activation!r}")
    N = check_cu_seqlens(cu_seqlens, B, T)
    if initial_state is not None:
        check_floating("initial_state", initial_state)
        check_shape("initial_state", initial_state, (N, D, W - 1), "[N, D, W - 1]")
        check_same_device("initial_state", initial_state, x)
    return B, T, D, W, N


def apply_activation(y: torch.Tensor, activation: str | None) -> torch.Tensor:
    return F.silu(y) if activation == "silu" else y


def naive_causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, activation: str | None = None,
    initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x [B, T, D]; weight [D, W]; bias [D]; initial_state [N, D, W−1]. Returns y [B, T, D] (x's dtype) and the
    final state [N, D, W−1] (x's dtype: the last W−1 inputs) or None. Computed token by token.
    """
    validate_conv(x, weight, bias, activation, initial_state, cu_seqlens)
    W = weight.shape[1]

    def dense(inputs, state):
        (xs,) = inputs
        B, T, D = xs.shape
        hist = state.to(xs.dtype) if state is not None else xs.new_zeros(B, D, W - 1)
        window = torch.cat([hist, xs.transpose(1, 2)], dim=-1)  # [B, D, W-1+T]
        ys = []
        for t in range(T):
            y = (window[:, :, t:t + W] * weight).sum(-1)
            ys.append(y + bias if bias is not None else y)
        y = torch.stack(ys, dim=1) if ys else xs.new_zeros(B, 0, D)
        return apply_activation(y, activation).to(x.dtype), window[:, :, window.shape[-1] - (W - 1):]

    return run_per_sequence(dense, (x,), initial_state, output_final_state, cu_seqlens)
