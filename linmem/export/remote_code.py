"""Write a checkpoint's remote code: flat linmem modules, two entry files and `auto_map` in config.json.

After `write_remote_code(dir, config)` a machine without linmem loads the checkpoint with
`AutoModelForCausalLM.from_pretrained(dir_or_repo, trust_remote_code=True)`:

    config.json            "auto_map": {"AutoConfig": "configuration_linmem.CCQConfig",
                                        "AutoModel": "modeling_linmem.CCQModel",
                                        "AutoModelForCausalLM": "modeling_linmem.CCQForCausalLM"}
    configuration_linmem.py  imports the config classes; records the file list and package facts
    modeling_linmem.py       imports the model classes; names the modules imported by name at run time
    linmem_*.py              the package's modules, flattened (see flatten.py)

Works both inside the installed package (flattens its sources) and inside remote code loaded from a
checkpoint (copies its own sibling files), so a model loaded with trust_remote_code saves and pushes
the same way.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from pathlib import Path
from typing import Any

from .remote_imports import PACKAGE, flat_module_name

CONFIG_ENTRY = "configuration_linmem"
MODELING_ENTRY = "modeling_linmem"
#: The module the save hooks call (it must travel with the remote code, since the hooks do too).
HOOK_MODULE = f"{PACKAGE}.hub"
#: Modules the kernels import by name at run time (`<package>.triton_*`), exported beside the rest.
DYNAMIC_MODULE_GLOB = "kernels/**/triton_*.py"


def running_in_package() -> bool:
    """True inside the installed linmem package, False inside a checkpoint's remote code."""
    return __name__ == f"{PACKAGE}.export.remote_code"


def _remote_sibling(module: str) -> Any:
    """A sibling module of this file inside remote code (by entry name, e.g. 'configuration_linmem')."""
    return importlib.import_module(f"{__name__.rpartition('.')[0]}.{module}")


def package_facts() -> dict[str, Any]:
    """version, architectures {model_type: (config, base model, causal LM) class names}, LoRA targets."""
    if running_in_package():
        package = importlib.import_module(PACKAGE)
        architectures = {config_class.model_type: (config_class.__name__, model.__name__, lm.__name__)
                         for config_class, (model, lm) in package.ARCHITECTURES.items()}
        return {"version": package.__version__, "architectures": architectures,
                "lora_target_modules": list(package.LORA_TARGET_MODULES)}
    entry = _remote_sibling(CONFIG_ENTRY)
    return {"version": entry.LINMEM_VERSION, "architectures": dict(entry.LINMEM_ARCHITECTURES),
            "lora_target_modules": list(entry.LORA_TARGET_MODULES)}


def auto_map(config_class_name: str, with_modeling: bool = True) -> dict[str, str]:
    """The config.json `auto_map` of a checkpoint whose config class is `config_class_name`."""
    for model_type, (config_name, model_name, lm_name) in package_facts()["architectures"].items():
        if config_name == config_class_name:
            mapping = {"AutoConfig": f"{CONFIG_ENTRY}.{config_name}"}
            if with_modeling:
                mapping["AutoModel"] = f"{MODELING_ENTRY}.{model_name}"
                mapping["AutoModelForCausalLM"] = f"{MODELING_ENTRY}.{lm_name}"
            return mapping
    raise ValueError(f"`config` must be a registered linmem config class "
                     f"({[names[0] for names in package_facts()['architectures'].values()]}), got {config_class_name!r}")


def _py_list(items: list[str]) -> str:
    return "[\n" + "".join(f"    {item!r},\n" for item in items) + "]"


