"""Which implementation a public op runs: the naive recurrence, the PyTorch chunkwise path or Triton.

Choice, first match wins: the innermost `use_backend(name)` context, else the environment variable
LINMEM_KERNEL_BACKEND, else "auto". Names:
  auto   Triton when q is on CUDA and triton is importable, else the PyTorch chunk path
  torch  the PyTorch chunkwise implementation (any device)
  naive  the per-token reference recurrence (slow; tests and debugging)
  triton the Triton kernels (forced; an error when the op has no Triton kernel yet)
On auto, an op whose Triton module does not exist yet falls back to PyTorch with a one-time warning.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

BACKENDS = ("auto", "torch", "naive", "triton")
ENV_VAR = "LINMEM_KERNEL_BACKEND"

_local = threading.local()
_warned: set[object] = set()  # op names (missing kernels) and (op, reason) pairs


def _check_name(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source}: expected one of {list(BACKENDS)}, got {name!r}")
    return name


def env_int(variable: str, default: int | None) -> int | None:
    """An integer kernel setting from the environment (read at each call, so one process can compare
    settings); `default` when the variable is unset or blank."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{variable}: expected an integer, got {value!r}") from None


def env_block(variable: str, default: int) -> int:
    """A tile width from the environment, which must be a power of two >= 16 (the smallest tl.dot operand), or
    `default` when the variable is unset (a default may be narrower: the GDN state kernels' value block of a head
    with d_v < 16 is d_v rounded up to a power of two)."""
    block = env_int(variable, None)
    if block is None:
        return default
    if block < 16 or block & (block - 1):
        raise ValueError(f"{variable}: a block must be a power of two >= 16, got {block}")
    return block


class TileLaunch(NamedTuple):
    """Key block, value block, warps and pipeline stages of one kernel's launch."""

    block_k: int
    block_v: int
    warps: int
    stages: int

    def kwargs(self) -> dict:
        """As a Triton launch's keyword arguments."""
        return dict(BK=self.block_k, BV=self.block_v, num_warps=self.warps, num_stages=self.stages)


def env_launch(prefix: str, default: TileLaunch, max_k: int, max_v: int) -> TileLaunch:
    """`default`, each field overridden by <prefix>{BK,BV,WARPS,STAGES} when set (read at each call), the blocks
    capped at max_k and max_v (the head dims rounded up to a tile)."""
    return TileLaunch(min(env_block(f"{prefix}BK", default.block_k), max_k),
                      min(env_block(f"{prefix}BV", default.block_v), max_v),
                      env_int(f"{prefix}WARPS", default.warps),
                      env_int(f"{prefix}STAGES", default.stages))


