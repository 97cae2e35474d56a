"""Per-layer alignment of a student's mixers with a softmax teacher's attention.

`capture_teacher_attention` runs the teacher once and records, per layer, the input of its attention
module (the normed hidden state) and its output. `student_mixer_outputs` feeds those same inputs to the
student's mixers (`model.layers.{i}.attn`), so each layer is compared in isolation. Used by
`linmem validate` (the MSE table) and by stage 1 of `linmem distill` (the training signal).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ..modeling.attention import SoftmaxAttention
from ..modeling.padding import TokenLayout
from .losses import masked_mse


def teacher_layers(teacher: nn.Module) -> nn.ModuleList:
    """The decoder layers of a Transformers causal LM (Llama/Mistral/Qwen family: `model.layers`)."""
    layers = getattr(getattr(teacher, "model", None), "layers", None)
    if layers is None:
        raise TypeError(f"teacher {type(teacher).__name__} has no `model.layers`; expected a Llama-family causal LM")
    return layers


def _attention_module(layer: nn.Module) -> nn.Module:
    for name in ("self_attn", "attn", "attention"):
        if hasattr(layer, name):
            return getattr(layer, name)
    raise TypeError(f"teacher layer {type(layer).__name__} has no attention module (self_attn)")


@contextmanager
def _recording(teacher: nn.Module, layer_indices: list[int], store: dict[int, tuple[torch.Tensor, torch.Tensor]]):
    handles = []
    layers = teacher_layers(teacher)

    def hook_for(index: int):
        def hook(module, args, kwargs, output):
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            out = output[0] if isinstance(output, tuple) else output
            store[index] = (hidden.detach(), out.detach())
        return hook

    try:
        for index in layer_indices:
            handles.append(_attention_module(layers[index]).register_forward_hook(hook_for(index), with_kwargs=True))
        yield store
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def capture_teacher_attention(
    teacher: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, layer_indices: list[int]
) -> tuple[dict[int, tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Run the teacher; return ({layer: (attention input [B,T,D], attention output [B,T,D])}, logits [B,T,V])."""
    store: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    with _recording(teacher, layer_indices, store):
        logits = teacher(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    missing = [i for i in layer_indices if i not in store]
    if missing:
        raise RuntimeError(f"teacher attention of layers {missing} was not recorded")
    return store, logits


def student_mixer_output(student: nn.Module, index: int, hidden: torch.Tensor,
                         attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The student's layer-`index` mixer applied to `hidden` [B, T, D] (no cache)."""
    mixer = student.model.layers[index].attn
    if isinstance(mixer, SoftmaxAttention):
        return mixer(hidden, attention_mask=attention_mask, past_key_values=None, position_ids=None, past_length=0)
    layout = TokenLayout.from_mask(attention_mask) if attention_mask is not None else None
    return mixer(hidden, layout=layout, past_key_values=None)


def layer_alignment_losses(
    student: nn.Module, captured: dict[int, tuple[torch.Tensor, torch.Tensor]], attention_mask: torch.Tensor | None
) -> dict[int, torch.Tensor]:
    """{layer: masked MSE between the student mixer and the teacher attention on the teacher's input}."""
    losses = {}
    for index, (hidden, target) in captured.items():
        student_dtype = next(student.model.layers[index].attn.parameters()).dtype
        prediction = student_mixer_output(student, index, hidden.to(student_dtype), attention_mask)
        losses[index] = masked_mse(prediction, target, attention_mask)
    return losses
