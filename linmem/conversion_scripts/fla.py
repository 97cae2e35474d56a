"""Plans for flash-linear-attention (fla) checkpoints: model_type `gla`, `gated_deltanet`, `delta_net`.

The linmem backbones keep fla's parameter names, so most tensors are copied one-to-one. Exceptions:
  * GLA's fused output norm `g_norm_swish_gate` is saved as `g_norm`;
  * grouped heads (GLA `num_kv_heads`, GDN `num_v_heads > num_heads`) are expanded to full heads by
    repeating rows, which computes exactly the same function;
  * DeltaNet (no decay) becomes Q-Delta with `use_decay=False`; its reference backbone is a plain GDN whose
    decay is exactly 1 (A_log = -inf, a_proj = 0).
Every fla option linmem cannot reproduce exactly is an error naming the config field.
New mechanisms start at their exact no-op (ccq_init_scale = 0, lamb_init_scale = 0).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any


from .plan import ConversionPlan
from .reshape import repeat_heads
from .source import ConversionError, SourceCheckpoint

FLA_MODEL_TYPES = ("gla", "gated_deltanet", "delta_net")
#: target name -> fla model_types it accepts.
FLA_TARGETS = {
    "ccq-gla": ("gla",),
    "ccq-gdn": ("gated_deltanet",),
    "qdelta": ("gated_deltanet", "delta_net"),
    "backbone": FLA_MODEL_TYPES,
}
SWISH = ("swish", "silu")
# Fields that only steer fla's kernels, losses or caching: they do not change the function computed.
IGNORED_FIELDS = ("attn_mode", "fuse_norm", "fuse_swiglu", "fuse_cross_entropy", "fuse_linear_cross_entropy",
                  "use_l2warp", "use_cache", "use_output_norm")


def _field(config: dict[str, Any], name: str, default: Any = None) -> Any:
    return config.get(name, default) if config.get(name) is not None else default


def _require(condition: bool, config: dict[str, Any], name: str, expected: str) -> None:
    if not condition:
        raise ConversionError(
            f"fla config field `{name}` = {config.get(name)!r} is not supported: linmem needs {expected} "
            f"(model_type {config.get('model_type')!r})"
        )


def _attention_fields(config: dict[str, Any]) -> dict[str, Any]:
    """fla's `attn` (hybrid softmax layers) -> linmem attn_* fields; one shared setting is required."""
    attn = config.get("attn")
    if not attn:
        return {}
    specs = [attn] if isinstance(attn, dict) else list(attn)
    layers: list[int] = []
    settings = set()
    for spec in specs:
        _require(not spec.get("qkv_bias", False), config, "attn.qkv_bias", "False (linmem attention has no bias)")
        _require(not spec.get("qk_norm", False), config, "attn.qk_norm", "False")
        layers += [int(i) for i in spec["layers"]]
        settings.add((spec["num_heads"], spec.get("num_kv_heads") or spec["num_heads"], spec.get("window_size"),
                      float(spec.get("rope_theta", 10000.0))))
    _require(len(settings) == 1, config, "attn", "one shared setting for every softmax layer")
    num_heads, num_kv_heads, window, theta = settings.pop()
    return dict(attn_layers=sorted(layers), attn_num_heads=num_heads, attn_num_kv_heads=num_kv_heads,
                attn_window_size=window, rope_theta=theta)


def _common_fields(source: SourceCheckpoint) -> dict[str, Any]:
    config = source.config
    _require(config.get("hidden_act", "swish") in SWISH, config, "hidden_act", "'swish' (SwiGLU MLP)")
    _require(config.get("attnres_block_size") is None, config, "attnres_block_size", "None")
    hidden = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    widths = {source.shape(f"model.layers.{i}.mlp.gate_proj.weight")[0]
              for i in range(layers) if f"model.layers.{i}.mlp.gate_proj.weight" in source.key_files}
    if len(widths) != 1:
        raise ConversionError(f"MLP widths differ between layers or are missing (mlp.gate_proj.weight rows: {widths})")
    fields = dict(
        vocab_size=int(config["vocab_size"]), hidden_size=hidden, num_hidden_layers=layers,
        intermediate_size=int(widths.pop()), hidden_act="swish", norm_eps=float(_field(config, "norm_eps", 1e-6)),
        conv_size=int(_field(config, "conv_size", 4)),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        initializer_range=float(_field(config, "initializer_range", 0.02)),
        max_position_embeddings=int(_field(config, "max_position_embeddings", 2048)),
        pad_token_id=config.get("pad_token_id"), bos_token_id=config.get("bos_token_id"),
        eos_token_id=config.get("eos_token_id"),
    )
    fields.update(_attention_fields(config))
    return fields


