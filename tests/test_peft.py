"""PEFT LoRA on every architecture: train step, save/load adapter, merge_and_unload."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from linmem import LORA_TARGET_MODULES

from .variants import make_model


@pytest.mark.parametrize("name", ["ccq-gla", "ccq-gdn-hybrid", "qdelta"])
def test_lora_train_save_load_merge(name, tmp_path):
    base = make_model(name, dtype=torch.float32, seed=0)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGET_MODULES))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    x = torch.randint(3, 96, (4, 16), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    losses = []
    for _ in range(8):
        loss = peft_model(x, labels=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    peft_model.eval()
    tuned = peft_model(x).logits.detach()

    peft_model.save_pretrained(tmp_path / "adapter")
    fresh = make_model(name, dtype=torch.float32, seed=0)
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    torch.testing.assert_close(loaded(x).logits, tuned, atol=1e-5, rtol=0)

    merged = loaded.merge_and_unload()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(x).logits, tuned, atol=1e-4, rtol=0)
    assert (tuned - make_model(name, dtype=torch.float32, seed=0)(x).logits).abs().max() > 1e-4
