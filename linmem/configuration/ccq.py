"""`CCQConfig`: Curvature-Conditioned Query on a GLA or Gated DeltaNet backbone (specs/ccq.md)."""

from __future__ import annotations

from typing import Any

from .base import LinmemConfig, _positive_int, _require

BACKBONES = ("gla", "gated_deltanet")


class CCQConfig(LinmemConfig):
    """Configuration of a CCQ model.

    Args:
        backbone: "gla" (per-channel gated linear attention) or "gated_deltanet".
        ccq: when False the model is the plain backbone (no `ccq_*` parameters).
        ccq_init_scale: initial value of the per-head scale s (1.0 from scratch, 0.0 when retrofitting:
            CCQ is then the exact identity at step 0 while its gradient is non-zero).
        ccq_center: subtract the running key mean from the second moment (ablation).
        allow_neg_eigval: Gated DeltaNet only, beta in (0, 2).
        gate_low_rank_dim: GLA only, rank of the low-rank decay projection `gk_proj`.
        gate_logit_normalizer: GLA only, gk = logsigmoid(.) / gate_logit_normalizer.
        Other fields: see `LinmemConfig`.
    """

    model_type = "linmem_ccq"

    def __init__(
        self,
        backbone: str = "gated_deltanet",
        ccq: bool = True,
        ccq_init_scale: float = 1.0,
        ccq_center: bool = False,
        allow_neg_eigval: bool = False,
        gate_low_rank_dim: int = 16,
        gate_logit_normalizer: float = 16.0,
        **kwargs: Any,
    ) -> None:
        _require(backbone in BACKBONES, "backbone", f"one of {BACKBONES}", backbone)
        self.backbone = backbone
        self.ccq = ccq
        self.ccq_init_scale = ccq_init_scale
        self.ccq_center = ccq_center
        self.allow_neg_eigval = allow_neg_eigval
        self.gate_low_rank_dim = gate_low_rank_dim
        self.gate_logit_normalizer = gate_logit_normalizer
        if kwargs.get("use_short_conv") is None:
            kwargs["use_short_conv"] = backbone == "gated_deltanet"
        super().__init__(**kwargs)

    def validate_fields(self) -> None:
        super().validate_fields()
        _require(isinstance(self.ccq, bool), "ccq", "a bool", self.ccq)
        _require(isinstance(self.ccq_center, bool), "ccq_center", "a bool", self.ccq_center)
        _require(isinstance(self.ccq_init_scale, (int, float)) and 0.0 <= self.ccq_init_scale <= 1.0,
                 "ccq_init_scale", "a number in [0, 1] (s is clamped to [0, 1])", self.ccq_init_scale)
        _require(_positive_int(self.gate_low_rank_dim), "gate_low_rank_dim", "a positive integer", self.gate_low_rank_dim)
        _require(self.gate_logit_normalizer > 0, "gate_logit_normalizer", "a positive number", self.gate_logit_normalizer)