def requested_backend() -> str:
    """The backend name in force (before resolving "auto")."""
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    return _check_name(os.environ.get(ENV_VAR, "auto").strip().lower() or "auto", ENV_VAR)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the ops inside the block on backend `name` (one of BACKENDS); nests and is thread-local."""
    _check_name(name, "use_backend(name)")
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(name)
    try:
        yield
    finally:
        stack.pop()


def kernel_op(fn: Callable) -> Callable:
    """Mark a public op: under `torch.compile` its Triton path is traced, its other paths run as one opaque call.

    On the Triton path Dynamo traces the op's validation, dispatch and autograd.Function, whose kernels are opaque
    custom ops (library.py): the compiled graph does not break at the op, so `fullgraph=True` works. Which path
    runs is decided when the graph is compiled (the backend in force then, `assume_constant_result`), not at each
    call. The PyTorch and naive paths (CPU, or a forced backend) stay one opaque call (`torch.compiler.disable`):
    their per-chunk and per-token Python loops would unroll into the graph.
    """
    opaque = torch.compiler.disable(fn)

    @functools.wraps(fn)
    def op(*args, **kwargs):
        if torch.compiler.is_compiling() and not _triton_when_compiled(args[0].is_cuda):
            return opaque(*args, **kwargs)
        return fn(*args, **kwargs)

    return op


@torch.compiler.assume_constant_result
def _triton_when_compiled(on_cuda: bool) -> bool:
    name = requested_backend()
    return name == "triton" or (name == "auto" and on_cuda and triton_available())


#: Whether triton is importable (looked up once; a plain value, which Dynamo reads without tracing the lookup).
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    return _TRITON_INSTALLED


def resolve_backend(q: torch.Tensor) -> str:
    """"naive", "torch" or "triton" for an op whose main input is q."""
    name = requested_backend()
    if name == "auto":
        return "triton" if q.is_cuda and triton_available() else "torch"
    return name


class _FoundTritonFunctions:
    """The Triton functions found so far, one attribute per (package, module, function): the function, or None where
    it does not exist. An object, not a dict: Dynamo reads an object's attribute afresh at each access, but traces a
    dict from the snapshot it takes at its first read in a graph, so a function found later in the same trace (the
    second op of a model compiled before any eager call) would be missing from it."""


_triton_functions = _FoundTritonFunctions()


def load_triton(package: str, module: str, function: str) -> Callable | None:
    """`package.module.function`, or None when that module/function (or triton itself) does not exist yet.

    Other import errors (a bug inside an existing Triton file) propagate. Cached: a decode step calls this
    for every op of every layer, and an import-system lookup per call costs more than the step kernel.
    """
    return getattr(_triton_functions, _find_triton_function(package, module, function))


@torch.compiler.assume_constant_result  # Dynamo runs the import when it traces, and reads the attribute after it
def _find_triton_function(package: str, module: str, function: str) -> str:
    """The attribute of `_triton_functions` that holds package.module.function (found on the first call)."""
    name = f"{package}.{module}.{function}".replace(".", "__")
    if not hasattr(_triton_functions, name):
        setattr(_triton_functions, name, _import_triton_function(package, module, function))
    return name


def _import_triton_function(package: str, module: str, function: str) -> Callable | None:
    full = f"{package}.{module}"
    try:
        mod = importlib.import_module(full)
    except ModuleNotFoundError as err:
        if err.name is not None and (err.name == "triton" or err.name.startswith(package.rsplit(".", 1)[0])):
            return None
        raise
    return getattr(mod, function, None)


def dispatch(op_name: str, package: str, naive_fn: Callable, chunk_fn: Callable, q: torch.Tensor,
             args: tuple, kwargs: dict, *, use_step: bool = False, triton_unsupported: str | None = None):
    """Call the implementation the backend picks with (args, kwargs); use_step prefers the decode kernel.

    use_step is decided by the op (one token per row, no gradients): on Triton `triton_<op>_step` from
    `triton_step.py` (falling back to the chunk kernel when absent); on the PyTorch backend the per-token
    recurrence, which for one token is the whole computation (the chunk machinery would pad it to a chunk).
    triton_unsupported: why the Triton kernels cannot take these inputs (None = they can); then the
    PyTorch path runs, with a warning once, or a NotImplementedError when 'triton' was asked for.
    """
    backend = resolve_backend(q)
    if backend == "triton" and triton_unsupported is not None:
        if requested_backend() == "triton":
            raise NotImplementedError(f"backend 'triton' for {op_name}: {triton_unsupported}; use backend 'torch' or 'auto'")
        if (op_name, triton_unsupported) not in _warned:
            _warned.add((op_name, triton_unsupported))
            warnings.warn(f"linmem: {op_name}: {triton_unsupported}; using the PyTorch path", RuntimeWarning,
                          stacklevel=3)
        backend = "torch"
    if backend == "naive":
        return naive_fn(*args, **kwargs)
    if backend == "torch":
        return (naive_fn if use_step else chunk_fn)(*args, **kwargs)
    fn = None
    if use_step:
        fn = load_triton(package, "triton_step", f"triton_{op_name}_step")
        if fn is not None and torch.compiler.is_compiling():  # it updates the cached state in place: run it eagerly
            return torch.compiler.disable(fn)(*args, **kwargs)
    if fn is None:
        fn = load_triton(package, "triton_chunk", f"triton_{op_name}")
    if fn is not None:
        return fn(*args, **kwargs)
    if requested_backend() == "triton":
        raise NotImplementedError(f"backend 'triton': {package}.triton_chunk.triton_{op_name} does not exist yet; "
                                  f"use backend 'torch' or 'auto'")
    if op_name not in _warned:
        _warned.add(op_name)
        warnings.warn(f"linmem: Triton kernel for {op_name} missing ({package}.triton_chunk); "
                      f"falling back to the PyTorch chunk implementation", RuntimeWarning, stacklevel=3)
    return chunk_fn(*args, **kwargs)


def wants_step(q: torch.Tensor, tensors: tuple, cu_seqlens: torch.Tensor | None) -> bool:
    """True for a decode step: one token per row and no gradient needed."""
    if cu_seqlens is not None or q.shape[1] != 1:
        return False
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors):
        return False
    return True
