"""Which part of a CCQ model's Triton path makes its bf16-autocast gradient drift from float32?

    python benchmarks/autocast_bisect.py [--variants ccq-gla,ccq-gdn] [--out benchmarks/results]
    python benchmarks/autocast_bisect.py --smoke --out /tmp/x   # CPU (Triton interpreter), fp16: checks the script

One training step of the tiny model of tests/test_model_gpu.py (2 x 300 tokens) under torch.autocast, its whole
gradient compared (relative RMS) with the float32 step's on Triton, for each way of splitting the CCQ op:
  triton            the statistic pass and the backbone on Triton (what test_autocast_bf16_training_step_on_triton
                    asks to stay within 1.5x of the PyTorch path's error)
  torch             both on the PyTorch chunk path (float32 compute)
  stat_torch        the statistic on PyTorch, the backbone on Triton
  backbone_torch    the statistic on Triton, the backbone on PyTorch
  stat_fp32         the statistic on Triton with float32 inputs (ieee products), the backbone on Triton
The row whose error falls back to the PyTorch path's names the kernel to look at. Writes autocast-bisect-<gpu>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from unittest import mock

import torch

if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

from benchmarks.kernels import gpu_file_name, result_header  # noqa: E402
from linmem.kernels import relative_rms, use_backend  # noqa: E402
from linmem.kernels.ccq import triton_chunk, triton_gdn  # noqa: E402
from linmem.kernels.ccq.chunk import chunk_ccq_query  # noqa: E402
from linmem.kernels.gated_delta_rule.chunk import chunk_gated_delta_rule  # noqa: E402
from linmem.kernels.gla.chunk import chunk_gla  # noqa: E402
from tests.variants import make_model  # noqa: E402

SPLITS = ["triton", "torch", "stat_torch", "backbone_torch", "stat_fp32"]


def torch_statistic(q, khat, log_gamma, lam, state, *, center, output_final_state, cu_seqlens=None, chunk_size=64):
    """contract_query_from_state on the PyTorch chunk path (training: no initial state, no varlen)."""
    if state is not None or cu_seqlens is not None:
        raise ValueError("the bisect replaces the statistic of a plain training step only")
    B, _, H, K = q.shape
    M, z = q.new_zeros(B, H, K, K, dtype=torch.float32), q.new_zeros(B, H, dtype=torch.float32)
    m = q.new_zeros(B, H, K, dtype=torch.float32) if center else None
    q_tilde, M, z, m = chunk_ccq_query(q.float(), khat.float(), log_gamma.float(), lam.float(), M, z, m, 64)
    return q_tilde.to(q.dtype), ((M, z, m) if output_final_state else None)


def fp32_statistic(q, khat, log_gamma, lam, state, **kwargs):
    """The Triton statistic with float32 q and k̂ (ieee products); q̃ back in q's dtype."""
    q_tilde, finals = ORIGINAL_STATISTIC(q.float(), khat.float(), log_gamma, lam, state, **kwargs)
    return q_tilde.to(q.dtype), finals


ORIGINAL_STATISTIC = triton_chunk.contract_query_from_state


def torch_gla(q, k, v, gk, *, scale, initial_state, output_final_state, cu_seqlens, chunk_size):
    o, S = chunk_gla(q, k, v, gk, scale=scale, initial_state=initial_state, output_final_state=output_final_state,
                     cu_seqlens=cu_seqlens)
    return o.to(q.dtype), S


def torch_gdn(q, k, v, g, beta, lam, *, scale, initial_state, output_final_state, cu_seqlens, chunk_size):
    o, S = chunk_gated_delta_rule(q, k, v, g, beta, scale=scale, initial_state=initial_state,
                                  output_final_state=output_final_state, cu_seqlens=cu_seqlens)
    return o.to(q.dtype), S


def patches(split: str) -> list:
    """The module attributes a split replaces (the CCQ compositions look both passes up in their modules)."""
    if split == "stat_torch":
        return [mock.patch.object(m, "contract_query_from_state", torch_statistic) for m in (triton_chunk, triton_gdn)]
    if split == "stat_fp32":
        return [mock.patch.object(m, "contract_query_from_state", fp32_statistic) for m in (triton_chunk, triton_gdn)]
    if split == "backbone_torch":
        return [mock.patch.object(triton_chunk, "triton_gla_chunked", torch_gla),
                mock.patch.object(triton_gdn, "chunk_delta_rule_triton", torch_gdn)]
    return []


def gradient(model, ids, device: str, dtype: torch.dtype | None, backend: str, split: str) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    with contextlib.ExitStack() as stack:
        for patch in patches(split):
            stack.enter_context(patch)
        stack.enter_context(use_backend(backend))
        stack.enter_context(torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None))
        loss = model(ids, labels=ids).loss
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def bisect(variant: str, device: str, dtype: torch.dtype, length: int) -> dict:
    size = dict(head_dim=64, expand_v=1, hidden_size=128, num_heads=2) if device == "cuda" else {}
    model = make_model(variant, dtype=torch.float32, **size).to(device).train()
    ids = torch.randint(3, 96, (2, length), generator=torch.Generator().manual_seed(1)).to(device)
    reference = gradient(model, ids, device, None, "triton", "triton")
    errors = {}
    for split in SPLITS:
        backend = "torch" if split == "torch" else "triton"
        errors[split] = relative_rms(gradient(model, ids, device, dtype, backend, split), reference)
        print(f"{variant:10s} {split:16s} gradient error {errors[split]:.3e}", flush=True)
    return {"variant": variant, "tokens": [2, length], "errors": errors,
            "triton_over_torch": errors["triton"] / errors["torch"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="ccq-gla,ccq-gdn")
    parser.add_argument("--smoke", action="store_true", help="CPU, Triton interpreter, fp16 autocast, 2 x 40 tokens")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    device = "cpu" if args.smoke else "cuda"
    dtype = torch.float16 if args.smoke else torch.bfloat16
    rows = [bisect(v, device, dtype, 40 if args.smoke else 300) for v in args.variants.split(",")]
    header = {"device": "cpu (interpreter)"} if args.smoke else result_header()
    result = {**header, "dtype": str(dtype), "timer": None, "rows": rows}
    path = Path(args.out) / f"autocast-bisect-{gpu_file_name(args.smoke)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
