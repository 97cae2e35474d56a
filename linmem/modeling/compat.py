"""One place for the Transformers versions linmem supports (5.17 and later 5.x).

From 5.24 the cache travels as `cache` (in `forward` kwargs, `generate`'s model inputs and the output
dataclasses); before, as `past_key_values`. linmem's forwards accept both names, and outputs are built
with whichever field the installed version declares, so neither version warns or drops the cache.
"""

from __future__ import annotations

from typing import Any

from transformers.modeling_outputs import CausalLMOutputWithPast

#: The output dataclasses' field for the cache in the installed transformers.
CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def cache_argument(past_key_values: Any, kwargs: dict[str, Any]) -> Any:
    """The cache a caller passed, as `past_key_values` or as `cache` (popped from kwargs); both is an error."""
    cache = kwargs.pop("cache", None)
    if cache is not None and past_key_values is not None and cache is not past_key_values:
        raise ValueError("pass the cache once: as `cache` or as `past_key_values`, not both")
    return past_key_values if past_key_values is not None else cache


def with_cache(cache: Any) -> dict[str, Any]:
    """Keyword arguments that put `cache` into an output dataclass of the installed version."""
    return {CACHE_FIELD: cache}


def cache_of(output: Any) -> Any:
    """The cache of a model output, whatever the installed version calls it."""
    return getattr(output, CACHE_FIELD)
