"""One-token decode replayed as a CUDA graph (`config.cuda_graph_decode`).

At batch 1 a decode step launches a few hundred small kernels and spends its time in Python and in launching
them, not on the GPU. A purely recurrent model's step reads and writes only fixed-size state buffers, so the
whole step can be captured once per cache and replayed: one launch per token.

The graph is bound to one `LinmemCache`: it reads the cache's state tensors and writes the new states back into
the same tensors (the step's own outputs are copied into them inside the graph), so the cache stays valid for
eager calls too. It is rebuilt whenever the cache, its buffers (a reorder that reallocated them), the batch
size or the model's parameters change. Anything the graph cannot replay exactly runs eagerly instead: softmax
layers (their KV cache grows), learned positions, a padded decode token, gradients, hidden-state outputs.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from .cache import LinmemCache, _iter_tensors, _map_tensors


# model -> its one decode graph; outside the module so that deepcopy, pickling and state dicts never see it
DECODE_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def state_tensors(cache: LinmemCache) -> list[torch.Tensor]:
    """Every recurrent and conv state tensor of the cache, in layer order."""
    return [t for store in (cache.recurrent_states, cache.conv_states) for entry in store for t in _iter_tensors(entry)]


def _parameter_pointers(model: nn.Module) -> tuple[int, ...]:
    return tuple(p.data_ptr() for p in model.parameters())


def graph_eligible(model: nn.Module, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None,
                   cache: Any, extra: dict[str, Any]) -> bool:
    """Whether this forward call is a plain one-token decode step the graph reproduces exactly."""
    config = model.config
    if not getattr(config, "cuda_graph_decode", False) or torch.is_grad_enabled():
        return False
    if input_ids is None or input_ids.dim() != 2 or input_ids.shape[1] != 1 or not input_ids.is_cuda:
        return False
    # softmax KV grows; learned positions check their range on the host; the embedding multiplier is a
    # host-to-device copy (Gemma-style rounding), which a capture cannot record
    if config.attn_layers or config.position_embedding_type == "learned" or config.embedding_multiplier != 1.0:
        return False
    if any(extra.get(name) is not None for name in ("inputs_embeds", "labels")) or extra.get("output_hidden_states"):
        return False
    if not isinstance(cache, LinmemCache) or cache.get_seq_length() == 0:
        return False
    if any(state is None for state in cache.recurrent_states) or torch.cuda.is_current_stream_capturing():
        return False
    # a padded decode token needs the packing path; generate() never feeds one (one host sync, once per token)
    return attention_mask is None or bool(attention_mask[:, -1].all())


class DecodeGraph:
    """A captured one-token forward of `model` reading and updating `cache` in place.

    `step(input_ids [B, 1]) -> logits [B, 1, vocab]` replays it (and advances the cache by one position).
    """

    def __init__(self, model: nn.Module, cache: LinmemCache, input_ids: torch.Tensor) -> None:
        self.cache_ref = weakref.ref(cache)
        self.buffers = state_tensors(cache)
        self.buffer_pointers = [t.data_ptr() for t in self.buffers]
        self.parameter_pointers = _parameter_pointers(model)
        self.input_ids = input_ids.clone()
        self._warm_up(model, cache)
        self.graph = torch.cuda.CUDAGraph()
        entries = (list(cache.recurrent_states), list(cache.conv_states))
        seen = cache.get_seq_length()
        with torch.cuda.graph(self.graph):
            self.logits = model.one_token_logits(self.input_ids, cache)
            new_buffers = state_tensors(cache)
            if len(new_buffers) != len(self.buffers):
                raise RuntimeError("a decode step changed the number of state tensors; cannot replay it as a graph")
            for old, new in zip(self.buffers, new_buffers):
                if new is not old:
                    old.copy_(new)
        # capture recorded the step without running it: the cache is as it was
        cache.recurrent_states[:], cache.conv_states[:] = entries
        cache._seen_tokens = seen

    def _warm_up(self, model: nn.Module, cache: LinmemCache) -> None:
        """Run the step once on a side stream against a copy of the states (kernel compilation, cuBLAS
        workspaces happen outside the capture; the real cache is untouched)."""
        scratch = LinmemCache(cache.num_layers)
        scratch.recurrent_states = [_map_tensors(e, torch.clone) for e in cache.recurrent_states]
        scratch.conv_states = [_map_tensors(e, torch.clone) for e in cache.conv_states]
        scratch._seen_tokens = cache.get_seq_length()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            model.one_token_logits(self.input_ids, scratch)
        torch.cuda.current_stream().wait_stream(stream)

    def matches(self, model: nn.Module, cache: LinmemCache, input_ids: torch.Tensor) -> bool:
        if (self.cache_ref() is not cache or input_ids.shape != self.input_ids.shape
                or input_ids.dtype != self.input_ids.dtype or input_ids.device != self.input_ids.device):
            return False
        buffers = state_tensors(cache)
        if len(buffers) != len(self.buffers) or any(a is not b for a, b in zip(buffers, self.buffers)):
            return False
        return ([t.data_ptr() for t in buffers] == self.buffer_pointers
                and _parameter_pointers(model) == self.parameter_pointers)

    def step(self, input_ids: torch.Tensor, cache: LinmemCache) -> torch.Tensor:
        self.input_ids.copy_(input_ids)
        self.graph.replay()
        cache.advance(1)
        return self.logits.clone()  # the next replay overwrites the graph's own buffer
