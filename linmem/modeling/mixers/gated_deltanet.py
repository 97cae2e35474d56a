"""Gated DeltaNet mixer (specs/baselines.md), the backbone of CCQ-GDN and Q-Delta.

Per head: q, k = l2n(SiLU(conv(W z))), v = SiLU(conv(W_v z)); beta = sigmoid(W_b z);
g = -exp(A_log) * softplus(W_a z + dt_bias); S_t = a_t (I - b_t k_t k_t^T) S_{t-1} + b_t k_t v_t^T;
o_t = d_k^{-1/2} S_t^T q_t; output RMSNorm(o) * SiLU(W_g z), then o_proj.
Variants override `recurrence` (the op call) and add their own parameters.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ...configuration.base import LinmemConfig
from ...kernels import gated_delta_rule
from ...kernels.norm import l2_norm
from ..layers import GatedRMSNorm, RMSNorm, ShortConvolution, upcast
from ..projection import project
from .base import RecurrentMixer


class GatedDeltaNetMixer(RecurrentMixer):
    def __init__(self, config: LinmemConfig, layer_idx: int, use_decay: bool = True) -> None:
        super().__init__(layer_idx)
        hidden = config.hidden_size
        self.num_heads = num_heads = config.num_heads
        self.head_k_dim = config.head_dim
        self.head_v_dim = config.value_dim
        self.use_decay = use_decay
        self.allow_neg_eigval = getattr(config, "allow_neg_eigval", False)
        key_dim, value_dim = num_heads * self.head_k_dim, num_heads * self.head_v_dim
        self.q_proj = nn.Linear(hidden, key_dim, bias=config.qkv_bias)
        self.k_proj = nn.Linear(hidden, key_dim, bias=config.qkv_bias)
        self.v_proj = nn.Linear(hidden, value_dim, bias=config.qkv_bias)
        self.b_proj = nn.Linear(hidden, num_heads, bias=False)
        if use_decay:
            self.a_proj = nn.Linear(hidden, num_heads, bias=False)
            self.A_log = nn.Parameter(torch.empty(num_heads))
            self.dt_bias = nn.Parameter(torch.empty(num_heads))
            self.A_log._no_weight_decay = True
            self.dt_bias._no_weight_decay = True
        self.use_short_conv = config.use_short_conv
        if self.use_short_conv:
            self.q_conv1d = ShortConvolution(key_dim, config.conv_size)
            self.k_conv1d = ShortConvolution(key_dim, config.conv_size)
            self.v_conv1d = ShortConvolution(value_dim, config.conv_size)
        self.use_output_gate = getattr(config, "use_output_gate", True)
        if self.use_output_gate:
            self.g_proj = nn.Linear(hidden, value_dim, bias=False)
            self.o_norm = GatedRMSNorm(self.head_v_dim, eps=config.norm_eps)
        else:
            self.o_norm = RMSNorm(self.head_v_dim, eps=config.norm_eps)
        self.o_proj = nn.Linear(value_dim, hidden, bias=config.o_proj_bias)

    @torch.no_grad()
    def init_special_parameters(self) -> None:
        """A ~ U(0, 16) stored as log; dt ~ logU(1e-3, 0.1) floored at 1e-4, dt_bias = softplus^-1(dt).

        Called by `LinmemPreTrainedModel._init_weights`; tensors loaded from a checkpoint are left alone.
        """
        if not self.use_decay:
            return
        init.copy_(self.A_log, torch.empty_like(self.A_log).uniform_(0, 16).clamp_min(1e-4).log())
        dt = torch.exp(torch.rand_like(self.dt_bias) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        dt = dt.clamp_min(1e-4)
        init.copy_(self.dt_bias, dt + torch.log(-torch.expm1(-dt)))

    def mix(self, x, state, conv_states, cu_seqlens, output_final_state):
        batch, seq_len, _ = x.shape
        optional = [self.a_proj] if self.use_decay else []
        optional += [self.g_proj] if self.use_output_gate else []
        q, k, v, beta_logits, *rest = project(x, self.q_proj, self.k_proj, self.v_proj, self.b_proj, *optional)
        convs = [self.q_conv1d, self.k_conv1d, self.v_conv1d] if self.use_short_conv else None
        (q, k, v), new_conv_states = self.run_convs(
            convs, [q, k, v], conv_states, cu_seqlens, output_final_state, fallback_activation=F.silu,
        )
        q = l2_norm(q.reshape(batch, seq_len, self.num_heads, self.head_k_dim))
        k = l2_norm(k.reshape(batch, seq_len, self.num_heads, self.head_k_dim))
        v = v.reshape(batch, seq_len, self.num_heads, self.head_v_dim)
        beta = upcast(beta_logits).sigmoid()
        if self.allow_neg_eigval:
            beta = beta * 2.0
        if self.use_decay:
            g = -upcast(self.A_log).exp() * F.softplus(upcast(rest.pop(0)) + upcast(self.dt_bias))
        else:
            g = beta.new_zeros(beta.shape)
        o, new_state = self.recurrence(x, q, k, v, g, beta, state, cu_seqlens, output_final_state)
        if self.use_output_gate:
            o = self.o_norm(o, rest.pop(0).reshape(batch, seq_len, self.num_heads, self.head_v_dim))
        else:
            o = self.o_norm(o)
        o = o.reshape(batch, seq_len, -1)
        return self.o_proj(o), new_state, new_conv_states

    def recurrence(
        self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
        beta: torch.Tensor, state: Any, cu_seqlens: torch.Tensor | None, output_final_state: bool,
    ) -> tuple[torch.Tensor, Any]:
        """The state update and read: q, k [B,T,H,d_k] unit; v [B,T,H,d_v]; g, beta [B,T,H]."""
        return gated_delta_rule(q, k, v, g, beta, initial_state=state, output_final_state=output_final_state,
                                cu_seqlens=cu_seqlens)
