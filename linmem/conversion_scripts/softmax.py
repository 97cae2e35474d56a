"""Plans for softmax Transformers (Llama/Mistral/SmolLM, Qwen2, Qwen3, Gemma3 text; GPT-2 lives in gpt2.py).

Linearisation by weight transfer: embeddings, norms (with eps), MLP, final norm and LM head are copied;
in linear layers q/o are copied and k/v repeated across each group of query heads (GQA), RoPE is dropped,
Qwen2's q/k/v biases are copied (k/v repeated like their weights; `qkv_bias`), Qwen3's per-head q/k norms
are kept in softmax layers (`attn_qk_norm`, with its own `attn_head_dim`) and replaced by the l2 norm in
linear ones; Gemma3's (1 + w) norms become plain weights, its post-attention / post-feedforward norms
the block's `sandwich_norms`, its embedding scale `embedding_multiplier` and query_pre_attn_scalar
`attn_scale`; kept Gemma3 layers must be all global or all sliding (window and RoPE base follow),
and the recurrent gates are new, at their standard initialisation, with one decision: the short
convolutions start as the identity so that q, k, v begin as the teacher's projections (then SiLU, l2 norm).
Layers listed in `keep_softmax_layers` stay softmax attention with their RoPE (rope_theta copied).
A distillation (`linmem distill`) is expected afterwards: the converted model is not the teacher.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from .plan import ConversionPlan
from .reshape import add_one, identity_conv_, repeat_heads
from .source import ConversionError, SourceCheckpoint

LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3")
GEMMA = ("gemma3_text",)
DIAGNOSED = {
    "gemma3": "this is the multimodal Gemma3 checkpoint; convert its text model instead (Gemma3ForCausalLM, "
              "model_type 'gemma3_text': `Gemma3ForCausalLM.from_pretrained(...)` then `save_pretrained`)",
}
SOFTMAX_TARGETS = ("ccq-gla", "ccq-gdn", "qdelta")


def softmax_layers_to_keep(num_layers: int, keep: list[int] | None, hybrid_every: int | None) -> list[int]:
    """Indices of layers that stay softmax: an explicit list, or every `hybrid_every`-th layer (N-1, 2N-1, ...)."""
    if keep and hybrid_every:
        raise ConversionError("pass at most one of `--keep-softmax-layers` and `--hybrid-every`")
    if hybrid_every is not None:
        if hybrid_every < 1:
            raise ConversionError(f"`--hybrid-every` must be a positive integer, got {hybrid_every}")
        return list(range(hybrid_every - 1, num_layers, hybrid_every))
    layers = sorted(set(int(i) for i in keep or []))
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise ConversionError(f"`--keep-softmax-layers` has indices {bad} outside [0, {num_layers})")
    return layers


def _rope_theta(config: dict[str, Any]) -> float:
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    scaling = params.get("rope_type", "default") if isinstance(params, dict) else "default"
    if scaling not in ("default", None):
        raise ConversionError(f"source field `rope_parameters.rope_type` = {scaling!r} is not supported (only 'default' RoPE)")
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return float(theta if theta is not None else config.get("rope_theta", 10000.0))


def _fields(source: SourceCheckpoint, keep: list[int], target: str) -> dict[str, Any]:
    gemma = source.model_type in GEMMA
    config = _gemma_as_llama(source.config, keep) if gemma else source.config
    if config.get("mlp_bias"):
        raise ConversionError("source field `mlp_bias` = True is not supported: the linmem MLP has no biases")
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    if head_dim % 2:
        raise ConversionError(f"source field `head_dim` = {head_dim} is odd; RoPE needs an even head dim")
    layer0 = "model.layers.0.self_attn."
    qkv_bias = all(layer0 + f"{n}_proj.bias" in source.key_files for n in "qkv")
    if not qkv_bias and any(layer0 + f"{n}_proj.bias" in source.key_files for n in "qkv"):
        raise ConversionError("source has biases on only some of q_proj, k_proj, v_proj; linmem needs all or none")
    qk_norm = layer0 + "q_norm.weight" in source.key_files and layer0 + "k_norm.weight" in source.key_files
    window = None
    if config.get("sliding_window") and config.get("use_sliding_window", True):
        window = int(config["sliding_window"])
        if config.get("max_window_layers") is not None and int(config["max_window_layers"]) < int(config["num_hidden_layers"]):
            raise ConversionError("source field `max_window_layers` (windowed and full layers mixed) is not supported")
    act = config.get("hidden_act", "silu")
    fields = dict(
        vocab_size=int(config["vocab_size"]), hidden_size=hidden, num_hidden_layers=int(config["num_hidden_layers"]),
        num_heads=heads, head_dim=head_dim, expand_v=1.0, intermediate_size=int(config["intermediate_size"]),
        hidden_act="swish" if act in ("silu", "swish") else act, norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        initializer_range=float(config.get("initializer_range", 0.02)),
        max_position_embeddings=int(config.get("max_position_embeddings", 2048)),
        pad_token_id=config.get("pad_token_id"), bos_token_id=config.get("bos_token_id"),
        eos_token_id=config.get("eos_token_id"),
        attn_layers=keep, attn_num_heads=heads, attn_num_kv_heads=kv_heads, attn_window_size=window,
        attn_head_dim=head_dim, attn_qk_norm=bool(qk_norm and keep), qkv_bias=qkv_bias,
        rope_theta=_rope_theta(config),
    )
    if gemma:
        fields.update(sandwich_norms=True, embedding_multiplier=hidden ** 0.5,
                      attn_scale=float(config.get("query_pre_attn_scalar", head_dim)) ** -0.5)
    if target == "ccq-gla":
        fields["use_short_conv"] = False
    return fields


def _gemma_as_llama(source_config: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    """A Gemma3 text config in the Llama-family fields `_fields` reads: the kept layers' type decides the
    window and RoPE base; activation under `hidden_act`. Softcapping and bidirectional attention are errors."""
    config = dict(source_config)
    for field in ("final_logit_softcapping", "attn_logit_softcapping"):
        if config.get(field) is not None:
            raise ConversionError(f"source field `{field}` = {config[field]} is not supported (no softcapping in linmem)")
    if config.get("use_bidirectional_attention"):
        raise ConversionError("source field `use_bidirectional_attention` = True is not supported (causal models only)")
    num_layers = int(config["num_hidden_layers"])
    pattern = int(config.get("sliding_window_pattern", 6))
    layer_types = config.get("layer_types") or [
        "sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(num_layers)]
    kinds = sorted({layer_types[i] for i in keep})
    if len(kinds) > 1:
        raise ConversionError(
            f"kept softmax layers {keep} mix Gemma3 layer types {kinds}; keep only global ('full_attention') "
            f"layers {[i for i, t in enumerate(layer_types) if t == 'full_attention']} or only sliding ones")
    kind = kinds[0] if kinds else "full_attention"
    rope = (config.get("rope_parameters") or {}).get(kind) or {}
    if rope.get("rope_type", "default") != "default":
        raise ConversionError(f"source `rope_parameters.{kind}.rope_type` = {rope['rope_type']!r} is not supported "
                              "(only 'default' RoPE)")
    default_theta = 10_000.0 if kind == "sliding_attention" else 1_000_000.0
    config["rope_theta"] = float(rope.get("rope_theta", config.get(
        "rope_local_base_freq" if kind == "sliding_attention" else "rope_theta", default_theta)))
    config.pop("rope_parameters", None)
    config["hidden_act"] = config.get("hidden_activation") or config.get("hidden_act", "gelu_pytorch_tanh")
    config["sliding_window"] = config.get("sliding_window") if kind == "sliding_attention" else None
    config.pop("max_window_layers", None)
    return config


def build_target_config(target: str, fields: dict[str, Any], ccq_init_scale: float, lamb_init_scale: float):
    from ..configuration import CCQConfig, QDeltaConfig

    if target == "qdelta":
        return QDeltaConfig(lamb_init_scale=lamb_init_scale, **fields)
    backbone = "gla" if target == "ccq-gla" else "gated_deltanet"
    return CCQConfig(backbone=backbone, ccq=True, ccq_init_scale=ccq_init_scale, **fields)


def declare_linear_mixer(plan: ConversionPlan, i: int) -> None:
    """The new tensors of a linearised layer (everything but q/k/v/o)."""
    p = f"model.layers.{i}.attn."
    config = plan.target_config
    if plan.target_name == "ccq-gla":
        plan.declare_new(p + "gk_proj.0.weight", "N(0, initializer_range) (GLA decay, low rank)")
        plan.declare_new(p + "gk_proj.1.weight", "N(0, initializer_range) (GLA decay)")
        plan.declare_new(p + "gk_proj.1.bias", "zeros (GLA decay bias)")
        plan.declare_new(p + "g_norm.weight", "ones (output norm)")
    else:
        plan.declare_new(p + "a_proj.weight", "N(0, initializer_range) (GDN decay input)")
        plan.declare_new(p + "A_log", "log U(0, 16) (GDN decay rate)")
        plan.declare_new(p + "dt_bias", "softplus^-1(logU(1e-3, 0.1)) (GDN decay step)")
        plan.declare_new(p + "b_proj.weight", "N(0, initializer_range) (write strength beta)")
        plan.declare_new(p + "o_norm.weight", "ones (output norm)")
        if config.use_short_conv:
            for name in ("q_conv1d", "k_conv1d", "v_conv1d"):
                plan.declare_new(p + f"{name}.weight", "identity (decision: q, k, v start as the teacher's)",
                                 init=identity_conv_)
    plan.declare_new(p + "g_proj.weight", "N(0, initializer_range) (output gate)")
    if plan.target_name in ("ccq-gla", "ccq-gdn"):
        plan.declare_new(p + "ccq_w", "zeros (CCQ read weights)")
        plan.declare_new(p + "ccq_b", "zeros (CCQ read bias)")
        plan.declare_new(p + "ccq_scale", f"{config.ccq_init_scale} (ccq_init_scale)")
    else:
        plan.declare_new(p + "lamb_proj.weight", "N(0, initializer_range) (Q-Delta lambda projection)")
        plan.declare_new(p + "lamb_scale", f"{config.lamb_init_scale} (lamb_init_scale)")


def _attention_layer(plan: ConversionPlan, source: SourceCheckpoint, i: int, linear: bool, norm_fn=None) -> None:
    config = plan.target_config
    s, p = f"model.layers.{i}.self_attn.", f"model.layers.{i}.attn."
    groups = config.attn_num_heads // config.attn_num_kv_heads
    expand = partial(repeat_heads, groups=groups, head_dim=config.head_dim) if linear and groups > 1 else None
    note = f" (each kv head repeated for its {groups} query heads)" if expand else ""
    plan.add(p + "q_proj.weight", s + "q_proj.weight")
    plan.add(p + "k_proj.weight", s + "k_proj.weight", fn=expand, note=note)
    plan.add(p + "v_proj.weight", s + "v_proj.weight", fn=expand, note=note)
    plan.add(p + "o_proj.weight", s + "o_proj.weight")
    where = "linear layer" if linear else "kept softmax layer"
    if config.qkv_bias:  # Qwen2: biases on q, k, v (k/v repeated like their weights)
        plan.add(p + "q_proj.bias", s + "q_proj.bias")
        plan.add(p + "k_proj.bias", s + "k_proj.bias", fn=expand, note=note)
        plan.add(p + "v_proj.bias", s + "v_proj.bias", fn=expand, note=note)
    for name in ("q_norm.weight", "k_norm.weight"):
        if s + name not in source.key_files:
            continue
        if not linear:  # Qwen3 / Gemma3: the per-head q/k RMSNorm is kept exactly in softmax layers
            plan.add(p + name, s + name, fn=norm_fn, note=" (1 + w)" if norm_fn else "")
        elif plan.target_name != "ccq-gla":
            plan.drop(s + name, "the l2 norm of q, k replaces the per-head RMSNorm in linear layers")
        else:
            plan.drop(s + name, "GLA layers have no per-head q/k norm (lossy; distillation compensates)")
    if s + "o_proj.bias" in source.key_files:
        plan.drop(s + "o_proj.bias", f"linmem {where}s have no output bias (lossy)")
    if s + "rotary_emb.inv_freq" in source.key_files:
        plan.drop(s + "rotary_emb.inv_freq", "RoPE frequencies are recomputed from rope_theta")
    if linear:
        declare_linear_mixer(plan, i)


def plan_softmax(
    source: SourceCheckpoint,
    target: str,
    *,
    keep_softmax_layers: list[int] | None = None,
    hybrid_every: int | None = None,
    ccq_init_scale: float = 1.0,
    lamb_init_scale: float = 1.0,
) -> ConversionPlan:
    """The plan linearising a softmax Transformer into `target` ("ccq-gla", "ccq-gdn" or "qdelta")."""
    model_type = source.model_type
    if model_type in DIAGNOSED:
        raise ConversionError(f"softmax source model_type {model_type!r} is not supported: {DIAGNOSED[model_type]}")
    if model_type not in LLAMA_LIKE + GEMMA:
        raise ConversionError(f"unknown source model_type {model_type!r}; supported softmax sources: {LLAMA_LIKE + GEMMA + ('gpt2',)}")
    if target not in SOFTMAX_TARGETS:
        raise ConversionError(f"unknown target {target!r} for a softmax source; expected one of {SOFTMAX_TARGETS}")
    num_layers = int(source.config["num_hidden_layers"])
    keep = softmax_layers_to_keep(num_layers, keep_softmax_layers, hybrid_every)
    config = build_target_config(target, _fields(source, keep, target), ccq_init_scale, lamb_init_scale)
    plan = ConversionPlan(target_name=target, target_config=config, source_kind="softmax", kept_softmax_layers=keep)

    gemma = model_type in GEMMA
    norm_fn = add_one if gemma else None  # Gemma stores its RMSNorm weights as w with the scale 1 + w
    norm = partial(plan.add, fn=norm_fn, note=" (Gemma's 1 + w)" if gemma else "")
    plan.add("model.embeddings.weight", "model.embed_tokens.weight")
    norm("model.norm.weight", "model.norm.weight")
    if config.tie_word_embeddings:
        if "lm_head.weight" in source.key_files:
            plan.drop("lm_head.weight", "tied to model.embeddings.weight (tie_word_embeddings=True)")
    else:
        plan.add("lm_head.weight", "lm_head.weight")
    for i in range(num_layers):
        t, s = f"model.layers.{i}.", f"model.layers.{i}."
        norm(t + "attn_norm.weight", s + "input_layernorm.weight")
        if gemma:
            norm(t + "attn_post_norm.weight", s + "post_attention_layernorm.weight")
            norm(t + "mlp_norm.weight", s + "pre_feedforward_layernorm.weight")
            norm(t + "mlp_post_norm.weight", s + "post_feedforward_layernorm.weight")
        else:
            norm(t + "mlp_norm.weight", s + "post_attention_layernorm.weight")
        for name in ("gate_proj", "up_proj", "down_proj"):
            plan.add(f"model.layers.{i}.mlp.{name}.weight", f"model.layers.{i}.mlp.{name}.weight")
        _attention_layer(plan, source, i, linear=i not in keep, norm_fn=norm_fn)
    plan.notes.append("RoPE dropped in linear layers" + (f", kept in softmax layers {keep}" if keep else ""))
    lossy = sorted({reason for reason in plan.dropped.values() if "lossy" in reason})
    plan.notes += [f"lossy: {reason}" for reason in lossy]
    return plan
