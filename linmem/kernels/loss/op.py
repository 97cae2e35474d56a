"""The causal-LM loss with the LM head fused in: mean cross-entropy of hidden @ weightᵀ against labels.

The usual path writes the logits [N, V] in the model's dtype, a float32 copy, its float32 log-softmax (saved for the
backward) and a float32 gradient: at B4 T4K with a 32K vocabulary about 7 GB and a dozen passes over them. Here the
forward writes the logits once, turns them in place into their own gradient, (softmax - onehot) / denominator (Triton on
CUDA, PyTorch elsewhere), and keeps only that; the backward is the two matmuls, scaled by the incoming gradient.
Numerics as Hugging Face's ForCausalLMLoss: logits rounded to the model's dtype, softmax in float32, the logits'
gradient rounded to the model's dtype before the matmuls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backend import load_triton, resolve_backend
from ..library import opaque_op


def _ce_loss_and_grad_(logits: torch.Tensor, labels: torch.Tensor, denominator: torch.Tensor,
                       ignore_index: int) -> torch.Tensor:
    """PyTorch: summed loss / denominator (float32, or float64 for float64 logits); logits [N, V] overwritten with the
    gradient of that loss."""
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    valid = labels != ignore_index
    in_range = (labels >= 0) & (labels < x.shape[-1])
    safe = torch.where(valid & in_range, labels, 0)
    lse = torch.logsumexp(x, -1)
    rows = torch.where(valid, torch.where(in_range, lse - x.gather(1, safe[:, None]).squeeze(1), float("nan")), 0.0)
    grad = torch.exp(x - lse[:, None])
    grad.scatter_add_(1, safe[:, None], -valid[:, None].to(grad.dtype))
    grad *= (valid / denominator.to(grad.dtype))[:, None]
    logits.copy_(grad)
    return rows.sum() / denominator.to(rows.dtype)


@opaque_op("linear_cross_entropy_fwd")
def _loss_and_logit_gradient(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                             denominator: torch.Tensor, ignore_index: int) -> list[torch.Tensor | None]:
    """-> [loss, the gradient of the loss with respect to the logits (in the logits' buffer)]."""
    logits = F.linear(hidden, weight)
    if resolve_backend(hidden) == "triton" and logits.dtype != torch.float64:
        ce = load_triton(__package__, "triton_ce", "triton_ce_loss_and_grad_")
    else:
        ce = None
    loss = (ce or _ce_loss_and_grad_)(logits, labels, denominator, ignore_index)
    return [loss, logits]


class LinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, denominator, ignore_index):
        loss, grad_logits = _loss_and_logit_gradient(hidden, weight, labels, denominator, ignore_index)
        ctx.save_for_backward(hidden, weight, grad_logits)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        hidden, weight, grad_logits = ctx.saved_tensors
        g = grad_logits.to(weight.dtype)
        grad_hidden = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_hidden = (g @ weight).to(hidden.dtype) * grad_loss.to(hidden.dtype)
        if ctx.needs_input_grad[1]:  # a frozen head (LoRA fine-tuning) skips this matmul
            grad_weight = (g.t() @ hidden.to(weight.dtype)) * grad_loss.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *,
                         num_items_in_batch: int | torch.Tensor | None = None,
                         ignore_index: int = -100) -> torch.Tensor:
    """Causal-LM loss of logits = hidden @ weightᵀ, labels shifted inside as Transformers' ForCausalLMLoss does.

    hidden [B, T, H] (the last hidden states), weight [V, H] (the LM head's), labels [B, T] (ignore_index where no
    loss). Mean over the counted tokens, or the sum / num_items_in_batch when given (gradient accumulation, as the
    Trainer passes it). Returns a 0-dim float32 loss (float64 for float64 inputs); no logits are kept.
    """
    if hidden.dim() != 3 or labels.shape != hidden.shape[:2]:
        raise ValueError(f"hidden [B, T, H] and labels [B, T] expected, got {tuple(hidden.shape)} and "
                         f"{tuple(labels.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight [V, {hidden.shape[-1]}] expected (the LM head's), got {tuple(weight.shape)}")
    shifted = F.pad(labels, (0, 1), value=ignore_index)[:, 1:].reshape(-1).to(torch.int64)
    if num_items_in_batch is None:
        denominator = (shifted != ignore_index).sum().to(torch.float32)
    else:
        denominator = torch.as_tensor(num_items_in_batch, device=hidden.device).to(torch.float32)
    flat = hidden.reshape(-1, hidden.shape[-1])
    return LinearCrossEntropyFunction.apply(flat, weight, shifted.contiguous(), denominator.reshape(()), ignore_index)
