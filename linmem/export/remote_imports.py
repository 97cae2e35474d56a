"""Dynamic imports inside exported remote code.

linmem imports some modules by name at run time (the Triton kernels: `importlib.import_module(
"linmem.kernels.gla.triton_chunk")`). In a checkpoint's remote code those modules are flat siblings
(`linmem_kernels_gla_triton_chunk.py`) of a `transformers_modules...` package, so the exporter rewrites
every `importlib.import_module(name)` call of the copied sources into `import_module(name)` below, which
maps a `linmem.` name onto its flat sibling. Inside the installed package it is plain importlib.
"""

from __future__ import annotations

import importlib
from types import ModuleType

PACKAGE = "linmem"


def flat_module_name(module: str) -> str:
    """'linmem.kernels.gla.op' -> 'linmem_kernels_gla_op' (the file name of its exported copy, minus .py)."""
    return module.replace(".", "_")


def import_module(name: str, package: str | None = None) -> ModuleType:
    """importlib.import_module, except that a `linmem.*` name resolves to its flat sibling in remote code.

    A missing flat sibling raises ModuleNotFoundError whose `.name` is the original dotted name, as the
    package would (callers such as the kernel backend test `err.name` to tell "not written yet" apart).
    """
    own_package = __name__.rpartition(".")[0]
    running_in_package = __name__ == f"{PACKAGE}.export.remote_imports"
    if running_in_package or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
        return importlib.import_module(name, package)
    flat = f"{own_package}.{flat_module_name(name)}"
    try:
        return importlib.import_module(flat)
    except ModuleNotFoundError as err:
        if err.name != flat:
            raise
        raise ModuleNotFoundError(f"No module named {name!r} (remote code has no {flat_module_name(name)}.py)",
                                  name=name) from err
