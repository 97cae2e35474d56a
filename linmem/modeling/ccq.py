"""CCQ models: `CCQModel`, `CCQForCausalLM` (the shared stack with CCQ-GLA / CCQ-GDN mixers)."""

from ..configuration.ccq import CCQConfig
from .base import LinmemForCausalLM, LinmemModel, LinmemPreTrainedModel
from .mixers.ccq import build_ccq_mixer


class CCQPreTrainedModel(LinmemPreTrainedModel):
    config_class = CCQConfig


class CCQModel(CCQPreTrainedModel, LinmemModel):
    mixer_builder = staticmethod(build_ccq_mixer)


class CCQForCausalLM(CCQPreTrainedModel, LinmemForCausalLM):
    base_model_class = CCQModel
