"""Shared helpers of the kernel layer: the test metric, l2 normalisation, input validation, varlen spans.

Every public op validates its inputs here once, before dispatching, and raises a ValueError/TypeError
whose message names the argument, the expected and the received value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .offsets_memo import remembered


def relative_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b||_2 / max(||b||_2, tiny), computed in float64 (b is the reference)."""
    a64, b64 = a.detach().double(), b.detach().double()
    denom = max(b64.norm().item(), torch.finfo(torch.float64).tiny)
    return (a64 - b64).norm().item() / denom


def l2norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(||x||^2 + eps) over the last dimension, computed in float32 (or float64), returned in x's dtype.

    As an RMS norm: x / sqrt(||x||^2 + eps) = D^{-1/2} x / sqrt(mean(x^2) + eps / D), so F.rms_norm with a constant
    weight D^{-1/2} computes it in one fused kernel (and backward) on CUDA.
    """
    xf = x.to(compute_dtype(x))
    D = x.shape[-1]
    return torch.nn.functional.rms_norm(xf, (D,), l2norm_weight(D, xf.dtype, x.device), eps / D).to(x.dtype)


def l2norm_weight(D: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The constant RMS-norm weight D^{-1/2} [D] that turns an RMS norm with eps / D into the l2 norm."""
    return torch.full((D,), D ** -0.5, dtype=dtype, device=device)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Internal dtype of the PyTorch paths: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def default_scale(scale: float | None, head_k_dim: int) -> float:
    """The read scale: d_k ** -0.5 unless given."""
    return head_k_dim ** -0.5 if scale is None else float(scale)


# --------------------------------------------------------------------------------------------- validation

def check_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    return x


def check_floating(name: str, x: torch.Tensor) -> None:
    check_tensor(name, x)
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")


def check_shape(name: str, x: torch.Tensor, expected: Sequence[int], meaning: str) -> None:
    """Raise a ValueError unless x.shape == expected; `meaning` spells the expected layout, e.g. "[B, T, H]"."""
    check_tensor(name, x)
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {meaning} = {list(expected)}, got {list(x.shape)}")


def check_same_device(name: str, x: torch.Tensor, ref: torch.Tensor) -> None:
    if x.device != ref.device:
        raise ValueError(f"{name}: expected a tensor on device {ref.device} (q's), got {x.device}")


def check_scale(scale: object) -> None:
    if scale is None:
        return
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale: expected a float or None, got {type(scale).__name__}")
    if not scale > 0:
        raise ValueError(f"scale: expected a positive number, got {scale}")


def check_cu_seqlens(cu_seqlens: torch.Tensor | None, batch: int, seq_len: int) -> int:
    """Validate FlashAttention-style cu_seqlens [N + 1] for B == 1 inputs of length T; return N (or B when None).

    Costs one device-to-host copy of the small cu_seqlens tensor, the first time a given tensor (unchanged since)
    is checked against this T (`offsets_memo`: a model passes one cu_seqlens to every layer's ops). Under
    torch.compile the entries are not read (the copy would break the graph at every op of every layer); their dtype
    and shape still are. A model's own cu_seqlens come from its attention mask.
    """
    if cu_seqlens is None:
        return batch
    check_tensor("cu_seqlens", cu_seqlens)
    if cu_seqlens.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"cu_seqlens: expected dtype torch.int32 or torch.int64, got {cu_seqlens.dtype}")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise ValueError(f"cu_seqlens: expected a 1-D tensor [N + 1] with N >= 1, got shape {list(cu_seqlens.shape)}")
    if batch != 1:
        raise ValueError(f"cu_seqlens: varlen inputs must have batch size B == 1, got B = {batch}")
    if not torch.compiler.is_compiling():
        remembered(cu_seqlens, (_VALID_FOR_LENGTH, seq_len),
                   lambda: _check_offsets(cu_seqlens.tolist(), seq_len), holds_tensors=False)
    return cu_seqlens.numel() - 1


#: The offsets memo's key of "valid for this length" (check_cu_seqlens, mark_valid_cu_seqlens).
_VALID_FOR_LENGTH = "valid for length"


