"""Flatten linmem modules into single-dot sibling files for a checkpoint's remote code.

transformers' remote code downloads a module's siblings by reading `from .name import ...` lines (one
dot, no sub-packages) and checks that every absolute import of every downloaded file is installed. So
each module `linmem.a.b` becomes the file `linmem_a_b.py` with, in its source:
  * package imports (`from ..kernels import gla`, `from linmem.x import y`) -> `from .linmem_kernels import gla`;
  * imports of optional packages (triton) wrapped in `try: ... except ImportError: raise ...`, which
    the static check skips; the module still fails loudly if it is imported without them;
  * `__package__` -> the original package name and `importlib.import_module(...)` -> the
    `remote_imports.import_module` shim, so names built at run time ("linmem.kernels.gla.triton_chunk")
    resolve to flat siblings.
The rewriting is AST-driven; nothing else in the source changes.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .remote_imports import PACKAGE, flat_module_name

#: Imports the exported code may need on the loading machine (besides the standard library).
REQUIRED_PACKAGES = frozenset({"torch", "transformers", "huggingface_hub", "safetensors"})
#: Imports that only some code paths need; hidden from transformers' static check (see module doc).
OPTIONAL_PACKAGES = frozenset({"triton"})

SHIM_MODULE = f"{PACKAGE}.export.remote_imports"
SHIM_ALIAS = "_linmem_import_module"

# transformers.dynamic_module_utils.get_relative_imports, reproduced to check what it will see.
_RELATIVE_IMPORT_PATTERNS = (re.compile(r"^\s*import\s+\.(\S+)\s*$", re.MULTILINE),
                             re.compile(r"^\s*from\s+\.(\S+)\s+import", re.MULTILINE))


class ExportError(RuntimeError):
    """The package cannot be exported as remote code (a construct the flattener does not support)."""


@dataclass
class _Edit:
    start: tuple[int, int]  # (line, byte column), 1-based line
    end: tuple[int, int]
    text: str


@dataclass
class FlatModule:
    """One exported module: original dotted name, flat file name, rewritten source, linmem modules it imports."""

    name: str
    file_name: str
    source: str
    imports: set[str] = field(default_factory=set)


def _module_file(name: str) -> tuple[Path, bool]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ExportError(f"cannot export {name!r}: no Python source file found (spec={spec})")
    return Path(spec.origin), spec.submodule_search_locations is not None


def _is_internal(module: str | None) -> bool:
    return module is not None and (module == PACKAGE or module.startswith(PACKAGE + "."))


def _resolve_relative(package: str, level: int, module: str | None) -> str:
    parts = package.split(".")
    if level - 1 >= len(parts):
        raise ExportError(f"relative import beyond the top-level package in {package!r}")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _names_are_not_submodules(target: str, names: list[ast.alias], where: str) -> None:
    """Static form of the check below, for a module that needs a missing optional package (e.g. triton)."""
    spec = importlib.util.find_spec(target)
    if spec is None or spec.submodule_search_locations is None:
        return  # a plain module has no sub-modules
    for alias in names:
        for location in spec.submodule_search_locations:
            if (Path(location) / f"{alias.name}.py").is_file() or (Path(location) / alias.name).is_dir():
                raise ExportError(f"{where}: `from {target} import {alias.name}` imports a module; the remote-code "
                                  f"export needs imported names (write `from {target}.{alias.name} import ...`)")


def _imported_names_are_attributes(target: str, names: list[ast.alias], where: str) -> None:
    """Check `from target import names` binds attributes, not sub-modules (flat files have no sub-modules)."""
    try:
        module: ModuleType = importlib.import_module(target)
    except ImportError as error:  # e.g. the Triton kernels on a machine without triton: still exportable
        if (getattr(error, "name", None) or "").split(".")[0] not in OPTIONAL_PACKAGES:
            raise
        _names_are_not_submodules(target, names, where)
        return
    for alias in names:
        if alias.name == "*":
            continue
        value = getattr(module, alias.name, _MISSING)
        is_submodule = (isinstance(value, ModuleType) and value.__name__ == f"{target}.{alias.name}") or (
            value is _MISSING and importlib.util.find_spec(f"{target}.{alias.name}") is not None)
        if is_submodule:
            raise ExportError(f"{where}: `from {target} import {alias.name}` imports a module; the remote-code "
                              f"export needs imported names (write `from {target}.{alias.name} import ...`)")
        if value is _MISSING:
            raise ExportError(f"{where}: `{target}` has no attribute {alias.name!r}")


_MISSING = object()


def _alias_text(names: list[ast.alias]) -> str:
    return ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in names)


def _guarded_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes inside a try statement (transformers' import check does not look there)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            guarded.update(id(child) for child in ast.walk(node))
    return guarded


def _wrap_optional(statement: str, indent: str, package_name: str, module: str) -> str:
    body = statement.replace("\n", "\n    ")
    return (f"try:\n{indent}    {body}\n"
            f"{indent}except ImportError as _linmem_error:  # optional dependency, hidden from transformers' check\n"
            f"{indent}    raise ImportError(\"{module} needs the optional package `{package_name}` "
            f"(only the CUDA path imports this module)\") from _linmem_error")


def _apply_edits(source: str, edits: list[_Edit]) -> str:
    lines = [line.encode("utf-8") for line in source.splitlines(keepends=True)]
    lines.append(b"")  # an end position may sit on the line after the last one
    # Last edit first; at equal starts the wider edit goes first so an insertion lands before it.
    ordered = sorted(edits, key=lambda e: (e.start, e.end != e.start), reverse=True)
    limit = (len(lines) + 1, 0)
    for edit in ordered:
        if edit.end > limit:
            raise ExportError(f"overlapping source edits at line {edit.start[0]}")
        (l1, c1), (l2, c2) = edit.start, edit.end
        merged = lines[l1 - 1][:c1] + edit.text.encode("utf-8") + lines[l2 - 1][c2:]
        lines[l1 - 1 : l2] = [merged]
        limit = edit.start
    return b"".join(lines).decode("utf-8")


def _shim_insertion_line(tree: ast.Module) -> int:
    """First line after the docstring and `from __future__` imports."""
    for index, node in enumerate(tree.body):
        is_docstring = index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
            and isinstance(node.value.value, str)
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (is_docstring or is_future):
            return node.lineno
    return (tree.body[-1].end_lineno or 0) + 1 if tree.body else 1


def flatten_module(name: str, version: str) -> FlatModule:
    """Rewrite the source of the linmem module `name` for the flat remote-code layout."""
    path, is_package = _module_file(name)
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    package = name if is_package else name.rpartition(".")[0]
    guarded = _guarded_nodes(tree)
    line_bytes = [line.encode("utf-8") for line in source.splitlines()]
    edits: list[_Edit] = []
    imports: set[str] = set()
    needs_shim = False
    where = f"{name} ({path})"

    def statement_span(node: ast.stmt) -> tuple[tuple[int, int], tuple[int, int], str]:
        indent = line_bytes[node.lineno - 1][: node.col_offset].decode("utf-8")
        if indent.strip():
            raise ExportError(f"{where}:{node.lineno}: put this import on its own line to export it")
        return (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset), indent

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            internal = node.level > 0 or _is_internal(node.module)
            if internal:
                target = _resolve_relative(package, node.level, node.module) if node.level else node.module
                if not _is_internal(target):
                    raise ExportError(f"{where}:{node.lineno}: relative import leaves the {PACKAGE} package")
                _imported_names_are_attributes(target, node.names, f"{where}:{node.lineno}")
                imports.add(target)
                start, end, _ = statement_span(node)
                edits.append(_Edit(start, end, f"from .{flat_module_name(target)} import {_alias_text(node.names)}"))
            elif node.module and node.module.split(".")[0] in OPTIONAL_PACKAGES and id(node) not in guarded:
                start, end, indent = statement_span(node)
                text = ast.get_source_segment(source, node)
                edits.append(_Edit(start, end, _wrap_optional(text, indent, node.module.split(".")[0], name)))
        elif isinstance(node, ast.Import):
            tops = {alias.name.split(".")[0] for alias in node.names}
            if PACKAGE in tops:
                raise ExportError(f"{where}:{node.lineno}: `import {PACKAGE}...` cannot be exported; "
                                  f"use relative `from . import` style imports of names")
            optional = tops & OPTIONAL_PACKAGES
            if optional and id(node) not in guarded:
                start, end, indent = statement_span(node)
                text = ast.get_source_segment(source, node)
                edits.append(_Edit(start, end, _wrap_optional(text, indent, sorted(optional)[0], name)))
        elif isinstance(node, ast.Name) and node.id == "__package__" and isinstance(node.ctx, ast.Load):
            edits.append(_Edit((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset), repr(package)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "importlib" and name != SHIM_MODULE):
            func = node.func
            edits.append(_Edit((func.lineno, func.col_offset), (func.end_lineno, func.end_col_offset), SHIM_ALIAS))
            needs_shim = True

    if needs_shim:
        line = _shim_insertion_line(tree)
        edits.append(_Edit((line, 0), (line, 0),
                           f"from .{flat_module_name(SHIM_MODULE)} import import_module as {SHIM_ALIAS}\n"))
        imports.add(SHIM_MODULE)

    relative_path = path.relative_to(Path(importlib.import_module(PACKAGE).__file__).parent.parent)
    header = (f"# linmem {version} remote code: {relative_path.as_posix()} rewritten for trust_remote_code "
              f"(linmem.export.flatten). Do not edit.\n")
    return FlatModule(name, flat_module_name(name) + ".py", header + _apply_edits(source, edits), imports)


def flatten_closure(roots: list[str], version: str) -> dict[str, FlatModule]:
    """Every linmem module reachable from `roots` through imports, flattened; keyed by dotted name."""
    modules: dict[str, FlatModule] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in modules:
            continue
        flat = flatten_module(name, version)
        modules[name] = flat
        pending.extend(sorted(flat.imports - modules.keys()))
    by_file: dict[str, str] = {}
    for flat in modules.values():
        if flat.file_name in by_file:
            raise ExportError(f"modules {by_file[flat.file_name]!r} and {flat.name!r} flatten to the same "
                              f"file {flat.file_name}; rename one of them")
        by_file[flat.file_name] = flat.name
    return modules


def check_remote_files(files: dict[str, str]) -> None:
    """Check what transformers will check: sibling imports exist, absolute imports are installable.

    files: file name -> source. Raises ExportError naming the file and the problem.
    """
    stdlib = set(sys.stdlib_module_names)
    for file_name, source in files.items():
        for pattern in _RELATIVE_IMPORT_PATTERNS:
            for sibling in pattern.findall(source):
                if f"{sibling}.py" not in files:
                    raise ExportError(f"{file_name}: transformers would download {sibling}.py, which is not exported")
        tree = ast.parse(source, filename=file_name)
        guarded = _guarded_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in stdlib and top not in REQUIRED_PACKAGES:
                    raise ExportError(f"{file_name}:{node.lineno}: imports `{top}` unguarded; the remote code may "
                                      f"only need {sorted(REQUIRED_PACKAGES)} (wrap optional imports in try)")
