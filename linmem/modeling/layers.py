"""Small building blocks shared by every linmem model: embeddings, norms, the MLPs, the short convolution."""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN

from ..kernels import causal_conv1d
from ..kernels.norm import rms_norm
from .projection import project


def upcast(t: torch.Tensor) -> torch.Tensor:
    """t in at least float32 (float64 stays float64): the precision of gates, norms and states."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


class ScaledEmbedding(nn.Embedding):
    """Token embeddings times a constant (`config.embedding_multiplier`; Gemma3: sqrt(hidden_size)), the scale part of
    the module as in transformers' Gemma3: `get_input_embeddings()(ids)` is what the blocks see, so inputs_embeds
    built from it (generate from embeddings, PEFT prompt tuning) match input_ids. The constant is rounded to the
    embeddings' dtype first, as Gemma3 does."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None, multiplier: float) -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.multiplier = multiplier

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeddings = super().forward(input_ids)
        return embeddings * embeddings.new_tensor(self.multiplier)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, multiplier={self.multiplier}"


def make_embeddings(config) -> nn.Embedding:
    """The token embeddings: plain, or scaled when config.embedding_multiplier != 1."""
    if config.embedding_multiplier == 1.0:
        return nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
    return ScaledEmbedding(config.vocab_size, config.hidden_size, config.pad_token_id, config.embedding_multiplier)


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension, computed in float32, returned in the input dtype."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * rsqrt(mean(x^2) + eps) * weight in float32 (float64 stays float64), returned in x's dtype
        (linmem.kernels.norm.rms_norm)."""
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class GatedRMSNorm(RMSNorm):
    """Per-head output norm of a mixer: ``RMSNorm(o) * SiLU(gate)``; o and gate [..., d_v]."""

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Normalised, weighted and gated in float32, rounded once to x's dtype (as fla's fused gated norm)."""
        return rms_norm(x, self.weight, self.eps, gate)


def activation(name: str) -> nn.Module:
    """The Transformers activation `name`; fla's "swish" is SiLU."""
    return ACT2FN["silu" if name == "swish" else name]


class SwiGLUMLP(nn.Module):
    """``down_proj(act(gate_proj(x)) * up_proj(x))`` with the fla parameter names."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str = "swish", bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.act_fn = activation(hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = project(x, self.gate_proj, self.up_proj)
        return self.down_proj(self.act_fn(gate) * up)


class PlainMLP(nn.Module):
    """``down_proj(act(up_proj(x)))``, the ungated MLP of GPT-2-style models."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str, bias: bool = True) -> None:
        super().__init__()
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.act_fn = activation(hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.up_proj(x)))


def make_norm(config, dim: int) -> nn.Module:
    """The block/final norm the config asks for: RMSNorm, or LayerNorm with bias (`norm_type="layer"`)."""
    if config.norm_type == "layer":
        return nn.LayerNorm(dim, eps=config.norm_eps)
    return RMSNorm(dim, eps=config.norm_eps)


def make_mlp(config) -> nn.Module:
    """The MLP the config asks for (`mlp_type`, `mlp_bias`)."""
    cls = PlainMLP if config.mlp_type == "plain" else SwiGLUMLP
    return cls(config.hidden_size, config.mlp_intermediate_size, config.hidden_act, bias=config.mlp_bias)


class ShortConvolution(nn.Conv1d):
    """Depthwise causal convolution (kernel `conv_size`, no bias) with a decode state.

    The weight keeps nn.Conv1d's layout [D, 1, W] so fla checkpoints load one-to-one; the computation
    goes through `linmem.kernels.causal_conv1d` (forward() is the only place the weight is read, so
    accelerate's offload hooks see it).
    """

    def __init__(self, channels: int, conv_size: int, activation: str | None = "silu") -> None:
        super().__init__(channels, channels, conv_size, groups=channels, padding=conv_size - 1, bias=False)
        self.activation = activation

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        initial_state: torch.Tensor | None = None,
        output_final_state: bool = False,
        cu_seqlens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [B, T, D] -> (y [B, T, D], state [N, D, W-1] or None)."""
        return causal_conv1d(
            x, self.weight.squeeze(1), self.bias, activation=self.activation,
            initial_state=initial_state, output_final_state=output_final_state, cu_seqlens=cu_seqlens,
        )
