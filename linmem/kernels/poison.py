"""NaN-poisoned output buffers for checking Triton kernels (the tests, the launch sweeps).

The kernels' host modules allocate outputs with torch.empty / empty_like, which is free and may hand back memory
that still holds a correct earlier result; with the module's `torch` replaced by `PoisonedTorch`, every such buffer
comes back filled with NaN, so an element a kernel forgets to write shows up.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Iterator

import torch


class PoisonedTorch:
    """Stands in for `torch` inside a kernel host module: empty buffers come back filled with NaN."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def _poison(t: torch.Tensor) -> torch.Tensor:
        return t.fill_(float("nan")) if t.is_floating_point() else t

    def empty(self, *args, **kwargs) -> torch.Tensor:
        return self._poison(torch.empty(*args, **kwargs))

    def empty_like(self, *args, **kwargs) -> torch.Tensor:
        return self._poison(torch.empty_like(*args, **kwargs))


@contextlib.contextmanager
def poisoned_buffers(*module_names: str) -> Iterator[None]:
    """Within the block, the named modules allocate NaN-filled buffers."""
    modules = [importlib.import_module(name) for name in module_names]
    saved = [module.torch for module in modules]
    try:
        for module in modules:
            module.torch = PoisonedTorch()
        yield
    finally:
        for module, original in zip(modules, saved):
            module.torch = original
