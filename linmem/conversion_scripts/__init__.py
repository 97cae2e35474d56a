"""Checkpoint conversion: retrofit CCQ or Q-Delta into fla-hub linear models, linearise softmax Transformers.

    convert(source, target, output)      plan, check (strict key accounting), build and save
    validate(base, converted)             prove it (exact no-op for fla sources; MSE/perplexity for softmax)
    distill(DistillConfig(...))           stage 1 per-layer alignment, stage 2 masked KL

The `linmem convert | validate | distill` commands wrap these (linmem/cli_convert.py).
"""

from .convert import TARGETS, build_model, convert, make_plan
from .plan import MAPPING_VERSION, ConversionPlan, check_plan
from .source import ConversionError, SourceCheckpoint, open_source

__all__ = ["convert", "make_plan", "build_model", "TARGETS", "MAPPING_VERSION", "ConversionPlan", "check_plan",
           "ConversionError", "SourceCheckpoint", "open_source"]
