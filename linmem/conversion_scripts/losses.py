"""Masked losses for distillation and evaluation: padding and ignored positions never count.

mask is [B, T] with 1 (or True) where a position counts. Every loss is a mean over counted positions
(sum over the vocabulary / features first), computed in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(mask: torch.Tensor, shape: torch.Size, name: str) -> torch.Tensor:
    if mask.shape != shape:
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    return mask.to(torch.float32)


def masked_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
              temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) per position, averaged over masked-in positions; logits [B, T, V].

    Scaled by temperature**2 so gradients keep their size across temperatures.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"`student_logits` {tuple(student_logits.shape)} and `teacher_logits` "
                         f"{tuple(teacher_logits.shape)} must have the same shape")
    weights = _check(mask, student_logits.shape[:2], "mask")
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_position = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    per_position = torch.where(weights > 0, per_position, torch.zeros_like(per_position))
    return (per_position * weights).sum() / weights.sum().clamp_min(1.0) * temperature**2


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over features and masked-in positions; prediction, target [B, T, D]."""
    if prediction.shape != target.shape:
        raise ValueError(f"`prediction` {tuple(prediction.shape)} and `target` {tuple(target.shape)} differ in shape")
    per_position = (prediction.float() - target.float()).pow(2).mean(-1)
    if mask is None:
        return per_position.mean()
    weights = _check(mask, per_position.shape, "mask")
    per_position = torch.where(weights > 0, per_position, torch.zeros_like(per_position))
    return (per_position * weights).sum() / weights.sum().clamp_min(1.0)


def next_token_nll(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token negative log-likelihoods, number of predicted tokens); logits [B, T, V], ids [B, T].

    A target counts when both it and the position predicting it are masked in.
    """
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    counted = torch.ones_like(nll) if mask is None else (mask[:, 1:] * mask[:, :-1]).to(nll.dtype)
    return (nll * counted).sum(), counted.sum()
