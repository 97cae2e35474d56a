"""GLA mixer (specs/baselines.md), the other CCQ backbone.

q = W_q z, k = W_k z, v = W_v z (optional short conv); per-channel log decay
gk = logsigmoid(W_2 W_1 z + b_2) / normalizer; S_t = diag(exp(gk_t)) S_{t-1} + k_t v_t^T;
o_t = d_k^{-1/2} S_t^T q_t; output RMSNorm(o) * swish(W_g z) (`g_norm`), then o_proj.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...configuration.base import LinmemConfig
from ...kernels import gla
from ..layers import GatedRMSNorm, ShortConvolution, upcast
from ..projection import project
from .base import RecurrentMixer


class GLAMixer(RecurrentMixer):
    def __init__(self, config: LinmemConfig, layer_idx: int) -> None:
        super().__init__(layer_idx)
        hidden = config.hidden_size
        self.num_heads = num_heads = config.num_heads
        self.head_k_dim = config.head_dim
        self.head_v_dim = config.value_dim
        self.gate_logit_normalizer = getattr(config, "gate_logit_normalizer", 16.0)
        key_dim, value_dim = num_heads * self.head_k_dim, num_heads * self.head_v_dim
        self.q_proj = nn.Linear(hidden, key_dim, bias=config.qkv_bias)
        self.k_proj = nn.Linear(hidden, key_dim, bias=config.qkv_bias)
        self.v_proj = nn.Linear(hidden, value_dim, bias=config.qkv_bias)
        # A ModuleList (not Sequential) keeps fla's key names gk_proj.0 / gk_proj.1 and plain Linear LoRA targets.
        rank = getattr(config, "gate_low_rank_dim", 16)
        self.gk_proj = nn.ModuleList([nn.Linear(hidden, rank, bias=False), nn.Linear(rank, key_dim, bias=True)])
        self.use_short_conv = config.use_short_conv
        if self.use_short_conv:
            self.q_conv1d = ShortConvolution(key_dim, config.conv_size)
            self.k_conv1d = ShortConvolution(key_dim, config.conv_size)
            self.v_conv1d = ShortConvolution(value_dim, config.conv_size)
        self.g_proj = nn.Linear(hidden, value_dim, bias=False)
        self.g_norm = GatedRMSNorm(self.head_v_dim, eps=config.norm_eps)
        self.o_proj = nn.Linear(value_dim, hidden, bias=config.o_proj_bias)

    def mix(self, x, state, conv_states, cu_seqlens, output_final_state):
        batch, seq_len, _ = x.shape
        q, k, v, gk_low_rank, gate = project(x, self.q_proj, self.k_proj, self.v_proj, self.gk_proj[0], self.g_proj)
        convs = [self.q_conv1d, self.k_conv1d, self.v_conv1d] if self.use_short_conv else None
        (q, k, v), new_conv_states = self.run_convs(convs, [q, k, v], conv_states, cu_seqlens, output_final_state)
        q = q.reshape(batch, seq_len, self.num_heads, self.head_k_dim)
        k = k.reshape(batch, seq_len, self.num_heads, self.head_k_dim)
        v = v.reshape(batch, seq_len, self.num_heads, self.head_v_dim)
        gk = F.logsigmoid(upcast(self.gk_proj[1](gk_low_rank))) / self.gate_logit_normalizer
        gk = gk.view(batch, seq_len, self.num_heads, self.head_k_dim)
        o, new_state = self.recurrence(x, q, k, v, gk, state, cu_seqlens, output_final_state)
        gate = gate.reshape(batch, seq_len, self.num_heads, self.head_v_dim)
        o = self.g_norm(o, gate).reshape(batch, seq_len, -1)
        return self.o_proj(o), new_state, new_conv_states

    def recurrence(
        self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor,
        state: Any, cu_seqlens: torch.Tensor | None, output_final_state: bool,
    ) -> tuple[torch.Tensor, Any]:
        """q, k [B,T,H,d_k]; v [B,T,H,d_v]; gk [B,T,H,d_k] log decay."""
        return gla(q, k, v, gk, initial_state=state, output_final_state=output_final_state, cu_seqlens=cu_seqlens)
