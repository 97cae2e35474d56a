from .base import LinmemForCausalLM, LinmemModel, LinmemPreTrainedModel
from .cache import LinmemCache
from .compat import cache_of
from .ccq import CCQForCausalLM, CCQModel, CCQPreTrainedModel
from .qdelta import QDeltaForCausalLM, QDeltaModel, QDeltaPreTrainedModel

__all__ = ["LinmemPreTrainedModel", "LinmemModel", "LinmemForCausalLM", "LinmemCache", "cache_of",
           "CCQPreTrainedModel", "CCQModel", "CCQForCausalLM",
           "QDeltaPreTrainedModel", "QDeltaModel", "QDeltaForCausalLM"]
