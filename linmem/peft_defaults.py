"""PEFT's default target modules for linmem's model types, so that `LoraConfig(task_type="CAUSAL_LM")` (and the other
PEFT methods) work without `target_modules`, as for built-in architectures.

linmem's projections carry Llama's names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), so each
method's defaults are Llama's, with Llama's norm names renamed (LN tuning). Those defaults are conservative (LoRA:
q_proj and v_proj); `linmem.LORA_TARGET_MODULES` is the recommended wider set.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Llama's module names where linmem's differ.
_RENAMED = {"input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm"}


def register_peft_defaults(model_types: Iterable[str]) -> None:
    """Add model_types to every PEFT default-target mapping that has a Llama entry (no-op without PEFT; an entry
    already there is kept)."""
    try:
        from peft.utils import constants
    except ImportError:
        return
    model_types = list(model_types)
    for name in dir(constants):
        mapping = getattr(constants, name)
        if not (name.startswith("TRANSFORMERS_MODELS_TO_") and isinstance(mapping, dict)):
            continue
        template = mapping.get("llama")
        if isinstance(template, list) and all(isinstance(module, str) for module in template):
            for model_type in model_types:
                mapping.setdefault(model_type, [_RENAMED.get(module, module) for module in template])
