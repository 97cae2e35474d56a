"""`linmem distill`: two-stage distillation of a converted (linearised) student from its softmax teacher.

Stage 1 (per-layer alignment): only the student's recurrent mixers train; each learns to reproduce the
teacher's attention output from the teacher's own attention input (masked MSE, layers in isolation).
Stage 2 (end to end): KL(teacher || student) on the logits, padding and ignored positions masked.

Runs under Accelerate (`accelerate launch -m linmem.cli distill ...` for several GPUs; plain `linmem
distill` on one device). Progress bars, periodic evaluation, and resumable checkpoints: state is saved
every `save_every` steps and when `max_minutes` runs out, and a rerun with the same `--output` continues
from the last checkpoint with the batches it had not seen.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..modeling.attention import SoftmaxAttention
from .alignment import capture_teacher_attention, layer_alignment_losses
from .data import TokenBlocks, load_token_ids
from .losses import masked_kl, next_token_nll
from .source import TOKENIZER_FILES

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "distill_state.json"
LOG_FILE = "distill_log.jsonl"


@dataclass
class DistillConfig:
    """Settings of one distillation stage (all saved with the checkpoint)."""

    teacher: str
    student: str
    output: str
    data: str
    stage: int = 1
    eval_data: str | None = None
    steps: int = 1000
    batch_size: int = 8
    seq_len: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    grad_accum: int = 1
    temperature: float = 1.0
    eval_every: int = 200
    eval_batches: int = 4
    save_every: int = 200
    max_minutes: float | None = None
    mixed_precision: str = "no"
    seed: int = 0
    train_mixers_only: bool = False
    train_embeddings: bool = False

    def validate(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"`stage` must be 1 or 2, got {self.stage}")
        for name in ("steps", "batch_size", "seq_len", "grad_accum", "eval_every", "save_every", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError(f"`lr` and `temperature` must be positive, got {self.lr}, {self.temperature}")


@dataclass
class DistillState:
    step: int = 0
    done: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class LayerAlignmentObjective(nn.Module):
    """Stage 1 as one module (so a DDP wrapper sees the forward): mean masked MSE over the linear layers."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, captured: dict[int, tuple[torch.Tensor, torch.Tensor]], attention_mask: torch.Tensor) -> torch.Tensor:
        losses = layer_alignment_losses(self.student, captured, attention_mask)
        return torch.stack(list(losses.values())).mean()


def linear_layer_indices(student: nn.Module) -> list[int]:
    return [i for i, layer in enumerate(student.model.layers) if not isinstance(layer.attn, SoftmaxAttention)]


def set_trainable(student: nn.Module, stage: int, mixers_only: bool, embeddings: bool = False) -> list[str]:
    """Freeze all but what the stage trains; return the names of trainable parameters.

    Stage 1 (or `mixers_only`): the recurrent mixers. Stage 2: everything but the embeddings / LM head
    (copied from the teacher; `embeddings=True` trains them too).
    """
    linear = set(linear_layer_indices(student))
    names = []
    for name, param in student.named_parameters():
        in_mixer = name.startswith("model.layers.") and ".attn." in name and int(name.split(".")[2]) in linear
        is_embedding = name in ("model.embeddings.weight", "lm_head.weight")
        param.requires_grad_(in_mixer if (stage == 1 or mixers_only) else (embeddings or not is_embedding))
        if param.requires_grad:
            names.append(name)
    return names


def _lr_lambda(warmup: int, total: int):
    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item()))
    return fn


