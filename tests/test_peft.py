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


@pytest.mark.parametrize("method", ["lora", "ia3", "loha", "ln_tuning"])
def test_peft_methods_work_without_target_modules(method):
    """Registered like a built-in architecture: each PEFT method's defaults (Llama's, whose module names linmem's
    share) apply without `target_modules`, and what they wrap exists and trains."""
    import peft

    config = {"lora": lambda: LoraConfig(task_type="CAUSAL_LM"), "ia3": lambda: peft.IA3Config(task_type="CAUSAL_LM"),
              "loha": lambda: peft.LoHaConfig(task_type="CAUSAL_LM"),
              "ln_tuning": lambda: peft.LNTuningConfig(task_type="CAUSAL_LM")}[method]()
    model = get_peft_model(make_model("ccq-gdn-hybrid", dtype=torch.float32), config)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    x = torch.randint(3, 96, (2, 9))
    model(x, labels=x).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_prompt_tuning_trains_and_generates_and_prefix_tuning_is_refused():
    """Prompt tuning prepends learned embeddings (inputs_embeds, scaled like the token rows: see
    test_inputs_embeds_from_the_input_embeddings_equal_input_ids); prefix tuning passes a key/value cache, which
    recurrent layers cannot use: refused with a message that says so."""
    import peft

    x = torch.randint(3, 96, (2, 6))
    config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    model = get_peft_model(make_model("ccq-gla-hybrid-window", dtype=torch.float32), config)
    model(input_ids=x, labels=x).loss.backward()
    prompt = model.prompt_encoder["default"].embedding.weight
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    generated = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=3, do_sample=False,
                               pad_token_id=0)
    assert generated.shape == (2, 9)

    prefix = get_peft_model(make_model("qdelta", dtype=torch.float32),
                            peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with pytest.raises(TypeError, match="prefix tuning passes, cannot hold recurrent states"):
        prefix(input_ids=x, labels=x)
