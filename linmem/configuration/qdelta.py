"""`QDeltaConfig`: the query-aware delta rule on a Gated DeltaNet layer (specs/qdelta.md)."""

from __future__ import annotations

from typing import Any

from .base import LinmemConfig, _require


class QDeltaConfig(LinmemConfig):
    """Configuration of a Q-Delta model.

    Args:
        lamb_bias: constant b_lambda in lambda = gamma_h * sigmoid(w^T z - b_lambda) (0.9 in the paper).
        lamb_init_scale: initial per-head gamma_h (1.0 from scratch, 0.0 when retrofitting a GDN checkpoint).
        allow_neg_eigval: beta in (0, 2); lambda is then clamped to at most 2/beta - 1.
        use_decay: False gives alpha == 1 (the DeltaNet form, for DeltaNet checkpoints).
        Other fields: see `LinmemConfig`.
    """

    model_type = "linmem_qdelta"

    def __init__(
        self,
        lamb_bias: float = 0.9,
        lamb_init_scale: float = 1.0,
        allow_neg_eigval: bool = False,
        use_decay: bool = True,
        **kwargs: Any,
    ) -> None:
        self.lamb_bias = lamb_bias
        self.lamb_init_scale = lamb_init_scale
        self.allow_neg_eigval = allow_neg_eigval
        self.use_decay = use_decay
        if kwargs.get("use_short_conv") is None:
            kwargs["use_short_conv"] = True
        super().__init__(**kwargs)

    def validate_fields(self) -> None:
        super().validate_fields()
        _require(isinstance(self.lamb_init_scale, (int, float)) and 0.0 <= self.lamb_init_scale <= 1.0,
                 "lamb_init_scale", "a number in [0, 1]", self.lamb_init_scale)
        _require(isinstance(self.use_decay, bool), "use_decay", "a bool", self.use_decay)
