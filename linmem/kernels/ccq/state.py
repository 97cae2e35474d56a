"""The CCQ recurrent state and its validation."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from ..utils import check_state


class CCQState(NamedTuple):
    """Per-layer CCQ state, float32 (float64 on the float64 PyTorch path), N = batch rows or sequences.

    S [N, H, K, V] the backbone state; M [N, H, K, K] decayed key second moment; z [N, H] decayed token count;
    m [N, H, K] decayed key sum (only with center=True, else None).
    """

    S: torch.Tensor
    M: torch.Tensor
    z: torch.Tensor
    m: Optional[torch.Tensor] = None

    def row(self, n: int) -> "CCQState":
        """The state of sequence n (rows n:n+1 of every tensor)."""
        return CCQState(*(None if t is None else t[n:n + 1] for t in self))

    @classmethod
    def cat(cls, states: list["CCQState"]) -> "CCQState":
        """Concatenate per-sequence states along the row dimension."""
        fields = []
        for i in range(len(cls._fields)):
            parts = [s[i] for s in states]
            fields.append(None if any(p is None for p in parts) else torch.cat(parts, dim=0))
        return cls(*fields)

    def to(self, dtype: torch.dtype) -> "CCQState":
        return CCQState(*(None if t is None else t.to(dtype) for t in self))


def check_ccq_state(state: object, N: int, H: int, K: int, V: int, q: torch.Tensor) -> None:
    """Validate an optional CCQState for N sequences, H heads, key dim K, value dim V."""
    if state is None:
        return
    if not isinstance(state, CCQState):
        raise TypeError(f"initial_state: expected a CCQState (S, M, z, m) or None, got {type(state).__name__}")
    check_state("initial_state.S", state.S, (N, H, K, V), "[N, H, K, V]", q)
    check_state("initial_state.M", state.M, (N, H, K, K), "[N, H, K, K]", q)
    check_state("initial_state.z", state.z, (N, H), "[N, H]", q)
    check_state("initial_state.m", state.m, (N, H, K), "[N, H, K]", q)
