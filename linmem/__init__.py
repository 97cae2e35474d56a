"""linmem: recall-oriented linear-attention language models as Hugging Face Transformers architectures.

Importing linmem registers every architecture with AutoConfig, AutoModel and AutoModelForCausalLM.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration import CCQConfig, LinmemConfig, QDeltaConfig
from .modeling import (
    CCQForCausalLM,
    CCQModel,
    LinmemCache,
    LinmemForCausalLM,
    LinmemModel,
    LinmemPreTrainedModel,
    QDeltaForCausalLM,
    QDeltaModel,
    cache_of,
)
from .peft_defaults import register_peft_defaults
from .training import CUDAGraphTrainingStep

__version__ = "0.1.0"

#: Recommended PEFT LoRA targets: every projection of the mixers, the softmax layers and the MLP
#: (all plain nn.Linear; gates, norms, convs and the CCQ / Q-Delta scalars stay frozen).
LORA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "g_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

ARCHITECTURES = {
    CCQConfig: (CCQModel, CCQForCausalLM),
    QDeltaConfig: (QDeltaModel, QDeltaForCausalLM),
}

for _config_class, (_model_class, _lm_class) in ARCHITECTURES.items():
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)
    AutoModelForCausalLM.register(_config_class, _lm_class, exist_ok=True)
register_peft_defaults(config_class.model_type for config_class in ARCHITECTURES)

__all__ = [
    "LinmemConfig", "CCQConfig", "QDeltaConfig", "LinmemCache", "LinmemPreTrainedModel", "LinmemModel",
    "LinmemForCausalLM", "CCQModel", "CCQForCausalLM", "QDeltaModel", "QDeltaForCausalLM", "ARCHITECTURES",
    "LORA_TARGET_MODULES", "cache_of", "CUDAGraphTrainingStep",
]
