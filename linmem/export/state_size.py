"""Decode memory of a linmem model per sequence, from its config alone.

Recurrent layers hold a fixed-size state whatever the context length; softmax-attention layers of a
hybrid model (config.attn_layers) hold K and V per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STATE_BYTES = 4  # recurrent states are float32 (specs/README.md)


@dataclass(frozen=True)
class StateSize:
    """Bytes per sequence. recurrent: fixed (recurrent + conv states of every recurrent layer);
    attention_per_token: K/V bytes the attention layers add per token (LinmemCache keeps every
    token's K/V, also for a sliding window)."""

    recurrent: int
    recurrent_per_layer: int
    conv_per_layer: int
    recurrent_layers: int
    attention_layers: int
    attention_per_token: int


def _recurrent_state_elements(config: Any) -> int | None:
    """fp32 elements of one recurrent layer's state (None for a model_type this module does not know)."""
    heads, d_k, d_v = config.num_heads, config.head_dim, config.value_dim
    backbone = heads * d_k * d_v  # S [H, d_k, d_v]
    if config.model_type == "linmem_qdelta":
        return backbone
    if config.model_type == "linmem_ccq":
        if not config.ccq:
            return backbone
        extra = heads * d_k * d_k + heads  # M [H, d_k, d_k], z [H]
        if config.ccq_center:
            extra += heads * d_k  # m [H, d_k]
        return backbone + extra
    return None


def state_size(config: Any, activation_bytes: int = 2) -> StateSize | None:
    """Decode memory per sequence of a model with `config` whose activations have `activation_bytes`
    (2 for bf16/fp16, 4 for fp32: the dtype of conv states and attention K/V). None if unknown."""
    elements = _recurrent_state_elements(config)
    if elements is None:
        return None
    attention_layers = len(config.attn_layers)
    recurrent_layers = config.num_hidden_layers - attention_layers
    conv = 0
    if config.use_short_conv:
        channels = 2 * config.num_heads * config.head_dim + config.num_heads * config.value_dim  # q, k, v
        conv = channels * (config.conv_size - 1) * activation_bytes
    per_layer = elements * STATE_BYTES
    kv_per_token = 2 * config.attn_num_kv_heads * config.attn_head_dim * activation_bytes * attention_layers
    return StateSize(
        recurrent=recurrent_layers * (per_layer + conv), recurrent_per_layer=per_layer, conv_per_layer=conv,
        recurrent_layers=recurrent_layers, attention_layers=attention_layers, attention_per_token=kv_per_token,
    )
