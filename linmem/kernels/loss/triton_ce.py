"""Triton cross-entropy over logit rows that overwrites each row with its own gradient.

Per row (one program): an online max and sum of exp over the vocabulary in blocks (float32), the row's loss
lse - x[label], then a second pass that writes (softmax - onehot(label)) / denominator over the logits, in their dtype.
Rows labelled ignore_index get loss 0 and gradient 0; a label outside [0, V) gives a NaN loss (no host check: it would
synchronise, and break CUDA-graph capture).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_V = 4096


@triton.jit
def ce_loss_and_grad_kernel(logits, labels, denominator, loss_rows, V, IGNORE: tl.constexpr, BV: tl.constexpr):
    """Grid (rows,). logits [rows, V] (read, then overwritten with the gradient); labels [rows] int64;
    denominator [] float32; loss_rows [rows] float32."""
    row = tl.program_id(0).to(tl.int64)
    base = logits + row * V
    label = tl.load(labels + row)
    running_max = tl.full([], float("-inf"), tl.float32)
    running_sum = tl.zeros([], tl.float32)
    for start in range(0, V, BV):
        cols = start + tl.arange(0, BV)
        x = tl.load(base + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(x, 0))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(x - new_max), 0)
        running_max = new_max
    lse = running_max + tl.log(running_sum)
    valid = label != IGNORE
    in_range = (label >= 0) & (label < V)
    target = tl.load(base + tl.where(in_range, label, 0), mask=valid & in_range, other=0.0).to(tl.float32)
    row_loss = tl.where(valid, tl.where(in_range, lse - target, float("nan")), 0.0)
    tl.store(loss_rows + row, row_loss)
    scale = tl.where(valid, 1.0 / tl.load(denominator), 0.0)
    for start in range(0, V, BV):
        cols = start + tl.arange(0, BV)
        x = tl.load(base + cols, mask=cols < V, other=0.0).to(tl.float32)
        grad = (tl.exp(x - lse) - (cols == label).to(tl.float32)) * scale
        tl.store(base + cols, grad.to(logits.dtype.element_ty), mask=cols < V)


def triton_ce_loss_and_grad_(logits: torch.Tensor, labels: torch.Tensor, denominator: torch.Tensor,
                             ignore_index: int) -> torch.Tensor:
    """Summed loss / denominator (float32, 0-dim); logits [N, V] contiguous, overwritten with the gradient."""
    N, V = logits.shape
    loss_rows = torch.empty(N, device=logits.device, dtype=torch.float32)
    if N:
        ce_loss_and_grad_kernel[(N,)](logits, labels, denominator, loss_rows, V, IGNORE=ignore_index,
                                      BV=min(BLOCK_V, triton.next_power_of_2(V)), num_warps=8)
    return loss_rows.sum() / denominator