def _load_models(cfg: DistillConfig, device: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import linmem  # noqa: F401

    teacher = AutoModelForCausalLM.from_pretrained(cfg.teacher, dtype=torch.float32).to(device).eval()
    teacher.requires_grad_(False)
    student = AutoModelForCausalLM.from_pretrained(cfg.student, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(cfg.student)
    if teacher.config.vocab_size != student.config.vocab_size:
        raise ValueError(f"teacher vocab {teacher.config.vocab_size} != student vocab {student.config.vocab_size}")
    return teacher, student, tokenizer


def _stage_loss(cfg: DistillConfig, objective, student, teacher, batch, linear) -> torch.Tensor:
    if cfg.stage == 1:
        captured, _ = capture_teacher_attention(teacher, batch["input_ids"], batch["attention_mask"], linear)
        return objective(captured, batch["attention_mask"])
    with torch.no_grad():
        teacher_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    mask = batch["attention_mask"] if "loss_mask" not in batch else batch["loss_mask"]
    return masked_kl(logits, teacher_logits, mask, cfg.temperature)


@torch.no_grad()
def evaluate(cfg: DistillConfig, objective, student, teacher, blocks: TokenBlocks, linear, device) -> dict[str, float]:
    """Mean stage loss, KL and student/teacher perplexity over `eval_batches` held-out batches."""
    was_training = student.training
    student.eval()
    totals = {"loss": 0.0, "kl": 0.0}
    nll_s = nll_t = count = 0.0
    batches = min(cfg.eval_batches, blocks.batches_per_epoch)
    for k in range(batches):
        batch = {key: value.to(device) for key, value in blocks.batch(k).items()}
        totals["loss"] += float(_stage_loss(cfg, objective, student, teacher, batch, linear))
        s_logits = student(**batch, use_cache=False).logits
        t_logits = teacher(**batch, use_cache=False).logits
        totals["kl"] += float(masked_kl(s_logits, t_logits, batch["attention_mask"]))
        s_sum, n = next_token_nll(s_logits, batch["input_ids"], batch["attention_mask"])
        t_sum, _ = next_token_nll(t_logits, batch["input_ids"], batch["attention_mask"])
        nll_s, nll_t, count = nll_s + float(s_sum), nll_t + float(t_sum), count + float(n)
    student.train(was_training)
    return {"eval_loss": totals["loss"] / batches, "eval_kl": totals["kl"] / batches,
            "student_ppl": float(torch.exp(torch.tensor(nll_s / count))),
            "teacher_ppl": float(torch.exp(torch.tensor(nll_t / count)))}


def distill(cfg: DistillConfig) -> DistillState:
    """Run (or resume) one stage; the distilled model is saved to `cfg.output` when all steps are done."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    cfg.validate()
    output = Path(cfg.output)
    checkpoint = output / CHECKPOINT_DIR
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum)
    torch.manual_seed(cfg.seed)
    teacher, student, tokenizer = _load_models(cfg, accelerator.device)
    linear = linear_layer_indices(student)
    trainable = set_trainable(student, cfg.stage, cfg.train_mixers_only, cfg.train_embeddings)
    student.train()
    train_blocks = TokenBlocks(load_token_ids(cfg.data, tokenizer), cfg.seq_len, cfg.batch_size, cfg.seed)
    eval_blocks = (TokenBlocks(load_token_ids(cfg.eval_data, tokenizer), cfg.seq_len, cfg.batch_size, cfg.seed + 1)
                   if cfg.eval_data else None)

    objective = LayerAlignmentObjective(student) if cfg.stage == 1 else student
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.warmup_steps, cfg.steps))
    objective, optimizer, scheduler = accelerator.prepare(objective, optimizer, scheduler)
    inner_student = accelerator.unwrap_model(objective)
    inner_student = inner_student.student if cfg.stage == 1 else inner_student

    state = DistillState()
    if (checkpoint / STATE_FILE).is_file():
        saved = json.loads((checkpoint / STATE_FILE).read_text())
        if saved["config"]["stage"] != cfg.stage or saved["config"]["student"] != cfg.student:
            raise ValueError(f"{checkpoint} holds stage {saved['config']['stage']} of {saved['config']['student']}; "
                             f"use another `--output` for stage {cfg.stage} of {cfg.student}")
        accelerator.load_state(str(checkpoint))
        state = DistillState(**saved["state"])
        accelerator.print(f"resumed from {checkpoint} at step {state.step}")

    def save() -> None:
        accelerator.wait_for_everyone()
        accelerator.save_state(str(checkpoint))
        if accelerator.is_main_process:
            (checkpoint / STATE_FILE).write_text(json.dumps({"config": asdict(cfg), "state": asdict(state)}, indent=2))

    started = time.monotonic()
    progress = tqdm(total=cfg.steps, initial=state.step, desc=f"distill stage {cfg.stage}",
                    disable=not accelerator.is_main_process)
    log = output / LOG_FILE
    output.mkdir(parents=True, exist_ok=True)
    if state.step == 0 and eval_blocks is not None:
        entry = {"step": 0, **evaluate(cfg, objective, inner_student, teacher, eval_blocks, linear, accelerator.device)}
        state.history.append(entry)
        accelerator.print("step 0: " + ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k != "step"))
    while state.step < cfg.steps:
        for micro in range(cfg.grad_accum):
            index = (state.step * cfg.grad_accum + micro) * accelerator.num_processes + accelerator.process_index
            batch = {k: v.to(accelerator.device) for k, v in train_blocks.batch(index).items()}
            with accelerator.accumulate(objective):
                loss = _stage_loss(cfg, objective, objective, teacher, batch, linear)
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        state.step += 1
        entry = {"step": state.step, "loss": float(loss.detach()), "lr": scheduler.get_last_lr()[0]}
        progress.update(1)
        progress.set_postfix(loss=f"{entry['loss']:.4g}")
        if eval_blocks is not None and (state.step % cfg.eval_every == 0 or state.step == cfg.steps):
            entry.update(evaluate(cfg, objective, inner_student, teacher, eval_blocks, linear, accelerator.device))
            accelerator.print(f"step {state.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k != "step"))
        state.history.append(entry)
        if accelerator.is_main_process:
            with open(log, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
        out_of_time = cfg.max_minutes is not None and time.monotonic() - started > 60 * cfg.max_minutes
        if state.step % cfg.save_every == 0 or out_of_time:
            save()
        if out_of_time and state.step < cfg.steps:
            accelerator.print(f"stopping after {cfg.max_minutes} minutes at step {state.step}; rerun to resume")
            progress.close()
            return state
    progress.close()
    state.done = True
    save()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(inner_student)
        model.config.distillation = {"stage": cfg.stage, "steps": cfg.steps, "teacher": cfg.teacher,
                                     "tokens": cfg.steps * cfg.grad_accum * cfg.batch_size * cfg.seq_len
                                     * accelerator.num_processes,
                                     "trainable_parameters": len(trainable)}
        model.save_pretrained(output)
        for name in TOKENIZER_FILES:
            if (Path(cfg.student) / name).is_file():
                shutil.copy2(Path(cfg.student) / name, output / name)
        report = Path(cfg.student) / "conversion_report.json"
        if report.is_file():
            shutil.copy2(report, output / "conversion_report.json")
    return state
