"""A causal-LM training step whose forward and backward replay one captured CUDA graph.

The eager training step of a linmem model is bound by the host, not the GPU: on an H200 the 340M CCQ-GDN step took
about 230 ms of wall time for 130 ms of kernels (benchmarks/results/h200-2026-12-04c-defaults/1-candidates/prof-norm).
Captured once and replayed, the whole forward and backward launch at once (124k tokens/s against 69k eager there,
`benchmarks/train_throughput.py --cuda-graph`). The optimizer step stays eager (a fused AdamW is one launch).

    step = CUDAGraphTrainingStep(model, optimizer, batch_size=4, seq_len=4096)
    for batch in loader:
        loss = step(batch["input_ids"])            # labels = input_ids, or pass labels= (-100 ignored)
        scheduler.step()

What the graph fixes: the batch shape (every batch must be [batch_size, seq_len]; pad or pack to it), dense batches
without an attention mask (the padding path synchronises with the host), and the gradient tensors: each replay
overwrites them, so they are not zeroed between steps and must not be replaced (`optimizer.zero_grad()` with its
default set_to_none would detach them; the step checks and raises).
"""

from __future__ import annotations

import torch
from torch import nn


class CUDAGraphTrainingStep:
    """Forward and backward of `model(input_ids, labels=labels).loss` as one CUDA graph, then `optimizer.step()`.

    model: a causal LM on a CUDA device, in training mode; optimizer: over its parameters. The graph is captured in
    the constructor, after `warmup` eager passes on a side stream (they compile the kernels and settle the
    allocator). Calling the step with input_ids [batch_size, seq_len] (and optional labels of that shape) returns
    the loss, a fresh 0-dim tensor.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch_size: int, seq_len: int,
                 warmup: int = 3, max_grad_norm: float | None = None) -> None:
        device = next(model.parameters()).device
        if device.type != "cuda":
            raise ValueError(f"CUDAGraphTrainingStep needs the model on a CUDA device, got {device}")
        if not model.training:
            raise ValueError("CUDAGraphTrainingStep: the model is in eval mode; call model.train() first "
                             "(the captured graph keeps the mode it was captured in)")
        if batch_size < 1 or seq_len < 2:
            raise ValueError(f"CUDAGraphTrainingStep: batch_size >= 1 and seq_len >= 2 needed, got {batch_size}, "
                             f"{seq_len}")
        self.model, self.optimizer, self.max_grad_norm = model, optimizer, max_grad_norm
        vocab = model.config.vocab_size
        self.input_ids = torch.randint(0, vocab, (batch_size, seq_len), device=device)
        self.labels = self.input_ids.clone()
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                model(self.input_ids, labels=self.labels).loss.backward()
        torch.cuda.current_stream(device).wait_stream(side)
        # The captured backward must allocate every gradient in the graph's pool (one left from the warm-up would be
        # accumulated into at each replay), so the model's are dropped, not only the optimizer's.
        model.zero_grad(set_to_none=True)
        optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = model(self.input_ids, labels=self.labels).loss
            self.loss.backward()
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.gradients = [p.grad for p in self.trainable]
        if any(g is None for g in self.gradients):
            names = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            raise ValueError(f"CUDAGraphTrainingStep: no gradient reached {names[:5]}; freeze them "
                             "(requires_grad=False) or use the eager step")

    def __call__(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """One step on input_ids [batch_size, seq_len] (labels the same shape; None: input_ids) -> the loss."""
        for name, t in (("input_ids", input_ids), ("labels", labels)):
            if t is not None and tuple(t.shape) != tuple(self.input_ids.shape):
                raise ValueError(f"{name}: the graph was captured for shape {tuple(self.input_ids.shape)}, got "
                                 f"{tuple(t.shape)} (pad or pack batches to the captured shape)")
        if any(p.grad is not g for p, g in zip(self.trainable, self.gradients)):
            raise RuntimeError("the parameters' gradients are no longer the captured graph's tensors (was "
                               "optimizer.zero_grad() or model.zero_grad() called? The replay overwrites the "
                               "gradients itself; do not zero them)")
        self.input_ids.copy_(input_ids)
        self.labels.copy_(labels if labels is not None else input_ids)
        self.graph.replay()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.max_grad_norm)
        self.optimizer.step()
        return self.loss.detach().clone()
