"""`LinmemCache`: the per-layer decode state of every linmem model.

Per layer it holds, as needed by that layer's mixer:
  * the recurrent state (a float32 tensor [B, H, d_k, d_v] or a NamedTuple of such tensors, e.g. CCQState),
  * the short-conv states (a tuple of [B, D, W-1] tensors, one per convolved projection),
  * the key/value tensors of a softmax-attention layer ([B, H_kv, L, d]).
Recurrent memory does not grow with the context; attention KV does.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache


def _map_tensors(value: Any, fn) -> Any:
    """Apply fn to every tensor in a (nested) tuple / NamedTuple / list; keep None."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_map_tensors(v, fn) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value)
    raise TypeError(f"cannot map over cache entry of type {type(value).__name__}")


def _iter_tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _iter_tensors(item)


class LinmemCache(Cache):
    """Recurrent + conv + attention state for `num_layers` layers (created by the model's forward)."""

    is_compileable = False
    is_croppable = False

    def __init__(self, num_layers: int) -> None:
        # Deliberately not Cache.__init__: this cache manages its own per-layer storage.
        self.layers: list = []
        self.offloading = False
        self.num_layers = num_layers
        self.recurrent_states: list[Any] = [None] * num_layers
        self.conv_states: list[tuple[torch.Tensor, ...] | None] = [None] * num_layers
        self.key_cache: list[torch.Tensor | None] = [None] * num_layers
        self.value_cache: list[torch.Tensor | None] = [None] * num_layers
        self._seen_tokens = 0

    def __repr__(self) -> str:
        return f"LinmemCache(num_layers={self.num_layers}, seen_tokens={self._seen_tokens})"

    def __len__(self) -> int:
        return self.num_layers

    # ---- attention layers ------------------------------------------------------------------------
    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append [B, H_kv, T, d] keys/values of an attention layer; return all of them."""
        if self.key_cache[layer_idx] is None:
            self.key_cache[layer_idx], self.value_cache[layer_idx] = key_states, value_states
        else:
            self.key_cache[layer_idx] = torch.cat([self.key_cache[layer_idx], key_states], dim=-2)
            self.value_cache[layer_idx] = torch.cat([self.value_cache[layer_idx], value_states], dim=-2)
        return self.key_cache[layer_idx], self.value_cache[layer_idx]

    # ---- bookkeeping ---------------------------------------------------------------------------
    def advance(self, num_tokens: int) -> None:
        """Record that the model consumed `num_tokens` more positions (padded positions included)."""
        self._seen_tokens += num_tokens

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        """Positions consumed so far (what the next token's position is, counted from 0)."""
        return self._seen_tokens

    def get_max_length(self) -> int:
        return -1

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self._seen_tokens + query_length, 0

    @property
    def is_sliding(self) -> list[bool]:
        return [False] * self.num_layers

    def _all_entries(self):
        return (self.recurrent_states, self.conv_states, self.key_cache, self.value_cache)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Select/reorder batch rows (beam search). Same-size reorders write into the existing tensors, so their
        storage stays put (a decode CUDA graph bound to it stays valid); other selections reallocate."""

        def select(t: torch.Tensor) -> torch.Tensor:
            chosen = t.index_select(0, beam_idx.to(t.device))
            return t.copy_(chosen) if chosen.shape == t.shape else chosen

        for store in self._all_entries():
            for i, entry in enumerate(store):
                store[i] = _map_tensors(entry, select)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.reorder_cache(indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        for store in self._all_entries():
            for i, entry in enumerate(store):
                store[i] = _map_tensors(entry, lambda t: t.repeat_interleave(repeats, dim=0))

    def crop(self, max_length: int) -> None:
        raise NotImplementedError(
            "LinmemCache cannot be cropped: a recurrent state cannot be rolled back to an earlier position. "
            "Re-run the prompt up to the position you need instead (assisted/speculative decoding is unsupported)."
        )

    def reset(self) -> None:
        self.__init__(self.num_layers)

    # ---- introspection -------------------------------------------------------------------------
    def recurrent_state_bytes(self) -> int:
        """Bytes held by recurrent and conv states (independent of the context length)."""
        stores = (self.recurrent_states, self.conv_states)
        return sum(t.numel() * t.element_size() for store in stores for e in store for t in _iter_tensors(e))

    def attention_cache_bytes(self) -> int:
        """Bytes held by softmax-attention KV (grows with the context length)."""
        stores = (self.key_cache, self.value_cache)
        return sum(t.numel() * t.element_size() for store in stores for e in store for t in _iter_tensors(e))
