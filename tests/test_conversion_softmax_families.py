"""Softmax families by weight transfer: Llama (GQA, tied), Qwen2 (q/k/v biases), Qwen3 (q/k norms, wide heads),
Gemma3 text (sandwich norms, 1 + w norms, scaled embeddings, query_pre_attn_scalar, local/global layers).

With every layer kept as softmax attention the conversion must be lossless: the converted model's logits
equal the teacher's (fp32, max |Δ| <= 1e-5), which proves the biases, q/k norms, head dims, RoPE base and
GQA are carried exactly. With linear layers, the q/k/v biases land in the mixers (k/v repeated per group).
Tiny random teachers are built from Transformers' own classes, so no download is needed.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config, Qwen3Config

from linmem.conversion_scripts import ConversionError, convert

BASE = dict(vocab_size=101, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, pad_token_id=0)
FAMILIES = {
    "llama-tied": lambda: LlamaConfig(**BASE, tie_word_embeddings=True, rope_theta=5000.0),
    "qwen2": lambda: Qwen2Config(**BASE, rope_theta=20000.0, use_sliding_window=False),
    "qwen3": lambda: Qwen3Config(**BASE, head_dim=16, rope_theta=30000.0, use_sliding_window=False),
    "gemma3-global": lambda: Gemma3TextConfig(**BASE, head_dim=16, query_pre_attn_scalar=20,
                                              layer_types=["full_attention"] * 2),
    "gemma3-sliding": lambda: Gemma3TextConfig(**BASE, head_dim=16, query_pre_attn_scalar=20, sliding_window=5,
                                               layer_types=["sliding_attention"] * 2),
}


def _teacher(name: str, folder):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(FAMILIES[name]()).float().eval()
    with torch.no_grad():  # random biases and norms, so that dropping one would show
        for key, param in model.named_parameters():
            if key.endswith(".bias") or "norm" in key:
                param.normal_(1.0 if "norm" in key else 0.0, 0.3)
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("name", list(FAMILIES))
def test_all_softmax_layers_kept_is_lossless(name, tmp_path):
    teacher = _teacher(name, tmp_path / "src")
    report = convert(str(tmp_path / "src"), "qdelta", tmp_path / "out", keep_softmax_layers=[0, 1], verbose=False)
    student = AutoModelForCausalLM.from_pretrained(tmp_path / "out").float().eval()
    ids = torch.randint(1, 101, (2, 19), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    with torch.no_grad():
        expected = teacher(ids, attention_mask=mask).logits
        got = student(ids, attention_mask=mask).logits
    assert (got - expected)[mask.bool()].abs().max().item() <= 1e-5
    assert report["kept_softmax_layers"] == [0, 1]
    lossy = [d for d in report["dropped"] if "lossy" in d["reason"]]
    assert not lossy, lossy


def test_qwen2_biases_land_in_linear_mixers(tmp_path):
    teacher = _teacher("qwen2", tmp_path / "src")
    convert(str(tmp_path / "src"), "ccq-gdn", tmp_path / "out", verbose=False)
    student = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert student.config.qkv_bias
    source = teacher.model.layers[1].self_attn
    mixer = student.model.layers[1].attn
    torch.testing.assert_close(mixer.q_proj.bias, source.q_proj.bias, rtol=0, atol=0)
    head_dim, groups = 12, 2  # 48 / 4 heads; 4 query heads over 2 kv heads
    expected_k = source.k_proj.bias.view(2, head_dim).repeat_interleave(groups, 0).reshape(-1)
    torch.testing.assert_close(mixer.k_proj.bias, expected_k, rtol=0, atol=0)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["qkv_bias"] is True and config["attn_qk_norm"] is False


def test_partial_qkv_biases_are_an_error(tmp_path):
    _teacher("qwen2", tmp_path / "src")
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "src" / "model.safetensors")
    del weights["model.layers.0.self_attn.k_proj.bias"]
    save_file(weights, tmp_path / "src" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConversionError, match="biases on only some"):
        convert(str(tmp_path / "src"), "qdelta", dry_run=True, verbose=False)


def test_gemma3_kept_layers_must_share_a_type_and_linear_layers_convert(tmp_path):
    torch.manual_seed(0)
    config = Gemma3TextConfig(**{**BASE, "num_hidden_layers": 3}, head_dim=16, sliding_window=5,
                              layer_types=["sliding_attention", "full_attention", "sliding_attention"])
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "src")
    with pytest.raises(ConversionError, match="mix Gemma3 layer types"):
        convert(str(tmp_path / "src"), "qdelta", dry_run=True, keep_softmax_layers=[0, 1], verbose=False)
    convert(str(tmp_path / "src"), "ccq-gdn", tmp_path / "out", keep_softmax_layers=[1], verbose=False)
    student = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    c = student.config
    assert c.sandwich_norms and c.attn_qk_norm and c.attn_window_size is None and c.rope_theta == 1e6
    assert abs(c.embedding_multiplier - 48 ** 0.5) < 1e-12 and c.hidden_act == "gelu_pytorch_tanh"
    assert torch.isfinite(student(torch.tensor([[1, 5, 9, 2]])).logits).all()


def _gpt2_teacher(folder, n_layer: int = 2):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=101, n_layer=n_layer, n_embd=48, n_head=4, n_positions=64)).eval()
    with torch.no_grad():
        for key, param in model.named_parameters():
            if key.endswith(".bias") or ".ln_" in key:
                param.normal_(1.0 if key.endswith("ln_1.weight") or key.endswith("ln_2.weight") else 0.0, 0.3)
    model.save_pretrained(folder)
    return model


def test_gpt2_all_softmax_layers_kept_is_lossless(tmp_path):
    """GPT-2's fused c_attn, Conv1D weights, LayerNorms, learned positions and biases all carried exactly."""
    teacher = _gpt2_teacher(tmp_path / "src")
    report = convert(str(tmp_path / "src"), "ccq-gdn", tmp_path / "out", keep_softmax_layers=[0, 1], verbose=False)
    assert not [d for d in report["dropped"] if "lossy" in d["reason"]]
    student = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.randint(0, 101, (2, 23), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        diff = (student(ids).logits - teacher(ids).logits).abs().max().item()
        # left padding: linmem counts positions over real tokens; GPT-2 needs them passed explicitly
        mask = torch.ones_like(ids)
        mask[1, :5] = 0
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        padded = (student(ids, attention_mask=mask).logits - teacher(ids, attention_mask=mask, position_ids=positions)
                  .logits)[mask.bool()].abs().max().item()
    assert diff <= 1e-5 and padded <= 1e-5, (diff, padded)


def test_gpt2_linear_conversion_and_position_limit(tmp_path):
    _gpt2_teacher(tmp_path / "src", n_layer=3)
    convert(str(tmp_path / "src"), "qdelta", tmp_path / "out", keep_softmax_layers=[2], verbose=False)
    student = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert student.config.norm_type == "layer" and not student.config.attn_rope
    with torch.no_grad():
        assert torch.isfinite(student(torch.randint(0, 101, (1, 64))).logits).all()
        with pytest.raises(ValueError, match="beyond the learned position table"):
            student(torch.randint(0, 101, (1, 65)))
