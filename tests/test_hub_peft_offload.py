"""PEFT LoRA adapters through the local Hub (push, PeftModel / AutoPeftModelForCausalLM, merge then push) and
accelerate placement (device_map="auto" with CPU + disk offload; `_no_split_modules` keeps blocks whole)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from accelerate import infer_auto_device_map
from huggingface_hub import HfApi
from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from linmem import LORA_TARGET_MODULES
from linmem.export.remote_code import remote_code_files
from tests.conftest_hub import LocalHub, local_hub  # noqa: F401  (fixture)
from tests.variants import make_model


def _ids() -> torch.Tensor:
    return torch.randint(3, 96, (2, 12), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("name", ["ccq-gdn-hybrid", "qdelta"])
def test_lora_adapter_push_load_merge(local_hub: LocalHub, name: str) -> None:
    ids = _ids()
    make_model(name, dtype=torch.float32, seed=0).push_to_hub(f"user/{name}-base")
    base = AutoModelForCausalLM.from_pretrained(f"user/{name}-base")
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGET_MODULES,
                                                     task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    for _ in range(3):
        peft_model(ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        tuned = peft_model(ids).logits
    peft_model.push_to_hub(f"user/{name}-lora")
    assert "adapter_config.json" in HfApi().list_repo_files(f"user/{name}-lora")

    fresh_base = AutoModelForCausalLM.from_pretrained(f"user/{name}-base")
    with torch.no_grad():
        assert (fresh_base(ids).logits - tuned).abs().max() > 1e-4  # the adapter changes something
    loaded = PeftModel.from_pretrained(fresh_base, f"user/{name}-lora").eval()
    auto = AutoPeftModelForCausalLM.from_pretrained(f"user/{name}-lora").eval()  # base resolved on the Hub
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, tuned, rtol=0, atol=1e-6)
        torch.testing.assert_close(auto(ids).logits, tuned, rtol=0, atol=1e-6)

    merged = auto.merge_and_unload()
    assert not any("lora_" in key for key in merged.state_dict())
    merged.push_to_hub(f"user/{name}-merged")
    files = set(HfApi().list_repo_files(f"user/{name}-merged"))
    assert set(remote_code_files()) <= files and "adapter_config.json" not in files
    plain = AutoModelForCausalLM.from_pretrained(f"user/{name}-merged").eval()
    assert not any("lora_" in key for key in plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, merged(ids).logits, rtol=0, atol=0)
        torch.testing.assert_close(plain(ids).logits, tuned, rtol=0, atol=1e-5)


def _block_of(key: str) -> str | None:
    match = re.match(r"model\.layers\.(\d+)(\.|$)", key)
    return match.group(1) if match else None


@pytest.mark.parametrize("name", ["ccq-gdn-hybrid", "ccq-gla"])
def test_offload_matches_unsplit_model(name: str, tmp_path: Path) -> None:
    # a short learned-position table (ccq-gdn-hybrid has one), so the CPU budget below is about blocks
    model = make_model(name, dtype=torch.float32, seed=2, num_hidden_layers=4, max_position_embeddings=16)
    model.save_pretrained(tmp_path / "ckpt")
    ids = _ids()
    with torch.no_grad():
        reference = model(ids).logits
        reference_generation = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    block_bytes = sum(p.numel() * 4 for p in model.model.layers[0].parameters())
    budget = {"cpu": int(block_bytes * 2.5)}  # room for about two blocks; embeddings, head, rest on disk
    split = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", device_map="auto", max_memory=budget,
                                                 offload_folder=str(tmp_path / "offload"), dtype=torch.float32).eval()
    placements = set(split.hf_device_map.values())
    assert "disk" in placements and ("cpu" in placements or 0 in placements), split.hf_device_map
    # _no_split_modules: a block is placed whole, never a part of one.
    for key in split.hf_device_map:
        if _block_of(key) is not None:
            assert re.fullmatch(r"model\.layers\.\d+", key), f"block split by accelerate: {key}"
    with torch.no_grad():
        torch.testing.assert_close(split(ids).logits, reference, rtol=0, atol=0)
        assert torch.equal(split.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0),
                           reference_generation)


def test_no_split_modules_keeps_blocks_whole() -> None:
    model = make_model("ccq-gdn-hybrid", dtype=torch.float32, num_hidden_layers=3, max_position_embeddings=16)
    block_bytes = sum(p.numel() * 4 for p in model.model.layers[0].parameters())
    embedding_bytes = (model.model.embeddings.weight.numel() + model.model.position_embeddings.weight.numel()) * 4
    # Room for the embeddings and one block minus the largest-layer reserve: without _no_split_modules
    # accelerate fills the rest of the CPU budget with parts of a block.
    budget = {"cpu": embedding_bytes + block_bytes, "disk": 10**12}
    with_rule = infer_auto_device_map(model, max_memory=budget, no_split_module_classes=model._no_split_modules)
    without_rule = infer_auto_device_map(model, max_memory=budget)
    assert set(model._no_split_modules) == {"LinmemBlock"}
    assert all(re.fullmatch(r"model\.layers\.\d+", k) for k in with_rule if _block_of(k) is not None), with_rule
    assert any(not re.fullmatch(r"model\.layers\.\d+", k) for k in without_rule if _block_of(k) is not None)
