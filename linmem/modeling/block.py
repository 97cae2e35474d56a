"""The pre-norm block shared by every variant: norm -> mixer -> residual -> norm -> MLP -> residual
(with `sandwich_norms`, each branch output is normed once more before its residual add, as in Gemma3)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from ..configuration.base import LinmemConfig
from .attention import SoftmaxAttention
from .cache import LinmemCache
from .layers import make_mlp, make_norm
from .padding import TokenLayout


class LinmemBlock(GradientCheckpointingLayer):
    """One layer; `attn` is the variant's recurrent mixer or, at `config.attn_layers`, softmax attention."""

    def __init__(self, config: LinmemConfig, layer_idx: int, mixer: nn.Module) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.attn_norm = make_norm(config, config.hidden_size)
        self.attn = mixer
        self.mlp_norm = make_norm(config, config.hidden_size)
        self.mlp = make_mlp(config)
        if config.sandwich_norms:
            self.attn_post_norm = make_norm(config, config.hidden_size)
            self.mlp_post_norm = make_norm(config, config.hidden_size)
        else:
            self.attn_post_norm = self.mlp_post_norm = None

    def forward(
        self,
        hidden_states: torch.Tensor,
        layout: TokenLayout | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: LinmemCache | None = None,
        position_ids: torch.Tensor | None = None,
        past_length: int = 0,
    ) -> torch.Tensor:
        """hidden_states [B, T, hidden] -> [B, T, hidden]."""
        normed = self.attn_norm(hidden_states)
        if isinstance(self.attn, SoftmaxAttention):
            mixed = self.attn(normed, attention_mask=attention_mask, past_key_values=past_key_values,
                              position_ids=position_ids, past_length=past_length,
                              segments=layout.segments if layout is not None else None)
        else:
            mixed = self.attn(normed, layout=layout, past_key_values=past_key_values)
        if self.attn_post_norm is not None:
            mixed = self.attn_post_norm(mixed)
        hidden_states = hidden_states + mixed
        mlp_out = self.mlp(self.mlp_norm(hidden_states))
        if self.mlp_post_norm is not None:
            mlp_out = self.mlp_post_norm(mlp_out)
        return hidden_states + mlp_out
