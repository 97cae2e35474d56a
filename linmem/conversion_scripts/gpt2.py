"""The plan for GPT-2 checkpoints (model_type "gpt2"), linearised by weight transfer like the softmax families.

GPT-2's block maps onto the linmem block with `norm_type="layer"` (LayerNorm with bias), `mlp_type="plain"`
(c_fc -> GELU -> c_proj, with biases), `qkv_bias` / `o_proj_bias`, learned absolute positions
(`position_embedding_type="learned"`, wpe copied) and no RoPE in kept softmax layers (`attn_rope=False`).
GPT-2 stores its projections as Conv1D weights [in, out]: they are transposed to nn.Linear's [out, in], and
the fused c_attn [hidden, 3 * hidden] is split into q, k, v (and its bias likewise).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from .plan import ConversionPlan
from .softmax import SOFTMAX_TARGETS, build_target_config, declare_linear_mixer, softmax_layers_to_keep
from .source import ConversionError, SourceCheckpoint

UNSUPPORTED_FIELDS = {  # field -> the value linmem can hold
    "scale_attn_by_inverse_layer_idx": False,
    "scale_attn_weights": True,
    "add_cross_attention": False,
    "reorder_and_upcast_attn": False,
}


def conv1d_to_linear(weight: torch.Tensor) -> torch.Tensor:
    """A GPT-2 Conv1D weight [in, out] as an nn.Linear weight [out, in]."""
    return weight.t().contiguous()


def fused_qkv_part(tensor: torch.Tensor, index: int, hidden: int) -> torch.Tensor:
    """q (0), k (1) or v (2) of c_attn: weight [hidden, 3 hidden] -> Linear [hidden, hidden]; bias [3 hidden] -> [hidden]."""
    part = tensor[..., index * hidden:(index + 1) * hidden]
    return part.t().contiguous() if part.dim() == 2 else part.contiguous()


def _fields(config: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    for field, supported in UNSUPPORTED_FIELDS.items():
        if bool(config.get(field, supported)) != supported:
            raise ConversionError(f"source field `{field}` = {config[field]} is not supported (linmem needs {supported})")
    hidden, heads = int(config["n_embd"]), int(config["n_head"])
    if hidden % heads:
        raise ConversionError(f"source `n_embd` = {hidden} is not a multiple of `n_head` = {heads}")
    return dict(
        vocab_size=int(config["vocab_size"]), hidden_size=hidden, num_hidden_layers=int(config["n_layer"]),
        num_heads=heads, head_dim=hidden // heads, expand_v=1.0,
        intermediate_size=int(config.get("n_inner") or 4 * hidden),
        hidden_act=config.get("activation_function", "gelu_new"), norm_eps=float(config.get("layer_norm_epsilon", 1e-5)),
        norm_type="layer", mlp_type="plain", mlp_bias=True, qkv_bias=True, o_proj_bias=True,
        position_embedding_type="learned", max_position_embeddings=int(config.get("n_positions", 1024)),
        attn_rope=False, tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
        initializer_range=float(config.get("initializer_range", 0.02)),
        pad_token_id=config.get("pad_token_id"), bos_token_id=config.get("bos_token_id"),
        eos_token_id=config.get("eos_token_id"),
        attn_layers=keep, attn_num_heads=heads, attn_num_kv_heads=heads,
    )


def plan_gpt2(
    source: SourceCheckpoint, target: str, *, keep_softmax_layers: list[int] | None = None,
    hybrid_every: int | None = None, ccq_init_scale: float = 1.0, lamb_init_scale: float = 1.0,
) -> ConversionPlan:
    """The plan linearising a GPT-2 checkpoint into `target` ("ccq-gla", "ccq-gdn" or "qdelta")."""
    if target not in SOFTMAX_TARGETS:
        raise ConversionError(f"unknown target {target!r} for a GPT-2 source; expected one of {SOFTMAX_TARGETS}")
    config = source.config
    keep = softmax_layers_to_keep(int(config["n_layer"]), keep_softmax_layers, hybrid_every)
    target_config = build_target_config(target, _fields(config, keep), ccq_init_scale, lamb_init_scale)
    plan = ConversionPlan(target_name=target, target_config=target_config, source_kind="softmax",
                          kept_softmax_layers=keep)
    prefix = "transformer." if "transformer.wte.weight" in source.key_files else ""
    hidden = target_config.hidden_size
    linear = partial(plan.add, fn=conv1d_to_linear, note=" (Conv1D [in, out] transposed)")

    plan.add("model.embeddings.weight", prefix + "wte.weight")
    plan.add("model.position_embeddings.weight", prefix + "wpe.weight")
    for name in ("weight", "bias"):
        plan.add(f"model.norm.{name}", f"{prefix}ln_f.{name}")
    if "lm_head.weight" in source.key_files:
        plan.drop("lm_head.weight", "tied to model.embeddings.weight (GPT-2 ties its LM head)")
    for i in range(target_config.num_hidden_layers):
        t, s = f"model.layers.{i}.", f"{prefix}h.{i}."
        for name in ("weight", "bias"):
            plan.add(t + f"attn_norm.{name}", s + f"ln_1.{name}")
            plan.add(t + f"mlp_norm.{name}", s + f"ln_2.{name}")
        linear(t + "mlp.up_proj.weight", s + "mlp.c_fc.weight")
        plan.add(t + "mlp.up_proj.bias", s + "mlp.c_fc.bias")
        linear(t + "mlp.down_proj.weight", s + "mlp.c_proj.weight")
        plan.add(t + "mlp.down_proj.bias", s + "mlp.c_proj.bias")
        for index, name in enumerate("qkv"):
            for kind in ("weight", "bias"):
                plan.add(t + f"attn.{name}_proj.{kind}", s + f"attn.c_attn.{kind}",
                         fn=partial(fused_qkv_part, index=index, hidden=hidden), note=f" ({name} part of c_attn)")
        linear(t + "attn.o_proj.weight", s + "attn.c_proj.weight")
        plan.add(t + "attn.o_proj.bias", s + "attn.c_proj.bias")
        for buffer in ("attn.bias", "attn.masked_bias"):
            if s + buffer in source.key_files:
                plan.drop(s + buffer, "the causal-mask buffer of old GPT-2 checkpoints (not a weight)")
        if i not in keep:
            declare_linear_mixer(plan, i)
    plan.notes.append("learned positions kept (wpe); no RoPE anywhere" + (f"; softmax layers {keep}" if keep else ""))
    return plan