def _shared_rules(plan: ConversionPlan, source: SourceCheckpoint, num_layers: int) -> None:
    """Embeddings, block norms, MLPs, final norm, LM head and the hybrid softmax layers."""
    plan.add("model.embeddings.weight", "model.embeddings.weight")
    plan.add("model.norm.weight", "model.norm.weight")
    for i in range(num_layers):
        for name in ("attn_norm.weight", "mlp_norm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                     "mlp.down_proj.weight"):
            plan.add(f"model.layers.{i}.{name}", f"model.layers.{i}.{name}")
    for i in plan.target_config.attn_layers:
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            plan.add(f"model.layers.{i}.attn.{name}.weight", f"model.layers.{i}.attn.{name}.weight")
    if plan.target_config.tie_word_embeddings:
        if "lm_head.weight" in source.key_files:
            plan.drop("lm_head.weight", "tied to model.embeddings.weight (tie_word_embeddings=True)")
    else:
        plan.add("lm_head.weight", "lm_head.weight")


def _add_output_gate(plan: ConversionPlan, prefix: str, source_prefix: str, gated: bool) -> None:
    if gated:
        plan.add(f"{prefix}g_proj.weight", f"{source_prefix}g_proj.weight")


# ------------------------------------------------------------------------------------------- GLA
def _gla_fields(config: dict[str, Any]) -> dict[str, Any]:
    _require(config.get("feature_map") is None, config, "feature_map", "None (no feature map on q, k)")
    _require(config.get("clamp_min") is None, config, "clamp_min", "None (no clamp of the log decay)")
    _require(config.get("use_output_gate", True), config, "use_output_gate", "True")
    _require(config.get("use_gk", True), config, "use_gk", "True")
    _require(not config.get("use_gv", False), config, "use_gv", "False")
    hidden, heads = int(config["hidden_size"]), int(config["num_heads"])
    key_dim, value_dim = hidden * float(_field(config, "expand_k", 0.5)), hidden * float(_field(config, "expand_v", 1.0))
    _require(key_dim == round(key_dim) and round(key_dim) % heads == 0, config, "expand_k", "hidden*expand_k divisible by num_heads")
    _require(value_dim == round(value_dim) and round(value_dim) % heads == 0, config, "expand_v", "hidden*expand_v divisible by num_heads")
    d_k, d_v = round(key_dim) // heads, round(value_dim) // heads
    return dict(num_heads=heads, head_dim=d_k, expand_v=d_v / d_k,
                use_short_conv=bool(config.get("use_short_conv", False)),
                gate_logit_normalizer=float(_field(config, "gate_logit_normalizer", 16)))


def _gla_layer(plan: ConversionPlan, source: SourceCheckpoint, i: int) -> None:
    config = source.config
    p = f"model.layers.{i}.attn."
    heads, d_k, d_v = plan.target_config.num_heads, plan.target_config.head_dim, plan.target_config.value_dim
    kv_heads = int(_field(config, "num_kv_heads", heads))
    _require(heads % kv_heads == 0, config, "num_kv_heads", f"a divisor of num_heads={heads}")
    groups = heads // kv_heads
    by_k, by_v = partial(repeat_heads, groups=groups, head_dim=d_k), partial(repeat_heads, groups=groups, head_dim=d_v)
    grouped = " (repeated across the query heads of each kv group)" if groups > 1 else ""
    plan.add(p + "q_proj.weight", p + "q_proj.weight")
    plan.add(p + "k_proj.weight", p + "k_proj.weight", fn=by_k if groups > 1 else None, note=grouped)
    plan.add(p + "v_proj.weight", p + "v_proj.weight", fn=by_v if groups > 1 else None, note=grouped)
    plan.add(p + "gk_proj.0.weight", p + "gk_proj.0.weight")
    plan.add(p + "gk_proj.1.weight", p + "gk_proj.1.weight", fn=by_k if groups > 1 else None, note=grouped)
    plan.add(p + "gk_proj.1.bias", p + "gk_proj.1.bias", fn=by_k if groups > 1 else None, note=grouped)
    if plan.target_config.use_short_conv:
        plan.add(p + "q_conv1d.weight", p + "q_conv1d.weight")
        plan.add(p + "k_conv1d.weight", p + "k_conv1d.weight", fn=by_k if groups > 1 else None, note=grouped)
        plan.add(p + "v_conv1d.weight", p + "v_conv1d.weight", fn=by_v if groups > 1 else None, note=grouped)
    plan.add(p + "g_proj.weight", p + "g_proj.weight")
    plan.add(p + "o_proj.weight", p + "o_proj.weight")
    if p + "g_norm_swish_gate.weight" in source.key_files:
        plan.add(p + "g_norm.weight", p + "g_norm_swish_gate.weight", note="fla's fused name g_norm_swish_gate")
    elif p + "g_norm.weight" in source.key_files or config.get("elementwise_affine", True):
        plan.add(p + "g_norm.weight", p + "g_norm.weight")
    else:
        plan.declare_new(p + "g_norm.weight", "ones (fla elementwise_affine=False: a norm without weight)",
                         init=lambda t: t.fill_(1.0))


# ------------------------------------------------------------------------------- (Gated) DeltaNet
def _gdn_fields(config: dict[str, Any]) -> dict[str, Any]:
    _require(config.get("output_gate_activation", "swish") in SWISH, config, "output_gate_activation", "'swish'")
    heads = int(config["num_heads"])
    v_heads = int(_field(config, "num_v_heads", heads))
    _require(v_heads >= heads and v_heads % heads == 0, config, "num_v_heads", f"a multiple of num_heads={heads}")
    return dict(num_heads=v_heads, head_dim=int(config["head_dim"]), expand_v=float(_field(config, "expand_v", 2.0)),
                use_short_conv=bool(config.get("use_short_conv", True)),
                allow_neg_eigval=bool(config.get("allow_neg_eigval", False)))


def _deltanet_fields(config: dict[str, Any]) -> dict[str, Any]:
    _require(config.get("use_beta", True), config, "use_beta", "True")
    _require(config.get("qk_activation", "silu") == "silu", config, "qk_activation", "'silu'")
    _require(config.get("qk_norm", "l2") == "l2", config, "qk_norm", "'l2'")
    hidden, heads = int(config["hidden_size"]), int(config["num_heads"])
    key_dim, value_dim = hidden * float(_field(config, "expand_k", 1.0)), hidden * float(_field(config, "expand_v", 1.0))
    _require(key_dim == round(key_dim) and round(key_dim) % heads == 0, config, "expand_k", "hidden*expand_k divisible by num_heads")
    _require(value_dim == round(value_dim) and round(value_dim) % heads == 0, config, "expand_v", "hidden*expand_v divisible by num_heads")
    d_k, d_v = round(key_dim) // heads, round(value_dim) // heads
    return dict(num_heads=heads, head_dim=d_k, expand_v=d_v / d_k,
                use_short_conv=bool(config.get("use_short_conv", True)),
                allow_neg_eigval=bool(config.get("allow_neg_eigval", False)))


def _delta_layer(plan: ConversionPlan, source: SourceCheckpoint, i: int, gated: bool, decay_source: bool) -> None:
    """A GDN or DeltaNet layer into a GDN-family linmem mixer (plain GDN, CCQ-GDN or Q-Delta)."""
    config = source.config
    p = f"model.layers.{i}.attn."
    d_k = plan.target_config.head_dim
    qk_heads = int(config["num_heads"])
    groups = plan.target_config.num_heads // qk_heads
    by_k = partial(repeat_heads, groups=groups, head_dim=d_k) if groups > 1 else None
    grouped = " (q/k heads repeated across their value heads, fla num_v_heads)" if groups > 1 else ""
    plan.add(p + "q_proj.weight", p + "q_proj.weight", fn=by_k, note=grouped)
    plan.add(p + "k_proj.weight", p + "k_proj.weight", fn=by_k, note=grouped)
    plan.add(p + "v_proj.weight", p + "v_proj.weight")
    plan.add(p + "b_proj.weight", p + "b_proj.weight")
    if plan.target_config.use_short_conv:
        plan.add(p + "q_conv1d.weight", p + "q_conv1d.weight", fn=by_k, note=grouped)
        plan.add(p + "k_conv1d.weight", p + "k_conv1d.weight", fn=by_k, note=grouped)
        plan.add(p + "v_conv1d.weight", p + "v_conv1d.weight")
    _add_output_gate(plan, p, p, gated)
    plan.add(p + "o_norm.weight", p + "o_norm.weight")
    plan.add(p + "o_proj.weight", p + "o_proj.weight")
    target_has_decay = getattr(plan.target_config, "use_decay", True)
    if decay_source:
        for name in ("a_proj.weight", "A_log", "dt_bias"):
            plan.add(p + name, p + name)
    elif target_has_decay:
        # A DeltaNet loaded into a decaying GDN mixer: alpha = exp(-exp(A_log) * softplus(.)) == 1 exactly.
        plan.declare_new(p + "a_proj.weight", "zeros (DeltaNet has no decay)", init=lambda t: t.zero_())
        plan.declare_new(p + "A_log", "-inf (exp(A_log) = 0: decay alpha == 1 exactly)", init=lambda t: t.fill_(-math.inf))
        plan.declare_new(p + "dt_bias", "zeros", init=lambda t: t.zero_())


# ------------------------------------------------------------------------------- new mechanisms
def _declare_mechanism(plan: ConversionPlan, i: int) -> None:
    p = f"model.layers.{i}.attn."
    config = plan.target_config
    if plan.target_name in ("ccq-gla", "ccq-gdn"):
        scale = float(config.ccq_init_scale)
        plan.declare_new(p + "ccq_w", "zeros (CCQ read weights)", check=lambda t: bool((t == 0).all()))
        plan.declare_new(p + "ccq_b", "zeros (CCQ read bias)", check=lambda t: bool((t == 0).all()))
        plan.declare_new(p + "ccq_scale", f"{scale} (ccq_init_scale; 0 makes CCQ the exact identity)",
                         check=lambda t: bool((t == scale).all()))
    elif plan.target_name == "qdelta":
        scale = float(config.lamb_init_scale)
        plan.declare_new(p + "lamb_proj.weight", f"N(0, {config.initializer_range}) (Q-Delta lambda projection)")
        plan.declare_new(p + "lamb_scale", f"{scale} (lamb_init_scale; 0 makes Q-Delta the exact backbone)",
                         check=lambda t: bool((t == scale).all()))


def _target_config(target: str, model_type: str, fields: dict[str, Any], ccq_init_scale: float,
                   lamb_init_scale: float, gated: bool):
    from ..configuration import CCQConfig, QDeltaConfig

    if target == "qdelta":
        config_class, extra = QDeltaConfig, dict(lamb_init_scale=lamb_init_scale, use_decay=model_type != "delta_net")
    elif target == "ccq-gla" or (target == "backbone" and model_type == "gla"):
        config_class, extra = CCQConfig, dict(backbone="gla", ccq=target != "backbone", ccq_init_scale=ccq_init_scale)
    else:
        config_class, extra = CCQConfig, dict(backbone="gated_deltanet", ccq=target != "backbone",
                                              ccq_init_scale=ccq_init_scale)
    if model_type == "gla":
        fields.pop("allow_neg_eigval", None)
    if not gated:
        extra["use_output_gate"] = False
    return config_class(**fields, **extra)


def plan_fla(
    source: SourceCheckpoint,
    target: str,
    *,
    ccq_init_scale: float = 0.0,
    lamb_init_scale: float = 0.0,
) -> ConversionPlan:
    """The plan converting an fla checkpoint to `target` ("ccq-gla", "ccq-gdn", "qdelta" or "backbone")."""
    model_type = source.model_type
    if model_type not in FLA_MODEL_TYPES:
        raise ConversionError(f"unknown fla model_type {model_type!r}; supported: {FLA_MODEL_TYPES}")
    if target not in FLA_TARGETS:
        raise ConversionError(f"unknown target {target!r}; expected one of {tuple(FLA_TARGETS)}")
    if model_type not in FLA_TARGETS[target]:
        raise ConversionError(
            f"target {target!r} needs an fla source of model_type {FLA_TARGETS[target]}, got {model_type!r}"
        )
    config = source.config
    fields = _common_fields(source)
    if model_type == "gla":
        fields.update(_gla_fields(config))
        gated = True
    elif model_type == "gated_deltanet":
        fields.update(_gdn_fields(config))
        gated = bool(config.get("use_gate", True))
    else:
        fields.update(_deltanet_fields(config))
        gated = bool(config.get("use_gate", False))
    target_config = _target_config(target, model_type, fields, ccq_init_scale, lamb_init_scale, gated)

    plan = ConversionPlan(target_name=target, target_config=target_config, source_kind="fla",
                          kept_softmax_layers=list(target_config.attn_layers))
    _shared_rules(plan, source, target_config.num_hidden_layers)
    for i in range(target_config.num_hidden_layers):
        if i in target_config.attn_layers:
            continue
        if model_type == "gla":
            _gla_layer(plan, source, i)
        else:
            _delta_layer(plan, source, i, gated=gated, decay_source=model_type == "gated_deltanet")
        _declare_mechanism(plan, i)
    ignored = [name for name in IGNORED_FIELDS if name in config]
    if ignored:
        plan.notes.append(f"fla fields that only steer kernels/losses, ignored: {ignored}")
    if target_config.num_heads != int(config["num_heads"]):
        plan.notes.append(f"grouped heads expanded: num_heads {config['num_heads']} -> {target_config.num_heads}")
    return plan
