"""Causal softmax attention for the hybrid layers (`config.attn_layers`): RoPE, GQA, optional sliding window,
optional q/k biases (`qkv_bias`) and per-head q/k RMSNorm (`attn_qk_norm`).

Positions come from the 2-D attention mask (cumsum - 1), so a left-padded row gets exactly the
positions it would have alone; padded keys are masked out. In a row of packed sequences (packing.py) keys of
other sequences are masked out too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration.base import LinmemConfig
from .cache import LinmemCache
from .layers import RMSNorm, upcast
from .padding import token_positions


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """x [B, H, T, d], positions [B, T] -> x rotated (float32 math, x's dtype)."""
    dim = x.shape[-1]
    compute = torch.promote_types(x.dtype, torch.float32)
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, device=x.device, dtype=compute) / dim))
    angles = positions.to(compute)[..., None] * inv_freq  # [B, T, d/2]
    angles = torch.cat((angles, angles), dim=-1)[:, None]  # [B, 1, T, d]
    x32 = upcast(x)
    return (x32 * angles.cos() + rotate_half(x32) * angles.sin()).to(x.dtype)


class SoftmaxAttention(nn.Module):
    """Multi-head causal attention (SDPA); parameter names q_proj, k_proj, v_proj, o_proj."""

    def __init__(self, config: LinmemConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.attn_num_heads
        self.num_kv_heads = config.attn_num_kv_heads
        self.head_dim = config.attn_head_dim
        self.window_size = config.attn_window_size
        self.rope_theta = config.rope_theta
        self.scale = config.attn_scale  # None: SDPA's 1 / sqrt(head_dim)
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.num_heads * self.head_dim, bias=config.qkv_bias)
        self.k_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=config.qkv_bias)
        self.v_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=config.qkv_bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, hidden, bias=config.o_proj_bias)
        self.use_rope = config.attn_rope
        if config.attn_qk_norm:  # per-head RMSNorm of q and k before RoPE (Qwen3)
            self.q_norm = RMSNorm(self.head_dim, eps=config.norm_eps)
            self.k_norm = RMSNorm(self.head_dim, eps=config.norm_eps)
        else:
            self.q_norm = self.k_norm = None

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: LinmemCache | None = None,
        position_ids: torch.Tensor | None = None,
        past_length: int = 0,
        segments: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """hidden_states [B, T, hidden]; attention_mask [B, past_length + T] or None; segments [B, T] the sequence
        of each token of packed sequences (keys of other sequences masked out) or None -> [B, T, hidden]."""
        batch, seq_len, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(batch, seq_len, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(batch, seq_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(batch, seq_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)

        key_mask = attention_mask.bool() if attention_mask is not None else None
        if position_ids is None:
            position_ids = token_positions(key_mask, batch, seq_len, past_length, q.device)
        if self.use_rope:
            q = apply_rope(q, position_ids, self.rope_theta)
            k = apply_rope(k, position_ids, self.rope_theta)
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)

        mask = self._build_mask(seq_len, k.shape[-2], key_mask, q.device)
        if segments is not None:
            mask = mask & (segments[:, None, :, None] == segments[:, None, None, :])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale,
                                             enable_gqa=self.num_kv_heads != self.num_heads)
        out = out.transpose(1, 2).reshape(batch, seq_len, self.num_heads * self.head_dim)
        return self.o_proj(out)

    def _build_mask(self, seq_len: int, kv_len: int, key_mask: torch.Tensor | None, device) -> torch.Tensor:
        """Boolean [B or 1, 1, T, S] mask: causal, window, padded keys out (a query always sees itself)."""
        query_pos = torch.arange(kv_len - seq_len, kv_len, device=device)[:, None]
        key_pos = torch.arange(kv_len, device=device)[None, :]
        allowed = key_pos <= query_pos
        if self.window_size is not None:
            allowed = allowed & (query_pos - key_pos < self.window_size)
        allowed = allowed[None, None]
        if key_mask is not None:
            allowed = allowed & key_mask[:, None, None, :]
            allowed = allowed | (key_pos == query_pos)[None, None]  # padded queries: no empty rows
        return allowed
