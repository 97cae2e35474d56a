"""`transformers.Trainer` on a linmem model: it learns, checkpoints, resumes exactly, and the checkpoint reloads.

CPU, PyTorch kernel path, a tiny CCQ-GDN and a tiny Q-Delta on a learnable toy sequence (each row counts up from a
random start). `bf16=True` is Trainer's autocast mixed precision (float32 weights).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

from .variants import make_model


class CountingRows(torch.utils.data.Dataset):
    """rows [n, length] of token ids start, start + 1, ... (mod 90, offset past the special tokens)."""

    def __init__(self, n: int, length: int, seed: int = 0) -> None:
        start = torch.randint(0, 90, (n, 1), generator=torch.Generator().manual_seed(seed))
        self.ids = (start + torch.arange(length)) % 90 + 3

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def trainer_for(model, out_dir, max_steps: int, bf16: bool = False) -> Trainer:
    args = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=8, max_steps=max_steps,
                             learning_rate=3e-3, logging_steps=5, save_steps=10, report_to=[], use_cpu=True,
                             disable_tqdm=True, bf16=bf16, seed=0, data_seed=0,
                             lr_scheduler_type="constant")  # the same schedule whatever max_steps (resume test)
    return Trainer(model=model, args=args, train_dataset=CountingRows(64, 32))


@pytest.mark.parametrize("name", ["ccq-gdn", "qdelta"])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_trainer_learns_and_checkpoint_reloads(name, bf16, tmp_path):
    trainer = trainer_for(make_model(name, dtype=torch.float32).train(), tmp_path, max_steps=30, bf16=bf16)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoint-30")
    for (param_name, p), q in zip(trainer.model.state_dict().items(), reloaded.state_dict().values()):
        assert torch.equal(p, q), param_name


def test_trainer_resume_equals_uninterrupted(tmp_path):
    """Stopping at step 10 and resuming from its checkpoint gives the weights of one 20-step run."""
    whole = trainer_for(make_model("ccq-gdn", dtype=torch.float32).train(), tmp_path / "whole", max_steps=20)
    whole.train()
    first = trainer_for(make_model("ccq-gdn", dtype=torch.float32).train(), tmp_path / "parts", max_steps=10)
    first.train()
    # other initial weights: only the checkpoint (weights, optimizer, RNG, data position) can make it match
    resumed = trainer_for(make_model("ccq-gdn", dtype=torch.float32, seed=1).train(), tmp_path / "parts", max_steps=20)
    resumed.train(resume_from_checkpoint=str(tmp_path / "parts" / "checkpoint-10"))
    for (param_name, p), q in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7), param_name


def test_trainer_with_torch_compile_on_the_triton_kernels_equals_eager(tmp_path, monkeypatch):
    """Trainer(torch_compile=True) on the Triton path (the interpreter here; Dynamo with aot_eager): the kernels are
    custom ops inside the compiled graph (no break), and five steps give the eager Trainer's weights (both on the
    PyTorch norm path, which compiled code takes)."""
    import torch._dynamo

    from linmem.kernels import use_backend

    monkeypatch.setenv("LINMEM_FUSED_NORM", "0")
    def run(out_dir, **compile_args):
        model = make_model("qdelta", dtype=torch.float32).train()
        args = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=4, max_steps=5,
                                 learning_rate=3e-3, report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
                                 data_seed=0, save_strategy="no", **compile_args)
        trainer = Trainer(model=model, args=args, train_dataset=CountingRows(20, 16))
        with use_backend("triton"):
            trainer.train()
        return model

    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    eager = run(tmp_path / "eager")
    counters.clear()
    compiled = run(tmp_path / "compiled", torch_compile=True, torch_compile_backend="aot_eager")
    assert counters["stats"]["unique_graphs"] >= 1 and not counters["graph_break"], dict(counters["graph_break"])
    torch._dynamo.reset()
    for (param_name, p), q in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), param_name
