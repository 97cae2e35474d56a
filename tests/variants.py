"""Tiny configurations of every registered architecture, shared by the model-level tests."""

from __future__ import annotations

import contextlib

import torch

from linmem import CCQConfig, QDeltaConfig
from linmem.kernels import use_backend

TINY = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_heads=2, head_dim=8, expand_v=2,
            intermediate_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)

VARIANTS = {
    "ccq-gla": lambda **kw: CCQConfig(backbone="gla", **{**TINY, **kw}),
    "ccq-gdn": lambda **kw: CCQConfig(backbone="gated_deltanet", **{**TINY, **kw}),
    # GPT-2-style: LayerNorm, plain MLP with biases, output biases, learned positions, no RoPE
    "ccq-gdn-hybrid": lambda **kw: CCQConfig(backbone="gated_deltanet", attn_layers=[1], attn_num_heads=4,
                                             attn_num_kv_heads=2, norm_type="layer", mlp_type="plain",
                                             mlp_bias=True, o_proj_bias=True, position_embedding_type="learned",
                                             attn_rope=False, **{**TINY, **kw}),
    # Gemma3-style: sliding window, sandwich norms, scaled embeddings, a custom softmax score scale
    "ccq-gla-hybrid-window": lambda **kw: CCQConfig(backbone="gla", attn_layers=[0], attn_num_heads=2,
                                                    attn_window_size=5, sandwich_norms=True,
                                                    embedding_multiplier=2.5, attn_scale=0.3, **{**TINY, **kw}),
    "qdelta": lambda **kw: QDeltaConfig(**{**TINY, **kw}),
    # Qwen2/Qwen3-style: q/k/v biases everywhere, per-head q/k norm and a wider head in the softmax layer
    "qdelta-hybrid": lambda **kw: QDeltaConfig(attn_layers=[0], attn_num_heads=2, attn_head_dim=24, qkv_bias=True,
                                               attn_qk_norm=True, **{**TINY, **kw}),
    "qdelta-deltanet": lambda **kw: QDeltaConfig(use_decay=False, **{**TINY, **kw}),
}


def make_model(name: str, dtype: torch.dtype = torch.float64, seed: int = 0, **overrides):
    """Build a tiny randomly initialised model of the named variant in eval mode.

    The gates are pushed away from their neutral init so every mechanism visibly acts (CCQ's lambda,
    Q-Delta's lambda and the decays).
    """
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(VARIANTS[name](**overrides)).to(dtype).eval()
    with torch.no_grad():
        for module_name, param in model.named_parameters():
            if module_name.endswith("ccq_w"):
                param.normal_(0, 0.5)
            elif module_name.endswith("ccq_b"):
                param.normal_(0, 1.0)
            elif module_name.endswith("lamb_proj.weight"):
                param.normal_(0, 0.3)
            elif module_name.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias", "up_proj.bias",
                                       "down_proj.bias", "norm.bias")):
                param.normal_(0, 0.3)
            elif module_name.endswith(("q_norm.weight", "k_norm.weight")):
                param.uniform_(0.5, 1.5)
    return model


def loss_and_grads(model, ids: torch.Tensor, labels: torch.Tensor | None = None, backend: str | None = None):
    """One forward and backward of the language-model loss on ids [B, T] (labels: ids unless given), on the named
    kernel backend (None: the one that resolves) -> (the model's output, {parameter name: a copy of its gradient},
    parameters without a gradient left out)."""
    model.zero_grad(set_to_none=True)
    with use_backend(backend) if backend else contextlib.nullcontext():
        output = model(ids, labels=ids if labels is None else labels)
        output.loss.backward()
    return output, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
