"""Q-Delta mixer (specs/qdelta.md): Gated DeltaNet whose prediction error uses the probe x = k + lambda q.

lambda_t = gamma_h * sigmoid(w_lambda^T z_t - b_lambda), z_t the layer input, b_lambda constant (0.9),
gamma_h in [0, 1] per head (`lamb_scale`). With allow_neg_eigval, beta is doubled and lambda clamped to
at most 2/beta - 1 so the transition's spectral radius stays <= 1. Parameters: GDN's + lamb_proj, lamb_scale.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init

from ...configuration.qdelta import QDeltaConfig
from ...kernels import qdelta_rule
from .gated_deltanet import GatedDeltaNetMixer
from ..layers import upcast


class QDeltaMixer(GatedDeltaNetMixer):
    def __init__(self, config: QDeltaConfig, layer_idx: int) -> None:
        super().__init__(config, layer_idx, use_decay=config.use_decay)
        self.lamb_bias = float(config.lamb_bias)
        self.lamb_init_scale = float(config.lamb_init_scale)
        self.lamb_proj = nn.Linear(config.hidden_size, self.num_heads, bias=False)
        self.lamb_scale = nn.Parameter(torch.full((self.num_heads,), self.lamb_init_scale))

    def init_special_parameters(self) -> None:
        super().init_special_parameters()
        init.constant_(self.lamb_scale, self.lamb_init_scale)

    def query_mix(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """x [B, T, hidden], beta [B, T, H] -> lambda [B, T, H] float32."""
        lam = upcast(self.lamb_scale).clamp(0.0, 1.0) * torch.sigmoid(upcast(self.lamb_proj(x)) - self.lamb_bias)
        if self.allow_neg_eigval:
            lam = torch.minimum(lam, 2.0 / beta.clamp_min(1e-6) - 1.0)
        return lam

    def recurrence(self, x, q, k, v, g, beta, state, cu_seqlens, output_final_state):
        return qdelta_rule(q, k, v, g, beta, self.query_mix(x, beta), initial_state=state,
                           output_final_state=output_final_state, cu_seqlens=cu_seqlens)
