"""Q-Delta models: `QDeltaModel`, `QDeltaForCausalLM` (the shared stack with Q-Delta mixers)."""

from ..configuration.qdelta import QDeltaConfig
from .base import LinmemForCausalLM, LinmemModel, LinmemPreTrainedModel
from .mixers.qdelta import QDeltaMixer


class QDeltaPreTrainedModel(LinmemPreTrainedModel):
    config_class = QDeltaConfig


class QDeltaModel(QDeltaPreTrainedModel, LinmemModel):
    mixer_builder = QDeltaMixer


class QDeltaForCausalLM(QDeltaPreTrainedModel, LinmemForCausalLM):
    base_model_class = QDeltaModel
