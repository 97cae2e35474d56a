"""fla checkpoints -> CCQ / Q-Delta: strict accounting, exact no-op at step 0, clear errors.

The sources are written in fla's documented layout (config.json field names and safetensors keys of
fla's GLA / GatedDeltaNet / DeltaNet models; `test_layout_matches_fla` cross-checks them against fla's own
classes when flash-linear-attention is installed). Tensors are random with sizes chosen so every
mechanism acts: embeddings std 1, projections std 0.2, decay biases away from zero.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from linmem.cli import main as cli_main
from linmem.conversion_scripts import ConversionError, convert
from linmem.conversion_scripts.validate import validate

BASE = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_heads=2, intermediate_size=64, conv_size=4,
            norm_eps=1e-6, hidden_act="swish", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
            pad_token_id=0, initializer_range=0.02, fuse_norm=True, attn_mode="chunk")
DEFAULTS = {
    "gla": dict(expand_k=0.5, expand_v=1.0, use_short_conv=False, num_kv_heads=None, feature_map=None,
                clamp_min=None, use_output_gate=True, use_gk=True, use_gv=False),
    "gated_deltanet": dict(head_dim=8, expand_v=2.0, use_short_conv=True, use_gate=True, num_v_heads=None,
                           allow_neg_eigval=False, output_gate_activation="swish"),
    "delta_net": dict(expand_k=1.0, expand_v=1.0, use_short_conv=True, use_gate=False, use_beta=True,
                      qk_activation="silu", qk_norm="l2"),
}


def _fla_tensors(model_type: str, cfg: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random tensors under fla's key names and shapes."""
    def rnd(*shape, std=0.2):
        return torch.randn(*shape, generator=gen) * std

    h, heads, width = cfg["hidden_size"], cfg["num_heads"], cfg["intermediate_size"]
    out = {"model.embeddings.weight": rnd(cfg["vocab_size"], h, std=1.0), "model.norm.weight": 1 + rnd(h, std=0.1)}
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = rnd(cfg["vocab_size"], h)
    for i in range(cfg["num_hidden_layers"]):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.attn."
        out |= {p + "attn_norm.weight": 1 + rnd(h, std=0.1), p + "mlp_norm.weight": 1 + rnd(h, std=0.1),
                p + "mlp.gate_proj.weight": rnd(width, h), p + "mlp.up_proj.weight": rnd(width, h),
                p + "mlp.down_proj.weight": rnd(h, width)}
        conv = {}
        if model_type == "gla":
            key_dim, value_dim = int(h * cfg["expand_k"]), int(h * cfg["expand_v"])
            groups = heads // (cfg["num_kv_heads"] or heads)
            out |= {a + "q_proj.weight": rnd(key_dim, h), a + "k_proj.weight": rnd(key_dim // groups, h),
                    a + "v_proj.weight": rnd(value_dim // groups, h), a + "g_proj.weight": rnd(value_dim, h),
                    a + "gk_proj.0.weight": rnd(16, h), a + "gk_proj.1.weight": rnd(key_dim // groups, 16),
                    a + "gk_proj.1.bias": rnd(key_dim // groups, std=1.0) + 2.0, a + "o_proj.weight": rnd(h, value_dim),
                    a + "g_norm_swish_gate.weight": 1 + rnd(value_dim // heads, std=0.1)}
            conv = {"q": key_dim, "k": key_dim // groups, "v": value_dim // groups}
            gated = True
        else:
            if model_type == "gated_deltanet":
                d_k, v_heads = cfg["head_dim"], cfg["num_v_heads"] or heads
                d_v = int(d_k * cfg["expand_v"])
                key_dim, value_dim, beta_heads = heads * d_k, v_heads * d_v, v_heads
                dt = torch.exp(torch.rand(v_heads, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                out |= {a + "A_log": torch.empty(v_heads).uniform_(0, 16, generator=gen).log(),
                        a + "dt_bias": dt + torch.log(-torch.expm1(-dt)), a + "a_proj.weight": rnd(v_heads, h)}
            else:
                key_dim, value_dim, beta_heads = int(h * cfg["expand_k"]), int(h * cfg["expand_v"]), heads
                d_v = value_dim // heads
            out |= {a + "q_proj.weight": rnd(key_dim, h), a + "k_proj.weight": rnd(key_dim, h),
                    a + "v_proj.weight": rnd(value_dim, h), a + "b_proj.weight": rnd(beta_heads, h),
                    a + "o_norm.weight": 1 + rnd(d_v, std=0.1), a + "o_proj.weight": rnd(h, value_dim)}
            conv = {"q": key_dim, "k": key_dim, "v": value_dim}
            gated = cfg["use_gate"]
            if gated:
                out[a + "g_proj.weight"] = rnd(value_dim, h)
        if cfg["use_short_conv"]:
            out |= {a + f"{n}_conv1d.weight": rnd(d, 1, cfg["conv_size"], std=0.5) for n, d in conv.items()}
    return out


def write_fla_checkpoint(path: Path, model_type: str, seed: int = 0, shards: int = 1, **overrides) -> Path:
    """An fla-format checkpoint directory (config.json + safetensors, optionally sharded with an index)."""
    cfg = {**BASE, **DEFAULTS[model_type], **overrides, "model_type": model_type}
    tensors = _fla_tensors(model_type, cfg, torch.Generator().manual_seed(seed))
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 2048}))
    if shards == 1:
        save_file(tensors, str(path / "model.safetensors"))
        return path
    keys = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k] for k in keys[s::shards]}
        save_file(part, str(path / name))
        weight_map |= {k: name for k in part}
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path


CASES = {
    "gla->ccq-gla (grouped kv heads, short conv, fused g_norm name)": ("gla", "ccq-gla", dict(num_kv_heads=1, use_short_conv=True)),
    "gated_deltanet->ccq-gdn": ("gated_deltanet", "ccq-gdn", {}),
    "gated_deltanet->qdelta (num_v_heads > num_heads)": ("gated_deltanet", "qdelta", dict(num_v_heads=4)),
    "delta_net->qdelta (gated output)": ("delta_net", "qdelta", dict(use_gate=True)),
    "delta_net->qdelta (fla default: no output gate)": ("delta_net", "qdelta", dict(use_gate=False)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fla_conversion_is_exact_noop(case, tmp_path):
    model_type, target, overrides = CASES[case]
    source = write_fla_checkpoint(tmp_path / "src", model_type, shards=2 if target == "ccq-gdn" else 1, **overrides)
    out = tmp_path / "out"
    report = convert(str(source), target, out, verbose=False)

    # Strict accounting: every source tensor used (nothing dropped here), every new tensor declared.
    source_keys = set(json.loads((source / "model.safetensors.index.json").read_text())["weight_map"]) \
        if (source / "model.safetensors.index.json").exists() else set(load_file(str(source / "model.safetensors")))
    used = {c["source"] for c in report["copied"]} | {s for r in report["reshaped"] for s in r["sources"]}
    assert used == source_keys and report["dropped"] == []
    new_names = {n["target"].rsplit(".attn.", 1)[1] for n in report["new"]}
    assert new_names == ({"ccq_w", "ccq_b", "ccq_scale"} if target.startswith("ccq") else {"lamb_proj.weight", "lamb_scale"})
    if model_type == "gla":
        assert {"target": "model.layers.0.attn.g_norm.weight", "source": "model.layers.0.attn.g_norm_swish_gate.weight"} \
            in report["copied"]

    # A normal checkpoint directory: config record, report, tokenizer file.
    config = json.loads((out / "config.json").read_text())
    record = config["conversion"]
    assert record["source_model_type"] == model_type and record["target"] == target
    assert record["mapping_version"] == report["mapping_version"] and len(record["source_sha256"]) >= 1
    assert all(len(h) == 64 for h in record["source_sha256"].values())
    assert (out / "conversion_report.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert config.get("ccq_init_scale", 0.0) == 0.0 and config.get("lamb_init_scale", 0.0) == 0.0

    checks = validate(str(source), out, seq_len=72, new_tokens=6)
    failed = [c for c in checks if not c["passed"]]
    assert not failed, failed
    names = " ".join(c["name"] for c in checks)
    for needed in ("chunked forward", "token-by-token decode", "left-padded", "greedy generation", "gradient"):
        assert needed in names
    assert json.loads((out / "conversion_report.json").read_text())["validation"] == json.loads(json.dumps(checks))


@pytest.mark.parametrize("tamper", ["missing", "shape", "extra"])
def test_tampered_checkpoint_names_the_key(tamper, tmp_path):
    source = write_fla_checkpoint(tmp_path / "src", "gated_deltanet")
    tensors = load_file(str(source / "model.safetensors"))
    key = "model.layers.1.attn.k_proj.weight"
    if tamper == "missing":
        del tensors[key]
        pattern = f"missing source tensor.*{key}"
    elif tamper == "shape":
        tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])
        pattern = f"shape mismatch for target `{key}`"
    else:
        key = "model.layers.0.attn.mystery.weight"
        tensors[key] = torch.zeros(3)
        pattern = f"unconsumed source tensor.*{key}"
    save_file(tensors, str(source / "model.safetensors"))
    with pytest.raises(ConversionError, match=pattern):
        convert(str(source), "ccq-gdn", tmp_path / "out", verbose=False)
    assert not (tmp_path / "out").exists()


def test_unsupported_sources_and_options_are_named(tmp_path):
    source = write_fla_checkpoint(tmp_path / "gla", "gla", feature_map="relu")
    with pytest.raises(ConversionError, match="feature_map"):
        convert(str(source), "ccq-gla", dry_run=True, verbose=False)
    source = write_fla_checkpoint(tmp_path / "gdn", "gated_deltanet")
    with pytest.raises(ConversionError, match="needs an fla source of model_type"):
        convert(str(source), "ccq-gla", dry_run=True, verbose=False)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "model_type": "rwkv7"}))
    with pytest.raises(ConversionError, match="rwkv7"):
        convert(str(source), "qdelta", dry_run=True, verbose=False)


def test_dry_run_cli_writes_nothing(tmp_path, capsys):
    source = write_fla_checkpoint(tmp_path / "src", "gla")
    out = tmp_path / "out"
    assert cli_main(["convert", "--source", str(source), "--target", "ccq-gla", "--output", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "model.layers.0.attn.g_norm_swish_gate.weight -> model.layers.0.attn.g_norm.weight" in printed
    assert "model.layers.1.attn.ccq_scale" in printed and not out.exists()
    assert cli_main(["convert", "--source", str(tmp_path / "nowhere"), "--target", "qdelta", "--dry-run"]) == 2


def test_layout_matches_fla(tmp_path):
    """The hand-written layout equals what fla's own classes save (names and shapes)."""
    fla_models = pytest.importorskip("fla.models", reason="flash-linear-attention not installed")
    classes = {"gla": (fla_models.GLAConfig, fla_models.GLAForCausalLM),
               "gated_deltanet": (fla_models.GatedDeltaNetConfig, fla_models.GatedDeltaNetForCausalLM),
               "delta_net": (fla_models.DeltaNetConfig, fla_models.DeltaNetForCausalLM)}
    for model_type, (config_class, model_class) in classes.items():
        overrides = dict(num_kv_heads=1, use_short_conv=True) if model_type == "gla" else \
            dict(num_v_heads=4) if model_type == "gated_deltanet" else dict(use_gate=True)
        ours = write_fla_checkpoint(tmp_path / model_type, model_type, **overrides)
        config = json.loads((ours / "config.json").read_text())
        config.pop("model_type")
        reference = model_class(config_class(**config)).state_dict()
        mine = load_file(str(ours / "model.safetensors"))
        assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in reference.items()}, model_type
