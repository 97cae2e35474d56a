"""The Triton kernels' forward and backward passes as opaque `torch.library` custom ops.

Each chunk kernel's autograd.Function calls two ops, `<namespace>::<name>_fwd` and `..._bwd`, instead of launching
the kernels itself. `torch.compile` then traces a model end to end (`fullgraph=True` works): every op is one node
of the graph, which Inductor neither looks into nor breaks at. Eager calls skip the dispatcher and run the same
Python function directly (`through_dispatcher()` sends them through it too). An op's output shapes come from a dry
run of the same Python code on fake tensors with every Triton launch skipped, so there is no hand-written shape
function to drift from the kernels.

Rules for an op's function (`opaque_op` checks none of them; `tests/test_library_ops.py` runs opcheck on each):
its arguments are tensors, optional tensors, lists of optional tensors, floats, ints and bools; it returns a
sequence of fresh tensors or None (never an input or a view of one), and reads no tensor value on the host.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import threading
import typing
from collections.abc import Callable, Iterator, Sequence

import torch

#: The ops' namespace: "linmem" in the installed package; a checkpoint's remote code (which carries its own copy of
#: these modules, possibly beside an installed linmem) gets a namespace of its own, so the two never collide.
NAMESPACE = ("linmem" if __name__ == "linmem.kernels.library"
             else "linmem_" + hashlib.sha1(__name__.encode()).hexdigest()[:12])


class _ThreadFlag(threading.local):
    """A per-thread switch, off until set inside `on()`."""

    active = False

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        previous, self.active = self.active, True
        try:
            yield
        finally:
            self.active = previous


_dry_run, _through_dispatcher, _dispatched = _ThreadFlag(), _ThreadFlag(), _ThreadFlag()


def _none_marker(device: torch.device) -> torch.Tensor:
    """What an op returns in place of None (an op's list result cannot hold None): an empty bool tensor, a dtype
    and shape no kernel output has."""
    return torch.empty(0, dtype=torch.bool, device=device)


def _is_none_marker(t: torch.Tensor) -> bool:
    return t.dtype == torch.bool and t.dim() == 1 and t.shape[0] == 0


@functools.cache
def _skip_launches_when_dry() -> None:
    """Make `kernel[grid](...)` a no-op in a thread running `dry_run()`; other threads and calls are unchanged.

    Triton launches every kernel through `KernelInterface.__getitem__` (compiled and interpreted alike); the
    wrapper only reads a thread-local flag, so it costs nothing measurable per launch.
    """
    from triton.runtime.jit import KernelInterface

    launch = KernelInterface.__getitem__

    @functools.wraps(launch)
    def launch_or_skip(self, grid):
        if _dry_run.active:
            return lambda *args, **kwargs: None
        return launch(self, grid)

    KernelInterface.__getitem__ = launch_or_skip


def dry_run() -> contextlib.AbstractContextManager:
    """Inside the block this thread's Triton launches are skipped (the outputs keep their allocations)."""
    _skip_launches_when_dry()
    return _dry_run.on()


def through_dispatcher() -> contextlib.AbstractContextManager:
    """Inside the block, eager calls go through the custom ops too (in this thread), so that dispatch modes and
    torch.library's tools see them; otherwise only traced code (torch.compile, torch.export) does."""
    return _through_dispatcher.on()


def inside_dispatched_op() -> bool:
    """Whether this thread runs an op's implementation called through the dispatcher (compiled code, or
    `through_dispatcher()`), whose outputs must be fresh tensors."""
    return _dispatched.active


def _device_of(args: Sequence) -> torch.device:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
        if isinstance(a, (list, tuple)):
            for t in a:
                if isinstance(t, torch.Tensor):
                    return t.device
    raise TypeError("an opaque op needs at least one tensor argument")


def _specialized(arg):
    """arg with its symbolic sizes (dynamic shapes) fixed to their values: the launch settings look sizes up in
    tables and pick tiles by them, so a graph is specialised to the sizes it was traced with (Dynamo guards on them
    and recompiles for others)."""
    if isinstance(arg, torch.Tensor):
        return arg.new_empty_strided([int(s) for s in arg.shape], [int(s) for s in arg.stride()])
    if isinstance(arg, (list, tuple)):
        return type(arg)(map(_specialized, arg))
    if isinstance(arg, torch.SymInt):
        return int(arg)
    if isinstance(arg, torch.SymFloat):
        return float(arg)
    return arg


def _unused_name(name: str) -> str:
    """name, or name_v2, name_v3, ... when a module defining it runs again in this process (importlib.reload, or
    remote code re-executed after its file changed): a custom op cannot be redefined."""
    namespace = getattr(torch.ops, NAMESPACE)
    candidate, version = name, 1
    while hasattr(namespace, candidate):
        version += 1
        candidate = f"{name}_v{version}"
    return candidate


def opaque_op(name: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as the custom op `NAMESPACE::name`; returns a callable with the function's
    signature and results (a tuple, None where the function returned None) that runs the op.

    The function is annotated like a custom op's implementation, returning `list[torch.Tensor | None]`.
    """

    def register(fn: Callable) -> Callable:
        def implementation(*args):
            device = _device_of(args)
            with _dispatched.on():
                results = fn(*args)
            return [_none_marker(device) if t is None else t for t in results]

        # The custom op's schema comes from fn's parameters (string annotations resolved in fn's module).
        hints = typing.get_type_hints(fn)
        parameters = [p.replace(annotation=hints[p.name]) for p in inspect.signature(fn).parameters.values()]
        implementation.__signature__ = inspect.Signature(parameters, return_annotation=list[torch.Tensor])
        schema = torch.library.infer_schema(implementation, mutates_args=())
        op = torch.library.custom_op(f"{NAMESPACE}::{_unused_name(name)}", implementation, mutates_args=(),
                                     schema=schema)

        @op.register_fake
        def _(*args):
            with dry_run():
                return implementation(*map(_specialized, args))

        @functools.wraps(fn)
        def call(*args) -> tuple:
            if not (torch.compiler.is_compiling() or _through_dispatcher.active):
                return tuple(fn(*args))  # eager: no dispatcher, whose Python overhead each call would pay
            return tuple(None if _is_none_marker(t) else t for t in op(*args))

        call.op = op
        return call

    return register

