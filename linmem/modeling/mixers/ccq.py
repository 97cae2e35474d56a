"""CCQ mixers (specs/ccq.md): the GLA and Gated DeltaNet mixers with a curvature-conditioned read.

Only the read changes: lambda_t = s_h * sigmoid(w_h^T q_t + b_h) (s clamped to [0, 1]), and the op
contracts q_t by the running key second moment before the backbone read. Writes, gates and S are the
backbone's. Parameters per layer: ccq_w [H, d_k], ccq_b [H], ccq_scale [H].
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init

from ...configuration.ccq import CCQConfig
from ...kernels import ccq_gated_delta_rule, ccq_gla
from .gated_deltanet import GatedDeltaNetMixer
from .gla import GLAMixer
from ..layers import upcast


class CCQReadMixin:
    """The three CCQ parameters and lambda; mixed into a backbone mixer."""

    num_heads: int
    head_k_dim: int

    def _add_ccq_parameters(self, config: CCQConfig) -> None:
        self.ccq_init_scale = float(config.ccq_init_scale)
        self.ccq_center = config.ccq_center
        self.ccq_w = nn.Parameter(torch.zeros(self.num_heads, self.head_k_dim))
        self.ccq_b = nn.Parameter(torch.zeros(self.num_heads))
        self.ccq_scale = nn.Parameter(torch.full((self.num_heads,), self.ccq_init_scale))

    @torch.no_grad()
    def _init_ccq_parameters(self) -> None:
        init.zeros_(self.ccq_w)
        init.zeros_(self.ccq_b)
        init.constant_(self.ccq_scale, self.ccq_init_scale)

    def ccq_lambda(self, q: torch.Tensor) -> torch.Tensor:
        """q [B, T, H, d_k] -> lambda [B, T, H] float32 in [0, 1] (also under autocast, which would run the
        contraction in bf16/fp16). The autocast-off block is entered only under autocast, so compiled training
        without autocast traces the same graph as before it existed."""
        if torch.is_autocast_enabled(q.device.type):
            with torch.autocast(q.device.type, enabled=False):
                return self._float32_lambda(q)
        return self._float32_lambda(q)

    def _float32_lambda(self, q: torch.Tensor) -> torch.Tensor:
        logits = torch.einsum("bthd,hd->bth", upcast(q), upcast(self.ccq_w)) + upcast(self.ccq_b)
        return upcast(self.ccq_scale).clamp(0.0, 1.0) * torch.sigmoid(logits)


class CCQGatedDeltaNetMixer(CCQReadMixin, GatedDeltaNetMixer):
    def __init__(self, config: CCQConfig, layer_idx: int) -> None:
        super().__init__(config, layer_idx)
        self._add_ccq_parameters(config)

    def init_special_parameters(self) -> None:
        super().init_special_parameters()
        self._init_ccq_parameters()

    def recurrence(self, x, q, k, v, g, beta, state, cu_seqlens, output_final_state):
        return ccq_gated_delta_rule(q, k, v, g, beta, self.ccq_lambda(q), initial_state=state,
                                    output_final_state=output_final_state, cu_seqlens=cu_seqlens,
                                    center=self.ccq_center)


class CCQGLAMixer(CCQReadMixin, GLAMixer):
    def __init__(self, config: CCQConfig, layer_idx: int) -> None:
        super().__init__(config, layer_idx)
        self._add_ccq_parameters(config)

    def init_special_parameters(self) -> None:
        self._init_ccq_parameters()

    def recurrence(self, x, q, k, v, gk, state, cu_seqlens, output_final_state):
        return ccq_gla(q, k, v, gk, self.ccq_lambda(q), initial_state=state,
                       output_final_state=output_final_state, cu_seqlens=cu_seqlens, center=self.ccq_center)


def build_ccq_mixer(config: CCQConfig, layer_idx: int) -> nn.Module:
    """The mixer of a CCQ model layer: backbone chosen by config.backbone, CCQ read unless config.ccq is False."""
    if config.backbone == "gla":
        return CCQGLAMixer(config, layer_idx) if config.ccq else GLAMixer(config, layer_idx)
    return CCQGatedDeltaNetMixer(config, layer_idx) if config.ccq else GatedDeltaNetMixer(config, layer_idx)