def _entry_files(facts: dict[str, Any], config_files: list[str], all_files: list[str],
                 dynamic_files: list[str]) -> dict[str, str]:
    package = importlib.import_module(PACKAGE)
    config_lines, model_lines, names = [], [], []
    for config_class, (model, lm) in package.ARCHITECTURES.items():
        config_lines.append(f"from .{flat_module_name(config_class.__module__)} import {config_class.__name__}")
        model_lines.append(f"from .{flat_module_name(model.__module__)} import {model.__name__}")
        model_lines.append(f"from .{flat_module_name(lm.__module__)} import {lm.__name__}")
        names += [config_class.__name__, model.__name__, lm.__name__]
    architectures = "{\n" + "".join(f"    {k!r}: {tuple(v)!r},\n" for k, v in facts["architectures"].items()) + "}"
    config_entry = (
        f'"""linmem {facts["version"]} remote code: configuration classes (generated at save time; do not edit).\n\n'
        "Without linmem: AutoConfig.from_pretrained(repo, trust_remote_code=True).\n"
        "With linmem installed, `import linmem` first and the package's own classes are used.\n"
        '"""\n\n'
        + "\n".join(config_lines) + "\n\n"
        f"LINMEM_VERSION = {facts['version']!r}\n"
        f"LINMEM_ARCHITECTURES = {architectures}\n"
        f"LORA_TARGET_MODULES = {facts['lora_target_modules']!r}\n"
        f"#: Files of the configuration-only export (a config saved on its own).\n"
        f"LINMEM_CONFIG_FILES = {_py_list(config_files)}\n"
        f"#: Files of the full export (what a model's save_pretrained writes).\n"
        f"LINMEM_FILES = {_py_list(all_files)}\n"
    )
    dynamic = "".join(f"    from .{Path(f).stem} import __name__ as _  # noqa: F401\n" for f in dynamic_files)
    modeling_entry = (
        f'"""linmem {facts["version"]} remote code: model classes (generated at save time; do not edit).\n\n'
        "Without linmem: AutoModelForCausalLM.from_pretrained(repo, trust_remote_code=True).\n"
        '"""\n\n'
        + "\n".join(model_lines) + "\n\n\n"
        "def _modules_imported_by_name() -> None:\n"
        '    """Never called. transformers downloads the sibling files a module imports with `from .x import`;\n'
        '    these are imported by name at run time (the Triton kernels, CUDA only), so they are listed here."""\n'
        + (dynamic or "    pass\n")
    )
    return {f"{CONFIG_ENTRY}.py": config_entry, f"{MODELING_ENTRY}.py": modeling_entry}


@functools.lru_cache(maxsize=2)
def _package_export(with_modeling: bool) -> dict[str, str]:
    """Cached per process: the model's save also runs the config's save, which would flatten twice."""
    from .flatten import check_remote_files, flatten_closure

    package = importlib.import_module(PACKAGE)
    facts = package_facts()
    version = facts["version"]
    config_roots = [c.__module__ for c in package.ARCHITECTURES] + [HOOK_MODULE]
    config_modules = flatten_closure(config_roots, version)
    model_roots = [m.__module__ for pair in package.ARCHITECTURES.values() for m in pair]
    package_dir = Path(package.__file__).parent
    dynamic_roots = sorted(
        PACKAGE + "." + ".".join(path.relative_to(package_dir).with_suffix("").parts)
        for path in package_dir.glob(DYNAMIC_MODULE_GLOB))
    all_modules = flatten_closure(config_roots + model_roots + dynamic_roots, version)
    dynamic_files = sorted(flat_module_name(name) + ".py" for name in dynamic_roots)
    config_files = sorted(m.file_name for m in config_modules.values()) + [f"{CONFIG_ENTRY}.py"]
    all_files = sorted(m.file_name for m in all_modules.values()) + [f"{CONFIG_ENTRY}.py", f"{MODELING_ENTRY}.py"]
    files = {m.file_name: m.source for m in all_modules.values()}
    files.update(_entry_files(facts, config_files, all_files, dynamic_files))
    check_remote_files(files)
    wanted = all_files if with_modeling else config_files
    return {name: files[name] for name in wanted}


def _remote_export(with_modeling: bool) -> dict[str, str]:
    entry = _remote_sibling(CONFIG_ENTRY)
    wanted = entry.LINMEM_FILES if with_modeling else entry.LINMEM_CONFIG_FILES
    here = Path(__file__).parent
    missing = [name for name in wanted if not (here / name).is_file()]
    if missing:
        raise FileNotFoundError(f"remote code in {here} lacks {missing}; load the model (not only the config) "
                                f"with trust_remote_code=True before saving it")
    return {name: (here / name).read_text(encoding="utf-8") for name in wanted}


def remote_code_files(with_modeling: bool = True) -> dict[str, str]:
    """file name -> source of the remote code (models: everything; configs alone: the configuration part)."""
    return _package_export(with_modeling) if running_in_package() else _remote_export(with_modeling)


def write_remote_code(save_directory: str | os.PathLike, config_class_name: str, with_modeling: bool = True) -> list[str]:
    """Write the remote-code files into `save_directory` and set `auto_map` in its config.json.

    Returns the written file names. config.json must already exist (call after transformers' save).
    """
    directory = Path(save_directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"`save_directory` {directory} has no config.json; save the model or config first")
    files = remote_code_files(with_modeling)
    for name, source in files.items():
        (directory / name).write_text(source, encoding="utf-8")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    existing = config.get("auto_map") or {}
    # A config saved alone must not drop the model entries a model save wrote before (and vice versa).
    config["auto_map"] = {**{k: v for k, v in existing.items() if not with_modeling and k != "AutoConfig"},
                          **auto_map(config_class_name, with_modeling)}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return sorted(files)
