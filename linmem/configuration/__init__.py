from .base import LinmemConfig
from .ccq import CCQConfig
from .qdelta import QDeltaConfig

__all__ = ["LinmemConfig", "CCQConfig", "QDeltaConfig"]
