"""What the ops derive from a cu_seqlens tensor, remembered while that tensor lives unchanged.

A model packs a padded batch once per forward and passes the same cu_seqlens tensor to every op of every layer, in
the forward and in the backward. Checking it costs a device-to-host copy and the chunk layout a dozen small launches;
remembered, each is paid once per forward instead of once per op call.

An entry is found again only for the same tensor object (a weak reference, so the memo keeps nothing alive) at the
same in-place version, so a modified or a new tensor is derived afresh. Nothing is remembered for tensors without a
version counter (inference mode), for tensor subclasses (fake and functional tensors), while compiling or capturing a
CUDA graph, and, for values that hold tensors, inside a custom op called through the dispatcher, whose outputs must
be fresh tensors that the compiled graph may reuse the memory of.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import torch

from .library import inside_dispatched_op

Value = TypeVar("Value")

_MAX_ENTRIES = 64
_entries: OrderedDict[tuple, tuple[weakref.ref, int, object]] = OrderedDict()
_lock = threading.Lock()


def _can_remember(cu_seqlens: torch.Tensor, holds_tensors: bool) -> bool:
    if torch.compiler.is_compiling():  # first: Dynamo cannot trace is_inference()
        return False
    if type(cu_seqlens) is not torch.Tensor or cu_seqlens.is_inference():
        return False
    if holds_tensors and inside_dispatched_op():
        return False
    return not (cu_seqlens.is_cuda and torch.cuda.is_current_stream_capturing())


def remembered(cu_seqlens: torch.Tensor, key: Hashable, build: Callable[[], Value], *,
               holds_tensors: bool = True) -> Value:
    """build(), or what it returned for this cu_seqlens tensor (unchanged since) and key.

    holds_tensors: the value holds tensors that callers only read (they are shared between calls)."""
    if not _can_remember(cu_seqlens, holds_tensors):
        return build()
    slot = (id(cu_seqlens), key)
    with _lock:
        entry = _entries.get(slot)
        if entry is not None and entry[0]() is cu_seqlens and entry[1] == cu_seqlens._version:
            _entries.move_to_end(slot)
            return entry[2]
    value = build()
    with _lock:
        _entries[slot] = (weakref.ref(cu_seqlens), cu_seqlens._version, value)
        if len(_entries) > _MAX_ENTRIES:
            for dead in [s for s, (ref, _, _) in _entries.items() if ref() is None]:
                del _entries[dead]
            while len(_entries) > _MAX_ENTRIES:
                _entries.popitem(last=False)
    return value
