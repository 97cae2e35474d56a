from .base import RecurrentMixer
from .ccq import CCQGatedDeltaNetMixer, CCQGLAMixer, build_ccq_mixer
from .gated_deltanet import GatedDeltaNetMixer
from .gla import GLAMixer
from .qdelta import QDeltaMixer

__all__ = ["RecurrentMixer", "GatedDeltaNetMixer", "GLAMixer", "CCQGatedDeltaNetMixer", "CCQGLAMixer",
           "QDeltaMixer", "build_ccq_mixer"]
