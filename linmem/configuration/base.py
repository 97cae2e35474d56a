"""`LinmemConfig`: the fields every linmem architecture shares, validated with clear errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from transformers import PretrainedConfig


def _require(condition: bool, field: str, expected: str, received: Any) -> None:
    if not condition:
        raise ValueError(f"invalid config field `{field}`: expected {expected}, got {received!r}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class LinmemConfig(PretrainedConfig):
    """Base configuration of a linmem causal LM.

    The model is ``embeddings -> [Block] * num_hidden_layers -> norm -> lm_head``; each block is
    ``RMSNorm -> mixer -> residual -> RMSNorm -> SwiGLU MLP -> residual``. The mixer is the variant's
    linear-attention layer, except at the indices in ``attn_layers``, which use causal softmax attention.

    Args:
        vocab_size: tokens in the vocabulary.
        hidden_size: model width.
        num_hidden_layers: number of blocks.
        num_heads: heads of the linear-attention mixer.
        head_dim: key/query head dimension d_k of the mixer.
        expand_v: value head dimension d_v = head_dim * expand_v (must give an integer).
        hidden_ratio: MLP width = hidden_ratio * hidden_size rounded up to a multiple of 256,
            unless ``intermediate_size`` is given.
        intermediate_size: explicit MLP width.
        hidden_act: MLP activation ("swish"/"silu" or any `transformers` ACT2FN name).
        norm_eps: epsilon of every RMSNorm.
        use_short_conv: depthwise causal conv on q, k, v before the mixer (None: the variant's default).
        conv_size: kernel width of that conv.
        use_output_gate: Gated-DeltaNet-family mixers multiply the normed output by SiLU(g_proj(z)); False
            leaves a plain per-head RMSNorm (fla DeltaNet/GDN checkpoints with `use_gate=False`).
        tie_word_embeddings: share the input embedding with `lm_head`.
        initializer_range: std of the normal init of linear and embedding weights.
        attn_layers: indices of layers that use softmax attention (hybrid models).
        attn_num_heads / attn_num_kv_heads: query / key-value heads of those layers (GQA when fewer kv heads).
        attn_window_size: sliding window of those layers (None: full causal attention).
        attn_head_dim: head dimension of those layers (None: hidden_size // attn_num_heads; Qwen3-style
            checkpoints use a wider one).
        attn_qk_norm: per-head RMSNorm of q and k before RoPE in those layers (Qwen3, Gemma3).
        qkv_bias: biases on the q, k, v projections of every layer, linear and softmax (Qwen2).
        attn_scale: score scale of the softmax layers (None: 1 / sqrt(attn_head_dim); Gemma3 uses
            query_pre_attn_scalar ** -0.5).
        sandwich_norms: an extra RMSNorm on the mixer output and on the MLP output before each residual
            add (Gemma3's post-attention / post-feedforward norms).
        embedding_multiplier: the token embeddings are multiplied by this (Gemma3: sqrt(hidden_size)), inside the
            embedding module as in Gemma3, so `get_input_embeddings()(ids)` gives the scaled rows; `inputs_embeds`
            given by the caller are used as they are.
        norm_type: "rms" (RMSNorm) or "layer" (LayerNorm with bias, GPT-2) for the block and final norms.
        mlp_type: "gated" (down(act(gate(x)) * up(x))) or "plain" (down(act(up(x))), GPT-2).
        mlp_bias: biases on the MLP projections.
        o_proj_bias: a bias on the output projection of every mixer (GPT-2's c_proj).
        position_embedding_type: "none", or "learned" (a table of max_position_embeddings added to the
            token embeddings; positions count real tokens, so left padding does not shift them).
        attn_rope: RoPE in the softmax layers (False for GPT-2, whose positions are learned).
        rope_theta: RoPE base of those layers.
        max_position_embeddings: informative; recurrent layers have no length limit.
        cuda_graph_decode: on CUDA, replay each one-token decode step of a purely recurrent model as a CUDA
            graph captured once per cache (linmem/modeling/decode_graph.py): one launch per token instead of
            hundreds. Models with softmax layers or learned positions decode eagerly whatever this says.
        fuse_linear_cross_entropy: in training mode with labels, compute the loss from the last hidden states with
            the LM head fused in (linmem.kernels.loss.linear_cross_entropy: no float32 logits, their gradient kept in
            place of them); the output's logits are then None (eval mode keeps them). Off by default until timed on
            the GPU.
    """

    model_type = "linmem"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 1024,
        num_hidden_layers: int = 24,
        num_heads: int = 4,
        head_dim: int = 128,
        expand_v: float = 2.0,
        hidden_ratio: float = 4.0,
        intermediate_size: int | None = None,
        hidden_act: str = "swish",
        norm_eps: float = 1e-6,
        use_short_conv: bool | None = None,
        conv_size: int = 4,
        use_output_gate: bool = True,
        tie_word_embeddings: bool = False,
        initializer_range: float = 0.02,
        attn_layers: Sequence[int] | None = None,
        attn_num_heads: int | None = None,
        attn_num_kv_heads: int | None = None,
        attn_window_size: int | None = None,
        attn_head_dim: int | None = None,
        attn_qk_norm: bool = False,
        qkv_bias: bool = False,
        attn_scale: float | None = None,
        sandwich_norms: bool = False,
        embedding_multiplier: float = 1.0,
        norm_type: str = "rms",
        mlp_type: str = "gated",
        mlp_bias: bool = False,
        o_proj_bias: bool = False,
        position_embedding_type: str = "none",
        attn_rope: bool = True,
        rope_theta: float = 10000.0,
        max_position_embeddings: int = 2048,
        use_cache: bool = True,
        cuda_graph_decode: bool = False,
        fuse_linear_cross_entropy: bool = False,
        pad_token_id: int | None = None,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.expand_v = expand_v
        self.hidden_ratio = hidden_ratio
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.norm_eps = norm_eps
        self.use_short_conv = use_short_conv
        self.conv_size = conv_size
        self.use_output_gate = use_output_gate
        self.initializer_range = initializer_range
        self.attn_layers = sorted(int(i) for i in (attn_layers or []))
        self.attn_num_heads = attn_num_heads if attn_num_heads is not None else num_heads
        self.attn_num_kv_heads = attn_num_kv_heads if attn_num_kv_heads is not None else self.attn_num_heads
        self.attn_window_size = attn_window_size
        self.attn_head_dim = attn_head_dim if attn_head_dim is not None else hidden_size // self.attn_num_heads
        self.attn_qk_norm = bool(attn_qk_norm)
        self.qkv_bias = bool(qkv_bias)
        self.attn_scale = attn_scale
        self.sandwich_norms = bool(sandwich_norms)
        self.embedding_multiplier = embedding_multiplier
        self.norm_type = norm_type
        self.mlp_type = mlp_type
        self.mlp_bias = bool(mlp_bias)
        self.o_proj_bias = bool(o_proj_bias)
        self.position_embedding_type = position_embedding_type
        self.attn_rope = bool(attn_rope)
        self.rope_theta = rope_theta
        self.max_position_embeddings = max_position_embeddings
        self.use_cache = use_cache
        self.cuda_graph_decode = cuda_graph_decode
        self.fuse_linear_cross_entropy = fuse_linear_cross_entropy
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
        self.validate_fields()

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> None:
        """transformers' save_pretrained, plus the remote-code configuration files and `auto_map` (linmem.hub)."""
        from ..hub import save_config

        save_config(self, super().save_pretrained, save_directory, push_to_hub=push_to_hub, **kwargs)

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def value_dim(self) -> int:
        """d_v, the value head dimension of the mixer."""
        return int(round(self.head_dim * self.expand_v))

    @property
    def mlp_intermediate_size(self) -> int:
        if self.intermediate_size is not None:
            return self.intermediate_size
        return 256 * math.ceil(self.hidden_ratio * self.hidden_size / 256)

    # ---- validation --------------------------------------------------------------------------
    def validate_fields(self) -> None:
        """Raise a ValueError naming the first invalid field."""
        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_heads", "head_dim", "conv_size",
                      "attn_num_heads", "attn_num_kv_heads", "attn_head_dim", "max_position_embeddings"):
            value = getattr(self, field)
            _require(_positive_int(value), field, "a positive integer", value)
        _require(isinstance(self.expand_v, (int, float)) and self.expand_v > 0, "expand_v", "a positive number", self.expand_v)
        value_dim = self.head_dim * self.expand_v
        _require(abs(value_dim - round(value_dim)) < 1e-9, "expand_v",
                 f"a factor making head_dim * expand_v an integer (head_dim={self.head_dim})", self.expand_v)
        _require(self.hidden_ratio is not None and self.hidden_ratio > 0, "hidden_ratio", "a positive number", self.hidden_ratio)
        if self.intermediate_size is not None:
            _require(_positive_int(self.intermediate_size), "intermediate_size", "a positive integer or None", self.intermediate_size)
        _require(isinstance(self.norm_eps, float) and self.norm_eps > 0, "norm_eps", "a positive float", self.norm_eps)
        _require(isinstance(self.cuda_graph_decode, bool), "cuda_graph_decode", "True or False", self.cuda_graph_decode)
        _require(isinstance(self.fuse_linear_cross_entropy, bool), "fuse_linear_cross_entropy", "True or False",
                 self.fuse_linear_cross_entropy)
        _require(self.initializer_range >= 0, "initializer_range", "a non-negative number", self.initializer_range)
        for index in self.attn_layers:
            _require(0 <= index < self.num_hidden_layers, "attn_layers",
                     f"layer indices in [0, {self.num_hidden_layers})", self.attn_layers)
        _require(len(set(self.attn_layers)) == len(self.attn_layers), "attn_layers", "distinct indices", self.attn_layers)
        if self.attn_layers:
            _require(self.attn_num_heads % self.attn_num_kv_heads == 0, "attn_num_kv_heads",
                     f"a divisor of attn_num_heads={self.attn_num_heads}", self.attn_num_kv_heads)
            _require(self.attn_head_dim % 2 == 0, "attn_head_dim", "an even number (RoPE)", self.attn_head_dim)
        if self.attn_window_size is not None:
            _require(_positive_int(self.attn_window_size), "attn_window_size", "a positive integer or None", self.attn_window_size)
        _require(self.rope_theta > 0, "rope_theta", "a positive number", self.rope_theta)
        if self.attn_scale is not None:
            _require(isinstance(self.attn_scale, (int, float)) and self.attn_scale > 0, "attn_scale",
                     "a positive number or None", self.attn_scale)
        _require(isinstance(self.embedding_multiplier, (int, float)) and self.embedding_multiplier > 0,
                 "embedding_multiplier", "a positive number", self.embedding_multiplier)
        _require(self.norm_type in ("rms", "layer"), "norm_type", "'rms' or 'layer'", self.norm_type)
        _require(self.mlp_type in ("gated", "plain"), "mlp_type", "'gated' or 'plain'", self.mlp_type)
        _require(self.position_embedding_type in ("none", "learned"), "position_embedding_type",
                 "'none' or 'learned'", self.position_embedding_type)
