"""`RecurrentMixer`: what every linear-attention mixer shares — padding, short convs and the cache.

A subclass implements `mix(x, state, conv_states, cu_seqlens, output_final_state)` on real tokens only
(x is [B, T, hidden], or [1, N_tok, hidden] with `cu_seqlens` when the batch had padding) and returns
`(o [.., hidden], new_state, new_conv_states)`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..cache import LinmemCache
from ..layers import ShortConvolution
from ..padding import TokenLayout


class RecurrentMixer(nn.Module):
    def __init__(self, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx

    def forward(
        self,
        hidden_states: torch.Tensor,
        layout: TokenLayout | None = None,
        past_key_values: LinmemCache | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """hidden_states [B, T, hidden] -> [B, T, hidden] (zeros at padded positions)."""
        x = layout.pack(hidden_states) if layout is not None else hidden_states
        cu_seqlens = layout.cu_seqlens if layout is not None else None
        cache = past_key_values
        state = cache.recurrent_states[self.layer_idx] if cache is not None else None
        conv_states = cache.conv_states[self.layer_idx] if cache is not None else None
        o, new_state, new_conv_states = self.mix(x, state, conv_states, cu_seqlens, cache is not None)
        if cache is not None:
            cache.recurrent_states[self.layer_idx] = new_state
            cache.conv_states[self.layer_idx] = new_conv_states
        return layout.unpack(o) if layout is not None else o

    def mix(
        self,
        x: torch.Tensor,
        state: Any,
        conv_states: tuple[torch.Tensor, ...] | None,
        cu_seqlens: torch.Tensor | None,
        output_final_state: bool,
    ) -> tuple[torch.Tensor, Any, tuple[torch.Tensor, ...] | None]:
        raise NotImplementedError

    @staticmethod
    def run_convs(
        convs: list[ShortConvolution] | None,
        inputs: list[torch.Tensor],
        conv_states: tuple[torch.Tensor, ...] | None,
        cu_seqlens: torch.Tensor | None,
        output_final_state: bool,
        fallback_activation=None,
    ) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...] | None]:
        """Apply the short convs (or, without convs, `fallback_activation`) to q/k/v projections."""
        if convs is None:
            act = fallback_activation or (lambda t: t)
            return [act(t) for t in inputs], None
        outputs, states = [], []
        for i, (conv, t) in enumerate(zip(convs, inputs)):
            y, s = conv(t, initial_state=None if conv_states is None else conv_states[i],
                        output_final_state=output_final_state, cu_seqlens=cu_seqlens)
            outputs.append(y)
            states.append(s)
        return outputs, tuple(states) if output_final_state else None
