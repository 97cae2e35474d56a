"""The public depthwise causal short convolution (the q/k/v ShortConv of the GDN-family layers).

Triton (triton_conv.py) when the backend resolves to it (CUDA inputs on "auto"), T > 1 and x is not float64 (the
kernels sum in float32); otherwise PyTorch (F.conv1d, groups = D; varlen runs each sequence from its own state
row; one token is one dot product a channel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backend import kernel_op, load_triton, resolve_backend
from ..utils import run_per_sequence
from .naive import apply_activation, validate_conv


@kernel_op
def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, activation: str | None = None,
    initial_state: torch.Tensor | None = None, output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """y_t = act(Σ_{j<W} weight[:, j] · x_{t−W+1+j} + bias), act "silu" or None.

    x [B, T, D]; weight [D, W] (nn.Conv1d weight [D, 1, W] squeezed); bias [D] or None;
    initial_state [N, D, W−1] = the last W−1 inputs before this chunk, oldest first (zeros when None);
    cu_seqlens [N + 1] with B == 1 for varlen (an empty sequence passes its state through).
    Returns y [B, T, D] (x's dtype) and the final state [N, D, W−1] in x's dtype, or None unless
    output_final_state.
    """
    validate_conv(x, weight, bias, activation, initial_state, cu_seqlens)
    if x.shape[1] > 1 and x.dtype != torch.float64 and resolve_backend(x) == "triton":  # the kernels sum in fp32
        triton_conv = load_triton(__package__, "triton_conv", "triton_causal_conv1d")
        if triton_conv is not None:
            return triton_conv(x, weight, bias, activation=activation, initial_state=initial_state,
                               output_final_state=output_final_state, cu_seqlens=cu_seqlens)
    W = weight.shape[1]
    w = weight.to(x.dtype).unsqueeze(1)  # [D, 1, W]
    b = bias.to(x.dtype) if bias is not None else None

    def dense(inputs, state):
        (xs,) = inputs
        B, T, D = xs.shape
        hist = state.to(xs.dtype) if state is not None else xs.new_zeros(B, D, W - 1)
        window = torch.cat([hist, xs.transpose(1, 2)], dim=-1)  # [B, D, W-1+T]
        if T == 0:
            return xs, window
        if T == 1:  # decode step: one dot product per channel (F.conv1d's set-up costs more than the work)
            y = (window * w.squeeze(1)).sum(-1, keepdim=True).transpose(1, 2)
            y = y + b if b is not None else y
        else:
            y = F.conv1d(window, w, b, groups=D).transpose(1, 2)  # [B, T, D]
        return apply_activation(y, activation), window[:, :, window.shape[-1] - (W - 1):]

    return run_per_sequence(dense, (x,), initial_state, output_final_state, cu_seqlens)
