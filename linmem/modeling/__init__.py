from .base import LinmemForCausalLM, LinmemModel, LinmemPreTrainedModel
from .cache import LinmemCache
from .ccq import CCQForCausalLM, CCQModel, CCQPreTrainedModel
from .qdelta import QDeltaForCausalLM, QDeltaModel, QDeltaPreTrainedModel

__all__ = ["LinmemPreTrainedModel", "LinmemModel", "LinmemForCausalLM", "LinmemCache",
           "CCQPreTrainedModel", "CCQModel", "CCQForCausalLM",
           "QDeltaPreTrainedModel", "QDeltaModel", "QDeltaForCausalLM"]