def mark_valid_cu_seqlens(cu_seqlens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Record that cu_seqlens, valid by construction for length seq_len (built from a mask, or from offsets already
    checked), needs no check: the ops' check_cu_seqlens then skips its device-to-host copy. Returns cu_seqlens."""
    remembered(cu_seqlens, (_VALID_FOR_LENGTH, seq_len), lambda: True, holds_tensors=False)
    return cu_seqlens


def _check_offsets(values: list[int], seq_len: int) -> bool:
    if values[0] != 0:
        raise ValueError(f"cu_seqlens: expected first entry 0, got {values[0]}")
    if values[-1] != seq_len:
        raise ValueError(f"cu_seqlens: expected last entry T = {seq_len} (the sequence length of q), got {values[-1]}")
    if any(b < a for a, b in zip(values[:-1], values[1:])):
        raise ValueError(f"cu_seqlens: expected non-decreasing entries, got {values}")
    return True


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int, int]:
    """Validate q, k [B, T, H, K] and v [B, T, H, V]; return (B, T, H, K, V)."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_floating(name, x)
        if x.dim() != 4:
            raise ValueError(f"{name}: expected a 4-D tensor [B, T, H, D], got shape {list(x.shape)}")
    B, T, H, K = q.shape
    check_shape("k", k, (B, T, H, K), "[B, T, H, K] (q's)")
    if tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"v: expected shape [B, T, H, V] with [B, T, H] = {[B, T, H]} (q's), got {list(v.shape)}")
    if K == 0 or v.shape[3] == 0:
        raise ValueError(f"q, v: head dims must be positive, got K = {K}, V = {v.shape[3]}")
    check_same_device("k", k, q)
    check_same_device("v", v, q)
    return B, T, H, K, v.shape[3]


def check_gate(name: str, x: torch.Tensor, expected: Sequence[int], meaning: str, q: torch.Tensor) -> None:
    """A floating gate tensor of an exact shape, on q's device."""
    check_floating(name, x)
    check_shape(name, x, expected, meaning)
    check_same_device(name, x, q)


def check_state(name: str, state: torch.Tensor | None, expected: Sequence[int], meaning: str,
                q: torch.Tensor) -> None:
    """An optional floating state tensor of an exact shape, on q's device."""
    if state is None:
        return
    check_gate(name, state, expected, meaning, q)


def validate_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                              gates: Sequence[tuple[str, torch.Tensor, str]], scale: float | None,
                              initial_state: torch.Tensor | None, cu_seqlens: torch.Tensor | None
                              ) -> tuple[int, int, int, int, int, int]:
    """Validate the arguments shared by the op family; gates are (name, tensor, kind) with kind
    "head" ([B, T, H]) or "channel" ([B, T, H, K]). Returns (B, T, H, K, V, N).
    """
    B, T, H, K, V = check_qkv(q, k, v)
    for name, gate, kind in gates:
        if kind == "head":
            check_gate(name, gate, (B, T, H), "[B, T, H]", q)
        else:
            check_gate(name, gate, (B, T, H, K), "[B, T, H, K]", q)
    check_scale(scale)
    N = check_cu_seqlens(cu_seqlens, B, T)
    check_state("initial_state", initial_state, (N, H, K, V), "[N, H, K, V]", q)
    return B, T, H, K, V, N


# --------------------------------------------------------------------------------------------- varlen

def sequence_spans(cu_seqlens: torch.Tensor | None, batch: int, seq_len: int) -> list[tuple[int, int, int]]:
    """(batch index, start, end) of every sequence: one per batch row, or one per cu_seqlens entry (B == 1)."""
    if cu_seqlens is None:
        return [(b, 0, seq_len) for b in range(batch)]
    bounds = cu_seqlens.tolist()
    return [(0, s, e) for s, e in zip(bounds[:-1], bounds[1:])]


def run_per_sequence(dense_fn, time_inputs: Sequence[torch.Tensor], initial_state, output_final_state: bool,
                     cu_seqlens: torch.Tensor | None):
    """Run a dense op once over B rows of equal length, or with cu_seqlens once per ragged sequence.

    dense_fn(inputs (each [b, t, ...]), state (b rows) or None) -> (o [b, t, ...], final state (b rows)); it must
    accept t == 0 (an empty sequence passes its initial state, or zeros, through). States are tensors with the
    sequence on dim 0, or objects with `row(n)` and a classmethod `cat(states)` (e.g. CCQState).
    Returns (o [B, T, ...], final state (N rows) or None).
    """
    if cu_seqlens is None:
        o, final = dense_fn(list(time_inputs), initial_state)
        return o, (final if output_final_state else None)
    outputs, finals = [], []
    for n, (_, start, end) in enumerate(sequence_spans(cu_seqlens, 1, time_inputs[0].shape[1])):
        state = None if initial_state is None else _state_row(initial_state, n)
        o, final = dense_fn([x[:, start:end] for x in time_inputs], state)
        outputs.append(o)
        finals.append(final)
    final_state = _cat_states(finals) if output_final_state else None
    return torch.cat(outputs, dim=1), final_state


def _state_row(state, n: int):
    return state.row(n) if hasattr(state, "row") else state[n:n + 1]


def _cat_states(states: list):
    first = states[0]
    return type(first).cat(states) if hasattr(first, "row") else torch.cat(states, dim=0)
